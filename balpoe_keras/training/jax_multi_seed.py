"""JAX-only: several seeds of one run, trained in one compiled program.

The paper reports means over 5 seeds. On a GPU one ResNet-32 at batch 128
leaves the device mostly idle, so running the seeds one after another
wastes it. `MultiSeedTrainer` stacks S independent models (weights, batch
norm statistics, optimizer state, metrics) along a new leading axis and
trains them with `jax.jit(jax.vmap(model.train_step))`: Keras' own
stateless JAX train step, so each seed's model computes exactly what a
single-seed `fit` computes (tested to float noise). Each keeps its
own initialisation (built under `keras.utils.set_random_seed(seed)`) and
its own data order and augmentation draws (its own `dataset_fn`).

State is checkpointed after every epoch (`checkpoints/multi_seed_state.npz`
of the run folder, written atomically); rerunning resumes, and the log
(`train_log.csv`, one `seed<s>/<key>` column per seed) drops the rows of
epochs after the checkpoint, as `training.fit` does. `seed_model(i)`
loads seed i's model into the template model for evaluation and export.
"""

import os
import time

import jax
import keras
import numpy as np
from jax import numpy as jnp

from balpoe_keras.training.guards import NonFiniteLossError
from balpoe_keras.training.run_folder import RunFolder

STATE_FILENAME = "multi_seed_state.npz"


class MultiSeedTrainer:
    """Trains one compiled model per seed, vmapped into one program.

    Args:
        build_fn: `seed -> compiled keras.Model`; called once per seed
            right after `keras.utils.set_random_seed(seed)`, so model i
            starts from the weights a single-seed run with that seed has.
        seeds: list of distinct ints, S >= 1.
        sample_batch: one `(x, y)` batch (builds the metrics and the
            optimizer state before stacking).
    """

    def __init__(self, build_fn, seeds, sample_batch):
        if keras.backend.backend() != "jax":
            raise ValueError(
                "Training several seeds in one program needs the JAX "
                f"backend; this is {keras.backend.backend()!r}. Run the "
                "seeds one after another, or use KERAS_BACKEND=jax.")
        seeds = [int(s) for s in seeds]
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"Expected distinct seeds. Received: {seeds}")
        self.seeds = seeds
        states = []
        for seed in seeds:
            keras.utils.set_random_seed(seed)
            model = build_fn(seed)
            _build_state(model, sample_batch)
            states.append(_get_state(model))
        self.model = model  # The template (the last seed's structure).
        self.state = jax.tree.map(lambda *xs: jnp.stack(xs), *states)
        self._step = jax.jit(jax.vmap(model.train_step), donate_argnums=0)

    @property
    def num_seeds(self):
        return len(self.seeds)

    def train_epoch(self, batches, on_step=None):
        """Trains every seed's model on its batches of one epoch.

        Args:
            batches: per step, a list of S `(x, y)` batches (one per seed,
                same shapes).
            on_step: optional `fn(step, logs)` after each step (logs hold
                `(S,)` arrays).

        Returns:
            The last step's logs as `{key: (S,) NumPy array}`.
        """
        self._reset_metrics()
        logs = {}
        for step, per_seed in enumerate(batches):
            data = jax.tree.map(lambda *xs: jnp.stack(xs), *per_seed)
            logs, self.state = self._step(self.state, data)
            if on_step is not None:
                on_step(step, logs)
        return {k: np.asarray(v) for k, v in logs.items()}

    def seed_model(self, index):
        """The template model holding seed `index`'s variables."""
        values = jax.tree.map(lambda x: x[index], self.state)
        trainable, non_trainable, optimizer, _ = values
        model = self.model
        for variable, value in zip(model.trainable_variables, trainable):
            variable.assign(value)
        for variable, value in zip(model.non_trainable_variables,
                                   non_trainable):
            variable.assign(value)
        for variable, value in zip(model.optimizer.variables, optimizer):
            variable.assign(value)
        return model

    def save(self, directory, epoch):
        """Writes the stacked state after `epoch` epochs (atomically) to
        `directory/multi_seed_state.npz`."""
        leaves = jax.tree.leaves(self.state)
        os.makedirs(directory, exist_ok=True)
        path = os.path.join(directory, STATE_FILENAME)
        tmp = path + f".tmp-{os.getpid()}.npz"
        np.savez(tmp, epoch=epoch, seeds=np.asarray(self.seeds),
                 **{f"leaf_{i}": np.asarray(x) for i, x in enumerate(leaves)})
        os.replace(tmp, path)

    def restore(self, directory):
        """Loads the state saved in `directory`; returns the completed
        epochs (0 if none).

        Raises:
            ValueError: if the saved run trained other seeds.
        """
        path = os.path.join(directory, STATE_FILENAME)
        if not os.path.exists(path):
            return 0
        with np.load(path) as saved:
            if saved["seeds"].tolist() != self.seeds:
                raise ValueError(
                    f"{path} holds seeds {saved['seeds'].tolist()}, not "
                    f"{self.seeds}; use another workdir or --overwrite.")
            treedef = jax.tree.structure(self.state)
            leaves = [jnp.asarray(saved[f"leaf_{i}"])
                      for i in range(treedef.num_leaves)]
            epoch = int(saved["epoch"])
        self.state = jax.tree.unflatten(treedef, leaves)
        return epoch

    def _reset_metrics(self):
        model = self.model
        for metric in model.metrics:
            metric.reset_state()
        fresh = [v.value for v in model.metrics_variables]
        stacked = [jnp.stack([v] * self.num_seeds) for v in fresh]
        self.state = self.state[:3] + (stacked,)


def _build_state(model, batch):
    """Builds the compiled metrics and the optimizer like `fit` does."""
    model._symbolic_build(data_batch=batch)
    if not model.optimizer.built:
        model.optimizer.build(model.trainable_variables)


def _get_state(model):
    return (
        [v.value for v in model.trainable_variables],
        [v.value for v in model.non_trainable_variables],
        [v.value for v in model.optimizer.variables],
        [v.value for v in model.metrics_variables],
    )


def _per_seed_logs(logs, seeds):
    """`{"seed<s>/<key>": float}` of the stacked per-seed logs."""
    return {f"seed{seed}/{key}": float(value)
            for key, values in sorted(logs.items())
            for seed, value in zip(seeds, np.ravel(values))}


def _check_finite_losses(logs, seeds, epoch):
    """Raises `NonFiniteLossError` (before the epoch is logged or saved)
    when a seed's epoch loss is NaN or infinite: a diverged seed would
    otherwise train on and report NaN."""
    losses = np.ravel(logs.get("loss", []))
    bad = [(seed, float(v)) for seed, v in zip(seeds, losses)
           if not np.isfinite(v)]
    if bad:
        raise NonFiniteLossError(
            f"The training loss of seed(s) {[s for s, _ in bad]}", bad[0][1],
            f"in epoch {epoch + 1}")


def fit_multi_seed(trainer, dataset_fns, *, epochs, workdir,
                   steps_per_epoch=None, verbose=True):
    """Trains `trainer`'s seeds for `epochs` epochs, resuming.

    Args:
        trainer: a `MultiSeedTrainer`.
        dataset_fns: one `epoch -> keras.utils.PyDataset` per seed (e.g.
            `balpoe_keras.data.arrays.make_train_dataset_fn`), equal lengths.
        epochs: total epochs.
        workdir: the run folder (a path or a `RunFolder`): the state in
            its `checkpoints/`, the log in its `train_log.csv`.
        steps_per_epoch: optional cap on the batches of an epoch.
        verbose: print one line per epoch.

    Returns:
        `(initial_epoch, seconds)`.
    """
    folder = workdir if isinstance(workdir, RunFolder) else RunFolder(
        workdir)
    start = trainer.restore(folder.checkpoint_dir)
    folder.truncate_log(start)
    began = time.time()
    for epoch in range(start, epochs):
        datasets = [fn(epoch) for fn in dataset_fns]
        steps = min(len(datasets[0]), steps_per_epoch or len(datasets[0]))
        tic = time.time()
        logs = trainer.train_epoch(
            [ds[k] for ds in datasets] for k in range(steps))
        seconds = time.time() - tic
        _check_finite_losses(logs, trainer.seeds, epoch)
        images = sum(len(ds.batch_indices(k)) for ds in datasets
                     for k in range(steps))
        folder.append_log(epoch, {
            "images_per_sec": round(images / seconds, 1),
            **_per_seed_logs(logs, trainer.seeds)})
        if folder.writer:
            trainer.save(folder.checkpoint_dir, epoch + 1)
        if verbose:
            losses = ", ".join(f"{v:.4f}" for v in logs.get("loss", []))
            print(f"Epoch {epoch + 1}/{epochs}: loss per seed [{losses}], "
                  f"{images / seconds:.0f} img/s over {trainer.num_seeds}"
                  f" seeds, {seconds:.1f} s", flush=True)
    return start, time.time() - began
