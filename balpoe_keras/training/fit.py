"""`fit`: one `model.fit` call over the run, with exact resumption.

`fit` trains the way a user's own code does, with one `model.fit(data,
initial_epoch=start, epochs=epochs, steps_per_epoch=steps)` call over the
whole schedule and callbacks doing the rest: Keras' own `TensorBoard`, and
small ones of ours where a guarantee needs more than Keras' (see
docs/training.md, "What `fit` adds to `model.fit`"). After every
`checkpoint_every` epochs a checkpoint is committed (`checkpoint.py`);
after a crash, rerunning the same call restores it (weights, optimizer
incl. `iterations`, so the LR schedule position, and layer RNG states) and
asks `train_dataset_fn` for the data from that epoch on, so the run
continues as if uninterrupted. A finished run is not retrained.

Faults (docs/reliability.md): a second process on the same workdir is
refused (`workdir_lock`); the first SIGINT/SIGTERM ends the epoch at the
next step boundary, writes a mid-epoch checkpoint and raises
`TrainingInterrupted` (a rerun first finishes that epoch from the next
batch, in a `model.fit` call of its own, then trains the rest in one); a
NaN/Inf loss raises `NonFiniteLossError` without checkpointing; an
unreadable latest checkpoint falls back to the previous one.

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
    steps_per_epoch,
    workdir,
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
        train_dataset_fn: `epoch -> data` for the 0-based epoch: that
            epoch's `steps_per_epoch` batches, as anything `model.fit`
            takes with the targets included (`tf.data.Dataset`,
            `keras.utils.PyDataset`, an iterable of `(x, y)` batches);
            `fit` asks for the next epoch's data when one ends. A
            `tf.data.Dataset` of infinite cardinality is taken as the
            data of `epoch` and of every epoch after it
            (`data.tfdata.make_train_dataset(..., epoch=epoch,
            repeat=True)`), so tf.data runs one pipeline for the whole
            run. The data must depend only on `(seed, epoch)` for
            resumption to be exact.
        epochs: int, total number of epochs of the run.
        steps_per_epoch: int, batches per epoch (the LR schedule's).
        workdir: the output folder (checkpoints, CSV and TB logs): a path
            or a `RunFolder` (a non-writing one in the processes of a
            multi-process run that do not write).
        eval_dataset: optional validation data (Keras `val_*` logs),
            evaluated every `eval_every` epochs and after the last one.
        eval_fn: optional `model -> {key: float}` (e.g. test-set metrics
            named `"test/..."`), called on the same epochs; its values go
            to the CSV, TensorBoard and the progress line.
        eval_every: int >= 1.
        callbacks: extra `keras.callbacks.Callback`s; they see one
            `on_train_begin`/`on_train_end` pair per call (two when the
            call first finishes an interrupted epoch).
        checkpoint_every: int >= 1; the last epoch is always saved.
        keep_every: optional int, also keep the checkpoints of multiples of
            this epoch (the reference's `save_period`).
        overwrite: bool, delete this workdir's checkpoints and logs first.
        seed: optional int, recorded in the checkpoints. `fit` sets no
            global random state: exact resumption rests on the
            per-`(seed, epoch)` data and the checkpointed layer RNG
            states.
        global_batch_size: optional int, for the images/s log.
        examples_per_epoch: optional int, exact images/s numerator.
        tensorboard: `"auto"` (when TensorFlow and tensorboard are
            installed), True or False: Keras' `TensorBoard` callback
            writing to `workdir/tensorboard/`.
        verbose: 0 silent; 1 Keras' progress bar plus one summary line per
            epoch (with the run's ETA); 2 the summary line only (for logs
            written to files: no `\r` updates); `"auto"`: 1 when stdout is
            a terminal, else 2.

    Returns:
        A `FitResult`. The model holds the final weights in all cases (a
        finished run's last checkpoint is loaded into it).
    """
    _validate_args(epochs, steps_per_epoch, checkpoint_every, eval_every,
                   model)
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
        steps = int(steps_per_epoch)
        run = _Run(model, manager, request, steps, epochs,
                   checkpoint_every, seed, eval_every)
        writers = _make_callbacks(
            folder, callbacks, tensorboard, verbose,
            global_batch_size, examples_per_epoch,
            epochs, eval_fn and EpochEvaluation(eval_fn, eval_every, epochs),
            steps,
        )  # fmt: skip
        first = start
        if step:  # Finish the interrupted epoch first, from its next batch.
            data = _skip_batches(train_dataset_fn(start), step)
            run.fit(data, start, start + 1, step, eval_dataset, writers,
                    verbose)
            first = start + 1
        if first < epochs:
            data = _stream(train_dataset_fn, first, epochs, steps)
            run.fit(data, first, epochs, 0, eval_dataset, writers, verbose)
    return FitResult(start, epochs, run.history)


class _Run:
    """`model.fit` calls with the stop, NaN and checkpoint callbacks."""

    def __init__(self, model, manager, request, steps_per_epoch, epochs,
                 checkpoint_every, seed, eval_every):
        self.model, self.manager, self.request = model, manager, request
        self.steps_per_epoch, self.epochs = steps_per_epoch, epochs
        self.checkpoint_every, self.seed = checkpoint_every, seed
        self.eval_every = eval_every
        self.history = {}

    def fit(self, data, first, last, offset, eval_dataset, writers,
            verbose):
        """Trains epochs `[first, last)`, the first from batch `offset`."""
        stopper = StopOnRequest(self.request, self.steps_per_epoch,
                                step_offset=offset)
        guard = NonFiniteLossGuard(step_offset=offset)
        saver = _EpochCheckpoint(self, stopper, guard)
        due = [e + 1 for e in range(first, last)
               if _is_due(e, self.eval_every, self.epochs)]
        result = self.model.fit(
            data,
            initial_epoch=first,
            epochs=last,
            steps_per_epoch=self.steps_per_epoch - offset,
            validation_data=eval_dataset if due else None,
            validation_freq=due or 1,
            callbacks=[stopper, guard, *writers, saver],
            verbose=1 if verbose == 1 else 0,
            shuffle=False,  # The order is train_dataset_fn's business.
        )
        self.model.stop_training = False
        for key, values in result.history.items():
            self.history.setdefault(key, []).extend(values)
        if guard.found:
            raise NonFiniteLossError(
                "The training loss", guard.found[2],
                f"at epoch {guard.found[0]}, step {guard.found[1]}")
        if self.request.signum is None:
            return
        if stopper.epoch_complete:
            epoch, step, path = stopper.epoch + 1, 0, saver.last_path
            if saver.last_epoch != epoch:
                # The signal came after this epoch's checkpoint callback
                # (which saw no request and saved only if due).
                path = self.manager.save(self.model, epoch, self.epochs,
                                         self.seed)
        else:  # Interrupted mid-epoch.
            epoch, step = stopper.epoch, stopper.steps_done
            path = self.manager.save(self.model, epoch, self.epochs,
                                     self.seed, step)
        raise TrainingInterrupted(self.request.signum, epoch, step, path)


class _EpochCheckpoint(keras.callbacks.Callback):
    """Commits a checkpoint after due, complete epochs (the last callback).

    Due: every `checkpoint_every` epochs, the last one, and any epoch a
    stop was requested in. An epoch cut short (a stop request, a NaN/Inf
    loss) writes nothing here; `_Run.fit` saves the interrupted one.
    """

    def __init__(self, run, stopper, guard):
        super().__init__()
        self.run, self.stopper, self.guard = run, stopper, guard
        self.last_path, self.last_epoch = None, None

    def on_epoch_end(self, epoch, logs=None):
        if self.guard.found or not self.stopper.epoch_complete:
            return
        run = self.run
        requested = run.request.signum is not None
        if requested or _is_due(epoch, run.checkpoint_every, run.epochs):
            self.last_path = run.manager.save(self.model, epoch + 1,
                                              run.epochs, run.seed)
            self.last_epoch = epoch + 1
        if requested:
            self.model.stop_training = True


def _stream(train_dataset_fn, epoch, epochs, steps_per_epoch):
    """The first `steps_per_epoch` batches of epochs `[epoch, epochs)`, for
    one `model.fit` call (an infinite tf.data stream as it is)."""
    data = train_dataset_fn(epoch)
    if _is_infinite_tf_dataset(data):
        return data
    if isinstance(data, keras.utils.PyDataset):
        return EpochStream(train_dataset_fn, epoch, epochs, steps_per_epoch,
                           first=data)

    def batches():  # Keras takes generators (not other iterators) as data.
        for e in range(epoch, epochs):
            epoch_data = data if e == epoch else train_dataset_fn(e)
            yield from itertools.islice(epoch_data, steps_per_epoch)

    return batches()


def _is_tf_dataset(data):
    return type(data).__module__.startswith("tensorflow")


def _is_infinite_tf_dataset(data):
    if not _is_tf_dataset(data):
        return False
    import tensorflow as tf

    return bool(data.cardinality() == tf.data.INFINITE_CARDINALITY)


class EpochStream(keras.utils.PyDataset):
    """The per-epoch `PyDataset`s of `dataset_fn` as one, for `model.fit`.

    Batch `i` is batch `i % steps_per_epoch` of epoch `epoch + i //
    steps_per_epoch`, so `model.fit(stream, steps_per_epoch=...,
    epochs=...)` reads epoch after epoch from one iterator; each epoch's
    dataset is built when its first batch is read. (Keras also calls a
    `PyDataset`'s `on_epoch_end` before training, after taking a batch to
    build the model, so that hook cannot count epochs.)

    Args:
        dataset_fn: `epoch -> keras.utils.PyDataset` of one epoch.
        epoch: int, the 0-based first epoch.
        epochs: int, the epoch to stop before.
        steps_per_epoch: int, the first `steps_per_epoch` batches of every
            epoch are read; every epoch must have at least as many.
        first: optional, `dataset_fn(epoch)` if already built.
    """

    def __init__(self, dataset_fn, epoch, epochs, steps_per_epoch,
                 first=None):
        super().__init__()
        self.dataset_fn, self.epoch = dataset_fn, int(epoch)
        self.epochs, self.steps_per_epoch = int(epochs), int(steps_per_epoch)
        self._current = (self.epoch, first) if first is not None else None

    def __len__(self):
        return (self.epochs - self.epoch) * self.steps_per_epoch

    def __getitem__(self, index):
        if not 0 <= index < len(self):
            raise IndexError(f"Batch {index} out of range [0, {len(self)}).")
        epoch, step = divmod(index, self.steps_per_epoch)
        epoch += self.epoch
        if self._current is None or self._current[0] != epoch:
            self._current = (epoch, self.dataset_fn(epoch))
        data = self._current[1]
        if len(data) < self.steps_per_epoch:
            raise ValueError(
                f"Epoch {epoch} has {len(data)} batches, fewer than "
                f"steps_per_epoch={self.steps_per_epoch}. Pass the number "
                "of batches per epoch as steps_per_epoch.")
        return data[step]


def _skip_batches(data, count):
    """`data` without its first `count` batches (a mid-epoch resume)."""
    if isinstance(data, keras.utils.PyDataset):
        return _OffsetPyDataset(data, count)
    if _is_tf_dataset(data):
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


def _validate_args(epochs, steps_per_epoch, checkpoint_every, eval_every,
                   model):
    for name, value in [
        ("epochs", epochs),
        ("steps_per_epoch", steps_per_epoch),
        ("checkpoint_every", checkpoint_every),
        ("eval_every", eval_every),
    ]:
        if value is None or int(value) != value or value < 1:
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
    steps_per_epoch=None,
):
    """Callbacks that add keys first, then the writers, then the user's."""
    result = [LearningRateLogger()]
    if global_batch_size or examples_per_epoch:
        result.append(ImagesPerSecond(
            global_batch_size or 0, examples_per_epoch=examples_per_epoch,
            verbose=False, steps_per_epoch=steps_per_epoch))
    if evaluation is not None:
        result.append(evaluation)
    if folder.writer:
        result.append(EpochCSVLogger(folder))
        if _use_tensorboard(tensorboard):
            result.append(EpochTensorBoard(folder.tensorboard_dir))
    result += list(callbacks)
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
