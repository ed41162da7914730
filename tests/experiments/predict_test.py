"""`python -m balpoe_keras.experiments.predict` and `predict_files`."""

import contextlib
import csv
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from unittest import mock

import keras
import numpy as np
import pytest
from PIL import Image

from tests.test_case import TestCase

NAMES = ["head", "mid", "tail"]
COUNTS = [1000, 100, 1]
# Under the images folder: name -> (height, width, mode); odd sizes, PNG and
# JPEG (upper-case extensions too), one grayscale, nested sub-folders.
IMAGES = {
    "a.png": (37, 23, "RGB"),
    "b.jpg": (50, 61, "RGB"),
    "c.PNG": (90, 45, "RGB"),
    "gray.png": (29, 41, "L"),
    os.path.join("sub", "d.jpeg"): (64, 64, "RGB"),
    os.path.join("sub", "f.JPG"): (33, 101, "RGB"),
    os.path.join("sub", "deeper", "e.png"): (17, 80, "RGB"),
}
CORRUPT = "broken.png"


def softmax(logits):
    logits = np.asarray(logits, np.float64)
    e = np.exp(logits - logits.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def write_images(root):
    """The files of `IMAGES`, a corrupt `.png` and a `.txt` to ignore."""
    rng = np.random.RandomState(0)
    for name, (height, width, mode) in IMAGES.items():
        path = os.path.join(root, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        # Smooth gradients plus noise: photo-like, and JPEG-friendly.
        ramp = np.linspace(0, 200, width)[None, :, None] + np.linspace(
            0, 50, height)[:, None, None]
        pixels = ramp + rng.randint(0, 56, (height, width, 3))
        pixels = pixels.clip(0, 255).astype(np.uint8)
        image = Image.fromarray(pixels)
        if mode == "L":
            image = image.convert("L")
        fmt = "JPEG" if name.lower().endswith((".jpg", ".jpeg")) else "PNG"
        image.save(path, format=fmt, **({"quality": 90} if fmt == "JPEG"
                                         else {}))
    with open(os.path.join(root, CORRUPT), "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + b"not really an image" * 4)
    with open(os.path.join(root, "sub", "notes.txt"), "w") as f:
        f.write("not an image\n")


def preprocessed(paths, size=(32, 32), mode="resize"):
    """The model's inputs `(N, H, W, 3)` of `paths`, as `load_image`."""
    from balpoe_keras.data import image_file

    images = []
    for path in paths:
        with open(path, "rb") as f:
            images.append(image_file.load_image(f.read(), size, 3, mode))
    return np.stack(images)


def run_cli(*args):
    """`(exit status, stdout, stderr)` of the tool, run in this process."""
    from balpoe_keras.experiments import predict

    out, err, status = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            predict.main(predict.parse_flags(["predict", *args]))
        except SystemExit as e:
            status = e.code
        finally:
            predict.FLAGS.unparse_flags()
    return status, out.getvalue(), err.getvalue()


class PredictTest(TestCase):
    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        from balpoe_keras.models import build_balpoe_classifier

        keras.utils.set_random_seed(0)
        cls.tmp = tempfile.mkdtemp()
        cls.images_dir = os.path.join(cls.tmp, "images")
        write_images(cls.images_dir)
        cls.readable = sorted(os.path.join(cls.images_dir, n)
                              for n in IMAGES)
        cls.run_dir = os.path.join(cls.tmp, "run")
        os.makedirs(cls.run_dir)
        cls.model = build_balpoe_classifier(
            "resnet8", COUNTS, input_shape=(32, 32, 3), class_names=NAMES)
        cls.model.save(os.path.join(cls.run_dir, "model.keras"))
        cls.images = preprocessed(cls.readable)
        cls.logits = cls.model.predict(cls.images, verbose=0)
        cls.expected = cls.model.predict_proba(cls.images)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def prior_file(self, name, text):
        path = os.path.join(self.get_temp_dir(), name)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_find_images(self):
        from balpoe_keras.experiments.predict import find_images

        corrupt = os.path.join(self.images_dir, CORRUPT)
        # Folders recursively by extension (not the .txt), each file once
        # however it is named, sorted.
        found = find_images([self.images_dir, self.readable[0],
                             self.images_dir + os.sep + "."])
        self.assertEqual(found, sorted(self.readable + [corrupt]))
        pattern = os.path.join(self.images_dir, "**", "*.png")
        self.assertEqual(find_images([pattern]), sorted(
            os.path.join(self.images_dir, n) for n in (
                "a.png", "gray.png", os.path.join("sub", "deeper", "e.png"),
                CORRUPT)))
        # A file named explicitly is taken whatever its extension.
        notes = os.path.join(self.images_dir, "sub", "notes.txt")
        self.assertEqual(find_images([notes]), [notes])
        with self.assertRaisesRegex(ValueError, "no image file found for "
                                    "nothing/\\*.png, missing.jpg"):
            find_images([self.images_dir, "nothing/*.png", "missing.jpg"])

    def test_files_agree_with_predict_proba(self):
        from balpoe_keras.experiments.predict import find_images
        from balpoe_keras.experiments.predict import predict_files

        paths = find_images([self.images_dir])
        # Batches of 3 (the last one padded), one holding the corrupt file.
        rows, unreadable = predict_files(self.model, paths, batch_size=3)
        self.assertEqual([r["path"] for r in rows], self.readable)
        self.assertEqual([p for p, _ in unreadable],
                         [os.path.join(self.images_dir, CORRUPT)])
        self.assertAllClose(np.stack([r["probabilities"] for r in rows]),
                            self.expected, atol=1e-5)
        for row, expected in zip(rows, self.expected):
            order = np.argsort(-expected)  # top_k=5 capped at C=3.
            self.assertEqual([t["id"] for t in row["top_k"]], list(order))
            self.assertEqual([t["class"] for t in row["top_k"]],
                             [NAMES[i] for i in order])
            self.assertAllClose([t["probability"] for t in row["top_k"]],
                                expected[order], atol=1e-5)

    def test_command_line_csv_and_json(self):
        status, out, err = run_cli(f"--model={self.run_dir}", "--top_k=2",
                                   "--batch_size=4", "--noprogress",
                                   self.images_dir)
        self.assertEqual(status, 0, err)
        lines = err.splitlines()
        self.assertEqual(len(lines), 2, err)
        self.assertIn(f"could not read {self.images_dir}{os.sep}{CORRUPT}",
                      lines[0])
        self.assertEqual(lines[1], "1 of 8 files could not be read.")
        table = list(csv.reader(io.StringIO(out)))
        self.assertEqual(table[0], ["path", "class_1", "probability_1",
                                    "class_2", "probability_2"])
        self.assertEqual([r[0] for r in table[1:]], self.readable)
        top2 = np.argsort(-self.expected, axis=-1)[:, :2]
        self.assertEqual([[r[1], r[3]] for r in table[1:]],
                         [[NAMES[i] for i in ids] for ids in top2])
        csv_probabilities = np.array([[float(r[2]), float(r[4])]
                                      for r in table[1:]])
        self.assertAllClose(
            csv_probabilities, np.take_along_axis(self.expected, top2, -1),
            atol=1e-5)

        output = os.path.join(self.get_temp_dir(), "out.json")
        status, out, _ = run_cli(
            f"--model={self.run_dir}/model.keras", "--format=json",
            "--top_k=2", f"--output={output}", self.images_dir)
        self.assertEqual((status, out), (0, ""))
        with open(output) as f:
            rows = json.load(f)
        self.assertEqual([r["path"] for r in rows], self.readable)
        self.assertEqual([[t["class"] for t in r["top_k"]] for r in rows],
                         [[r[1], r[3]] for r in table[1:]])
        self.assertEqual([[t["id"] for t in r["top_k"]] for r in rows],
                         top2.tolist())
        json_probabilities = np.array(
            [[t["probability"] for t in r["top_k"]] for r in rows])
        self.assertAllClose(json_probabilities, csv_probabilities,
                            atol=5.1e-7)  # CSV: 6 decimals.

    def test_command_line_glob_and_missing_input(self):
        pattern = os.path.join(self.images_dir, "**", "*.jp*g")
        status, out, err = run_cli(f"--model={self.run_dir}", pattern)
        self.assertEqual((status, err), (0, ""))
        self.assertEqual([r[0] for r in csv.reader(io.StringIO(out))][1:],
                         [p for p in self.readable
                          if p.endswith((".jpg", ".jpeg"))])
        # Refused before the model is loaded, naming the input.
        with mock.patch("keras.saving.load_model",
                        side_effect=AssertionError("loaded")):
            status, out, err = run_cli(f"--model={self.run_dir}",
                                       self.images_dir, "nothing/*.png")
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, r"^error: no image file found for "
                         r"nothing/\*\.png")

    def test_an_output_that_cannot_be_written_fails_first(self):
        # A folder as --output passed the check and failed with a
        # traceback after every image was classified.
        with mock.patch("keras.saving.load_model",
                        side_effect=AssertionError("loaded")):
            status, out, err = run_cli(f"--model={self.run_dir}",
                                       f"--output={self.get_temp_dir()}",
                                       self.images_dir)
        self.assertEqual((status, out), (2, ""))
        self.assertRegex(err, r"^error: --output=.* is a folder; name the "
                         r"file to write, e\.g\. .*predictions\.csv")

    def test_a_model_file_that_cannot_load_is_one_line(self):
        # A zip without config.json raised KeyError: a traceback.
        import zipfile

        path = os.path.join(self.get_temp_dir(), "broken.keras")
        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("metadata.json", "{}")
        status, out, err = run_cli(f"--model={path}", self.images_dir)
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, r"^error: cannot load .*broken\.keras "
                         r"\(KeyError: .*\); pass a \.keras file")

    def test_no_readable_file_fails(self):
        status, out, err = run_cli(
            f"--model={self.run_dir}",
            os.path.join(self.images_dir, CORRUPT))
        self.assertEqual((status, out), (1, ""))
        self.assertIn("error: none of the 1 files could be read.", err)

    def test_train_prior_moves_top1_to_the_head(self):
        # Linear heads with tiny kernels and biases (0, 1.5, 3): the uniform
        # top-1 is the tail class on every image, and log p_train =
        # log(1000, 100, 1) / 1101 moves it to the head.
        from balpoe_keras.experiments.predict import predict_files
        from balpoe_keras.models import build_balpoe_classifier

        model = build_balpoe_classifier(
            "resnet8", COUNTS, input_shape=(32, 32, 3), head="linear")
        for head in model.expert_heads:
            head.kernel.assign(keras.ops.convert_to_numpy(head.kernel) * 0.01)
            head.bias.assign(np.array([0.0, 1.5, 3.0], np.float32))
        logits = model.predict(self.images, verbose=0)
        self.assertEqual(np.argmax(logits, -1).tolist(),
                         [2] * len(self.readable))
        uniform, _ = predict_files(model, self.readable, top_k=1)
        self.assertEqual([r["top_k"][0]["class"] for r in uniform],
                         ["2"] * len(self.readable))  # No names: ids.
        rows, unreadable = predict_files(model, self.readable, top_k=1,
                                         target_prior="train")
        self.assertEqual(unreadable, [])
        counts = np.array(COUNTS, np.float64)
        expected = softmax(logits + np.log(counts / counts.sum()))
        self.assertAllClose(np.stack([r["probabilities"] for r in rows]),
                            expected, atol=1e-5)
        self.assertEqual([r["top_k"][0]["id"] for r in rows],
                         [0] * len(self.readable))

    def test_unbalanced_lambdas_are_corrected_for_their_tilt(self):
        # lambdas 1, -0.25, -1.5 (the reference's ImageNet-LT) average to
        # -0.25: the ensemble targets pi^-0.25, so the training
        # distribution is softmax(logits + (1 + 0.25) log pi), not
        # softmax(logits + log pi).
        from balpoe_keras.experiments.predict import predict_files
        from balpoe_keras.models import build_balpoe_classifier

        model = build_balpoe_classifier(
            "resnet8", COUNTS, [1.0, -0.25, -1.5], input_shape=(32, 32, 3),
            allow_unbalanced=True)
        logits = model.predict(self.images, verbose=0)
        log_pi = np.log(np.array(COUNTS, np.float64) / sum(COUNTS))
        rows, _ = predict_files(model, self.readable, top_k=1,
                                target_prior="train")
        self.assertAllClose(np.stack([r["probabilities"] for r in rows]),
                            softmax(logits + 1.25 * log_pi), atol=1e-5)
        uniform, _ = predict_files(model, self.readable, top_k=1)
        self.assertAllClose(np.stack([r["probabilities"] for r in uniform]),
                            softmax(logits), atol=1e-5)  # As trained.

    def test_prior_files(self):
        prior = np.array([1.0, 0.0, 3.0])
        with np.errstate(divide="ignore"):
            expected = softmax(self.logits + np.log(prior / prior.sum()))
        files = {
            "list.json": "[1, 0, 3]",
            "names.json": '{"tail": 3, "head": 1.0, "mid": 0}',
            "counts.txt": "1\n0\n\n3\n",
        }
        for name, text in files.items():
            path = self.prior_file(name, text)
            status, out, err = run_cli(
                f"--model={self.run_dir}", "--format=json",
                f"--target_prior={path}", *self.readable)
            self.assertEqual((status, err), (0, ""), name)
            rows = json.loads(out)
            for row, p in zip(rows, expected):
                got = {t["id"]: t["probability"] for t in row["top_k"]}
                self.assertAllClose([got[i] for i in range(3)], p,
                                    atol=1e-5)
                self.assertEqual(got[1], 0.0)  # Prior 0: never predicted.
                self.assertEqual(row["top_k"][-1]["class"], "mid")

    def test_bad_prior_file_is_one_line_before_any_image(self):
        path = self.prior_file("short.json", "[1, 2]")
        with mock.patch("balpoe_keras.data.image_file.load_image",
                        side_effect=AssertionError("image read")):
            status, out, err = run_cli(f"--model={self.run_dir}",
                                       f"--target_prior={path}",
                                       self.images_dir)
        self.assertEqual((status, out), (2, ""))
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertIn(f"error: target prior file {path}: holds 2 number(s) "
                      "for the model's 3 classes. Give one non-negative "
                      "count or probability per class (3 in all)", err)

    def test_bad_prior_contents(self):
        from balpoe_keras.experiments.predict import prior_bias
        from balpoe_keras.experiments.predict import target_prior_from_file

        cases = {
            "[1, -2, 3]": "entry 1 is -2.0",
            "[0, 0, 0]": "sums to 0",
            '[1, "a", 3]': "entry 1 \\('a'\\) is not a number",
            "1\nNaN\n2\n": "line 2 is nan",
            "1\ntwo\n3\n": "line 2 \\('two'\\) is not a number",
            "": "holds 0 number",
            '{"head": 1, "mid": 2, "tial": 3}':
                "unknown class names tial; no number for tail",
        }
        for text, message in cases.items():
            path = self.prior_file("prior", text)
            with self.assertRaisesRegex(ValueError, f"{path}: {message}"):
                target_prior_from_file(path, NAMES)
        # The keywords and sequences of the Python API.
        self.assertIsNone(prior_bias(self.model, "uniform"))
        self.assertAllClose(prior_bias(self.model, [2, 2, 0]),
                            [np.log(0.5), np.log(0.5), -np.inf])
        with self.assertRaisesRegex(ValueError, "2 entries .* 3 classes"):
            prior_bias(self.model, [1, 1])

    def test_real_command(self):
        # `python -m ...`: the quiet start-up and absl's app; a progress
        # bar (3 batches) on stderr only, the CSV alone on stdout.
        done = subprocess.run(
            [sys.executable, "-m", "balpoe_keras.experiments.predict",
             f"--model={self.run_dir}", "--batch_size=3", "--top_k=1",
             self.images_dir], capture_output=True, text=True, timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr)
        table = list(csv.reader(io.StringIO(done.stdout)))
        self.assertEqual(table[0], ["path", "class_1", "probability_1"])
        self.assertEqual([r[0] for r in table[1:]], self.readable)
        self.assertEqual([r[1] for r in table[1:]],
                         [NAMES[i] for i in self.expected.argmax(-1)])
        self.assertIn("file", done.stderr)  # Progbar's unit.
        self.assertIn("1 of 8 files could not be read.", done.stderr)


@pytest.mark.tf_only
class SavedModelAgreementTest(TestCase):
    """`serving_bytes` of the SavedModel classifies the files as `predict`
    does (same decoding and resizing, same post-hoc prior)."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.tmp = tempfile.mkdtemp()
        write_images(cls.tmp)
        cls.paths = sorted(os.path.join(cls.tmp, n) for n in IMAGES)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)
        super().tearDownClass()

    def check_agreement(self, size, target_prior):
        import tensorflow as tf

        from balpoe_keras.data.datasets import preprocess_for_size
        from balpoe_keras.experiments.predict import predict_files
        from balpoe_keras.export import export_saved_model
        from balpoe_keras.models import build_balpoe_classifier

        model = build_balpoe_classifier(
            "resnet8", COUNTS, input_shape=(size, size, 3),
            class_names=NAMES)
        export = export_saved_model(
            model, self.get_temp_dir(), top_k=2,
            preprocess=preprocess_for_size(size), target_prior=target_prior)
        rows, unreadable = predict_files(model, self.paths, top_k=2,
                                         target_prior=target_prior)
        self.assertEqual(unreadable, [])
        data = []
        for path in self.paths:
            with open(path, "rb") as f:
                data.append(f.read())
        served = tf.saved_model.load(export["saved_model"]).signatures[
            "serving_bytes"](image_bytes=tf.constant(data))
        self.assertEqual(served["top_k_ids"].numpy().tolist(),
                         [[t["id"] for t in r["top_k"]] for r in rows])
        self.assertAllClose(served["probabilities"].numpy(),
                            np.stack([r["probabilities"] for r in rows]),
                            atol=1e-4)

    def test_resize(self):
        self.check_agreement(32, None)

    def test_resize_center_crop_with_a_prior(self):
        from balpoe_keras.data.datasets import preprocess_for_size

        self.assertEqual(preprocess_for_size(72), "resize_center_crop")
        self.check_agreement(72, [1.0, 0.0, 3.0])
