"""`fit`: per-epoch training with atomic checkpoints and exact resumption.

Each epoch is one `model.fit(train_dataset_fn(epoch), initial_epoch=epoch,
epochs=epoch + 1)` call, followed by a checkpoint (`checkpoint.py`). After a
crash, rerunning the same call restores the last committed epoch (weights,
optimizer incl. `iterations`, so the LR schedule position, and layer RNG
states) and rebuilds exactly that epoch's data from `train_dataset_fn`, so
the run continues as if uninterrupted. A finished run is not retrained.

Files in `workdir`: `checkpoints/` (see `CheckpointManager`),
`train_log.csv` (one row per epoch, appended on resume) and, on the TF
backend, `tensorboard/`.
"""

import csv
import dataclasses
import importlib.util
import os
import shutil
import sys

import keras

from balpoe_keras.training.callbacks import EpochCSVLogger
from balpoe_keras.training.callbacks import EpochEvaluation
from balpoe_keras.training.callbacks import EpochProgress
from balpoe_keras.training.callbacks import EpochTensorBoard
from balpoe_keras.training.callbacks import ImagesPerSecond
from balpoe_keras.training.callbacks import LearningRateLogger
from balpoe_keras.training.callbacks import RunProgbarLogger
from balpoe_keras.tensorflow_check import is_tensorflow_installed
from balpoe_keras.training.checkpoint import CheckpointManager

CSV_FILENAME = "train_log.csv"
TENSORBOARD_DIRNAME = "tensorboard"
CHECKPOINT_DIRNAME = "checkpoints"


@dataclasses.dataclass(frozen=True)
class FitResult:
    """What a `fit` call did.

    Attributes:
        initial_epoch: epochs already completed when the call started
            (> 0 after a resume).
        final_epoch: epochs completed when it returned (== `epochs`).
        history: `{key: [value per epoch run in this call]}`, Keras keys
            (`loss`, `logits_accuracy`, `learning_rate`, `val_...`).
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
        model: a compiled `keras.Model` (e.g. via `compile_balpoe`).
        train_dataset_fn: `epoch -> data` for the 0-based epoch; `data` is
            anything `model.fit` accepts as `x` with targets included
            (`tf.data.Dataset`, `keras.utils.PyDataset`, an iterable of
            `(x, y)` batches). It must depend only on `(seed, epoch)` for
            resumption to be exact.
        epochs: int, total number of epochs of the run.
        workdir: str, output folder (checkpoints, CSV and TB logs).
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
    workdir = str(workdir)
    if overwrite:
        _remove_outputs(workdir)
    os.makedirs(workdir, exist_ok=True)
    manager = CheckpointManager(
        os.path.join(workdir, CHECKPOINT_DIRNAME), keep_every=keep_every
    )
    start = _restore(manager, model, epochs, verbose)
    if start >= epochs:
        return FitResult(start, start, {})
    csv_path = os.path.join(workdir, CSV_FILENAME)
    _truncate_csv(csv_path, start)
    if verbose == "auto":
        verbose = 1 if sys.stdout.isatty() else 2
    epoch_callbacks = _make_callbacks(
        workdir, csv_path, callbacks, tensorboard, verbose,
        global_batch_size, examples_per_epoch, epochs,
        eval_fn and EpochEvaluation(eval_fn, eval_every, epochs),
    )  # fmt: skip
    history = {}
    if seed is not None:
        keras.utils.set_random_seed(int(seed) + start)
    for epoch in range(start, epochs):
        evaluate = eval_dataset is not None and _is_due(
            epoch, eval_every, epochs
        )
        result = model.fit(
            train_dataset_fn(epoch),
            initial_epoch=epoch,
            epochs=epoch + 1,
            steps_per_epoch=steps_per_epoch,
            validation_data=eval_dataset if evaluate else None,
            callbacks=epoch_callbacks,
            verbose=1 if verbose == 1 else 0,
            shuffle=False,  # The order is train_dataset_fn's business.
        )
        for key, values in result.history.items():
            history.setdefault(key, []).extend(values)
        if _is_due(epoch, checkpoint_every, epochs):
            manager.save(model, epoch + 1, total_epochs=epochs, seed=seed)
    for callback in epoch_callbacks:
        if isinstance(callback, EpochTensorBoard):
            callback.close()
    return FitResult(start, epochs, history)


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
            "The model is not compiled. Call compile_balpoe(model, ...) or "
            "model.compile(...) before fit()."
        )


def _remove_outputs(workdir):
    for name in (CHECKPOINT_DIRNAME, TENSORBOARD_DIRNAME):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    csv_path = os.path.join(workdir, CSV_FILENAME)
    if os.path.exists(csv_path):
        os.remove(csv_path)


def _restore(manager, model, epochs, verbose):
    """Loads the last checkpoint; returns the number of completed epochs."""
    state = manager.read_state()
    if state is None:
        return 0
    manager.restore(model, state)
    done = int(state["epoch"])
    if done >= epochs:
        _say(
            verbose,
            f"Run in {manager.directory} already finished ({done} epochs, "
            f"requested {epochs}); nothing to train. Loaded its final "
            "weights. Pass overwrite=True to train again from scratch.",
        )
    else:
        _say(
            verbose,
            f"Resuming from {state['checkpoint']}: {done}/{epochs} epochs "
            f"done, optimizer step {state.get('iterations')}.",
        )
        if int(state.get("total_epochs", epochs)) != epochs:
            _say(
                verbose,
                f"Note: the run was started with epochs="
                f"{state['total_epochs']}; now epochs={epochs}.",
            )
    return done


def _make_callbacks(
    workdir,
    csv_path,
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
    result.append(EpochCSVLogger(csv_path))
    if _use_tensorboard(tensorboard):
        log_dir = os.path.join(workdir, TENSORBOARD_DIRNAME)
        result.append(EpochTensorBoard(log_dir))
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


def _truncate_csv(csv_path, start_epoch):
    """Drops CSV rows of epochs >= `start_epoch` (run after the crash)."""
    if not os.path.exists(csv_path):
        return
    if start_epoch == 0:
        os.remove(csv_path)
        return
    with open(csv_path, newline="") as f:
        rows = list(csv.reader(f))
    if not rows or "epoch" not in rows[0]:
        return
    column = rows[0].index("epoch")
    kept = [rows[0]] + [r for r in rows[1:] if int(r[column]) < start_epoch]
    tmp = f"{csv_path}.tmp"
    with open(tmp, "w", newline="") as f:
        csv.writer(f).writerows(kept)
    os.replace(tmp, csv_path)


def _say(verbose, message):
    if verbose != 0:
        print(message)
