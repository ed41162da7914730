"""Per-epoch logging callbacks: learning rate and throughput.

Both add a key to the epoch `logs` dict, so they must come before
`CSVLogger` / `TensorBoard` in the callback list (`fit` orders them so).
"""

import csv
import os
import time

import keras
import numpy as np


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
        global_batch_size: int, images per optimizer step, all replicas.
        examples_per_epoch: optional int, exact images per epoch.
        key: the logs key.
        verbose: bool, print one line per epoch.
    """

    def __init__(
        self,
        global_batch_size,
        examples_per_epoch=None,
        key="images_per_sec",
        verbose=True,
    ):
        super().__init__()
        self.global_batch_size = int(global_batch_size)
        self.examples_per_epoch = examples_per_epoch
        self.key = key
        self.verbose = verbose
        self._start = None
        self._end = None
        self._steps = 0

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()
        self._end = None
        self._steps = 0

    def on_train_batch_end(self, batch, logs=None):
        self._end = time.perf_counter()
        self._steps = batch + 1

    def on_epoch_end(self, epoch, logs=None):
        if self._end is None or self._steps == 0:
            return
        images = self.examples_per_epoch
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


class EpochCSVLogger(keras.callbacks.CSVLogger):
    """`CSVLogger(append=True)` whose columns stay those of the file's header.

    `fit` calls `model.fit` once per epoch, so Keras' logger would pick its
    columns anew each epoch (and differently on epochs with validation);
    this one reuses the existing header, writing `NA` for missing keys.

    Args:
        filename: str, the CSV path.
    """

    def __init__(self, filename):
        super().__init__(filename, append=True)

    def on_epoch_end(self, epoch, logs=None):
        if self.keys is None and os.path.exists(self.filename):
            with open(self.filename, newline="") as f:
                header = next(csv.reader(f), None)
            if header:
                self.keys = [key for key in header if key != "epoch"]
        super().on_epoch_end(epoch, logs)


class RunProgbarLogger(keras.callbacks.ProgbarLogger):
    """Keras' progress bar, showing `Epoch e/<total epochs of the run>`.

    `fit` calls `model.fit` once per epoch, whose `epochs` argument is
    `e + 1`; this logger displays the run's total instead.

    Args:
        total_epochs: int, epochs of the whole run.
    """

    def __init__(self, total_epochs):
        super().__init__()
        self.total_epochs = int(total_epochs)

    def set_params(self, params):
        super().set_params({**params, "epochs": self.total_epochs})
