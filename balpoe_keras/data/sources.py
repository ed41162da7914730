"""Dataset sources by name (`get_source`); NumPy, plus tfds where needed.

Sources return an `ImageSource` (images or paths, int labels, class names,
class counts). Offline use of each is described in docs/data.md. Only the
tfds sources import TensorFlow (through `tensorflow_datasets`, on use):

- `"cifar10"`, `"cifar100"`: tfds, records sorted by their `id` so the
  order is the original file order (needed for the index-identical
  long-tailed subset of reference `imbalance_cifar.py`);
- `"cifar10_folder"`: the CIFAR-10 JPEG archive (`cifar10-jpeg.tar.gz`),
  decoded once with Pillow and cached (`balpoe_keras.data.archive`);
- `"fashion_mnist"`: local IDX gz files (Debian `dataset-fashion-mnist`),
  else tfds;
- `"imagenet_lt"`, `"inaturalist2018"`: list files + image root (paths);
- `"image_folder"`: any `root/<split>/<class>/*.jpg|png`.
"""

import os
import socket

import numpy as np

from balpoe_keras.data.archive import CIFAR10_CLASSES
from balpoe_keras.data.archive import load_cifar10_folder
from balpoe_keras.data.idx import read_idx
from balpoe_keras.data.image_folder import load_image_folder
from balpoe_keras.data.list_files import load_benchmark_list
from balpoe_keras.data.source import ImageSource
from balpoe_keras.data.source import find_data_file
from balpoe_keras.data.source import search_dirs


def load_tfds(name="cifar100", split="train", data_dir=None, download=True):
    """A tfds image dataset (CIFAR-10/100, Fashion-MNIST) in file order.

    Records carrying an `id` feature (CIFAR: `"train_00042"`) are sorted by
    it, which restores the original file order that the reference's
    long-tailed subset depends on.

    Args:
        name: tfds name, e.g. `"cifar10"`, `"cifar100"`, `"fashion_mnist"`.
        split: `"train"` or `"test"`.
        data_dir: tfds data dir (default `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`).
        download: prepare the dataset if it is not (needs the internet).

    Returns:
        `ImageSource` with `(N, H, W, channels)` uint8 images.

    Raises:
        FileNotFoundError: within seconds when the dataset is not prepared
            and its download host cannot be reached, saying how to prepare
            it elsewhere (and, for CIFAR-10, naming the offline archive).
    """
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise ImportError(
            f"The tfds source {name!r} needs TensorFlow and "
            "tensorflow-datasets: pip install 'balpoe_keras[tf]'.") from None

    root = data_dir or os.environ.get(
        "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
    builder = tfds.builder(name, data_dir=root)
    if not builder.is_prepared():
        offline = _OFFLINE_HINTS.get(name, "")
        if not download or not _reachable(_DOWNLOAD_HOSTS.get(name)):
            raise FileNotFoundError(
                f"tfds {name!r} is not prepared in {root} and cannot be "
                "downloaded here. On a machine with internet run `python -c "
                f"\"import tensorflow_datasets as tfds; tfds.builder('{name}', "
                "data_dir='DIR').download_and_prepare()\"`, copy DIR here "
                f"and pass --data_dir=DIR.{offline}")
        builder.download_and_prepare()
    ds = builder.as_dataset(split=split, shuffle_files=False)
    ids, images, labels = [], [], []
    for batch in ds.batch(4096).as_numpy_iterator():
        ids.append(batch.get("id", np.zeros(len(batch["label"]), "S1")))
        images.append(batch["image"])
        labels.append(batch["label"])
    order = np.argsort(np.concatenate(ids), kind="stable")
    names = builder.info.features["label"].names
    if name == "cifar10" and names[0] == "0":  # e.g. tfds mock data
        names = CIFAR10_CLASSES
    return ImageSource(
        np.concatenate(labels)[order],
        names,
        images=np.concatenate(images)[order],
        name=name,
        split=split,
    )


# Where tfds downloads each dataset from (checked before a download, so an
# offline machine fails at once instead of retrying for minutes).
_DOWNLOAD_HOSTS = {"cifar10": "www.cs.toronto.edu",
                   "cifar100": "www.cs.toronto.edu",
                   "fashion_mnist": "fashion-mnist.s3-website.eu-central-1"
                   ".amazonaws.com"}
_OFFLINE_HINTS = {
    "cifar10": " Offline, train on the CIFAR-10 JPEG archive instead: "
               "--dataset=cifar10_lt_folder --data_dir=<folder holding "
               "cifar10-jpeg.tar.gz>.",
    "fashion_mnist": " Offline, install the IDX files (apt-get install "
                     "dataset-fashion-mnist) or pass --data_dir=<folder "
                     "with them>.",
}


def _reachable(host, port=443, timeout=3.0):
    """True if a TCP connection to `host` opens within `timeout` s."""
    if host is None:
        return True
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress",
                         "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
# Where Debian's `dataset-fashion-mnist` package installs the IDX files.
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",
                      "~/.keras/datasets/fashion-mnist")


def _load_fashion_mnist_idx(split, data_dir):
    """Fashion-MNIST from its IDX (`.gz`) files.

    Looks for `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in
    `data_dir` alone if given, else `$BALPOE_KERAS_DATA` and
    `FASHION_MNIST_DIRS`.

    Returns:
        `ImageSource` with `(N, 28, 28, 1)` uint8 images, 10 classes.

    Raises:
        FileNotFoundError: naming the folders searched and how to get the
            files.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"Fashion-MNIST splits: train, test. Got {split!r}")
    paths = []
    for kind in ("images-idx3", "labels-idx1"):
        found = [find_data_file(f"{prefix}-{kind}-ubyte{ext}", data_dir,
                                FASHION_MNIST_DIRS) for ext in (".gz", "")]
        paths.append(found[0] or found[1])
    if None in paths:
        raise FileNotFoundError(
            "Fashion-MNIST IDX files not found in "
            f"{search_dirs(data_dir, FASHION_MNIST_DIRS)}. Install them with "
            "`apt-get install dataset-fashion-mnist` or pass --data_dir.")
    return ImageSource(read_idx(paths[1]), FASHION_MNIST_CLASSES,
                       images=read_idx(paths[0])[..., None],
                       name="fashion_mnist", split=split)


def load_fashion_mnist(split="train", data_dir=None, use_tfds=True):
    """Fashion-MNIST from IDX gz files (or tfds as a fallback).

    Looks for `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in
    `data_dir` alone if given, else `$BALPOE_KERAS_DATA` and
    `FASHION_MNIST_DIRS` (Debian's `dataset-fashion-mnist` installs them
    there), then falls back to tfds (not when `data_dir` is given).

    Returns:
        `ImageSource` with `(N, 28, 28, 1)` uint8 images, 10 classes.
    """
    try:
        return _load_fashion_mnist_idx(split, data_dir)
    except FileNotFoundError as e:
        if not use_tfds or data_dir:
            raise
        hint = str(e)
    try:
        return load_tfds("fashion_mnist", split)
    except (FileNotFoundError, ImportError) as e:
        raise FileNotFoundError(f"{hint} The tfds fallback failed: {e}") from e


_SOURCES = {
    "cifar10": lambda split, data_dir, **kw: load_tfds(
        "cifar10", split, data_dir, **kw),
    "cifar100": lambda split, data_dir, **kw: load_tfds(
        "cifar100", split, data_dir, **kw),
    "cifar10_folder": lambda split, data_dir, **kw: load_cifar10_folder(
        split, data_dir, **kw),
    "fashion_mnist": lambda split, data_dir, **kw: load_fashion_mnist(
        split, data_dir, **kw),
    "imagenet_lt": lambda split, data_dir, **kw: load_benchmark_list(
        "imagenet_lt", split, data_dir, **kw),
    "inaturalist2018": lambda split, data_dir, **kw: load_benchmark_list(
        "inaturalist2018", split, data_dir, **kw),
    "image_folder": lambda split, data_dir, **kw: load_image_folder(
        _require(data_dir, "image_folder"), split, **kw),
}
SOURCE_NAMES = tuple(sorted(_SOURCES))
# Sources read through tensorflow_datasets (TensorFlow); the others load
# with NumPy and Pillow only.
TFDS_SOURCES = ("cifar10", "cifar100")


def _require(data_dir, name):
    if data_dir is None:
        raise ValueError(f"{name!r} needs data_dir=<root with split folders>")
    return data_dir


def get_source(name, split="train", data_dir=None, **kwargs):
    """Loads a named source.

    Args:
        name: one of `SOURCE_NAMES`.
        split: e.g. `"train"`, `"test"`, or a list name (`"forward50"`).
        data_dir: where the data lives (meaning per source, see above).
        **kwargs: passed to the loader (e.g. `cache_dir`, `skip_corrupt`).

    Returns:
        `ImageSource`.

    Raises:
        ValueError: for an unknown name (lists the known ones).
        FileNotFoundError: missing data, saying where it looked and how to
            get it.
    """
    if name not in _SOURCES:
        raise ValueError(f"Unknown source {name!r}. Known: {SOURCE_NAMES}.")
    return _SOURCES[name](split, data_dir, **kwargs)
