"""The data of a run: sources, the long-tailed train set, input pipelines.

`load_data(config)` reads the dataset (`balpoe_keras.data.get_source`:
TensorFlow-free except the tfds sources), builds the reference's
long-tailed subset and the shifted test sets; `make_train_dataset_fn`
gives `epoch -> dataset` for the chosen executor (`--input_pipeline`:
`balpoe_keras.data.tfdata` or `balpoe_keras.data.arrays`);
`make_test_sets` / `make_test_eval_fn` give the test sets and the
`--eval_every` evaluation.
"""

import dataclasses
import os

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras.data import batching
from balpoe_keras.data import image_folder
from balpoe_keras.data import long_tail
from balpoe_keras.data import sources
from balpoe_keras.data import test_distributions
from balpoe_keras.data.datasets import IMAGE_FOLDER
from balpoe_keras.data.datasets import IN_MEMORY_MAX_SIDE
from balpoe_keras.data.recipes import IN_MEMORY_RECIPES
from balpoe_keras.data.recipes import get_recipe
from balpoe_keras.data.source import default_cache_dir
from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.tensorflow_check import is_tensorflow_installed


@dataclasses.dataclass
class ExperimentData:
    """The train source (long-tailed) and the test sets of a run."""

    train: object
    test: object
    class_counts: list
    test_distributions: dict


def check_data_dir(config):
    """A given `--data_dir` must be a folder (never a silent fallback)."""
    if config.data_dir and not os.path.isdir(config.data_dir):
        raise FileNotFoundError(
            f"--data_dir={config.data_dir} does not exist or is not a folder")


def load_source(config, split):
    """An `ImageSource` of the dataset (`balpoe_keras.data.get_source`);
    an image folder is decoded into memory at the run's size and
    channels, or kept as paths when its images are large."""
    spec = config.spec
    check_data_dir(config)
    if spec.source in sources.TFDS_SOURCES and not is_tensorflow_installed():
        raise ConfigError(
            f"--dataset={config.dataset} is read with tensorflow-datasets, "
            "which needs TensorFlow: pip install 'balpoe_keras[tf]', or use "
            "an in-memory dataset read without it (cifar10_lt_folder, "
            "fashion_mnist_lt).")
    if config.dataset != IMAGE_FOLDER:
        return sources.get_source(spec.source, split, config.data_dir)
    try:  # Decoding checks every file of an in-memory folder.
        return sources.get_source(
            spec.source, split, config.data_dir,
            in_memory=config.image_size <= IN_MEMORY_MAX_SIDE,
            image_size=config.image_size, channels=config.channels,
            cache_dir=default_cache_dir())
    except ValueError as e:
        raise ConfigError(f"--data_dir: {e}") from None


def load_data(config):
    """Loads the train/test sources and builds the long-tailed train set."""
    if config.dataset == IMAGE_FOLDER:
        train, test = _load_image_folder(config)
    else:
        train = load_source(config, "train")
        test = load_source(config, config.spec.test_split)
    if config.imbalance_ratio and (config.spec.imbalance_ratio
                                   or config.dataset == IMAGE_FOLDER):
        counts = long_tail.largest_long_tail_counts(
            train.class_counts, config.imbalance_ratio,
            order=_ranking(train.class_counts))
        # The reference fixes the subset with seed 0 for every run.
        train = train.subset(long_tail.long_tail_subsample(train.labels,
                                                           counts))
    class_counts = class_prior.validate_class_counts(
        train.class_counts, train.num_classes)
    distributions = {}
    if config.test_distributions:
        distributions = test_distributions.make_test_distributions(
            test.labels, test.num_classes, ratios=config.spec.test_ratios,
            order=_ranking(class_counts))
    return ExperimentData(train, test, class_counts, distributions)


def _ranking(class_counts):
    """The classes a long-tail profile (`--imbalance_ratio`, the forward /
    backward test sets) runs over, head first: by training images, ties by
    id. For CIFAR (counts that never rise with the id) that is the ids'
    order, the reference's (class 0 the head); ImageNet-LT's, iNaturalist's
    and an image folder's ids rank nothing, and their reference lists put
    the most frequent training classes at the forward sets' head."""
    return long_tail.head_first(class_counts)


def _load_image_folder(config):
    """Train and test sources of an image folder: its `test/` (or `val/`),
    or `--holdout_per_class` training images per class (seed 0)."""
    layout = image_folder.scan_image_folder(config.data_dir)
    train = load_source(config, "train")
    if layout.test_split is not None:
        return train, load_source(config, layout.test_split)
    held = image_folder.holdout_indices(train.labels, train.num_classes,
                                        config.holdout_per_class)
    rest = np.setdiff1d(np.arange(len(train)), held)
    return train.subset(rest), train.subset(held, split="holdout")


def steps_per_epoch(config, num_train, num_replicas):
    """Batches per epoch (`balpoe_keras.data.compute_steps_per_epoch`),
    capped by `--max_train_steps_per_epoch`; the last partial batch is kept
    on one device and dropped on several."""
    steps = batching.compute_steps_per_epoch(
        num_train, config.global_batch_size, num_replicas > 1)
    if config.max_train_steps_per_epoch:
        steps = min(steps, config.max_train_steps_per_epoch)
    return max(steps, 1)


def resolve_input_pipeline(config, experiment_data):
    """`"tfdata"` or `"arrays"` for `--input_pipeline`.

    `auto` picks arrays where TensorFlow is missing or the backend is JAX
    or PyTorch, when the data is in memory and the recipe is one the
    arrays path implements; tf.data otherwise.
    """
    arrays_ok = (experiment_data.train.in_memory
                 and config.recipe in IN_MEMORY_RECIPES
                 and config.cutmix_alpha == 0)
    choice = config.input_pipeline
    if choice == "auto":
        prefer = not is_tensorflow_installed() or keras.backend.backend() != (
            "tensorflow")
        choice = "arrays" if arrays_ok and prefer else "tfdata"
    if choice == "arrays" and not experiment_data.train.in_memory:
        raise ConfigError(
            f"--input_pipeline=arrays needs in-memory images; "
            f"--dataset={config.dataset} is read from files. Use "
            "--input_pipeline=tfdata.")
    if choice == "tfdata" and not is_tensorflow_installed():
        raise ConfigError(
            "this run needs tf.data (--input_pipeline=tfdata, --recipe="
            f"{config.recipe}) but TensorFlow is not installed: pip install "
            "'balpoe_keras[tf]', or use --input_pipeline=arrays with a "
            f"recipe in {list(IN_MEMORY_RECIPES)} and no CutMix.")
    return choice


def make_train_dataset_fn(config, experiment_data, num_replicas,
                          num_processes=1, process_index=0):
    """`epoch -> data` of the chosen input pipeline for `training.fit`, a
    function of `(seed, epoch)` only: the in-memory executor's
    `ArrayDataset` of that epoch, or one tf.data pipeline of that epoch
    and all after it.

    Args:
        config, experiment_data: the run's.
        num_replicas: devices the global batch is split over (the last
            partial batch is dropped when > 1).
        num_processes, process_index: in a multi-process run, this
            process's share of every global batch.
    """
    drop_remainder = num_replicas > 1
    shard = dict(num_processes=num_processes, process_index=process_index)
    train = experiment_data.train
    if resolve_input_pipeline(config, experiment_data) == "arrays":
        from balpoe_keras.data.arrays import dataset

        recipe = get_recipe(config.recipe)
        return dataset.make_train_dataset_fn(
            train.images, train.labels,
            global_batch_size=config.global_batch_size, seed=config.seed,
            num_classes=train.num_classes,
            mixup_alpha=config.mixup_alpha,
            augment=recipe.crop_padding is not None,
            padding=recipe.crop_padding or 0,
            max_degrees=recipe.max_degrees, drop_remainder=drop_remainder,
            **shard,
        )  # fmt: skip
    from balpoe_keras.data import tfdata

    def dataset_fn(epoch):
        return tfdata.make_train_dataset(
            train, global_batch_size=config.global_batch_size,
            recipe=config.recipe, num_classes=train.num_classes,
            mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha,
            mix_mode=config.mix_mode,
            seed=config.seed, epoch=epoch, repeat=True, deterministic=True,
            drop_remainder=drop_remainder, num_replicas=num_replicas,
            image_size=config.spec.image_size,
            steps_per_epoch=config.max_train_steps_per_epoch or None,
            **shard,
        )  # fmt: skip

    return dataset_fn


def make_test_sets(config, experiment_data):
    """Test sets for `evaluate_model`: the balanced one + index subsets."""
    test = experiment_data.test
    if test.in_memory:
        images = test.images.astype("float32") / 255.0
        balanced = (images, np.asarray(test.labels))
    else:
        from balpoe_keras.data import tfdata

        balanced = tfdata.make_eval_dataset(
            test, global_batch_size=config.eval_batch_size,
            recipe=config.recipe,
            image_size=config.spec.image_size,
        )  # fmt: skip
    sets = {"uniform": balanced}
    for name, indices in experiment_data.test_distributions.items():
        if name != "uniform":
            sets[name] = np.asarray(indices)
    return sets


def make_test_eval_fn(config, experiment_data):
    """`model -> {"test/<metric>": value}` on the balanced test set, for
    `--eval_every` (balanced accuracy, many/medium/few and ECE as
    fractions, NLL in nats)."""
    from balpoe_keras.evaluation import predict
    from balpoe_keras.evaluation import scores

    balanced = make_test_sets(config, experiment_data)["uniform"]

    def evaluate_fn(model):
        outputs = predict.predict_outputs(model, balanced,
                                          batch_size=config.eval_batch_size)
        metrics = scores.compute_classification_metrics(
            outputs["logits"], outputs["labels"],
            class_counts=experiment_data.class_counts, details=False)
        keys = ["balanced_accuracy", "ece", "nll"] + [
            f"acc_{g}" for g in class_prior.SHOT_GROUPS
            if metrics[f"acc_{g}"] is not None]
        return {f"test/{k}": metrics[k] for k in keys}

    return evaluate_fn
