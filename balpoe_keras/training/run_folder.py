"""One run's folder: its files, its lock, and who writes them.

Layout of `<workdir>/`:

- `.lock`: the process that holds the folder (`workdir_lock`);
- `config.json`: the resolved settings (written by the experiment runner);
- `checkpoints/`: resumable training state (`CheckpointManager`);
- `train_log.csv`: one row per completed epoch (`append_log`);
- `tensorboard/`: the same scalars as TensorBoard events;
- `report/`, `model.keras`, `export/<version>/`: the evaluation and the
  exported model.

Both trainers (`training.fit` and `training.jax_multi_seed.fit_multi_seed`)
and the runner go through a `RunFolder`, so locking, logging, resuming and
cleaning up are defined once. In a run of several processes only one
writes (`writer=True`, the process with index 0); the others read the same
checkpoints and write nothing.
"""

import contextlib
import csv
import os
import shutil

import keras
import numpy as np

from balpoe_keras.training.checkpoint import CheckpointManager
from balpoe_keras.training.workdir_lock import workdir_lock

CONFIG_FILENAME = "config.json"
DATA_FILENAME = "data.json"  # The classes and image counts it trained on.
LOG_FILENAME = "train_log.csv"
CHECKPOINT_DIRNAME = "checkpoints"
TENSORBOARD_DIRNAME = "tensorboard"
REPORT_DIRNAME = "report"
MODEL_FILENAME = "model.keras"
EXPORT_DIRNAME = "export"
_TRAINING_DIRS = (CHECKPOINT_DIRNAME, TENSORBOARD_DIRNAME)
_OUTPUT_DIRS = _TRAINING_DIRS + (REPORT_DIRNAME, EXPORT_DIRNAME)


class RunFolder:
    """The files of one run in `path`.

    Args:
        path: the run's folder (created when first written).
        writer: False for the processes of a multi-process run that only
            read (every write method then does nothing).
    """

    def __init__(self, path, *, writer=True):
        self.path = os.fspath(path)
        self.writer = bool(writer)

    def __repr__(self):
        return f"RunFolder({self.path!r}, writer={self.writer})"

    def file(self, name):
        """The path of `name` inside the folder."""
        return os.path.join(self.path, name)

    @property
    def config_path(self):
        return self.file(CONFIG_FILENAME)

    @property
    def log_path(self):
        return self.file(LOG_FILENAME)

    @property
    def checkpoint_dir(self):
        return self.file(CHECKPOINT_DIRNAME)

    @property
    def tensorboard_dir(self):
        return self.file(TENSORBOARD_DIRNAME)

    @property
    def report_dir(self):
        return self.file(REPORT_DIRNAME)

    @property
    def model_path(self):
        return self.file(MODEL_FILENAME)

    @property
    def export_dir(self):
        return self.file(EXPORT_DIRNAME)

    def lock(self):
        """Context manager holding the folder's lock (re-entrant within a
        process); a reader takes none.

        Raises:
            workdir_lock.WorkdirInUseError: another live process holds it.
        """
        if not self.writer:
            return contextlib.nullcontext()
        return workdir_lock(self.path)

    def checkpoints(self, keep_every=None):
        """The `CheckpointManager` of `checkpoints/` (read-only for a
        folder that does not write)."""
        return CheckpointManager(self.checkpoint_dir, keep_every=keep_every,
                                 read_only=not self.writer)

    def has_training_state(self):
        """True once a trainer has written into `checkpoints/` (a
        committed checkpoint, or one being written)."""
        return os.path.isdir(self.checkpoint_dir) and bool(
            os.listdir(self.checkpoint_dir))

    def write_text(self, name, text):
        """Writes `text` to `name` in the folder atomically."""
        if not self.writer:
            return
        os.makedirs(self.path, exist_ok=True)
        path = self.file(name)
        tmp = f"{path}.tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, path)

    def append_log(self, epoch, logs, name=LOG_FILENAME):
        """Appends the row of `epoch` (0-based) to `train_log.csv`.

        Columns are `epoch` and the sorted log keys seen so far. Keys that
        appear later (e.g. test metrics of the first evaluation epoch)
        extend the header: the file is rewritten with the new columns,
        earlier rows reading `NA` there.

        Args:
            epoch: int, the 0-based epoch.
            logs: `{key: scalar}` (tensors are converted).
            name: the file, `train_log.csv` by default.
        """
        if not self.writer:
            return
        os.makedirs(self.path, exist_ok=True)
        logs = {k: to_scalar(v) for k, v in (logs or {}).items()}
        path = self.file(name)
        header, rows = ["epoch"], []
        if os.path.exists(path):
            with open(path, newline="") as f:
                reader = csv.DictReader(f)
                header = reader.fieldnames or header
                rows = list(reader)
        new = sorted(k for k in logs if k not in header)
        rows.append({"epoch": epoch, **logs})
        if new or not os.path.exists(path):
            _write_csv(path, header + new, rows)
            return
        with open(path, "a", newline="") as f:
            csv.DictWriter(f, header, restval="NA").writerow(rows[-1])

    def truncate_log(self, start_epoch):
        """Drops log rows of epochs >= `start_epoch` (those after the
        checkpoint a run resumes from); `start_epoch == 0` removes the
        log."""
        path = self.log_path
        if not self.writer or not os.path.exists(path):
            return
        if start_epoch == 0:
            os.remove(path)
            return
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
        if not rows or "epoch" not in rows[0]:
            return
        column = rows[0].index("epoch")
        kept = [rows[0]] + [r for r in rows[1:]
                            if int(r[column]) < start_epoch]
        tmp = f"{path}.tmp"
        with open(tmp, "w", newline="") as f:
            csv.writer(f).writerows(kept)
        os.replace(tmp, path)

    def remove_training_state(self):
        """Deletes checkpoints, TensorBoard events and the log."""
        self._remove(_TRAINING_DIRS, (LOG_FILENAME,))

    def remove_outputs(self):
        """Deletes everything a run wrote: training state, logs, report,
        exports and the recorded settings."""
        self._remove(_OUTPUT_DIRS, (LOG_FILENAME, MODEL_FILENAME,
                                    CONFIG_FILENAME, DATA_FILENAME))

    def _remove(self, dirs, files):
        if not self.writer:
            return
        for name in dirs:
            shutil.rmtree(self.file(name), ignore_errors=True)
        for name in files:
            if os.path.exists(self.file(name)):
                os.remove(self.file(name))


def _write_csv(path, header, rows):
    tmp = f"{path}.tmp"
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, header, restval="NA")
        writer.writeheader()
        writer.writerows(rows)
    os.replace(tmp, path)


def to_scalar(value):
    """A log value as a Python scalar (tensors and arrays converted)."""
    if isinstance(value, (int, float, str)) or value is None:
        return value
    return float(np.asarray(keras.ops.convert_to_numpy(value)))
