"""Atomic, resumable per-epoch checkpoints of a compiled Keras model.

Layout of `<workdir>/checkpoints/`:

- `ckpt-<epoch>.keras`: the whole compiled model (`model.save`): weights
  and optimizer variables (`iterations`, momentum buffers, loss scale), so
  the LR schedule position is restored with it.
- `state.json`: the commit point. `{"epoch": completed epochs, "checkpoint":
  file name, "total_epochs", "seed", "rng_state": {seed generator path:
  state}}`. Layer `SeedGenerator` states (dropout, random augmentation
  layers) are not part of Keras' saved weights, so they are kept here.

Every file is written under a temporary name and moved into place with
`os.replace`; `state.json` is replaced only after its checkpoint exists, and
older checkpoints are deleted only after that. A `kill -9` at any moment
therefore leaves a consistent `state.json` pointing to a complete file.
"""

import json
import os
import time

import keras
import numpy as np

STATE_FILENAME = "state.json"
_PREFIX = "ckpt-"


class CheckpointManager:
    """Saves and restores `ckpt-<epoch>.keras` + `state.json` in a folder.

    Args:
        directory: str, the checkpoint folder (created on first save).
        keep_every: optional int; checkpoints whose epoch is a multiple of
            it are kept (the reference's `save_period`); otherwise only the
            latest checkpoint is kept.
    """

    def __init__(self, directory, keep_every=None):
        if keep_every is not None and keep_every < 1:
            raise ValueError(
                f"Expected keep_every >= 1 or None. Received: {keep_every}"
            )
        self.directory = str(directory)
        self.keep_every = keep_every

    @property
    def state_path(self):
        return os.path.join(self.directory, STATE_FILENAME)

    def read_state(self):
        """The committed `state.json` as a dict, or None if there is none."""
        if not os.path.exists(self.state_path):
            return None
        with open(self.state_path) as f:
            return json.load(f)

    def save(self, model, epoch, total_epochs, seed=None):
        """Writes the checkpoint of `epoch` completed epochs and commits it.

        Returns:
            str, the path of the new `.keras` file.
        """
        os.makedirs(self.directory, exist_ok=True)
        name = f"{_PREFIX}{int(epoch):04d}.keras"
        path = os.path.join(self.directory, name)
        tmp = os.path.join(self.directory, f".tmp-{os.getpid()}-{name}")
        model.save(tmp)
        _fsync(tmp)
        os.replace(tmp, path)
        state = {
            "epoch": int(epoch),
            "total_epochs": int(total_epochs),
            "checkpoint": name,
            "seed": seed,
            "rng_state": _seed_generator_states(model),
            "iterations": int(_to_numpy(model.optimizer.iterations)),
            "time": time.time(),
        }
        _write_json_atomic(self.state_path, state)
        self._delete_stale(keep=name)
        return path

    def restore(self, model, state=None):
        """Loads the committed checkpoint into `model` (weights + optimizer).

        `model` must be built and compiled like the saved one.

        Returns:
            The state dict that was restored, or None if there is none.
        """
        state = state or self.read_state()
        if state is None:
            return None
        path = os.path.join(self.directory, state["checkpoint"])
        optimizer = getattr(model, "optimizer", None)
        if optimizer is None:
            raise ValueError(
                "Compile the model before restoring a checkpoint into it."
            )
        if not optimizer.built:
            optimizer.build(model.trainable_variables)
        model.load_weights(path)
        _assign_seed_generator_states(model, state.get("rng_state", {}))
        return state

    def _delete_stale(self, keep):
        for name in os.listdir(self.directory):
            stale_tmp = name.startswith(".tmp-")
            if name == keep or not (name.startswith(_PREFIX) or stale_tmp):
                continue
            if not stale_tmp and self._is_kept(name):
                continue
            os.remove(os.path.join(self.directory, name))

    def _is_kept(self, name):
        if self.keep_every is None:
            return False
        epoch = int(name[len(_PREFIX) : -len(".keras")])
        return epoch % self.keep_every == 0


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


def _write_json_atomic(path, data):
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=2)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
