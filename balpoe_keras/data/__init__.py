"""The input package: a NumPy core and two executors over it.

The core (NumPy and Pillow; no TensorFlow, no Keras) says what the data is
and what is done to it:

- sources by name (`get_source`, `ImageSource`; `sources`, `archive`,
  `image_folder`, `list_files`, `idx`) and the benchmark registry
  (`DATASETS`, `datasets`);
- long tails (`long_tail_counts`, `long_tail_subsample`,
  `make_long_tailed`), shifted test sets (`make_test_distributions`),
  class-aware sampling probabilities (`class_sampling_probs`);
- steps per epoch (`compute_steps_per_epoch`), the augmentation recipes
  (`RECIPES`, `get_recipe`) and the Mixup/CutMix settings
  (`validate_mixing`).

The executors turn a source into training batches:

- `balpoe_keras.data.tfdata` (TensorFlow; the default): tf.data pipelines
  (`make_train_dataset`, `make_eval_dataset`, also importable from here)
  for every recipe, streamed from files or from memory, under
  `tf.distribute.MirroredStrategy`;
- `balpoe_keras.data.arrays` (`keras.ops`, any backend, no TensorFlow):
  in-memory images augmented on the device (`ArrayDataset`).

Imports flow one way: the executors import the core, never the reverse,
and nothing here imports models, losses or training. Names are loaded on
first use. See docs/data.md.
"""

import importlib

_EXPORTS = {
    "ImageSource": "source",
    "default_cache_dir": "source",
    "get_source": "sources",
    "SOURCE_NAMES": "sources",
    "load_tfds": "sources",
    "load_fashion_mnist": "sources",
    "load_cifar10_folder": "archive",
    "load_cifar10_arrays": "archive",
    "read_image_archive": "archive",
    "load_image_folder": "image_folder",
    "extract_archive": "image_folder",
    "read_list_file": "list_files",
    "load_benchmark_list": "list_files",
    "read_idx": "idx",
    "write_idx": "idx",
    "DATASETS": "datasets",
    "DatasetSpec": "datasets",
    "long_tail_counts": "long_tail",
    "long_tail_subsample": "long_tail",
    "make_long_tailed": "long_tail",
    "make_test_distributions": "test_distributions",
    "distribution_names": "test_distributions",
    "class_sampling_probs": "sampling",
    "compute_steps_per_epoch": "batching",
    "RECIPES": "recipes",
    "get_recipe": "recipes",
    "validate_mixing": "mixing",
    # The default executor's entry points (TensorFlow, imported on use).
    "make_train_dataset": "tfdata.pipeline",
    "make_eval_dataset": "tfdata.pipeline",
    "class_aware_resample": "tfdata.sampling",
    "mixup_batch": "tfdata.mixup",
}
_EXECUTORS = ("tfdata", "arrays")

__all__ = sorted(_EXPORTS) + list(_EXECUTORS)


def __getattr__(name):
    if name in _EXECUTORS:
        module = importlib.import_module(f"balpoe_keras.data.{name}")
        globals()[name] = module
        return module
    if name in _EXPORTS:
        module = importlib.import_module(
            f"balpoe_keras.data.{_EXPORTS[name]}")
        value = getattr(module, name)
        globals()[name] = value
        return value
    raise AttributeError(
        f"module 'balpoe_keras.data' has no attribute {name!r}")


def __dir__():
    return sorted(list(globals()) + __all__)
