"""Per-epoch callbacks of `training.fit`: logged values and their outputs.

`LearningRateLogger`, `ImagesPerSecond` and `EpochEvaluation` add keys to
the epoch `logs`, so they come before the writers `EpochCSVLogger`,
`EpochTensorBoard` and `EpochProgress` in the callback list (`fit` orders
them so).
"""

import os
import threading
import time

import keras
import numpy as np

from balpoe_keras.training.run_folder import RunFolder
from balpoe_keras.training.run_folder import to_scalar as _scalar


class LearningRateLogger(keras.callbacks.Callback):
    """Adds `"learning_rate"` (the LR used in the epoch) to the epoch logs.

    The value is read at the start of the epoch from
    `model.optimizer.learning_rate`, i.e. the schedule at the current
    `iterations`; per-epoch schedules are constant within the epoch.
    """

    def __init__(self, key="learning_rate"):
        super().__init__()
        self.key = key
        self._learning_rate = None

    def on_epoch_begin(self, epoch, logs=None):
        value = self.model.optimizer.learning_rate
        self._learning_rate = float(keras.ops.convert_to_numpy(value))

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None and self._learning_rate is not None:
            logs[self.key] = self._learning_rate


class ImagesPerSecond(keras.callbacks.Callback):
    """Training throughput in images/s, logged and printed per epoch.

    Wall time from `on_epoch_begin` to the last `on_train_batch_end` (so
    validation is excluded, the first epoch's compilation is included),
    times the number of images: `examples_per_epoch` if given, else
    `steps * global_batch_size` (counts the last partial batch as full).

    Args:
        global_batch_size: int, images per optimizer step, all devices.
        examples_per_epoch: optional int, exact images per epoch.
        key: the logs key.
        verbose: bool, print one line per epoch.
        steps_per_epoch: optional int, the full epoch's steps: an epoch
            that ran fewer (resumed mid-epoch) counts that share of
            `examples_per_epoch` (it counted them all, over part of the
            time).
    """

    async_safe = True  # Runs after Keras has read the step's logs.

    def __init__(
        self,
        global_batch_size,
        examples_per_epoch=None,
        key="images_per_sec",
        verbose=True,
        steps_per_epoch=None,
    ):
        super().__init__()
        self.global_batch_size = int(global_batch_size)
        self.examples_per_epoch = examples_per_epoch
        self.steps_per_epoch = steps_per_epoch
        self.key = key
        self.verbose = verbose
        self._start = None
        self._end = None
        self._steps = 0
        self._lock = threading.Lock()

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._end = None
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        # Possibly in a worker thread, out of order (`async_safe`).
        now = time.perf_counter()
        with self._lock:
            self._end = max(self._end or now, now)
            self._steps = max(self._steps, batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        if self._end is None or self._steps == 0:
            return
        images = self.examples_per_epoch
        if images and self.steps_per_epoch and (
                self._steps < self.steps_per_epoch):
            images = round(images * self._steps / self.steps_per_epoch)
        images = images or self._steps * self.global_batch_size
        seconds = max(self._end - self._start, 1e-9)
        rate = float(np.round(images / seconds, 2))
        if logs is not None:
            logs[self.key] = rate
        if self.verbose:
            print(
                f"Epoch {epoch + 1}: {rate:.1f} images/s "
                f"({images} images in {seconds:.1f} s)"
            )


class EpochCSVLogger(keras.callbacks.Callback):
    """One CSV row per epoch, appended across `model.fit` calls and resumes.

    Columns are `epoch` and the sorted log keys seen so far; keys that
    appear later extend the header, earlier rows reading `NA` there
    (`RunFolder.append_log`). No column exists that no epoch ever filled
    (Keras' `CSVLogger` adds `val_*` columns without validation data).

    Args:
        destination: a `RunFolder` (its `train_log.csv`) or a CSV path.
    """

    def __init__(self, destination):
        super().__init__()
        if isinstance(destination, RunFolder):
            self.folder, self.filename = destination, destination.log_path
        else:
            self.filename = os.fspath(destination)
            self.folder = _CsvFile(self.filename)

    def on_epoch_end(self, epoch, logs=None):
        if _stopped(self.model):
            return  # A partial epoch (interrupted or non-finite loss).
        self.folder.append_log(epoch, logs)


class _CsvFile:
    """`RunFolder.append_log` into a CSV at any path."""

    def __init__(self, path):
        self._folder = RunFolder(os.path.dirname(os.path.abspath(path)))
        self._name = os.path.basename(path)

    def append_log(self, epoch, logs):
        self._folder.append_log(epoch, logs, name=self._name)


def _stopped(model):
    return model is not None and bool(getattr(model, "stop_training", False))


class EpochTensorBoard(keras.callbacks.TensorBoard):
    """Keras' `TensorBoard` callback for epoch scalars, without step hooks.

    Every log key of an epoch becomes the scalar `epoch_<key>` in
    `log_dir/train/` (`val_...` keys in `log_dir/validation/`), as with
    `keras.callbacks.TensorBoard(log_dir, update_freq="epoch")`. Keras'
    callback also has per-step hooks that, at `update_freq="epoch"`, write
    nothing yet make JAX and PyTorch wait for every step (a callback with
    step hooks turns off Keras' asynchronous dispatch); this one has none.
    Needs TensorFlow installed (any Keras backend; on JAX and PyTorch
    TensorFlow is then kept off the GPUs unless it already started).

    Args:
        log_dir: str, the event folder.
    """

    async_safe = True  # No step hooks at all.

    def __init__(self, log_dir):
        if keras.backend.backend() != "tensorflow":
            import tensorflow as tf

            try:
                tf.config.set_visible_devices([], "GPU")
            except RuntimeError:  # TensorFlow already chose its devices.
                pass
        super().__init__(log_dir, write_graph=False, update_freq="epoch",
                         profile_batch=0)

    def on_train_batch_begin(self, batch, logs=None):
        pass

    def on_train_batch_end(self, batch, logs=None):
        pass

    def on_epoch_end(self, epoch, logs=None):
        if not _stopped(self.model):  # Not a partial epoch.
            super().on_epoch_end(epoch, logs)


class EpochEvaluation(keras.callbacks.Callback):
    """Adds the values of `evaluate_fn(model)` to the logs of due epochs.

    Args:
        evaluate_fn: `model -> {key: float}`, e.g. test-set metrics
            (`"test/balanced_accuracy"`, ...).
        every: int >= 1, evaluate after every `every`-th epoch...
        total_epochs: ...and after the last epoch of the run.
    """

    def __init__(self, evaluate_fn, every, total_epochs):
        super().__init__()
        self.evaluate_fn, self.every = evaluate_fn, int(every)
        self.total_epochs = int(total_epochs)

    def on_epoch_end(self, epoch, logs=None):
        due = (epoch + 1) % self.every == 0 or epoch + 1 == self.total_epochs
        if due and logs is not None and not _stopped(self.model):
            logs.update(self.evaluate_fn(self.model))


class EpochProgress(keras.callbacks.Callback):
    """One line per epoch: loss, accuracy, LR, images/s, time and ETA.

    For logs that go to files (no `\r` progress updates). The ETA is the
    remaining epochs of the run times the mean epoch time of this call.

    Args:
        total_epochs: int, epochs of the whole run.
    """

    _SHOWN = (("loss", "loss {:.4f}"), ("accuracy", "acc {:.2%}"),
              ("learning_rate", "lr {:.4g}"), ("images_per_sec", "{:.0f} "
                                                "img/s"))

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = int(total_epochs)
        self._times = []
        self._start = None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if _stopped(self.model):
            return
        logs = logs or {}
        seconds = time.perf_counter() - self._start
        self._times.append(seconds)
        parts = [fmt.format(_scalar(logs[k])) for k, fmt in self._SHOWN
                 if logs.get(k) is not None]
        parts.append(f"{seconds:.1f} s")
        left = self.total_epochs - epoch - 1
        if left:
            parts.append("ETA " + _duration(left * np.mean(self._times)))
        tests = [f"{k} {_scalar(v):.4f}" for k, v in sorted(logs.items())
                 if k.startswith("test/") and v is not None]
        line = f"Epoch {epoch + 1}/{self.total_epochs}: " + ", ".join(parts)
        print(line + ("; " + ", ".join(tests) if tests else ""), flush=True)


def _duration(seconds):
    minutes = int(round(seconds / 60))
    if minutes < 60:
        return f"{max(minutes, 1)} min" if seconds >= 60 else \
            f"{int(seconds)} s"
    return f"{minutes // 60} h {minutes % 60:02d} min"
