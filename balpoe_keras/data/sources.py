"""TensorFlow-only: dataset sources by name (`get_source`).

Sources return an `ImageSource` (images or paths, int labels, class names,
class counts). Offline use of each is described in docs/data.md:

- `"cifar10"`, `"cifar100"`: tfds, records sorted by their `id` so the
  order is the original file order (needed for the index-identical
  long-tailed subset of REFERENCE 5.1);
- `"cifar10_folder"`: the CIFAR-10 JPEG archive (`cifar10-jpeg.tar.gz`),
  extracted and decoded once into a cache folder;
- `"fashion_mnist"`: local IDX gz files (Debian `dataset-fashion-mnist`),
  else tfds;
- `"imagenet_lt"`, `"inaturalist2018"`: list files + image root;
- `"image_folder"`: any `root/<split>/<class>/*.jpg|png`.
"""

import os

import numpy as np

from balpoe_keras.data.idx import read_idx
from balpoe_keras.data.image_folder import default_cache_dir
from balpoe_keras.data.image_folder import extract_archive
from balpoe_keras.data.image_folder import load_image_folder
from balpoe_keras.data.list_files import load_benchmark_list
from balpoe_keras.data.source import ARCHIVE_DIRS
from balpoe_keras.data.source import ImageSource

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
FASHION_MNIST_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress",
                         "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                         "Ankle boot")
FASHION_MNIST_DIRS = ("/usr/share/datasets/fashion-mnist",
                      "~/.keras/datasets/fashion-mnist")
CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_ARCHIVE_SHA256 = (
    "45b041e867f5a40f79bfde38d3dd1fd511103d50068c1afecf6445e25234d4db")


def load_tfds(name="cifar100", split="train", data_dir=None, download=True):
    """A tfds image dataset (CIFAR-10/100, Fashion-MNIST) in file order.

    Records carrying an `id` feature (CIFAR: `"train_00042"`) are sorted by
    it, which restores the original file order that the reference's
    long-tailed subset depends on.

    Args:
        name: tfds name, e.g. `"cifar10"`, `"cifar100"`, `"fashion_mnist"`.
        split: `"train"` or `"test"`.
        data_dir: tfds data dir (default `$TFDS_DATA_DIR` or
            `~/tensorflow_datasets`). Offline, put the original archive
            (e.g. `cifar-100-binary.tar.gz`) in `<data_dir>/downloads/manual/`.
        download: call `download_and_prepare` (a no-op once prepared).

    Returns:
        `ImageSource` with `(N, H, W, channels)` uint8 images.
    """
    import tensorflow_datasets as tfds

    builder = tfds.builder(name, data_dir=data_dir)
    if download:
        root = data_dir or os.environ.get(
            "TFDS_DATA_DIR", os.path.expanduser("~/tensorflow_datasets"))
        manual = os.path.join(root, "downloads", "manual")
        config = tfds.download.DownloadConfig(manual_dir=manual)
        try:
            builder.download_and_prepare(download_config=config)
        except Exception as e:  # tfds raises many types when offline.
            raise FileNotFoundError(
                f"Could not prepare tfds {name!r} in {root} "
                f"({type(e).__name__}: {e}). Offline, put the original "
                f"archive in {manual}; for CIFAR-10 you can also use "
                "get_source('cifar10_folder')."
            ) from e
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


def load_cifar10_folder(split="train", data_dir=None, cache_dir=None,
                        verify_sha256=False, skip_corrupt=False):
    """CIFAR-10 from the JPEG archive, decoded once and cached.

    The archive is looked up in `data_dir`, `$BALPOE_KERAS_DATA`, then
    `ARCHIVE_DIRS`; it is extracted to `cache_dir` (default
    `~/.cache/balpoe_keras`) and the decoded arrays cached there as `.npz`.
    Its file order is not CIFAR's, so the LT subset matches the reference
    in counts only (see /work/shared/data/README.md).

    Returns:
        `ImageSource` with `(N, 32, 32, 3)` uint8 images.
    """
    archive = _find_file(CIFAR10_ARCHIVE, data_dir, ARCHIVE_DIRS)
    if archive is None:
        raise FileNotFoundError(
            f"{CIFAR10_ARCHIVE} not found; looked in "
            f"{_search_dirs(data_dir, ARCHIVE_DIRS)}. Pass data_dir= the "
            "folder holding it, or an extracted folder via "
            "get_source('image_folder', data_dir=...)."
        )
    cache_dir = cache_dir or default_cache_dir()
    sha = CIFAR10_ARCHIVE_SHA256 if verify_sha256 else None
    root = extract_archive(archive, cache_dir, sha256=sha)
    return load_image_folder(root, split, CIFAR10_CLASSES, True, cache_dir,
                             skip_corrupt, name="cifar10_folder")


def load_fashion_mnist(split="train", data_dir=None, use_tfds=True):
    """Fashion-MNIST from IDX gz files (or tfds as a fallback).

    Looks for `{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]` in
    `data_dir`, `$BALPOE_KERAS_DATA`, then `FASHION_MNIST_DIRS` (the Debian
    package `dataset-fashion-mnist` installs them in the first).

    Returns:
        `ImageSource` with `(N, 28, 28, 1)` uint8 images, 10 classes.
    """
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise ValueError(f"Fashion-MNIST splits: train, test. Got {split!r}")
    found = [_find_file(f"{prefix}-{kind}-ubyte{ext}", data_dir,
                        FASHION_MNIST_DIRS)
             for kind in ("images-idx3", "labels-idx1")
             for ext in (".gz", "")]
    images_path, labels_path = found[0] or found[1], found[2] or found[3]
    if images_path and labels_path:
        images = read_idx(images_path)[..., None]
        return ImageSource(read_idx(labels_path), FASHION_MNIST_CLASSES,
                           images=images, name="fashion_mnist", split=split)
    looked = _search_dirs(data_dir, FASHION_MNIST_DIRS)
    hint = (f"Fashion-MNIST IDX files not found in {looked}. Install them "
            "with `apt-get install dataset-fashion-mnist` or pass data_dir=.")
    if not use_tfds:
        raise FileNotFoundError(hint)
    try:
        source = load_tfds("fashion_mnist", split)
    except FileNotFoundError as e:
        raise FileNotFoundError(f"{hint} The tfds fallback failed: {e}") from e
    return source


def _search_dirs(data_dir, defaults):
    dirs = [data_dir] if data_dir else []
    if os.environ.get("BALPOE_KERAS_DATA"):
        dirs.append(os.environ["BALPOE_KERAS_DATA"])
    return dirs + [os.path.expanduser(d) for d in defaults]


def _find_file(filename, data_dir, defaults):
    for folder in _search_dirs(data_dir, defaults):
        path = os.path.join(folder, filename)
        if os.path.isfile(path):
            return path
    return None


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
