"""SavedModel export: both signatures match the in-memory model."""

import io
import os
import subprocess
import sys
import textwrap
from unittest import mock

import numpy as np
import pytest

from tests.test_case import TestCase

NAMES = ["airplane", "bird", "cat", "dog"]
COUNTS = [10, 6, 5, 3]


def build_tiny_model():
    """A classifier that stores no class names."""
    from balpoe_keras.models import build_balpoe_classifier

    return build_balpoe_classifier(
        "resnet8", COUNTS, (1.0, 0.0, -1.0), input_shape=(8, 8, 3)
    )


def softmax(logits):
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


@pytest.mark.tf_only
class ExportArgumentsTest(TestCase):
    def test_bad_arguments(self):
        from balpoe_keras.export import export_saved_model

        model = build_tiny_model()
        tmp = self.get_temp_dir()
        kwargs = dict(class_names=NAMES, image_size=8, channels=3)
        with self.assertRaisesRegex(ValueError, "3 class_names .* 4 classes"):
            export_saved_model(model, tmp,
                               **{**kwargs, "class_names": NAMES[:3]})
        with self.assertRaisesRegex(ValueError, "preprocess in"):
            export_saved_model(model, tmp, preprocess="crop", **kwargs)
        with self.assertRaisesRegex(ValueError, "channels 1 or 3"):
            export_saved_model(model, tmp, **{**kwargs, "channels": 4})
        # A 4-character string is not 4 class names.
        with self.assertRaisesRegex(ValueError, "list of strings, one per"):
            export_saved_model(model, tmp, **{**kwargs, "class_names": "abcd"})
        for bad in (0, -5):
            with self.assertRaisesRegex(ValueError,
                                        "max_pixels >= 1.*every image"):
                export_saved_model(model, tmp, max_pixels=bad, **kwargs)
        self.assertFalse(os.listdir(tmp))  # Refused before writing.
        os.makedirs(os.path.join(tmp, "1"))
        with self.assertRaisesRegex(ValueError, "already exists"):
            export_saved_model(model, tmp, **kwargs)
        import keras

        plain = keras.Sequential([keras.Input((8, 8, 3)),
                                  keras.layers.Flatten(),
                                  keras.layers.Dense(4)])
        with self.assertRaisesRegex(ValueError, "Expected a BalPoEClassifier"
                                    ".*Received a Sequential"):
            export_saved_model(plain, tmp, **kwargs)

    def test_a_failed_overwrite_keeps_the_version_that_was_there(self):
        # overwrite=True removed the version before checking target_prior
        # (the runner always overwrites): a failed export left none.
        from balpoe_keras.export import export_saved_model

        model = build_tiny_model()
        tmp = self.get_temp_dir()
        kwargs = dict(class_names=NAMES, image_size=8, channels=3,
                      overwrite=True, top_k=9)
        first = export_saved_model(model, tmp, **kwargs)
        with open(first["metadata"]) as f:
            self.assertIn('"top_k": 4', f.read())  # As served: C = 4.
        with self.assertRaisesRegex(ValueError, "pass model.class_counts"):
            export_saved_model(model, tmp, target_prior="train", **kwargs)
        for bad in ([1, 2], [1, -2, 3, 1]):
            with self.assertRaisesRegex(ValueError, "target_prior|negative"):
                export_saved_model(model, tmp, target_prior=bad, **kwargs)
            self.assertTrue(os.path.exists(first["keras"]))
        with mock.patch("keras.Model.save", side_effect=OSError("disk")):
            with self.assertRaisesRegex(OSError, "disk"):
                export_saved_model(model, tmp, **kwargs)
        self.assertEqual(sorted(os.listdir(tmp)), ["1"])  # No leftovers.
        self.assertTrue(os.path.exists(first["keras"]))
        export_saved_model(model, tmp, **kwargs)  # Replaced in place.
        self.assertEqual(sorted(os.listdir(tmp)), ["1"])

    def test_what_a_model_without_names_or_size_cannot_tell(self):
        from balpoe_keras.export import export_saved_model
        from balpoe_keras.models import build_balpoe_classifier

        tmp = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "Pass class_names"):
            export_saved_model(build_tiny_model(), tmp)
        any_size = build_balpoe_classifier(
            "resnet8", COUNTS, (0.0,), input_shape=(None, None, 3))
        with self.assertRaisesRegex(ValueError, "pass image_size"):
            export_saved_model(any_size, tmp, class_names=NAMES)


@pytest.mark.large
@pytest.mark.tf_only
class ExportSavedModelTest(TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile

        import keras

        from balpoe_keras.export import export_saved_model

        keras.utils.set_random_seed(0)
        cls.tmp = tempfile.mkdtemp()
        cls.model = build_tiny_model()
        common = dict(class_names=NAMES, image_size=(8, 8), channels=3)
        cls.plain = export_saved_model(
            cls.model, cls.tmp, version=1, top_k=2, **common
        )
        cls.target_counts = np.array([1, 1, 6, 2])
        cls.shifted = export_saved_model(
            cls.model, cls.tmp, version=2, target_prior=cls.target_counts,
            preprocess="resize_center_crop", **common,
        )

    @classmethod
    def tearDownClass(cls):
        import shutil

        shutil.rmtree(cls.tmp, ignore_errors=True)

    def load(self, paths):
        import tensorflow as tf

        return tf.saved_model.load(paths["saved_model"]).signatures

    def test_float_signature_matches_model_at_two_batch_sizes(self):
        serve = self.load(self.plain)["serving_default"]
        for batch in (1, 3):
            x = np.random.rand(batch, 8, 8, 3).astype("float32")
            out = serve(images=x)
            expected = softmax(self.model.predict(x, verbose=0))
            self.assertAllClose(out["probabilities"], expected, atol=1e-5)
            top = np.argsort(-expected, axis=-1)[:, :2]
            self.assertAllClose(out["top_k_ids"], top)
            self.assertEqual(out["top_k_ids"].dtype.name, "int32")
            self.assertAllClose(
                out["top_k_scores"], np.take_along_axis(expected, top, -1),
                atol=1e-5,
            )
            self.assertEqual(
                out["top_k_names"].numpy().tolist(),
                [[NAMES[i].encode() for i in row] for row in top],
            )

    def test_bytes_signature_decodes_png(self):
        import tensorflow as tf

        pixels = np.random.randint(0, 256, (2, 8, 8, 3), np.uint8)
        data = tf.stack([tf.io.encode_png(p) for p in pixels])
        out = self.load(self.plain)["serving_bytes"](image_bytes=data)
        # PNG is lossless and the size already matches: same pixels / 255.
        x = pixels.astype("float32") / 255.0
        expected = softmax(self.model.predict(x, verbose=0))
        self.assertAllClose(out["probabilities"], expected, atol=1e-5)

    def test_target_prior_equals_adding_log_prior(self):
        x = np.random.rand(3, 8, 8, 3).astype("float32")
        out = self.load(self.shifted)["serving_default"](images=x)
        logits = self.model.predict(x, verbose=0)
        # p_target = [1, 1, 6, 2] / 10.
        expected = softmax(logits + np.log(self.target_counts / 10.0))
        self.assertAllClose(out["probabilities"], expected, atol=1e-5)

    def test_resize_center_crop_policy(self):
        import tensorflow as tf

        # 12x16 image -> shorter side round(8 / .875) = 9, longer
        # int(16 * 9 / 12) = 12 -> 9x12, rounded to uint8 -> central 8x8
        # crop, offsets round((9 - 8) / 2) = 0 (half to even) and
        # round((12 - 8) / 2) = 2: rows 0-7, columns 2-9.
        pixels = np.random.randint(0, 256, (12, 16, 3), np.uint8)
        data = tf.io.encode_png(pixels)[None]
        out = self.load(self.shifted)["serving_bytes"](image_bytes=data)
        resized = tf.image.resize(pixels.astype("float32"), (9, 12),
                                  antialias=True)
        x = np.round(resized.numpy().clip(0, 255))[None, 0:8, 2:10] / 255.0
        x = x.astype("float32")
        logits = self.model.predict(x, verbose=0)
        expected = softmax(logits + np.log(self.target_counts / 10.0))
        self.assertAllClose(out["probabilities"], expected, atol=1e-4)

    def test_bad_inputs_give_clear_errors(self):
        import tensorflow as tf

        signatures = self.load(self.plain)
        serve = signatures["serving_default"]
        # NumPy arrays are checked against the signature by the Python
        # binding; tensors (and TF Serving requests) reach the in-graph check.
        with self.assertRaisesRegex(
            TypeError, r"Can not cast TensorSpec\(shape=\(1, 9, 8, 3\)(.|\n)*"
            r"TensorSpec\(shape=\(None, 8, 8, 3\)",
        ):
            serve(images=np.zeros((1, 9, 8, 3), "float32"))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"expects float32 images of shape \(batch, H, W, C\) = "
            r"\(batch, 8, 8, 3\)(.|\n)*\[9 8 3\]",
        ):
            serve(images=tf.zeros((1, 9, 8, 3)))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"\(batch, 8, 8, 3\)(.|\n)*\[8 8 1\]",
        ):
            serve(images=tf.zeros((1, 8, 8, 1)))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "divide 0-255 pixels by 255"
        ):
            serve(images=tf.fill((1, 8, 8, 3), 255.0))
        # A resize's overshoot passes, as in the model's own check.
        serve(images=tf.fill((1, 8, 8, 3), 1.0005))
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "received a value > 1"):
            serve(images=tf.fill((1, 8, 8, 3), 1.01))
        png = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8))
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError,
            r"expects encoded JPEG/PNG/GIF/BMP/WebP images; these batch "
            r"positions "
            r"hold something else:\] \[1\]",
        ):
            signatures["serving_bytes"](
                image_bytes=tf.stack([png, tf.constant(b"not an image")])
            )
        # Short payloads (an empty body, a cut-off upload): named, or the
        # format's own decoder error, never a failed header read.
        for short, message in ((b"", "hold something else"),
                               (b"abc", "hold something else"),
                               (b"RIFF", "hold something else"),
                               (b"RIFF\0\0\0\0WEBP", "WebP|webp|image"),
                               (b"GIF8", "GIF"), (b"BM", "Unsupported BMP")):
            with self.subTest(short=short), self.assertRaisesRegex(
                    tf.errors.InvalidArgumentError, message) as caught:
                signatures["serving_bytes"](
                    image_bytes=tf.stack([png, tf.constant(short)]))
            self.assertNotIn("out of range", str(caught.exception))
        truncated = tf.constant([b"\x89PNG\r\n\x1a\n garbage"])
        with self.assertRaisesRegex(
            tf.errors.InvalidArgumentError, "Invalid PNG"
        ):
            signatures["serving_bytes"](image_bytes=truncated)

    def test_empty_batch_gives_empty_outputs(self):
        import tensorflow as tf

        signatures = self.load(self.plain)
        out = signatures["serving_default"](images=tf.zeros((0, 8, 8, 3)))
        self.assertEqual(tuple(out["probabilities"].shape), (0, 4))
        self.assertEqual(tuple(out["top_k_ids"].shape), (0, 2))
        self.assertEqual(tuple(out["top_k_names"].shape), (0, 2))
        out = signatures["serving_bytes"](
            image_bytes=tf.zeros((0,), tf.string))
        self.assertEqual(tuple(out["top_k_scores"].shape), (0, 2))

    def test_non_finite_pixels_and_wrong_dtype_are_named(self):
        import tensorflow as tf

        serve = self.load(self.plain)["serving_default"]
        for value in (np.nan, np.inf, -np.inf):
            x = np.full((2, 8, 8, 3), 0.5, "float32")
            x[1, 3, 4, 0] = value
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        "non-finite pixel values"):
                serve(images=tf.constant(x))
        # The signature itself rejects other dtypes (TF Serving as well).
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "expected to be a float tensor but is a "
                                    "uint8 tensor"):
            serve(images=tf.zeros((1, 8, 8, 3), tf.uint8))

    def test_oversized_images_are_refused_from_their_header(self):
        import tensorflow as tf

        serve = self.load(self.plain)["serving_bytes"]
        # A PNG header claiming 100,000 x 100,000 pixels (the rest is
        # garbage): refused before any decoding is tried.
        huge_png = (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR"
                    + (100000).to_bytes(4, "big") * 2 + b"\x08\x02\0\0\0")
        small = tf.io.encode_png(np.zeros((8, 8, 3), np.uint8))
        with self.assertRaisesRegex(
                tf.errors.InvalidArgumentError,
                r"at most 33554432 pixels(.|\n)*\[1\] \[10000000000\]"):
            serve(image_bytes=tf.stack([small, huge_png]))

    def test_header_pixel_counts_of_every_format(self):
        import tensorflow as tf
        from PIL import Image

        from balpoe_keras.export import saved_model

        pixels = np.random.randint(0, 256, (30, 50, 3), np.uint8)
        alpha = np.concatenate([pixels, pixels[..., :1]], -1)
        for fmt, kw in (("JPEG", {}), ("PNG", {}), ("GIF", {}), ("BMP", {}),
                        ("WEBP", dict(quality=80)),  # "VP8 " chunk
                        ("WEBP", dict(lossless=True)),  # "VP8L"
                        ("WEBP", dict(lossless=True, image=alpha,
                                      exif=b"Exif\0\0"))):  # "VP8X"
            data = io.BytesIO()
            Image.fromarray(kw.pop("image", pixels)).save(data, format=fmt,
                                                          **kw)
            count = saved_model._header_pixels(tf.constant(data.getvalue()))
            self.assertEqual(int(count), 1500, (fmt, kw))

    def test_batch_of_mixed_sizes_and_formats(self):
        import tensorflow as tf
        from PIL import Image

        from balpoe_keras.data.archive import decode_image

        rng = np.random.default_rng(3)
        encoded = []
        for shape, fmt in (((20, 30, 3), "PNG"), ((40, 10, 3), "JPEG"),
                           ((8, 8), "PNG"), ((9, 9, 3), "BMP"),
                           ((11, 7, 3), "WEBP")):
            data = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(
                data, format=fmt)
            encoded.append(data.getvalue())
        out = self.load(self.plain)["serving_bytes"](
            image_bytes=tf.constant(encoded))
        # Each image decoded as training decodes it (Pillow: gray -> RGB;
        # JPEG with the accurate IDCT), then the "resize" policy: an
        # antialiased bilinear resize to 8x8, rounded to uint8 as training
        # stores pixels. The probabilities are predict_proba of those
        # images, row by row.
        x = np.stack([
            np.round(tf.image.resize(
                decode_image(d).astype("float32"), (8, 8),
                antialias=True).numpy().clip(0, 255)) / 255.0
            for d in encoded]).astype("float32")
        expected = self.model.predict_proba(x)
        self.assertAllClose(out["probabilities"], expected, atol=1e-5)
        # The images give different predictions, so a row mix-up shows.
        self.assertGreater(np.ptp(expected, axis=0).max(), 1e-3)
        top = np.argsort(-expected, axis=-1)[:, :2]
        np.testing.assert_array_equal(out["top_k_ids"], top)

    def test_classifier_exports_from_what_it_stores(self):
        # No class names, image size or channels passed: the classifier's
        # own; its class counts and lambdas go to the metadata, and the
        # probabilities are its predict_proba.
        import json

        import keras

        from balpoe_keras.export import export_saved_model
        from balpoe_keras.models import build_balpoe_classifier

        keras.utils.set_random_seed(1)
        model = build_balpoe_classifier(
            "resnet32", [9, 5, 3, 1], (1.0, -1.0), class_names=NAMES,
            blocks_per_stage=1, input_shape=(8, 8, 3))
        paths = export_saved_model(model, self.get_temp_dir(), top_k=1)
        with open(paths["metadata"]) as f:
            metadata = json.load(f)
        self.assertEqual(metadata["class_names"], NAMES)
        self.assertEqual(metadata["image_shape"], [8, 8, 3])
        self.assertEqual(metadata["class_counts"], [9, 5, 3, 1])
        self.assertEqual(metadata["lambdas"], [1.0, -1.0])
        x = np.random.rand(3, 8, 8, 3).astype("float32")
        out = self.load(paths)["serving_default"](images=x)
        expected = model.predict_proba(x)
        self.assertAllClose(out["probabilities"], expected, atol=1e-5)
        self.assertEqual(
            out["top_k_names"].numpy()[:, 0].tolist(),
            [NAMES[i].encode() for i in expected.argmax(-1)])

    def test_keras_file_and_metadata(self):
        import json

        import keras

        reloaded = keras.saving.load_model(self.plain["keras"])
        x = np.random.rand(2, 8, 8, 3).astype("float32")
        self.assertAllClose(
            reloaded.predict(x, verbose=0),
            self.model.predict(x, verbose=0), atol=1e-5,
        )
        with open(self.shifted["metadata"]) as f:
            metadata = json.load(f)
        self.assertEqual(metadata["image_shape"], [8, 8, 3])
        self.assertEqual(metadata["target_prior"], [1.0, 1.0, 6.0, 2.0])

    def test_saved_model_cli_show_and_run(self):
        cli = os.path.join(os.path.dirname(sys.executable), "saved_model_cli")
        if not os.path.exists(cli):
            self.skipTest(f"{cli} not found")
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
        shown = subprocess.run(
            [cli, "show", "--all", "--dir", self.plain["saved_model"]],
            capture_output=True, text=True, check=True, env=env,
        ).stdout
        for text in ("signature_def['serving_default']",
                     "signature_def['serving_bytes']",
                     "inputs['images'] tensor_info:",
                     "inputs['image_bytes'] tensor_info:",
                     "outputs['top_k_names'] tensor_info:",
                     "shape: (-1, 8, 8, 3)"):
            self.assertIn(text, shown)
        x = np.random.rand(2, 8, 8, 3).astype("float32")
        npy = os.path.join(self.tmp, "x.npy")
        np.save(npy, x)
        outdir = os.path.join(self.tmp, "cli_out")
        subprocess.run(
            [cli, "run", "--dir", self.plain["saved_model"], "--tag_set",
             "serve", "--signature_def", "serving_default", "--inputs",
             f"images={npy}", "--outdir", outdir],
            capture_output=True, text=True, check=True, env=env,
        )
        expected = softmax(self.model.predict(x, verbose=0))
        self.assertAllClose(
            np.load(os.path.join(outdir, "probabilities.npy")), expected,
            atol=1e-5,
        )


_JAX_SCRIPT = textwrap.dedent(
    """
    import numpy as np, tensorflow as tf
    from balpoe_keras.export import export_saved_model
    from tests.export.saved_model_test import build_tiny_model, NAMES, softmax
    model = build_tiny_model()
    paths = export_saved_model(model, {tmp!r}, class_names=NAMES,
                               image_size=8, channels=3)
    sigs = tf.saved_model.load(paths["saved_model"]).signatures
    x = np.random.rand(3, 8, 8, 3).astype("float32")
    out = sigs["serving_default"](images=x)["probabilities"].numpy()
    ref = softmax(model.predict(x, verbose=0))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    pixels = tf.cast(x[0] * 255, tf.uint8)
    png = tf.io.encode_png(pixels)[None]
    out = sigs["serving_bytes"](image_bytes=png)["probabilities"].numpy()
    # PNG is lossless and already 8x8: the same pixels / 255.
    ref = softmax(model.predict(pixels.numpy()[None] / np.float32(255.0),
                                verbose=0))
    np.testing.assert_allclose(out, ref, atol=1e-5)
    print("JAX_EXPORT_OK")
    """
)


@pytest.mark.large
# tf_only: runs once (in the TF pytest process); the child uses JAX.
@pytest.mark.tf_only
class JaxExportTest(TestCase):
    def test_export_from_jax_backend(self):
        pytest.importorskip("jax")
        pytest.importorskip("tensorflow")
        tmp = self.get_temp_dir()
        root = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
        env = {**os.environ, "KERAS_BACKEND": "jax",
               "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": root}
        result = subprocess.run(
            [sys.executable, "-c", _JAX_SCRIPT.format(tmp=tmp)],
            capture_output=True, text=True, env=env, cwd=root, timeout=300,
        )
        self.assertIn("JAX_EXPORT_OK", result.stdout, result.stderr[-3000:])
