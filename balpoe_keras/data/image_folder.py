"""Image-folder sources (`root/<split>/<class>/*.jpg|png`), NumPy + Pillow.

Small images (CIFAR-size) are decoded once, in parallel with Pillow, and
cached as an uncompressed `.npz` in a cache folder outside the repository,
so later runs load in about a second. Corrupt files and empty class folders
raise an error that lists them; `skip_corrupt=True` skips corrupt files
with a logged warning instead. Paths are sorted, so the order is
deterministic; classes are in alphabetical folder order.
"""

import concurrent.futures
import hashlib
import logging
import os
import tarfile

import numpy as np

from balpoe_keras.data.archive import decode_image
from balpoe_keras.data.source import ImageSource
from balpoe_keras.data.source import default_cache_dir

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif")
_CACHE_VERSION = 3  # bump when decoding changes (3: Pillow)


def extract_archive(archive, cache_dir=None, sha256=None):
    """Extracts a `.tar(.gz)` archive once into `cache_dir/<archive stem>`.

    Args:
        archive: path of the archive.
        cache_dir: parent folder of the extraction; default
            `default_cache_dir()`. Keep it outside the repository.
        sha256: optional hex digest to verify before extracting.

    Returns:
        The extraction folder (str). A marker file makes later calls free.

    Raises:
        FileNotFoundError: if the archive is missing.
        ValueError: if the checksum does not match.
    """
    if not os.path.isfile(archive):
        raise FileNotFoundError(f"Archive not found: {archive}")
    stem = os.path.basename(archive).split(".tar")[0]
    target = os.path.join(cache_dir or default_cache_dir(), stem)
    marker = os.path.join(target, ".extracted")
    if os.path.exists(marker):
        return target
    if sha256 is not None:
        digest = hashlib.sha256()
        with open(archive, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        if digest.hexdigest() != sha256:
            raise ValueError(
                f"sha256 of {archive} is {digest.hexdigest()}, expected "
                f"{sha256}. The file is corrupt or a different version."
            )
    os.makedirs(target, exist_ok=True)
    logging.info("Extracting %s to %s", archive, target)
    with tarfile.open(archive) as tar:
        tar.extractall(target, filter="data")
    with open(marker, "w") as f:
        f.write(archive + "\n")
    return target


def list_image_folder(root, split="train", class_names=None):
    """Sorted image paths and labels of `root/<split>/<class>/*`.

    Args:
        root: dataset folder.
        split: sub-folder name, e.g. `"train"` or `"test"`.
        class_names: optional class order; default the sorted folder names.

    Returns:
        `(paths, labels, class_names)`: `(N,)` str array, `(N,)` int64,
        tuple of names.

    Raises:
        FileNotFoundError: if `root/<split>` does not exist or has no class
            folders.
        ValueError: if some class folders hold no images (lists them).
    """
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(
            f"No folder {split_dir}. Expected the layout "
            "root/<split>/<class>/<image>.jpg|png."
        )
    if class_names is None:
        class_names = sorted(
            e.name for e in os.scandir(split_dir) if e.is_dir()
        )
    if not class_names:
        raise FileNotFoundError(f"{split_dir} has no class folders.")
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(split_dir, name)
        files = []
        if os.path.isdir(class_dir):
            files = sorted(
                e.path
                for e in os.scandir(class_dir)
                if e.is_file() and e.name.lower().endswith(IMAGE_EXTENSIONS)
            )
        if not files:
            empty.append(class_dir)
        paths += files
        labels += [label] * len(files)
    if empty:
        raise ValueError(
            f"{len(empty)} class folder(s) hold no images: {empty}. Add "
            "images, remove the folders, or pass `class_names` without them."
        )
    return np.asarray(paths), np.asarray(labels, np.int64), tuple(class_names)


def decode_images(paths, skip_corrupt=False, num_threads=None):
    """Decodes same-size image files into one uint8 array (Pillow).

    Args:
        paths: `(N,)` file paths.
        skip_corrupt: if False, unreadable files raise; if True they are
            skipped with a logged warning listing them.
        num_threads: decoding threads; default `min(8, os.cpu_count())`.

    Returns:
        `(images, kept)`: `(K, H, W, 3)` uint8 and the `(K,)` int64 indices
        of `paths` that decoded.

    Raises:
        ValueError: listing unreadable files (unless `skip_corrupt`) or
            images whose size differs from the first one.
    """
    threads = num_threads or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        decoded = list(pool.map(_read_and_decode, paths))
    kept = np.asarray([i for i, im in enumerate(decoded) if im is not None],
                      np.int64)
    bad = [str(paths[i]) for i, im in enumerate(decoded) if im is None]
    if bad and not skip_corrupt:
        raise ValueError(
            f"{len(bad)} image file(s) could not be decoded: {bad}. Replace "
            "or delete them, or pass skip_corrupt=True to skip them."
        )
    if bad:
        logging.warning("Skipping %d unreadable image(s): %s", len(bad), bad)
    images = [decoded[i] for i in kept]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"Images have different shapes {sorted(shapes)}; in-memory "
            "folders need one size. Use in_memory=False (paths)."
        )
    return np.stack(images) if images else np.zeros((0, 1, 1, 3), "u1"), kept


def _read_and_decode(path):
    with open(path, "rb") as f:
        return decode_image(f.read())


def _fingerprint(paths):
    digest = hashlib.sha1()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_image_folder(
    root,
    split="train",
    class_names=None,
    in_memory=True,
    cache_dir=None,
    skip_corrupt=False,
    name="image_folder",
):
    """An `ImageSource` from `root/<split>/<class>/*.jpg|png`.

    Args:
        root: dataset folder.
        split: sub-folder, e.g. `"train"`.
        class_names: optional class order (default: sorted folder names).
        in_memory: decode all images into one uint8 array (same-size images
            only). If False the source holds paths, decoded lazily.
        cache_dir: if set (and `in_memory`), the decoded arrays are cached
            there as `.npz`, keyed by a fingerprint of paths, sizes, mtimes.
        skip_corrupt: skip unreadable files with a warning instead of
            raising.
        name: the source's name.

    Returns:
        `ImageSource` with images `(N, H, W, 3)` uint8 or paths.
    """
    paths, labels, class_names = list_image_folder(root, split, class_names)
    if not in_memory:
        return ImageSource(labels, class_names, paths=paths, name=name,
                           split=split)
    cache = None
    if cache_dir is not None:
        os.makedirs(cache_dir, exist_ok=True)
        cache = os.path.join(
            cache_dir,
            f"{name}-{split}-{_fingerprint(paths)}-v{_CACHE_VERSION}.npz",
        )
        if os.path.exists(cache):
            with np.load(cache) as data:
                _check_cached_skips(data["skipped"], skip_corrupt)
                return ImageSource(data["labels"], class_names,
                                   images=data["images"], name=name,
                                   split=split)
    images, kept = decode_images(paths, skip_corrupt=skip_corrupt)
    if cache is not None:
        skipped = np.setdiff1d(paths, paths[kept]).astype(str)
        np.savez(cache + ".tmp.npz", images=images, labels=labels[kept],
                 skipped=skipped)
        os.replace(cache + ".tmp.npz", cache)
    return ImageSource(labels[kept], class_names, images=images, name=name,
                       split=split)


def _check_cached_skips(skipped, skip_corrupt):
    if skipped.size and not skip_corrupt:
        raise ValueError(
            f"{skipped.size} image file(s) could not be decoded: "
            f"{skipped.tolist()}. Replace or delete them, or pass "
            "skip_corrupt=True to skip them."
        )
    if skipped.size:
        logging.warning("Skipping %d unreadable image(s): %s",
                        skipped.size, skipped.tolist())
