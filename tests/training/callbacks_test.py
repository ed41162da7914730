"""Tests for the per-epoch logging callbacks and the package's imports."""

import ast
import contextlib
import csv
import glob
import io
import os
from unittest import mock

import keras
import numpy as np
import pytest

from balpoe_keras.training import callbacks
from tests.test_case import TestCase

_TRAINING_DIR = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(__file__))),
    "balpoe_keras",
    "training",
)


def _images_per_sec(callback, times, batches):
    """The logged rate: epoch begins at `times[0]`, batch `batches[i]`'s
    hook runs at `times[i + 1]`."""
    clock = iter(times)
    logs = {}
    with mock.patch.object(callbacks.time, "perf_counter", clock.__next__):
        callback.on_epoch_begin(0)
        for batch in batches:
            callback.on_train_batch_end(batch)
        callback.on_epoch_end(0, logs)
    return logs


class ImagesPerSecondTest(TestCase):
    def test_rate_from_wall_time_and_steps(self):
        # Epoch starts at t=10 s, last batch (index 3) ends at t=12 s:
        # 4 steps * 32 images / 2 s = 64 images/s.
        logs = _images_per_sec(callbacks.ImagesPerSecond(32, verbose=False),
                               [10.0, 11.0, 12.0], [1, 3])
        self.assertEqual(logs, {"images_per_sec": 64.0})

    def test_exact_examples_per_epoch(self):
        # 100 images (last batch partial) in 4 s = 25 images/s.
        logs = _images_per_sec(
            callbacks.ImagesPerSecond(32, 100, verbose=False), [0.0, 4.0],
            [3])
        self.assertEqual(logs["images_per_sec"], 25.0)

    def test_an_epoch_resumed_mid_way_counts_its_share(self):
        # Resumed after 3 of 4 steps: 1 step ran in 1 s, a quarter of the
        # 100 images -> 25 images/s (it read 100 images/s before).
        logs = _images_per_sec(
            callbacks.ImagesPerSecond(32, 100, verbose=False,
                                      steps_per_epoch=4), [0.0, 1.0], [0])
        self.assertEqual(logs["images_per_sec"], 25.0)
        logs = _images_per_sec(
            callbacks.ImagesPerSecond(32, 100, verbose=False,
                                      steps_per_epoch=4), [0.0, 4.0], [3])
        self.assertEqual(logs["images_per_sec"], 25.0)  # A full epoch.

    def test_hooks_out_of_order_keep_the_last_step_and_time(self):
        # `async_safe`: Keras may run batch 3's hook before batch 1's.
        logs = _images_per_sec(callbacks.ImagesPerSecond(32, verbose=False),
                               [10.0, 12.0, 11.0], [3, 1])
        self.assertEqual(logs, {"images_per_sec": 64.0})


class EpochCSVLoggerTest(TestCase):
    def test_later_keys_extend_the_header_without_empty_columns(self):
        # Epoch 0 has no test keys; epoch 1 (the next fit call's logger)
        # adds one: the header grows, epoch 0 reads NA there, and no
        # column is written that no epoch filled (no val_* as Keras adds).
        path = os.path.join(self.get_temp_dir(), "log.csv")
        for epoch, logs in enumerate(
            [{"loss": 2.0, "learning_rate": 0.1},
             {"loss": 1.0, "learning_rate": 0.1, "test/ece": 3.0},
             {"loss": 0.5, "learning_rate": 0.01}]
        ):  # fmt: skip
            logger = callbacks.EpochCSVLogger(path)
            logger.on_train_begin()
            logger.on_epoch_end(epoch, dict(logs))
            logger.on_train_end()
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        self.assertEqual(rows[0], ["epoch", "learning_rate", "loss",
                                   "test/ece"])
        self.assertEqual(rows[1:], [["0", "0.1", "2.0", "NA"],
                                    ["1", "0.1", "1.0", "3.0"],
                                    ["2", "0.01", "0.5", "NA"]])


class EpochTensorBoardTest(TestCase):
    @pytest.mark.large
    def test_epoch_scalars_in_one_fit_and_no_step_hooks(self):
        # Runs on every backend where TensorFlow is installed (it writes).
        pytest.importorskip("tensorflow")
        import tensorflow as tf

        log_dir = os.path.join(self.get_temp_dir(), "tb")
        board = callbacks.EpochTensorBoard(log_dir)
        self.assertTrue(board.async_safe)  # Keeps Keras' async dispatch.
        x = np.random.RandomState(0).rand(8, 2).astype("float32")
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer="sgd", loss="mse")

        class Test(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                logs["test/ece"] = 2.0 + epoch

        model.fit(x, x[:, :1], batch_size=4, epochs=3, verbose=0,
                  callbacks=[Test(), board])
        train_dir = os.path.join(log_dir, "train")
        self.assertLen(os.listdir(train_dir), 1)  # One event file.
        values = {}
        for event in tf.compat.v1.train.summary_iterator(
                os.path.join(train_dir, os.listdir(train_dir)[0])):
            for value in event.summary.value:
                values.setdefault(value.tag, []).append(
                    (event.step, float(tf.make_ndarray(value.tensor))))
        history = model.history.history
        self.assertEqual([s for s, _ in values["epoch_loss"]], [0, 1, 2])
        self.assertAllClose([v for _, v in values["epoch_loss"]],
                            history["loss"], rtol=1e-6)
        self.assertEqual(values["epoch_test/ece"],
                         [(0, 2.0), (1, 3.0), (2, 4.0)])
        self.assertFalse(any(t.startswith("batch_") for t in values))


class EpochProgressTest(TestCase):
    def test_one_line_per_epoch_with_eta(self):
        progress = callbacks.EpochProgress(total_epochs=4)
        clock = iter([0.0, 10.0, 10.0, 30.0])
        out = io.StringIO()
        with mock.patch.object(callbacks.time, "perf_counter",
                               clock.__next__), \
                contextlib.redirect_stdout(out):
            for epoch in range(2):
                progress.on_epoch_begin(epoch)
                progress.on_epoch_end(epoch, {"loss": 1.5,
                                              "accuracy": 0.25,
                                              "test/ece": 3.456})
        lines = out.getvalue().splitlines()
        # Mean epoch 15 s x 2 epochs left = 30 s.
        self.assertEqual(lines[1], "Epoch 2/4: loss 1.5000, acc 25.00%, "
                         "20.0 s, ETA 30 s; test/ece 3.4560")
        self.assertIn("ETA 30 s", lines[0])  # 10 s x 3 left


class EpochEvaluationTest(TestCase):
    def test_due_epochs_only(self):
        calls = []
        evaluation = callbacks.EpochEvaluation(
            lambda model: calls.append(1) or {"test/x": len(calls)}, 2, 5)
        seen = []
        for epoch in range(5):
            logs = {}
            evaluation.on_epoch_end(epoch, logs)
            seen.append(logs.get("test/x"))
        self.assertEqual(seen, [None, 1, None, 2, 3])  # epochs 2, 4, last


class LearningRateLoggerTest(TestCase):
    def test_logs_each_epochs_scheduled_learning_rate(self):
        # Warm-up over 2 epochs, x0.1 after epoch index 3; 2 steps an
        # epoch: 0.05, 0.1, 0.1, 0.01, 0.01 for epochs 1-5.
        from balpoe_keras.optimizers.schedules import WarmupStepSchedule

        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        schedule = WarmupStepSchedule(0.1, steps_per_epoch=2,
                                      warmup_epochs=2, step_epochs=(3,))
        model.compile(optimizer=keras.optimizers.SGD(schedule), loss="mse")
        x = np.random.RandomState(0).rand(8, 2).astype("float32")
        history = model.fit(x, x[:, :1], batch_size=4, epochs=5, verbose=0,
                            callbacks=[callbacks.LearningRateLogger()])
        self.assertAllClose(history.history["learning_rate"],
                            [0.05, 0.1, 0.1, 0.01, 0.01], atol=1e-7)


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
