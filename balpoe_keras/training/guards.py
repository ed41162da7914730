"""Stopping `fit` cleanly: on SIGINT/SIGTERM and on a non-finite loss.

- `StopRequest` (a context manager) turns the first SIGINT or SIGTERM into
  a request; `StopOnRequest` ends the epoch at the next step boundary;
  `fit` then writes a mid-epoch checkpoint and raises `TrainingInterrupted`
  (exit status `128 + signal`). A second signal interrupts at once.
- `NonFiniteLossGuard` notices the first step whose loss is NaN or Inf
  and stops; `fit` then raises `NonFiniteLossError` naming the epoch and
  step, without writing a checkpoint, so the last good one stays the
  latest.

Both are `async_safe`: on the JAX and PyTorch backends Keras runs their
batch-end hooks in worker threads, where it also reads the step's logs from
the device, so no training step waits for the device. Their hooks may
therefore run concurrently and out of order; they keep the largest step
seen (`StopOnRequest`) and the smallest bad one (`NonFiniteLossGuard`),
and they stop training through `_AsyncStopper.stop_training`, not
`Callback.model`, which on JAX syncs the training state into the model:
from a worker thread that races the training thread (donated buffers).
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
    """The training loss became NaN or Inf.

    Args:
        subject: whose loss, e.g. `"The training loss"`.
        value: the non-finite value (nan, inf or -inf).
        when: where in training, e.g. `"at epoch 2, step 3"`.
    """

    def __init__(self, subject, value, when):
        super().__init__(
            f"{subject} became {value} {when}; training stopped and no "
            "checkpoint was written, so the last good one stays the latest. "
            "Lower the learning rate, check the data for non-finite values, "
            "or train in float32.")


class StopRequest:
    """Records the first SIGINT/SIGTERM instead of dying (main thread only).

    A second signal restores the previous handlers' behaviour (SIGINT:
    `KeyboardInterrupt`), so a stuck run can still be stopped at once.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.signum = None
        self.on_request = None  # Called by the handler (main thread).
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
        if self.on_request is not None:
            self.on_request()
        print(f"\n{signal.Signals(signum).name} received: stopping after "
              "this step and saving a checkpoint (send it again to stop "
              "at once).", flush=True)


class _AsyncStopper(keras.callbacks.Callback):
    """A callback whose batch hooks may run in Keras' worker threads."""

    async_safe = True

    def set_model(self, model):
        super().set_model(model)
        self._trained_model = model

    def stop_training(self):
        """Asks `fit` to stop after the current step (thread-safe)."""
        self._trained_model.stop_training = True


class StopOnRequest(_AsyncStopper):
    """Ends the epoch at the next step boundary once a stop is requested.

    A stop requested in the last step of an epoch lets that epoch end as a
    complete one (the callbacks after this one log it; `fit` checkpoints
    it), then training stops.

    Args:
        request: the `StopRequest`.
        steps_per_epoch: optional int, batches per epoch (without it every
            stopped epoch counts as cut short).
        step_offset: int, batches of the first epoch trained before this
            `model.fit` call (a mid-epoch resume).

    Attributes:
        epoch: the 0-based epoch in progress (or last ended).
        steps_done: its batches finished, `step_offset` included in the
            first epoch of the call.
    """

    def __init__(self, request, steps_per_epoch=None, step_offset=0):
        super().__init__()
        self.request = request
        self.steps_per_epoch = steps_per_epoch
        self.step_offset = int(step_offset)
        self.epoch = None
        self.steps_done = 0
        self._first_epoch = None
        self._lock = threading.Lock()

    @property
    def epoch_complete(self):
        """True when the current epoch has run all its batches."""
        return (self.steps_per_epoch is not None
                and self.steps_done >= self.steps_per_epoch)

    def on_train_begin(self, logs=None):
        # The signal handler stops `fit` after the step it interrupts: the
        # batch-end hook below may run later, in a worker thread.
        self.request.on_request = self.stop_training

    def on_train_end(self, logs=None):
        self.request.on_request = None

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch is None:
            self._first_epoch = epoch
        self.epoch = epoch
        self.steps_done = self._offset(epoch)

    def on_train_batch_end(self, batch, logs=None):
        with self._lock:
            self.steps_done = max(self.steps_done,
                                  self._offset(self.epoch) + batch + 1)
        if self.request.signum is not None:
            self.stop_training()

    def on_epoch_end(self, epoch, logs=None):
        # Keras' asynchronous batch hooks have all run by now.
        if self.request.signum is not None and self.epoch_complete:
            self._trained_model.stop_training = False  # Log it as complete.

    def _offset(self, epoch):
        return self.step_offset if epoch == self._first_epoch else 0


class NonFiniteLossGuard(_AsyncStopper):
    """Stops soon after the first step with a NaN or Inf loss; records it.

    Keras reads the step's logs from the device before batch-end hooks run,
    in a worker thread when every batch-level callback is `async_safe`
    (JAX, PyTorch), so the guard costs no device synchronisation on the
    training thread. Training then stops a step or two after the bad one,
    which the guard still names exactly.

    Args:
        step_offset: int, added to the step numbers (a mid-epoch resume).

    Attributes:
        found: None, or `(epoch, step, value)` (1-based epoch and step, the
            step counted from the start of the epoch; value the logged
            loss, NaN or Inf).
    """

    def __init__(self, step_offset=0):
        super().__init__()
        self.found = None
        self.step_offset = int(step_offset)
        self._epoch = 0
        self._lock = threading.Lock()

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch

    def on_epoch_end(self, epoch, logs=None):
        if self.found is not None:  # Even if a stop request let it end.
            self.stop_training()

    def on_train_batch_end(self, batch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is None:
            return
        values = np.asarray(ops.convert_to_numpy(loss), dtype="float64")
        bad = values[~np.isfinite(values)]
        if not bad.size:
            return
        where = (self._epoch + 1, self.step_offset + batch + 1)
        with self._lock:
            if self.found is None or where < self.found[:2]:
                self.found = (*where, float(bad[0]))
        self.stop_training()
