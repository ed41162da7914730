"""Image archives read without TensorFlow: `<split>/<class>/<file>` tars.

CIFAR-10 from the JPEG archive: `cifar10-jpeg.tar.gz` (layout
`train/<class>/NNNN.jpg`, `test/<class>/NNNN.jpg`; alphabetical class
folders give the standard label order) is read straight from the tar
stream with `tarfile` + Pillow, without extracting it. Members are decoded
in sorted path order, so the arrays are deterministic. The decoded arrays
are cached as one `.npz` per archive (keyed by the archive's size and
mtime) in the user cache; a cached load takes well under a second.

Images decode with `balpoe_keras.data.image_file.decode_image`, the one
TensorFlow-free image decoder of the package.
"""

import concurrent.futures
import os
import tarfile

import numpy as np

from balpoe_keras.data.image_file import decode_image
from balpoe_keras.data.source import ImageSource
from balpoe_keras.data.source import default_cache_dir
from balpoe_keras.data.source import find_data_file
from balpoe_keras.data.source import search_dirs

CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")
SPLITS = ("train", "test")
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")


def find_cifar10_archive(data_dir=None):
    """Path of `cifar10-jpeg.tar.gz`.

    Looks in `data_dir` alone if given, else in `$BALPOE_KERAS_DATA` and the
    user cache (`balpoe_keras.data.source.search_dirs`).

    Raises:
        FileNotFoundError: naming every folder searched.
    """
    path = find_data_file(CIFAR10_ARCHIVE, data_dir)
    if path is None:
        raise FileNotFoundError(
            f"{CIFAR10_ARCHIVE} not found in {search_dirs(data_dir)}. Pass "
            "--data_dir (data_dir=) the folder that holds it, or set "
            "$BALPOE_KERAS_DATA."
        )
    return path


def read_image_archive(archive, class_names=None, num_threads=None):
    """Decodes every image of a `<split>/<class>/<file>` tar archive.

    The archive is read once as a stream (no extraction, no seeking in the
    gzip stream), then the files are decoded with Pillow in sorted path
    order by `num_threads` threads (Pillow releases the GIL while decoding).

    Args:
        archive: path of a `.tar` / `.tar.gz` archive.
        class_names: class order; default the sorted class folder names
            (shared by all splits).
        num_threads: decoding threads; default `min(8, os.cpu_count())`.

    Returns:
        dict with, per split `s` found, `"<s>_images"` `(N, H, W, 3)` uint8
        and `"<s>_labels"` `(N,)` int64 in sorted path order, plus
        `"class_names"` `(C,)` str.

    Raises:
        ValueError: listing the files that could not be decoded or the
            class folders not in `class_names`, or if the images differ in
            size.
    """
    files = {}
    with tarfile.open(archive) as tar:
        for member in tar:
            if _is_image(member):
                files[member.name] = tar.extractfile(member).read()
    names = sorted(files)
    parsed = [_parse_member_name(n) for n in names]
    if class_names is None:
        class_names = sorted({c for s, c in parsed if s})
    label_of = {name: i for i, name in enumerate(class_names)}
    unknown = sorted({c for s, c in parsed if s and c not in label_of})
    if unknown:
        raise ValueError(
            f"{archive} holds class folders {unknown} that are not among "
            f"its {len(class_names)} classes {list(class_names)}; their "
            "images would be left out. Remove or rename those folders.")
    threads = num_threads or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        decoded = list(pool.map(decode_image, (files[n] for n in names)))
    out, bad = {"class_names": np.asarray(class_names)}, []
    for split in sorted({s for s, _ in parsed if s}):
        images, labels = [], []
        for name, (s, c), image in zip(names, parsed, decoded):
            if s != split or c not in label_of:
                continue
            if image is None:
                bad.append(name)
                continue
            images.append(image)
            labels.append(label_of[c])
        out[f"{split}_images"] = _stack(images, archive)
        out[f"{split}_labels"] = np.asarray(labels, np.int64)
    if bad:
        raise ValueError(
            f"{len(bad)} image file(s) in {archive} could not be decoded: "
            f"{bad}. Replace the archive (compare its sha256 with docs/data.md"
            ") or remove those files."
        )
    return out


def _is_image(member):
    return member.isfile() and member.name.lower().endswith(
        _IMAGE_EXTENSIONS)


def _parse_member_name(name):
    """`"./train/cat/0001.jpg"` -> `("train", "cat")`."""
    parts = [p for p in name.split("/") if p not in ("", ".")]
    if len(parts) < 3:
        return ("", "")
    return parts[-3], parts[-2]


def _stack(images, archive):
    shapes = sorted({im.shape for im in images})
    if len(shapes) > 1:
        raise ValueError(
            f"Images in {archive} have different shapes {shapes}; the "
            "in-memory path needs one size."
        )
    if not images:
        return np.zeros((0, 1, 1, 3), np.uint8)
    return np.stack(images)


def load_cifar10_arrays(data_dir=None, cache_dir=None):
    """CIFAR-10 train and test arrays from the JPEG archive, cached.

    Args:
        data_dir: folder holding `cifar10-jpeg.tar.gz` (see
            `find_cifar10_archive`), or the path of an `.npz` written by
            this function (then it is read directly).
        cache_dir: where the `.npz` cache lives; default
            `default_cache_dir()`. Pass `False` to disable caching.

    Returns:
        dict with `train_images` `(50000, 32, 32, 3)` uint8, `train_labels`
        `(50000,)` int64, `test_images`, `test_labels` and `class_names`.
    """
    if data_dir and str(data_dir).endswith(".npz"):
        return _load_npz(data_dir)
    archive = find_cifar10_archive(data_dir)
    cache = None
    if cache_dir is not False:
        stat = os.stat(archive)
        cache = os.path.join(
            cache_dir or default_cache_dir(),
            f"cifar10-arrays-{stat.st_size}-{stat.st_mtime_ns}.npz",
        )
        if os.path.exists(cache):
            return _load_npz(cache)
    arrays = read_image_archive(archive, CIFAR10_CLASSES)
    if cache is not None:
        save_arrays(cache, arrays)
    return arrays


def save_arrays(path, arrays, compress=False):
    """Writes `arrays` (a dict of NumPy arrays) atomically as `.npz`; runs
    filling one cache at once each write their own temporary file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp.npz"
    (np.savez_compressed if compress else np.savez)(tmp, **arrays)
    os.replace(tmp, path)


def _load_npz(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def load_cifar10_folder(split="train", data_dir=None, cache_dir=None):
    """CIFAR-10 from the JPEG archive as an `ImageSource` (cached arrays).

    The archive's file order is not CIFAR's, so the long-tailed subset
    matches the reference in counts only (docs/data.md).

    Args:
        split: `"train"` or `"test"`.
        data_dir: see `load_cifar10_arrays`.
        cache_dir: see `load_cifar10_arrays`.

    Returns:
        `ImageSource` with `(N, 32, 32, 3)` uint8 images, 10 classes.
    """
    arrays = load_cifar10_arrays(data_dir, cache_dir)
    return ImageSource(arrays[f"{split}_labels"], CIFAR10_CLASSES,
                       images=arrays[f"{split}_images"],
                       name="cifar10_folder", split=split)
