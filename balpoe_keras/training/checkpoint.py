"""Atomic, resumable checkpoints of a compiled Keras model.

Layout of `<workdir>/checkpoints/`:

- `ckpt-<epoch>.keras` (after `epoch` completed epochs) or
  `ckpt-<epoch>-s<step>.keras` (interrupted `step` batches into the next
  epoch): the whole compiled model (`model.save`): weights and optimizer
  variables (`iterations`, momentum buffers, loss scale), so the LR
  schedule position is restored with it;
- `<checkpoint>.json` beside each: its state, `{"epoch", "step",
  "checkpoint", "total_epochs", "seed", "rng_state", "iterations",
  "time"}`; layer `SeedGenerator` states (dropout, random augmentation
  layers) are not part of Keras' saved weights, so they are kept here;
- `state.json`: the commit point, a copy of the latest checkpoint's state.

Every file is written under a temporary name, synced and moved into place
with `os.replace`; `state.json` is replaced only after its checkpoint
exists, and older checkpoints are deleted only after that. A `kill -9` at
any moment therefore leaves a consistent `state.json` pointing to a
complete file. The two latest checkpoints are kept: when the latest cannot
be read (truncated, corrupt), `restore` says so and resumes from the one
before. A failed write (e.g. a full disk) leaves the previous checkpoint
committed and raises `CheckpointWriteError`.
"""

import json
import os
import re
import time

import keras
import numpy as np

from balpoe_keras.training import multi_host

STATE_FILENAME = "state.json"
_PREFIX = "ckpt-"
_NAME = re.compile(r"^ckpt-(\d+)(?:-s(\d+))?\.keras$")
KEEP_LATEST = 2


class CheckpointWriteError(OSError):
    """A checkpoint could not be written; the previous one is intact."""


class CheckpointStateError(RuntimeError):
    """`state.json` or every checkpoint of a run is unreadable."""


class CheckpointManager:
    """Saves and restores checkpoints + `state.json` in a folder.

    Args:
        directory: str, the checkpoint folder (created on first save).
        keep_every: optional int; epoch checkpoints whose epoch is a
            multiple of it are kept (the reference's `save_period`);
            otherwise only the `KEEP_LATEST` (2) latest are kept.
        read_only: bool; `save` writes nothing (the processes of a
            multi-process run other than the one that writes).
    """

    def __init__(self, directory, keep_every=None, read_only=False):
        if keep_every is not None and keep_every < 1:
            raise ValueError(
                f"Expected keep_every >= 1 or None. Received: {keep_every}"
            )
        self.directory = str(directory)
        self.keep_every = keep_every
        self.read_only = bool(read_only)

    @property
    def state_path(self):
        return os.path.join(self.directory, STATE_FILENAME)

    def read_state(self):
        """The committed `state.json` as a dict, or None if there is none.

        Raises:
            CheckpointStateError: if the file exists but is unreadable,
                naming it and the way out.
        """
        if not os.path.exists(self.state_path):
            return None
        try:
            with open(self.state_path) as f:
                state = json.load(f)
            state["epoch"], state["checkpoint"]  # noqa: B018 (required)
            return state
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise CheckpointStateError(
                f"The run-state file {self.state_path} is unreadable "
                f"({type(e).__name__}: {e}). Delete it to resume from the "
                f"checkpoints in {self.directory} (the latest readable one "
                "is used), or start over with --overwrite."
            ) from None

    def save(self, model, epoch, total_epochs, seed=None, step=0):
        """Writes the checkpoint after `epoch` epochs (+ `step` batches).

        Returns:
            str, the path of the new `.keras` file (None if read-only).

        Raises:
            CheckpointWriteError: the write failed (e.g. no space left);
                no partial file is left and the previous checkpoint stays
                committed.
        """
        if self.read_only:
            return None
        os.makedirs(self.directory, exist_ok=True)
        name = f"{_PREFIX}{int(epoch):04d}"
        name += f"-s{int(step):05d}.keras" if step else ".keras"
        path = os.path.join(self.directory, name)
        state = {
            "epoch": int(epoch),
            "step": int(step),
            "total_epochs": int(total_epochs),
            "checkpoint": name,
            "seed": seed,
            "rng_state": _seed_generator_states(model),
            "iterations": int(_to_numpy(model.optimizer.iterations)),
            "time": time.time(),
        }
        tmp = os.path.join(self.directory, f".tmp-{os.getpid()}-{name}")
        try:
            with multi_host.local_saving():
                model.save(tmp)
            _fsync(tmp)
            _write_json_atomic(path + ".json", state)
            os.replace(tmp, path)
            _write_json_atomic(self.state_path, state)
        except OSError as e:
            _remove_quietly(tmp)
            previous = self._committed_name()
            raise CheckpointWriteError(
                e.errno, f"Could not write checkpoint {path} "
                f"({e.strerror or e}). "
                + (f"The previous checkpoint {previous} is intact; "
                   if previous else "")
                + "free space (or fix the folder) and rerun the same "
                "command to resume.") from e
        self._delete_stale(keep=name)
        return path

    def restore(self, model, state=None):
        """Loads the committed checkpoint into `model` (weights + optimizer).

        If that file cannot be read, says so and falls back to the newest
        readable older checkpoint. `model` must be built and compiled like
        the saved one.

        Returns:
            The state dict that was restored, or None if there is none.

        Raises:
            CheckpointStateError: no checkpoint of the run can be read.
        """
        state = state or self.read_state()
        if state is None:
            return None
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                "Compile the model before restoring a checkpoint into it."
            )
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        failures = []
        for candidate in [state] + self._older_states(state):
            path = os.path.join(self.directory, candidate["checkpoint"])
            try:
                model.load_weights(path)
            except Exception as e:  # zip, h5 and OS errors alike
                failures.append(f"{candidate['checkpoint']} "
                                f"({type(e).__name__}: {e})")
                print(f"Checkpoint {path} is unreadable ({type(e).__name__}"
                      f": {e}); trying the one before.")
                continue
            _assign_seed_generator_states(model, candidate.get(
                "rng_state", {}))
            return candidate
        raise CheckpointStateError(
            f"No checkpoint in {self.directory} can be read: "
            f"{'; '.join(failures)}. Start over with --overwrite.")

    def _older_states(self, state):
        """States of the checkpoints older than `state`, newest first."""
        key = (int(state["epoch"]), int(state.get("step", 0)))
        older = []
        for name in os.listdir(self.directory):
            match = _NAME.match(name)
            sidecar = os.path.join(self.directory, name + ".json")
            if not match or not os.path.exists(sidecar):
                continue
            this = (int(match.group(1)), int(match.group(2) or 0))
            if this < key:
                try:
                    with open(sidecar) as f:
                        older.append((this, json.load(f)))
                except (OSError, ValueError):
                    continue
        return [s for _, s in sorted(older, key=lambda t: t[0],
                                     reverse=True)]

    def _committed_name(self):
        try:
            return (self.read_state() or {}).get("checkpoint")
        except CheckpointStateError:
            return None

    def _delete_stale(self, keep):
        names = sorted((n for n in os.listdir(self.directory)
                        if _NAME.match(n)), key=_sort_key, reverse=True)
        latest = set(names[:KEEP_LATEST]) | {keep}
        for name in os.listdir(self.directory):
            path = os.path.join(self.directory, name)
            if name.startswith(".tmp-"):
                _remove_quietly(path)
                continue
            base = name[:-len(".json")] if name.endswith(".json") else name
            if not _NAME.match(base) or base in latest or self._is_kept(base):
                continue
            _remove_quietly(path)

    def _is_kept(self, name):
        match = _NAME.match(name)
        if self.keep_every is None or match.group(2):
            return False
        return int(match.group(1)) % self.keep_every == 0


def _sort_key(name):
    match = _NAME.match(name)
    return int(match.group(1)), int(match.group(2) or 0)


def _seed_generator_states(model):
    return {
        v.path: _to_numpy(v).tolist()
        for v in model.variables
        if v.path.endswith("seed_generator_state")
    }


def _assign_seed_generator_states(model, states):
    for variable in model.variables:
        if variable.path in states:
            variable.assign(np.asarray(states[variable.path], variable.dtype))


def _to_numpy(x):
    return np.asarray(keras.ops.convert_to_numpy(x))


def _fsync(path):
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def _remove_quietly(path):
    try:
        os.remove(path)
    except OSError:
        pass


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "w") as f:
            json.dump(data, f, indent=2)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except OSError:
        _remove_quietly(tmp)
        raise
