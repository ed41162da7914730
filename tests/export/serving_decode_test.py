"""The bytes signature decodes as training does: its probabilities equal
`predict_proba` on the Pillow-decoded images (CIFAR-10 archive JPEGs where
the archive is at hand; generated noise and photograph-like JPEGs and PNGs
everywhere)."""

import io
import os
import tarfile

import numpy as np
import pytest

from tests.test_case import TestCase

ARCHIVE = os.path.join(os.path.dirname(__file__), "..", "..", "..",
                       "shared", "data", "cifar10-jpeg.tar.gz")
COUNTS = [50, 30, 20, 10, 9, 8, 7, 6, 5, 4]


def archive_jpegs(count=50):
    """The first `count` JPEG files of the CIFAR-10 archive (bytes)."""
    found = []
    with tarfile.open(ARCHIVE, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.endswith(".jpg"):
                found.append(tar.extractfile(member).read())
                if len(found) == count:
                    break
    return found


def generated(fmt, count=20, seed=0):
    """Noise images (the hardest case for an IDCT) as JPEG q75 or PNG."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    files = []
    for _ in range(count):
        data = io.BytesIO()
        Image.fromarray(rng.integers(0, 256, (32, 32, 3), np.uint8)).save(
            data, format=fmt, **({"quality": 75} if fmt == "JPEG" else {}))
        files.append(data.getvalue())
    return files


def smooth(count=20, seed=0):
    """Photograph-like JPEG q75 files (Pillow's 4:2:0 chroma): colour
    gradients under a few flat discs, where the decoders' chroma
    upsampling and IDCT rounding show, unlike on noise."""
    from PIL import Image
    from PIL import ImageDraw

    rng = np.random.default_rng(seed)
    files = []
    ramp = np.linspace(0.0, 1.0, 32)
    for _ in range(count):
        low, high = rng.integers(0, 256, (2, 3))
        angle = rng.random() * np.pi
        t = (np.cos(angle) * ramp[None, :] + np.sin(angle) * ramp[:, None])
        t = (t - t.min()) / (t.max() - t.min())
        pixels = low + t[..., None] * (high - low)
        image = Image.fromarray(pixels.astype(np.uint8))
        draw = ImageDraw.Draw(image)
        for _ in range(3):
            x, y, r = rng.integers(0, 32), rng.integers(0, 32), rng.integers(
                3, 9)
            draw.ellipse((x - r, y - r, x + r, y + r),
                         fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
        data = io.BytesIO()
        image.save(data, format="JPEG", quality=75)
        files.append(data.getvalue())
    return files


def pillow_pixels(files):
    from balpoe_keras.data.archive import decode_image

    return np.stack([decode_image(f) for f in files]).astype(
        "float32") / 255.0


@pytest.mark.large
@pytest.mark.tf_only
class ServingDecodeTest(TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile

        import keras
        import tensorflow as tf

        from balpoe_keras.export import export_saved_model
        from balpoe_keras.models import build_balpoe_classifier

        keras.utils.set_random_seed(0)
        cls.model = build_balpoe_classifier("resnet8", COUNTS)
        paths = export_saved_model(
            cls.model, tempfile.mkdtemp(),
            class_names=[f"c{i}" for i in range(10)])
        cls.serve = tf.saved_model.load(
            paths["saved_model"]).signatures["serving_bytes"]

    def check(self, files):
        import tensorflow as tf

        out = self.serve(image_bytes=tf.constant(files))
        expected = self.model.predict_proba(pillow_pixels(files))
        np.testing.assert_allclose(out["probabilities"].numpy(), expected,
                                   atol=2e-6)

    def test_generated_jpegs(self):
        self.check(generated("JPEG"))

    def test_generated_smooth_jpegs(self):
        # Runs everywhere; the archive's own files only where it is at
        # hand (test_archive_jpegs).
        self.check(smooth())

    def test_generated_pngs(self):
        self.check(generated("PNG"))

    def test_archive_jpegs(self):
        if not os.path.exists(ARCHIVE):
            self.skipTest("the CIFAR-10 archive is not at hand")
        self.check(archive_jpegs())


@pytest.mark.tf_only
class PreprocessingAgreesTest(TestCase):
    """Images larger than the model: the report's evaluation transform,
    `serving_bytes` and `predict` (NumPy) crop the same pixels."""

    def test_center_crop_is_the_evaluation_transform(self):
        import tensorflow as tf
        from PIL import Image

        from balpoe_keras.data.image_file import load_image
        from balpoe_keras.data.tfdata.transforms import get_eval_transform
        from balpoe_keras.export.saved_model import _decode_and_resize

        rng = np.random.default_rng(0)
        evaluation = get_eval_transform("imagenet_standard", 72)
        # Odd margins and truncated long sides, both orientations.
        for shape in ((100, 131), (131, 100), (73, 200), (201, 75),
                      (80, 81)):
            pixels = rng.integers(0, 256, shape + (3,), np.uint8)
            data = io.BytesIO()
            Image.fromarray(pixels).save(data, "PNG")
            data = data.getvalue()
            expected = evaluation(tf.constant(pixels)).numpy()
            served = _decode_and_resize(tf.constant(data), (72, 72), 3,
                                        "resize_center_crop").numpy()
            with self.subTest(shape=shape):
                np.testing.assert_array_equal(served, expected)
                # Pillow's resize rounds a value at .5 the other way now
                # and then: at most one level, in under 0.1 % of pixels.
                numpy = load_image(data, (72, 72), 3, "resize_center_crop")
                off = np.abs(numpy - expected)
                self.assertLessEqual(off.max(), 1.0 / 255 + 1e-6)
                self.assertLess(np.mean(off > 0), 1e-3)
