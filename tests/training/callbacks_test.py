"""Tests for the per-epoch logging callbacks and the package's imports."""

import ast
import csv
import glob
import os
from unittest import mock

import keras

from balpoe_keras.training import callbacks
from tests.test_case import TestCase

_TRAINING_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    "balpoe_keras",
    "training",
)


class ImagesPerSecondTest(TestCase):
    def test_rate_from_wall_time_and_steps(self):
        # Epoch starts at t=10 s, last batch (index 3) ends at t=12 s:
        # 4 steps * 32 images / 2 s = 64 images/s.
        callback = callbacks.ImagesPerSecond(32, verbose=False)
        clock = iter([10.0, 11.0, 12.0])
        logs = {}
        with mock.patch.object(callbacks.time, "perf_counter", clock.__next__):
            callback.on_epoch_begin(0)
            callback.on_train_batch_end(1)
            callback.on_train_batch_end(3)
            callback.on_epoch_end(0, logs)
        self.assertEqual(logs, {"images_per_sec": 64.0})

    def test_exact_examples_per_epoch(self):
        # 100 images (last batch partial) in 4 s = 25 images/s.
        callback = callbacks.ImagesPerSecond(32, 100, verbose=False)
        clock = iter([0.0, 4.0])
        logs = {}
        with mock.patch.object(callbacks.time, "perf_counter", clock.__next__):
            callback.on_epoch_begin(0)
            callback.on_train_batch_end(3)
            callback.on_epoch_end(0, logs)
        self.assertEqual(logs["images_per_sec"], 25.0)


class EpochCSVLoggerTest(TestCase):
    def test_keeps_the_header_of_the_file(self):
        # Epoch 0 has no validation keys; the next logger (next epoch's
        # fit call) sees val_loss and must still write the header columns.
        path = os.path.join(self.get_temp_dir(), "log.csv")
        for epoch, logs in enumerate(
            [{"loss": 2.0, "learning_rate": 0.1},
             {"loss": 1.0, "learning_rate": 0.1, "val_loss": 3.0}]
        ):  # fmt: skip
            logger = callbacks.EpochCSVLogger(path)
            logger.on_train_begin()
            logger.on_epoch_end(epoch, dict(logs))
            logger.on_train_end()
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(
            rows[0],
            ["epoch", "learning_rate", "loss", "val_learning_rate",
             "val_loss"],
        )  # fmt: skip
        self.assertEqual(rows[2], ["1", "0.1", "1.0", "NA", "3.0"])


class RunProgbarLoggerTest(TestCase):
    def test_shows_run_total_epochs(self):
        logger = callbacks.RunProgbarLogger(200)
        logger.set_params({"epochs": 6, "steps": 85, "verbose": 1})
        self.assertEqual(logger.epochs, 200)


class LearningRateLoggerTest(TestCase):
    def test_logs_the_epoch_learning_rate(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer=keras.optimizers.SGD(0.25), loss="mse")
        logger = callbacks.LearningRateLogger()
        logger.set_model(model)
        logs = {}
        logger.on_epoch_begin(0)
        logger.on_epoch_end(0, logs)
        self.assertAllClose(logs["learning_rate"], 0.25)


class NoTensorFlowAtImportTest(TestCase):
    def test_no_module_level_tensorflow_import(self):
        # The package must import on JAX/torch without TensorFlow.
        for path in glob.glob(os.path.join(_TRAINING_DIR, "*.py")):
            with open(path) as f:
                tree = ast.parse(f.read())
            for node in tree.body:
                names = []
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                for name in names:
                    self.assertFalse(name.startswith("tensorflow"), path)
