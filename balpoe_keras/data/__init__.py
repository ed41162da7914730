"""TensorFlow-only data package: sources, long tails, augmentation, tf.data.

Submodules load on first use, so the NumPy-only parts (`long_tail`,
`test_distributions`, `idx`, `source`) import without TensorFlow:

- sources: `get_source(name, split, data_dir)`, `ImageSource`;
- long tails: `long_tail_counts`, `long_tail_subsample`;
- test distributions: `make_test_distributions`, `distribution_names`;
- resampling: `class_aware_resample`, `make_resample_fn`;
- augmentation: `RECIPES`, `get_train_transform`, `get_eval_transform`,
  `cifar10_policy`, `rand_augment`;
- Mixup/CutMix: `mixup_batch`, `cutmix_batch`, `mix_batch`;
- pipelines: `make_train_dataset`, `make_eval_dataset`.

See docs/data.md.
"""

import importlib

_EXPORTS = {
    "ImageSource": "source",
    "get_source": "sources",
    "SOURCE_NAMES": "sources",
    "load_tfds": "sources",
    "load_cifar10_folder": "sources",
    "load_fashion_mnist": "sources",
    "load_image_folder": "image_folder",
    "extract_archive": "image_folder",
    "read_list_file": "list_files",
    "load_benchmark_list": "list_files",
    "read_idx": "idx",
    "write_idx": "idx",
    "long_tail_counts": "long_tail",
    "long_tail_subsample": "long_tail",
    "make_test_distributions": "test_distributions",
    "distribution_names": "test_distributions",
    "class_aware_resample": "sampling",
    "class_sampling_probs": "sampling",
    "make_resample_fn": "sampling",
    "RECIPES": "recipes",
    "get_train_transform": "recipes",
    "get_eval_transform": "recipes",
    "cifar10_policy": "autoaugment",
    "rand_augment": "randaugment",
    "mixup_batch": "mixup",
    "cutmix_batch": "mixup",
    "mix_batch": "mixup",
    "make_train_dataset": "pipeline",
    "make_eval_dataset": "pipeline",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
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
