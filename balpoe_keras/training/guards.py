"""Stopping `fit` cleanly: on SIGINT/SIGTERM and on a non-finite loss.

- `StopRequest` (a context manager) turns the first SIGINT or SIGTERM into
  a request; `StopOnRequest` ends the epoch at the next step boundary;
  `fit` then writes a mid-epoch checkpoint and raises `TrainingInterrupted`
  (exit status `128 + signal`). A second signal interrupts at once.
- `NonFiniteLossGuard` notices the first step whose loss is NaN or Inf
  (checked on the device, read every few steps) and stops; `fit` then
  raises `NonFiniteLossError` naming the epoch and step, without writing
  a checkpoint, so the last good one stays the latest.
"""

import signal
import threading

import keras
import numpy as np
from keras import ops


class TrainingInterrupted(Exception):
    """Training stopped on a signal after saving a resumable checkpoint.

    Attributes:
        signum: the signal number.
        epoch, step: completed epochs and batches into the next one.
        checkpoint: path of the checkpoint written.
        exit_code: `128 + signum`, as shells report a signal.
    """

    def __init__(self, signum, epoch, step, checkpoint):
        self.signum, self.epoch, self.step = signum, epoch, step
        self.checkpoint = checkpoint
        self.exit_code = 128 + int(signum)
        name = signal.Signals(signum).name
        where = f"after epoch {epoch}" if not step else (
            f"in epoch {epoch + 1} after step {step}")
        super().__init__(
            f"Stopped by {name} {where}; saved {checkpoint}. Rerun the same "
            "command to resume exactly there.")


class NonFiniteLossError(FloatingPointError):
    """The training loss became NaN or Inf."""


class StopRequest:
    """Records the first SIGINT/SIGTERM instead of dying (main thread only).

    A second signal restores the previous handlers' behaviour (SIGINT:
    `KeyboardInterrupt`), so a stuck run can still be stopped at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
        return False

    def _handle(self, signum, frame):
        if self.signum is not None:  # The second one: stop now.
            previous = self._previous.get(signum, signal.SIG_DFL)
            signal.signal(signum, previous)
            if callable(previous):
                previous(signum, frame)
            else:
                signal.raise_signal(signum)
            return
        self.signum = signum
        print(f"\n{signal.Signals(signum).name} received: stopping after "
              "this step and saving a checkpoint (send it again to stop "
              "at once).", flush=True)


class StopOnRequest(keras.callbacks.Callback):
    """Ends the epoch at the next step boundary once a stop is requested.

    Attributes:
        steps_done: batches finished in the current `model.fit` call.
    """

    def __init__(self, request):
        super().__init__()
        self.request = request
        self.steps_done = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.steps_done = 0

    def on_train_batch_end(self, batch, logs=None):
        self.steps_done = batch + 1
        if self.request.signum is not None:
            self.model.stop_training = True


class NonFiniteLossGuard(keras.callbacks.Callback):
    """Stops soon after the first step with a NaN or Inf loss; records it.

    The check stays on the device (a running "first bad step" value): the
    host reads it only every `check_every` steps and at the epoch's end,
    so no step waits for the device (on a GPU a per-step read would stall
    the asynchronous dispatch). Training therefore stops at most
    `check_every - 1` steps after the bad one, which it names exactly; no
    checkpoint is written after it.

    Attributes:
        found: None, or `(epoch, step, value)` (1-based epoch and step, the
            step counted from the start of the epoch; value the running
            loss, NaN or Inf).
    """

    def __init__(self, step_offset=0, check_every=20):
        super().__init__()
        self.found = None
        self.step_offset = step_offset
        self.check_every = int(check_every)
        self._epoch = 0
        self._first = None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        self._first = None

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None or self.found is not None:
            return
        loss = ops.convert_to_tensor(loss)
        bad = ops.logical_not(ops.all(ops.isfinite(loss)))
        step = batch + 1
        if self._first is None:
            self._first = ops.where(bad, step, 0)
        else:
            self._first = ops.where(
                ops.logical_and(bad, self._first == 0), step, self._first)
        self._last_loss = loss
        if step % self.check_every == 0:
            self._check()

    def on_epoch_end(self, epoch, logs=None):
        if self.found is None and self._first is not None:
            self._check()

    def _check(self):
        first = int(np.asarray(ops.convert_to_numpy(self._first)))
        if first:
            value = float(np.asarray(ops.convert_to_numpy(self._last_loss)))
            self.found = (self._epoch + 1, self.step_offset + first, value)
            self.model.stop_training = True
