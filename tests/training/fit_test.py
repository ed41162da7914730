"""Tests for the resumable `fit` loop and its checkpoints.

The crash test runs this module as a child process
(`python -m tests.training.fit_test <workdir> [<epoch>:<batch>]`) that kills
itself with SIGKILL in the middle of an epoch.
"""

import contextlib
import csv
import errno
import importlib
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from unittest import mock

import keras
import numpy as np
import pytest

from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.optimizers import WarmupStepSchedule
from balpoe_keras.training import workdir_lock as workdir_lock_lib
from balpoe_keras.training.checkpoint import CheckpointManager
from balpoe_keras.training.checkpoint import CheckpointStateError
from balpoe_keras.training.checkpoint import CheckpointWriteError
from balpoe_keras.training.fit import fit
from balpoe_keras.training.guards import NonFiniteLossError
from balpoe_keras.training.guards import TrainingInterrupted
from tests.test_case import TestCase

# The module; `balpoe_keras.training.fit` the attribute is the function.
fit_lib = importlib.import_module("balpoe_keras.training.fit")
_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
_NUM_EXAMPLES, _BATCH, _EPOCHS = 16, 4, 3
_STEPS = _NUM_EXAMPLES // _BATCH
_QUIET = dict(steps_per_epoch=_STEPS, verbose=0)


def _make_model():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,), name="images")
    features = keras.layers.Dense(6, activation="relu")(inputs)
    model = add_balpoe_heads(keras.Model(inputs, features), [8, 4, 2, 2])
    # LR per epoch: 0.05, 0.1 (warm-up 2), then 0.01 from epoch index 2.
    schedule = WarmupStepSchedule(
        0.1, _STEPS, warmup_epochs=2, step_epochs=(2,)
    )
    model.compile(
        optimizer=TorchSGD(schedule, weight_decay=5e-4),
        jit_compile=keras.backend.backend() == "jax",
    )
    return model


def _arrays(epoch):
    """The epoch's examples depend only on `epoch` (seeded permutation)."""
    x = np.random.RandomState(0).rand(_NUM_EXAMPLES, 5).astype("float32")
    y = np.random.RandomState(1).randint(0, 4, _NUM_EXAMPLES)
    order = np.random.RandomState(100 + epoch).permutation(_NUM_EXAMPLES)
    return x[order], y[order]


def _as_dataset(x, y):
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        data = tf.data.Dataset.from_tensor_slices((x, y))
        return data.batch(_BATCH)
    return (
        (x[i : i + _BATCH], y[i : i + _BATCH])
        for i in range(0, _NUM_EXAMPLES, _BATCH)
    )


def _dataset_fn(epoch):
    return _as_dataset(*_arrays(epoch))


def _weights(model):
    return [keras.ops.convert_to_numpy(w) for w in model.weights]


def _read_csv(workdir):
    return _read_csv_path(os.path.join(workdir, "train_log.csv"))


def _read_csv_path(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


class FitTest(TestCase):
    @pytest.mark.large
    def test_finished_run_is_a_no_op_unless_overwrite(self):
        workdir = self.get_temp_dir()
        model = _make_model()
        first = fit(model, _dataset_fn, epochs=1, workdir=workdir, **_QUIET)
        self.assertEqual((first.initial_epoch, first.final_epoch), (0, 1))
        self.assertAllClose(first.history["learning_rate"], [0.05])
        trained = _weights(model)
        fresh = _make_model()
        again = fit(fresh, _dataset_fn, epochs=1, workdir=workdir, **_QUIET)
        self.assertTrue(again.already_finished)
        self.assertEqual(again.history, {})
        self.assertEqual(int(fresh.optimizer.iterations), _STEPS)
        for a, b in zip(_weights(fresh), trained):  # Final weights loaded.
            self.assertAllClose(a, b, atol=0, rtol=0)
        self.assertLen(_read_csv(workdir), 1)
        redo = fit(
            _make_model(), _dataset_fn, epochs=1, workdir=workdir,
            overwrite=True, **_QUIET,
        )  # fmt: skip
        self.assertEqual(redo.initial_epoch, 0)
        self.assertLen(_read_csv(workdir), 1)

    def test_bad_arguments(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        workdir = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "not compiled"):
            fit(model, _dataset_fn, epochs=1, workdir=workdir, **_QUIET)
        with self.assertRaisesRegex(ValueError, "epochs"):
            fit(model, _dataset_fn, epochs=0, workdir=workdir, **_QUIET)
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            fit(model, _dataset_fn, epochs=1, workdir=workdir,
                steps_per_epoch=None)


class OneFitCallTest(TestCase):
    def test_the_whole_schedule_is_one_model_fit_call(self):
        calls = []

        class Spy(keras.callbacks.Callback):
            def on_train_begin(self, logs=None):
                calls.append("begin")

            def on_epoch_begin(self, epoch, logs=None):
                calls.append(epoch)

        result = fit(_make_model(), _dataset_fn, epochs=_EPOCHS,
                     workdir=self.get_temp_dir(), callbacks=[Spy()],
                     **_QUIET)
        self.assertEqual(calls, ["begin", 0, 1, 2])
        self.assertLen(result.history["loss"], _EPOCHS)

    def test_per_epoch_pydatasets_are_read_in_epoch_order(self):
        # Keras takes a batch to build the model and calls the dataset's
        # on_epoch_end before training: the stream must not skip an epoch.
        fetched = []

        class Epoch(keras.utils.PyDataset):
            def __init__(self, epoch):
                super().__init__()
                self.epoch = epoch
                self.x, self.y = _arrays(epoch)

            def __len__(self):
                return _STEPS + 1  # More than the steps used per epoch.

            def __getitem__(self, index):
                fetched.append((self.epoch, index))
                rows = slice(index * _BATCH % _NUM_EXAMPLES, None)
                return self.x[rows][:_BATCH], self.y[rows][:_BATCH]

        fit(_make_model(), Epoch, epochs=_EPOCHS,
            workdir=self.get_temp_dir(), **_QUIET)
        self.assertEqual(fetched[-_EPOCHS * _STEPS:],
                         [(e, i) for e in range(_EPOCHS)
                          for i in range(_STEPS)])


class CheckpointManagerTest(TestCase):
    def test_keeps_latest_and_multiples_of_keep_every(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        model.compile(optimizer=TorchSGD(0.1), loss="mse")
        directory = self.get_temp_dir()
        manager = CheckpointManager(directory, keep_every=2)
        open(os.path.join(directory, ".tmp-1-ckpt-0009.keras"), "w").close()
        for epoch in range(1, 6):
            manager.save(model, epoch, total_epochs=5, seed=3)
        # The two latest (4, 5) and multiples of 2, each with its state.
        self.assertEqual(
            sorted(os.listdir(directory)),
            ["ckpt-0002.keras", "ckpt-0002.keras.json", "ckpt-0004.keras",
             "ckpt-0004.keras.json", "ckpt-0005.keras",
             "ckpt-0005.keras.json", "state.json"],
        )  # fmt: skip
        state = manager.read_state()
        self.assertEqual((state["epoch"], state["seed"]), (5, 3))
        self.assertEqual(state["checkpoint"], "ckpt-0005.keras")

    def test_restore_without_state_or_compile(self):
        inputs = keras.Input((2,))
        model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
        manager = CheckpointManager(self.get_temp_dir())
        self.assertIsNone(manager.restore(model))
        with self.assertRaisesRegex(ValueError, "Compile the model"):
            manager.restore(model, {"checkpoint": "ckpt-0001.keras"})


def _tiny_model_and_manager(directory):
    inputs = keras.Input((2,))
    model = keras.Model(inputs, keras.layers.Dense(1)(inputs))
    model.compile(optimizer=TorchSGD(0.1), loss="mse")
    # Built like a trained model's, so checkpoints carry its slots.
    model.optimizer.build(model.trainable_variables)
    return model, CheckpointManager(directory)


class CheckpointFaultTest(TestCase):
    def test_corrupt_latest_checkpoint_falls_back_to_the_previous(self):
        directory = self.get_temp_dir()
        model, manager = _tiny_model_and_manager(directory)
        manager.save(model, 1, total_epochs=3)
        first = [w.copy() for w in model.get_weights()]
        model.set_weights([w + 1 for w in first])
        manager.save(model, 2, total_epochs=3)
        path = os.path.join(directory, "ckpt-0002.keras")
        with open(path, "r+b") as f:  # Truncate it mid-file.
            f.truncate(os.path.getsize(path) // 2)
        fresh, _ = _tiny_model_and_manager(directory)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            state = manager.restore(fresh)
        self.assertEqual((state["epoch"], state["checkpoint"]),
                         (1, "ckpt-0001.keras"))
        self.assertIn("ckpt-0002.keras is unreadable", out.getvalue())
        for got, want in zip(fresh.get_weights(), first):
            self.assertAllClose(got, want, atol=0)
        with open(os.path.join(directory, "ckpt-0001.keras"), "wb"):
            pass  # Now both are broken: a clear error.
        with contextlib.redirect_stdout(io.StringIO()):
            with self.assertRaisesRegex(CheckpointStateError,
                                        "No checkpoint.*--overwrite"):
                manager.restore(fresh)

    def test_failed_write_keeps_the_previous_checkpoint_committed(self):
        directory = self.get_temp_dir()
        model, manager = _tiny_model_and_manager(directory)
        manager.save(model, 1, total_epochs=3)

        def full_disk(path, *args, **kwargs):
            with open(path, "wb") as f:
                f.write(b"partial")
            raise OSError(errno.ENOSPC, "No space left on device")

        with mock.patch.object(model, "save", full_disk):
            with self.assertRaisesRegex(
                    CheckpointWriteError, "No space left on device.*"
                    "ckpt-0001.keras is intact"):
                manager.save(model, 2, total_epochs=3)
        self.assertEqual(manager.read_state()["checkpoint"],
                         "ckpt-0001.keras")
        self.assertEqual(sorted(os.listdir(directory)),
                         ["ckpt-0001.keras", "ckpt-0001.keras.json",
                          "state.json"])

    def test_corrupt_state_file_names_itself(self):
        directory = self.get_temp_dir()
        model, manager = _tiny_model_and_manager(directory)
        manager.save(model, 1, total_epochs=3)
        with open(manager.state_path, "w") as f:
            f.write('{"epoch": 1, "checkp')
        with self.assertRaisesRegex(CheckpointStateError,
                                    "state.json is unreadable.*Delete it"):
            manager.read_state()


class WorkdirLockTest(TestCase):
    def test_second_run_is_refused_and_a_stale_lock_taken_over(self):
        workdir = self.get_temp_dir()
        lock = os.path.join(workdir, workdir_lock_lib.LOCK_FILENAME)
        holder = subprocess.Popen([sys.executable, "-c",
                                   "import time; time.sleep(60)"])
        try:
            with open(lock, "w") as f:
                json.dump({"pid": holder.pid,
                           "host": socket.gethostname()}, f)
            with self.assertRaisesRegex(
                    workdir_lock_lib.WorkdirInUseError,
                    f"in use by process {holder.pid}"):
                fit(_make_model(), _dataset_fn, epochs=1, workdir=workdir,
                    steps_per_epoch=_STEPS, verbose=0)
        finally:
            holder.kill()
            holder.wait()
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            fit(_make_model(), _dataset_fn, epochs=1, workdir=workdir,
                steps_per_epoch=_STEPS, verbose=0)
        self.assertIn("Taking over the stale lock", out.getvalue())
        self.assertFalse(os.path.exists(lock))  # Released at the end.


class NonFiniteLossTest(TestCase):
    def test_nan_loss_stops_naming_epoch_and_step_and_keeps_checkpoint(self):
        workdir = self.get_temp_dir()

        def poisoned(epoch):
            x, y = _arrays(epoch)
            if epoch == 1:
                x[2 * _BATCH] = np.inf  # The first image of step 3.
            return _as_dataset(x, y)

        with self.assertRaisesRegex(NonFiniteLossError,
                                    "nan at epoch 2, step 3"):
            fit(_make_model(), poisoned, epochs=_EPOCHS, workdir=workdir,
                steps_per_epoch=_STEPS, verbose=0)
        state = CheckpointManager(os.path.join(workdir, "checkpoints"))
        self.assertEqual(state.read_state()["epoch"], 1)
        self.assertLen(_read_csv(workdir), 1)  # No row for the bad epoch.



class AsyncBatchHooksTest(TestCase):
    def test_batch_hooks_run_off_the_training_thread(self):
        # Keras reads a step's logs from the device before the batch-end
        # hooks; it does so in worker threads only if every batch-level
        # callback is `async_safe`. `fit`'s own (guard, stop request,
        # images/s, progress bar) must be, or each step waits.
        if keras.backend.backend() == "tensorflow":
            self.skipTest("Keras dispatches callbacks synchronously on TF")
        threads = []

        class Spy(keras.callbacks.Callback):
            async_safe = True

            def on_train_batch_end(self, batch, logs=None):
                threads.append(threading.current_thread())

        with contextlib.redirect_stdout(io.StringIO()):
            fit(_make_model(), _dataset_fn, epochs=1,
                workdir=self.get_temp_dir(), steps_per_epoch=_STEPS,
                global_batch_size=_BATCH, callbacks=[Spy()], verbose=1)
        self.assertLen(threads, _STEPS)
        self.assertNotIn(threading.main_thread(), threads)

def _run_child(*args):
    env = dict(os.environ, PYTHONPATH=_REPO_ROOT)
    result = subprocess.run(
        [sys.executable, "-m", "tests.training.fit_test", *args],
        cwd=_REPO_ROOT, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=300,
    )  # fmt: skip
    return result.returncode, result.stdout


# The uninterrupted run both resume tests compare with: trained once, by
# whichever test needs it first (CrashResumeTest trains it in the same
# child that resumes, which saves a process start).
_UNINTERRUPTED = {}


def _uninterrupted_run():
    """The folder of the uninterrupted run (`final.npz`, `train_log.csv`)."""
    if "folder" not in _UNINTERRUPTED:
        folder = tempfile.mkdtemp()
        returncode, output = _run_child(folder, "none")
        assert returncode == 0, output
        _UNINTERRUPTED["folder"] = folder
    return _UNINTERRUPTED["folder"]


def teardown_module(module):
    if "folder" in _UNINTERRUPTED:
        shutil.rmtree(_UNINTERRUPTED.pop("folder"), ignore_errors=True)


def _assert_bitwise_equal_final_weights(test, folder, reference):
    # Deterministic kernels (TF op determinism, CPU): bitwise equal.
    final_a = np.load(os.path.join(reference, "final.npz"))
    final_c = np.load(os.path.join(folder, "final.npz"))
    for key in final_a.files:
        test.assertAllClose(final_c[key], final_a[key], atol=0, rtol=0)


class CrashResumeTest(TestCase):
    @pytest.mark.large
    def test_kill_9_mid_epoch_then_resume_equals_uninterrupted(self):
        crashed = self.get_temp_dir()
        # Child 1 SIGKILLs itself after batch 2 of epoch 2 (index 1), when
        # only the epoch-1 checkpoint exists.
        returncode, output = _run_child(crashed, "kill_at=1:1")
        self.assertEqual(returncode, -signal.SIGKILL, output)
        state = CheckpointManager(os.path.join(crashed, "checkpoints"))
        self.assertEqual(state.read_state()["epoch"], 1)
        self.assertLen(_read_csv(crashed), 1)
        # Child 2 reruns the same command (resumes), then, unless another
        # test did, the uninterrupted run (saves a process).
        if "folder" in _UNINTERRUPTED:
            option = "none"
        else:  # (teardown_module removes the folder.)
            _UNINTERRUPTED["folder"] = tempfile.mkdtemp()
            option = f"reference={_UNINTERRUPTED['folder']}"
        returncode, output = _run_child(crashed, option)
        self.assertEqual(returncode, 0, output)
        straight = _UNINTERRUPTED["folder"]
        self.assertIn("Resuming from ckpt-0001.keras: 1/3 epochs", output)
        self.assertEqual(state.read_state()["iterations"], _EPOCHS * _STEPS)
        # Same LR per epoch and the same losses, epoch by epoch (the CSV of
        # the resumed run has its epoch-1 row from before the crash).
        rows_a, rows_c = _read_csv(straight), _read_csv(crashed)
        self.assertEqual([r["epoch"] for r in rows_c], ["0", "1", "2"])
        for key in ("learning_rate", "loss", "accuracy"):
            self.assertEqual([r[key] for r in rows_c], [r[key] for r in rows_a])
        self.assertAllClose(
            [float(r["learning_rate"]) for r in rows_a], [0.05, 0.1, 0.01]
        )
        _assert_bitwise_equal_final_weights(self, crashed, straight)


class SignalResumeTest(TestCase):
    @pytest.mark.large
    def test_sigterm_and_sigint_mid_epoch_then_resume_exactly(self):
        stopped = {}
        for name, code in (("TERM", 143), ("INT", 130)):
            folder = self.get_temp_dir()
            # The signal arrives during batch 2 of epoch 2 (index 1).
            returncode, output = _run_child(folder, f"signal_at=1:1:{name}")
            self.assertEqual(returncode, code, output)
            self.assertIn(f"Stopped by SIG{name} in epoch 2 after step 2",
                          output)
            manager = CheckpointManager(os.path.join(folder, "checkpoints"))
            state = manager.read_state()
            self.assertEqual(state["checkpoint"], "ckpt-0001-s00002.keras")
            stopped[name] = folder, manager, state
        # Either signal saves the same state: its step, RNG states and
        # weights, optimizer slots included.
        (term, manager, term_state), (_, _, int_state) = (stopped["TERM"],
                                                          stopped["INT"])
        self.assertEqual({k: v for k, v in term_state.items() if k != "time"},
                         {k: v for k, v in int_state.items() if k != "time"})
        saved = [keras.saving.load_model(os.path.join(
            folder, "checkpoints", "ckpt-0001-s00002.keras"))
            for folder, _, _ in stopped.values()]
        for got, want in zip(
                saved[1].weights + saved[1].optimizer.variables,
                saved[0].weights + saved[0].optimizer.variables):
            self.assertAllClose(got, want, atol=0, rtol=0)
        # Rerunning the stopped command resumes mid-epoch and ends bitwise
        # equal to an uninterrupted run.
        returncode, output = _run_child(term, "none")
        self.assertEqual(returncode, 0, output)
        self.assertIn("1/3 epochs and 2 steps of epoch 2 done", output)
        self.assertEqual(manager.read_state()["iterations"],
                         _EPOCHS * _STEPS)
        _assert_bitwise_equal_final_weights(self, term, _uninterrupted_run())


class SignalAfterTheCheckpointTest(TestCase):
    def test_a_signal_after_an_epochs_checkpoint_callback_saves_it(self):
        # With checkpoint_every=2, epoch 1 is not due; a signal arriving
        # after the checkpoint callback ran (before Keras' stop check)
        # ended training after epoch 1 but named the last saved
        # checkpoint (none: "saved None") and lost the epoch.
        saver_end = fit_lib._EpochCheckpoint.on_epoch_end

        def then_signal(callback, epoch, logs=None):
            saver_end(callback, epoch, logs)
            if epoch == 0:
                os.kill(os.getpid(), signal.SIGTERM)

        workdir = self.get_temp_dir()
        with mock.patch.object(fit_lib._EpochCheckpoint, "on_epoch_end",
                               then_signal):
            with self.assertRaises(TrainingInterrupted) as stopped:
                fit(_make_model(), _dataset_fn, epochs=_EPOCHS,
                    workdir=workdir, checkpoint_every=2, seed=7, **_QUIET)
        manager = CheckpointManager(os.path.join(workdir, "checkpoints"))
        self.assertEqual(manager.read_state()["checkpoint"],
                         "ckpt-0001.keras")
        self.assertIn("Stopped by SIGTERM after epoch 1; saved ",
                      str(stopped.exception))
        self.assertTrue(stopped.exception.checkpoint.endswith(
            "ckpt-0001.keras"), stopped.exception.checkpoint)


class _SignalAt(keras.callbacks.Callback):
    """Sends itself a signal during batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch, name):
        super().__init__()
        self.target, self.epoch = (epoch, batch), None
        self.signum = getattr(signal, f"SIG{name}")

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            os.kill(os.getpid(), self.signum)


class _KillAt(keras.callbacks.Callback):
    """SIGKILLs this process after batch `batch` of epoch `epoch`."""

    def __init__(self, epoch, batch):
        super().__init__()
        self.target, self.epoch = (epoch, batch), None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.target:
            os.kill(os.getpid(), signal.SIGKILL)


def _train(workdir, callbacks=()):
    model = _make_model()
    fit(
        model, _dataset_fn, epochs=_EPOCHS, workdir=workdir,
        steps_per_epoch=_STEPS, callbacks=callbacks, seed=7, verbose=2,
    )  # fmt: skip
    arrays = {f"w{i}": w for i, w in enumerate(_weights(model))}
    np.savez(os.path.join(workdir, "final.npz"), **arrays)


def _child_main(workdir, option=""):
    """`option`: `kill_at=<epoch>:<batch>` or `reference=<workdir>`."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    name, _, value = option.partition("=")
    callbacks = []
    if name == "kill_at":
        callbacks.append(_KillAt(*map(int, value.split(":"))))
    if name == "signal_at":
        epoch, batch, signame = value.split(":")
        callbacks.append(_SignalAt(int(epoch), int(batch), signame))
    try:
        _train(workdir, callbacks)
    except TrainingInterrupted as e:
        print(e)
        sys.exit(e.exit_code)
    if name == "reference":
        _train(value)


if __name__ == "__main__":
    _child_main(*sys.argv[1:])
