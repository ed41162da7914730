"""The `ImageSource` record and where data files are looked for (NumPy).

Every loader (tfds CIFAR, image folders, ImageNet-LT / iNaturalist list
files, Fashion-MNIST IDX) returns an `ImageSource`: the images (in memory)
or their file paths (decoded lazily by the tf.data pipeline), integer labels
and class names. Long-tailed subsets and test distributions are plain index
selections (`subset`), so the NumPy arrays can also feed non-TF code.
"""

import dataclasses
import os

import numpy as np

from balpoe_keras.data.long_tail import long_tail_counts
from balpoe_keras.data.long_tail import long_tail_subsample

# Where data files are looked for when no `data_dir` is given (after
# `$BALPOE_KERAS_DATA`): the user cache.
ARCHIVE_DIRS = ("~/.cache/balpoe_keras",)


def default_cache_dir():
    """`$BALPOE_KERAS_CACHE` or `~/.cache/balpoe_keras` (absolute path):
    where decoded arrays and extracted archives are cached."""
    path = os.environ.get("BALPOE_KERAS_CACHE", ARCHIVE_DIRS[0])
    return os.path.abspath(os.path.expanduser(path))


def search_dirs(data_dir, defaults=ARCHIVE_DIRS):
    """Folders searched for a data file: `data_dir` alone if given, else
    `$BALPOE_KERAS_DATA` and `defaults` (user-expanded)."""
    if data_dir:
        return [data_dir]
    dirs = []
    if os.environ.get("BALPOE_KERAS_DATA"):
        dirs.append(os.environ["BALPOE_KERAS_DATA"])
    return dirs + [os.path.expanduser(d) for d in defaults]


def find_data_file(filename, data_dir=None, defaults=ARCHIVE_DIRS):
    """Path of `filename` in the folders of `search_dirs`, or None.

    Raises:
        FileNotFoundError: if `data_dir` is given but is not a folder (a
            mistyped path never silently falls back to other places).
    """
    if data_dir and not os.path.isdir(data_dir):
        raise FileNotFoundError(
            f"data_dir {data_dir!r} does not exist or is not a folder.")
    for folder in search_dirs(data_dir, defaults):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


@dataclasses.dataclass(frozen=True, eq=False)
class ImageSource:
    """Images or image paths with integer labels.

    Exactly one of `images` and `paths` is set.

    Attributes:
        labels: `(N,)` int64 class ids in `[0, C)`.
        class_names: `C` class names; the label is the index.
        images: `(N, H, W, channels)` uint8 array, or None.
        paths: `(N,)` array of absolute file paths (str), or None; decoded
            to RGB uint8 inside tf.data.
        name: dataset name, e.g. `"cifar100"`.
        split: split name, e.g. `"train"`.
    """

    labels: np.ndarray
    class_names: tuple
    images: np.ndarray = None
    paths: np.ndarray = None
    name: str = ""
    split: str = ""

    def __post_init__(self):
        labels = np.asarray(self.labels, dtype=np.int64).reshape(-1)
        object.__setattr__(self, "labels", labels)
        object.__setattr__(self, "class_names", tuple(self.class_names))
        if (self.images is None) == (self.paths is None):
            raise ValueError("Pass exactly one of `images` and `paths`.")
        data = self.images if self.images is not None else self.paths
        if len(data) != labels.size:
            raise ValueError(
                f"{self.name}: {len(data)} images but {labels.size} labels."
            )
        if self.images is not None and (
            self.images.dtype != np.uint8 or self.images.ndim != 4
        ):
            raise ValueError(
                "Expected `images` of shape (N, H, W, channels) and dtype "
                f"uint8. Received {self.images.shape} {self.images.dtype}."
            )
        num_classes = len(self.class_names)
        if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
            raise ValueError(
                f"{self.name}: labels must lie in [0, {num_classes}) for "
                f"{num_classes} class names; found [{labels.min()}, "
                f"{labels.max()}]."
            )

    def __len__(self):
        return int(self.labels.size)

    @property
    def num_classes(self):
        """int, `C = len(class_names)`."""
        return len(self.class_names)

    @property
    def class_counts(self):
        """`tuple[int]` of length `C`: images per class."""
        counts = np.bincount(self.labels, minlength=self.num_classes)
        return tuple(int(c) for c in counts)

    @property
    def in_memory(self):
        """True when `images` holds decoded arrays."""
        return self.images is not None

    def subset(self, indices, split=None):
        """A new source with the rows `indices` (in that order)."""
        indices = np.asarray(indices, dtype=np.int64)
        return dataclasses.replace(
            self,
            labels=self.labels[indices],
            images=None if self.images is None else self.images[indices],
            paths=None if self.paths is None else self.paths[indices],
            split=self.split if split is None else split,
        )

    def long_tailed(
        self,
        imbalance_ratio,
        profile="exp",
        max_count=None,
        reverse=False,
        seed=0,
    ):
        """The reference's long-tailed subset (e.g. CIFAR-100-LT).

        Args:
            imbalance_ratio: max/min count, e.g. 100 (imb_factor 0.01).
            profile: `"exp"`, `"step"` or `"pareto"`, see `long_tail_counts`.
            max_count: head count; default `N / C` as in the reference.
            reverse: class `C-1` is the head.
            seed: subsampling seed (the reference always uses 0).

        Returns:
            `ImageSource`, class-sorted, with split `"<split>_ir<R>"`.
        """
        if max_count is None:
            max_count = len(self) // self.num_classes
        counts = long_tail_counts(
            self.num_classes, max_count, imbalance_ratio, profile, reverse
        )
        indices = long_tail_subsample(self.labels, counts, seed=seed)
        return self.subset(indices, split=f"{self.split}_ir{imbalance_ratio}")
