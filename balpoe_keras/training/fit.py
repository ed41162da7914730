"""`fit`: per-epoch training with atomic checkpoints and exact resumption.

Each epoch is one `model.fit(train_dataset_fn(epoch), initial_epoch=epoch,
epochs=epoch + 1)` call, followed by a checkpoint (`checkpoint.py`). After a
crash, rerunning the same call restores the last committed epoch (weights,
optimizer incl. `iterations`, so the LR schedule position, and layer RNG
states) and rebuilds exactly that epoch's data from `train_dataset_fn`, so
the run continues as if uninterrupted. A finished run is not retrained.

Faults (docs/reliability.md): a second process on the same workdir is
refused (`workdir_lock`); the first SIGINT/SIGTERM ends the epoch at the
next step boundary, writes a mid-epoch checkpoint and raises
`TrainingInterrupted` (a rerun resumes exactly there, skipping the batches
already trained); a NaN/Inf loss raises `NonFiniteLossError` without
checkpointing; an unreadable latest checkpoint falls back to the previous
one.

Files in `workdir` (a `RunFolder`): `checkpoints/` (see
`CheckpointManager`), `train_log.csv` (one row per completed epoch,
appended on resume), `tensorboard/` (when TensorFlow is installed) and
`.lock` while running.
"""

import dataclasses
import importlib.util
import itertools
import sys

import keras

from balpoe_keras.tensorflow_check import is_tensorflow_installed
from balpoe_keras.training.callbacks import EpochCSVLogger
from balpoe_keras.training.callbacks import EpochEvaluation
from balpoe_keras.training.callbacks import EpochProgress
from balpoe_keras.training.callbacks import EpochTensorBoard
from balpoe_keras.training.callbacks import ImagesPerSecond
from balpoe_keras.training.callbacks import LearningRateLogger
from balpoe_keras.training.callbacks import RunProgbarLogger
from balpoe_keras.training.guards import NonFiniteLossError
from balpoe_keras.training.guards import NonFiniteLossGuard
from balpoe_keras.training.guards import StopOnRequest
from balpoe_keras.training.guards import StopRequest
from balpoe_keras.training.guards import TrainingInterrupted
from balpoe_keras.training.run_folder import RunFolder


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What a `fit` call did.

    Attributes:
        initial_epoch: epochs already completed when the call started
            (> 0 after a resume).
        final_epoch: epochs completed when it returned (== `epochs`).
        history: `{key: [value per epoch run in this call]}`, Keras keys
            (`loss`, `accuracy`, `learning_rate`, `val_...`).
    """

    initial_epoch: int
    final_epoch: int
    history: dict

    @property
    def resumed(self):
        return self.initial_epoch > 0

    @property
    def already_finished(self):
        return self.initial_epoch >= self.final_epoch


def fit(
    model,
    train_dataset_fn,
    *,
    epochs,
    workdir,
    steps_per_epoch=None,
    eval_dataset=None,
    eval_fn=None,
    eval_every=1,
    callbacks=(),
    checkpoint_every=1,
    keep_every=None,
    overwrite=False,
    seed=None,
    global_batch_size=None,
    examples_per_epoch=None,
    tensorboard="auto",
    verbose="auto",
):
    """Trains a compiled model for `epochs` epochs, resuming if possible.

    Args:
        model: a compiled `keras.Model` (a `BalPoEClassifier` after its
            `compile()`).
        train_dataset_fn: `epoch -> data` for the 0-based epoch; `data` is
            anything `model.fit` accepts as `x` with targets included
            (`tf.data.Dataset`, `keras.utils.PyDataset`, an iterable of
            `(x, y)` batches). It must depend only on `(seed, epoch)` for
            resumption to be exact.
        epochs: int, total number of epochs of the run.
        workdir: the output folder (checkpoints, CSV and TB logs): a path
            or a `RunFolder` (a non-writing one in the processes of a
            multi-process run that do not write).
        steps_per_epoch: optional int, batches per epoch (default: until
            the epoch's data is exhausted).
        eval_dataset: optional validation data (Keras `val_*` logs),
            evaluated every `eval_every` epochs and after the last one.
        eval_fn: optional `model -> {key: float}` (e.g. test-set metrics
            named `"test/..."`), called on the same epochs; its values go
            to the CSV, TensorBoard and the progress line.
        eval_every: int >= 1.
        callbacks: extra `keras.callbacks.Callback`s (they see one
            `on_train_begin`/`on_train_end` pair per epoch).
        checkpoint_every: int >= 1; the last epoch is always saved.
        keep_every: optional int, also keep the checkpoints of multiples of
            this epoch (the reference's `save_period`).
        overwrite: bool, delete this workdir's checkpoints and logs first.
        seed: optional int; if set, `keras.utils.set_random_seed(seed +
            start_epoch)` runs once before training (Python, NumPy, TF,
            torch and the global Keras RNG). Not per epoch: on TensorFlow
            every `set_random_seed` forces the train step to be traced
            again (seconds per epoch). Exact resumption rests on the
            per-`(seed, epoch)` data and the checkpointed layer RNG states.
        global_batch_size: optional int, for the images/s log.
        examples_per_epoch: optional int, exact images/s numerator.
        tensorboard: `"auto"` (when TensorFlow and tensorboard are
            installed), True or False. One event file per call.
        verbose: 0 silent; 1 Keras' progress bar plus one summary line per
            epoch (with the run's ETA); 2 the summary line only (for logs
            written to files: no `\r` updates); `"auto"`: 1 when stdout is
            a terminal, else 2.

    Returns:
        A `FitResult`. The model holds the final weights in all cases (a
        finished run's last checkpoint is loaded into it).
    """
    _validate_args(epochs, checkpoint_every, eval_every, model)
    folder = workdir if isinstance(workdir, RunFolder) else RunFolder(
        workdir)
    with folder.lock(), StopRequest() as request:
        if overwrite:
            folder.remove_training_state()
        manager = folder.checkpoints(keep_every=keep_every)
        start, step = _restore(manager, model, epochs, verbose)
        if start >= epochs:
            return FitResult(start, start, {})
        folder.truncate_log(start)
        if verbose == "auto":
            verbose = 1 if sys.stdout.isatty() else 2
        epoch_callbacks = _make_callbacks(
            folder, callbacks, tensorboard, verbose,
            global_batch_size, examples_per_epoch, epochs,
            eval_fn and EpochEvaluation(eval_fn, eval_every, epochs),
        )  # fmt: skip
        if seed is not None:
            keras.utils.set_random_seed(int(seed) + start)
        run = _EpochRunner(model, train_dataset_fn, steps_per_epoch,
                           epoch_callbacks, verbose, request)
        try:
            for epoch in range(start, epochs):
                evaluate = eval_dataset is not None and _is_due(
                    epoch, eval_every, epochs)
                offset = step if epoch == start else 0
                finished = run(epoch, offset,
                               eval_dataset if evaluate else None)
                if not finished:  # Interrupted mid-epoch.
                    done = offset + run.stopper.steps_done
                    path = manager.save(model, epoch, epochs, seed, done)
                    raise TrainingInterrupted(request.signum, epoch, done,
                                              path)
                if request.signum is not None or _is_due(
                        epoch, checkpoint_every, epochs):
                    path = manager.save(model, epoch + 1, epochs, seed)
                if request.signum is not None:
                    raise TrainingInterrupted(request.signum, epoch + 1, 0,
                                              path)
        finally:
            for callback in epoch_callbacks:
                if isinstance(callback, EpochTensorBoard):
                    callback.close()
    return FitResult(start, epochs, run.history)


class _EpochRunner:
    """One `model.fit` call per epoch, with the stop and NaN guards.

    Calling it trains epoch `epoch` from batch `offset`; it returns False
    if a stop request ended the epoch early, and raises
    `NonFiniteLossError` on a NaN/Inf loss.
    """

    def __init__(self, model, dataset_fn, steps_per_epoch, callbacks,
                 verbose, request):
        self.model, self.dataset_fn = model, dataset_fn
        self.steps_per_epoch, self.callbacks = steps_per_epoch, callbacks
        self.verbose, self.request = verbose, request
        self.stopper = StopOnRequest(request)
        self.history = {}

    def __call__(self, epoch, offset, eval_dataset):
        data = self.dataset_fn(epoch)
        steps = self.steps_per_epoch
        if offset:
            data = _skip_batches(data, offset)
            steps = steps and steps - offset
        guard = NonFiniteLossGuard(step_offset=offset)
        result = self.model.fit(
            data,
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps,
            validation_data=eval_dataset,
            callbacks=[guard, self.stopper, *self.callbacks],
            verbose=1 if self.verbose == 1 else 0,
            shuffle=False,  # The order is train_dataset_fn's business.
        )
        self.model.stop_training = False
        if guard.found:
            raise NonFiniteLossError(
                f"The training loss became {guard.found[2]} at epoch "
                f"{guard.found[0]}, step {guard.found[1]}; training stopped "
                "and no checkpoint was written, so the last good one stays "
                "the latest. Lower the learning rate, check the data for "
                "non-finite values, or train in float32.")
        for key, values in result.history.items():
            self.history.setdefault(key, []).extend(values)
        interrupted = self.request.signum is not None
        return not (interrupted and (steps is None or
                                     self.stopper.steps_done < steps))


def _skip_batches(data, count):
    """`data` without its first `count` batches (a mid-epoch resume)."""
    if isinstance(data, keras.utils.PyDataset):
        return _OffsetPyDataset(data, count)
    if type(data).__module__.startswith("tensorflow"):
        return data.skip(count)
    # Keras takes generators (not other iterators) as data.
    return (batch for batch in itertools.islice(iter(data), count, None))


class _OffsetPyDataset(keras.utils.PyDataset):
    """A `PyDataset` that starts at batch `offset` of another."""

    def __init__(self, inner, offset):
        super().__init__()
        self.inner, self.offset = inner, int(offset)

    def __len__(self):
        return len(self.inner) - self.offset

    def __getitem__(self, index):
        return self.inner[index + self.offset]


def _is_due(epoch, every, epochs):
    """True after every `every`-th epoch and after the last one."""
    return epoch + 1 == epochs or (epoch + 1) % every == 0


def _validate_args(epochs, checkpoint_every, eval_every, model):
    for name, value in [
        ("epochs", epochs),
        ("checkpoint_every", checkpoint_every),
        ("eval_every", eval_every),
    ]:
        if int(value) != value or value < 1:
            raise ValueError(
                f"Expected {name} to be an integer >= 1. Received: "
                f"{name}={value}"
            )
    if not getattr(model, "compiled", False):
        raise ValueError(
            "The model is not compiled. Call model.compile() (a "
            "BalPoEClassifier brings its loss and metrics) before fit()."
        )


def _restore(manager, model, epochs, verbose):
    """Loads the last checkpoint; returns `(completed epochs, step)`."""
    state = manager.read_state()
    if state is None:
        return 0, 0
    state = manager.restore(model, state)
    done, step = int(state["epoch"]), int(state.get("step", 0))
    if done >= epochs:
        _say(
            verbose,
            f"Run in {manager.directory} already finished ({done} epochs, "
            f"requested {epochs}); nothing to train. Loaded its final "
            "weights. Pass overwrite=True to train again from scratch.",
        )
        return done, 0
    progress = f"{done}/{epochs} epochs" + (
        f" and {step} steps of epoch {done + 1}" if step else "")
    _say(
        verbose,
        f"Resuming from {state['checkpoint']}: {progress} done, optimizer "
        f"step {state.get('iterations')}.",
    )
    if int(state.get("total_epochs", epochs)) != epochs:
        _say(
            verbose,
            f"Note: the run was started with epochs="
            f"{state['total_epochs']}; now epochs={epochs}.",
        )
    return done, step


def _make_callbacks(
    folder,
    callbacks,
    tensorboard,
    verbose,
    global_batch_size,
    examples_per_epoch,
    epochs,
    evaluation,
):
    """Callbacks that add keys first, then the writers, then the user's."""
    result = [LearningRateLogger()]
    if global_batch_size or examples_per_epoch:
        result.append(ImagesPerSecond(
            global_batch_size or 0, examples_per_epoch=examples_per_epoch,
            verbose=False))
    if evaluation is not None:
        result.append(evaluation)
    if folder.writer:
        result.append(EpochCSVLogger(folder))
        if _use_tensorboard(tensorboard):
            result.append(EpochTensorBoard(folder.tensorboard_dir))
    result += list(callbacks)
    if verbose == 1:
        result.append(RunProgbarLogger(epochs))
    if verbose in (1, 2):
        result.append(EpochProgress(epochs))
    return result


def _use_tensorboard(tensorboard):
    """`"auto"`: when TensorFlow and the `tensorboard` package exist."""
    installed = is_tensorflow_installed() and (
        importlib.util.find_spec("tensorboard") is not None)
    if tensorboard == "auto":
        return installed
    if tensorboard and not installed:
        raise ValueError(
            "tensorboard=True needs TensorFlow and the `tensorboard` package "
            "(pip install tensorflow tensorboard). Use tensorboard='auto' "
            "to skip it when unavailable."
        )
    return bool(tensorboard)


def _say(verbose, message):
    if verbose != 0:
        print(message)
