"""The PyTorch replica (reproduction/reference_train.py) as a measuring tool.

Its pieces are checked against torchvision, against balpoe_keras'
independent implementations (same data, same subset, same scores) and by
hand, and a tiny training run resumes exactly.
"""

import csv
import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import torch

from balpoe_keras.data import archive as sources
from balpoe_keras.data import long_tail
from balpoe_keras.evaluation import scores as bk_scores
from balpoe_keras.metrics import calibration as bk_calibration
from tests import torchvision_reference as tv
from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.cifar_archive import write_cifar_archive
from tests.test_case import TestCase

reference_data = load_script(REPRODUCTION_DIR, "reference_data")
reference_train = load_script(REPRODUCTION_DIR, "reference_train")


def _normalized(images):
    return reference_data.to_tensor(images, "cpu").numpy()


class AugmentationTest(TestCase):
    def test_tensor_augment_equals_torchvision_pixel_for_pixel(self):
        images = tv.random_images(64, seed=9)
        augment = reference_data.TensorAugment(15.0)
        torch.manual_seed(0)
        offsets, flips, angles = augment.draw(64)
        ours = augment(images, "cpu", (offsets, flips, angles)).numpy()
        ref = np.stack([tv.crop_flip_rotate(
            image, offsets[k].numpy(), bool(flips[k]), float(angles[k]))
            for k, image in enumerate(images)])
        self.assertAllClose(ours, _normalized(ref), atol=1e-6)

    def test_torchvision_augment_is_the_reference_composition(self):
        # Same torch seed -> the Compose draws crop, flip, angle per image
        # in that order; replaying them functionally gives the same pixels.
        images = tv.random_images(8, seed=10)
        torch.manual_seed(3)
        got = reference_data.TorchvisionAugment(15.0)(images, "cpu").numpy()
        torch.manual_seed(3)
        ref = []
        for image in images:
            i = int(torch.randint(0, 9, size=(1,)))
            j = int(torch.randint(0, 9, size=(1,)))
            flip = bool(torch.rand(1) < 0.5)
            angle = float(torch.empty(1).uniform_(-15.0, 15.0))
            ref.append(tv.crop_flip_rotate(image, (i, j), flip, angle))
        self.assertAllClose(got, _normalized(np.stack(ref)), atol=1e-6)


class DataTest(TestCase):
    def test_archive_and_subset_equal_balpoe_keras(self):
        path = write_cifar_archive(self.get_temp_dir(), 6, 6, size=8,
                                   classes=("cat", "airplane", "dog"))
        ours = reference_data.read_cifar10_archive(path)
        theirs = sources.read_image_archive(path)
        for key in ("train_images", "train_labels", "test_images",
                    "test_labels", "class_names"):
            np.testing.assert_array_equal(ours[key], theirs[key], key)
        labels = np.random.default_rng(1).permutation(np.arange(300) % 3)
        index, counts = reference_data.long_tail_indices(labels, 3, 10.0)
        self.assertEqual(counts, [100, 31, 10])  # int(100 * .1 ** (c/2))
        np.testing.assert_array_equal(
            index, long_tail.long_tail_subsample(labels, counts, seed=0))


class ScheduleAndScoresTest(TestCase):
    def test_reference_lr_factors(self):
        # docs/reference.md §4: 0.02, 0.04, ..., 0.1 in epochs 1-5; 0.01 from
        # epoch 161, 0.001 from epoch 181 (1-based).
        factor = [reference_train.lr_factor(e, 5, (160, 180))
                  for e in range(200)]
        self.assertAllClose(factor[:6], [0.2, 0.4, 0.6, 0.8, 1.0, 1.0])
        self.assertAllClose(factor[159:162], [1.0, 0.1, 0.1])
        self.assertAllClose(factor[179:181], [0.1, 0.01])

    def test_scores_equal_balpoe_keras_evaluation(self):
        rng = np.random.default_rng(4)
        labels = np.arange(600) % 6
        logits = rng.normal(size=(600, 6)) * 3 + 2 * np.eye(6)[labels]
        counts = [500, 300, 90, 40, 15, 5]
        ours, bins = reference_train.scores(logits, labels, counts)
        theirs = bk_scores.compute_classification_metrics(
            logits, labels, class_counts=counts, details=False)
        for key in ("accuracy", "balanced_accuracy", "acc_many",
                    "acc_medium", "acc_few", "ece", "mce", "nll"):
            self.assertAllClose(ours[f"test/{key}"], theirs[key], atol=1e-6)
        want = bk_calibration.reliability_bins(labels, logits,
                                               from_logits=True)
        self.assertEqual(bins["count"], want["count"].tolist())
        for key in ("edges", "confidence", "accuracy"):
            self.assertAllClose(bins[key], want[key], atol=1e-6)

    def test_ece_hand_computed(self):
        # 2 classes, 15 bins. conf .95 right, .95 wrong -> bin (.9333, 1]:
        # |.95 - .5| = .45, weight .5. conf .58 right, .55 wrong -> bin
        # (.5333, .6]: |.565 - .5| = .065, weight .5. ECE = .225 + .0325.
        p = np.array([[.95, .05], [.95, .05], [.58, .42], [.55, .45]])
        logits = np.log(p)
        out, bins = reference_train.scores(logits, np.array([0, 1, 0, 1]),
                                           [200, 200])
        self.assertAllClose(out["test/ece"], 0.2575, atol=1e-12)
        self.assertAllClose(out["test/mce"], 0.45, atol=1e-12)
        # Counts: .55 and .58 in bin 8 ((.5333, .6]), the .95s in bin 14.
        want = [0] * 15
        want[8], want[14] = 2, 2
        self.assertEqual(bins["count"], want)
        self.assertAllClose([bins["confidence"][8], bins["accuracy"][8]],
                            [.565, .5], atol=1e-9)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the PyTorch replica, once (in the torch pass)")
@pytest.mark.large
class TinyTrainingTest(TestCase):
    def test_resumed_run_equals_uninterrupted_and_imports_no_keras(self):
        tmp = self.get_temp_dir()
        write_cifar_archive(tmp, 40, 40)
        common = [os.path.join(REPRODUCTION_DIR, "reference_train.py"),
                  f"--data={tmp}", "--warmup_epochs=1", "--lr_step_epochs=2",
                  "--blocks_per_stage=1", "--batch_size=32",
                  "--imbalance_ratio=10", "--threads=1"]

        printed = []

        def run(out, epochs, *extra):
            code = ("import runpy, sys; sys.argv = sys.argv[1:]; "
                    "runpy.run_path(sys.argv[0], run_name='__main__'); "
                    "bad = [m for m in ('keras', 'balpoe_keras', "
                    "'tensorflow') if m in sys.modules]; "
                    "assert not bad, bad")
            done = subprocess.run(
                [sys.executable, "-c", code, *common,
                 f"--out={os.path.join(tmp, out)}", f"--epochs={epochs}",
                 *extra], check=True, capture_output=True, text=True)
            printed.append(done.stdout)
            with open(os.path.join(tmp, out, "report.json")) as f:
                import json
                return json.load(f)["summary"]

        # Scoring the test set every epoch changes no training step.
        whole = run("whole", 3, "--eval_every=1")
        run("resumed", 1)
        resumed = run("resumed", 3)
        self.assertEqual(whole, resumed)
        self.assertIn("1 threads; resuming after epoch 1", printed[-1])
        self.assertNotIn("torch threads", printed[-1])
        # Resuming on another thread count says so (another float order).
        run("resumed", 4, "--threads=2")
        self.assertIn("trained on 1 torch threads, this run uses 2",
                      printed[-1])
        with open(os.path.join(tmp, "whole", "eval_log.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["epoch"] for r in rows], ["0", "1", "2"])
        for key in ("balanced_accuracy", "ece", "nll"):
            self.assertAllClose(float(rows[-1][key]), whole[f"test/{key}"])
        self.assertFalse(os.path.exists(
            os.path.join(tmp, "resumed", "eval_log.csv")))
        self.assertGreaterEqual(whole["test/balanced_accuracy"], 0.0)

        def first_loss(out):
            with open(os.path.join(tmp, out, "train_log.csv")) as f:
                return f.read().splitlines()[1].split(",")[2]  # loss

        # Another Mixup weight stream (same seed otherwise): another loss.
        run("stream", 1, "--mixup_stream_seed=5")
        self.assertNotEqual(first_loss("stream"), first_loss("whole"))


class MixupStreamTest(TestCase):
    def test_the_reference_stream_is_fixed_and_phases_average(self):
        stream = load_script(REPRODUCTION_DIR, "mixup_stream")
        np.random.seed(123)
        first = stream.reference_stream(50, 0.8)
        np.random.seed(7)
        self.assertAllClose(stream.reference_stream(50, 0.8), first, atol=0)
        # The stream reference_train draws from after its subset, whatever
        # the order of the 5,000 labels per class.
        labels = np.random.default_rng(3).permutation(
            np.repeat(np.arange(10), 5000))
        reference_data.long_tail_indices(labels, 10, 100)
        drawn = [np.random.beta(0.8, 0.8) for _ in range(50)]
        self.assertAllClose(drawn, first, atol=0)
        # min(lam, 1 - lam) of [.1, .9 | .5, .5] per 2-step epoch.
        self.assertAllClose(
            stream.phase_means(np.array([.1, .9, .5, .5]), 2,
                               [(0, 1), (1, 2)]), [.1, .5])
