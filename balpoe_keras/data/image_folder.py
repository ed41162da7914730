"""Image-folder sources (`root/<split>/<class>/*.jpg|png`), NumPy + Pillow.

`scan_image_folder` checks a folder's layout and reads every training
file's header (size, grayscale) before anything is decoded, so a bad
folder fails at once with the folder or file named. Small images are
decoded once, in parallel with Pillow, resized to the model's input
(`balpoe_keras.data.image_file`) and cached as an uncompressed `.npz` in
a cache folder outside the repository, so later runs load in about a
second. Corrupt files and empty class folders raise an error that lists
them; `skip_corrupt=True` skips corrupt files
with a logged warning instead. Paths are sorted, so the order is
deterministic; classes are in alphabetical folder order.
"""

import concurrent.futures
import dataclasses
import hashlib
import logging
import os
import tarfile
import unicodedata

import numpy as np

from balpoe_keras.data import image_file
from balpoe_keras.data.source import ImageSource
from balpoe_keras.data.source import default_cache_dir

TEST_SPLITS = ("test", "val")  # Searched in this order for the test set.
_CACHE_VERSION = 5  # bump when decoding changes (5: transparent GIF pixels)
_MAX_LISTED = 10  # Files named in an error message.
# Training files whose headers give a folder's typical size and whether it
# is grayscale (evenly spaced in sorted order).
HEADER_SAMPLE = 2000


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


@dataclasses.dataclass(frozen=True)
class FolderLayout:
    """What `scan_image_folder` found in `root`.

    Attributes:
        root: the dataset folder.
        class_names: tuple of `C` class folder names, sorted.
        train_counts: tuple of `C` ints, training images per class.
        test_split: `"test"`, `"val"` or None (no test folder).
        grayscale: True if every sampled training image has one channel.
        typical_side: int, median of the sampled training images' longer
            sides in pixels.
    """

    root: str
    class_names: tuple
    train_counts: tuple
    test_split: object
    grayscale: bool
    typical_side: int


def scan_image_folder(root, num_threads=None):
    """Checks `root/train/<class>/*` (and `test/` or `val/`) and reads the
    headers of up to `HEADER_SAMPLE` training images (evenly spaced),
    without decoding pixels. Every file is checked when it is decoded into
    memory, or by `check_image_files` for a streamed folder. Image files
    of types not read (TIFF, HEIC, ...: `image_file.UNREAD_IMAGE_EXTENSIONS`)
    are counted in a logged warning.

    Args:
        root: dataset folder.
        num_threads: header-reading threads; default `min(8, cpus)`.

    Returns:
        `FolderLayout`.

    Raises:
        FileNotFoundError: no `root/train` folder.
        ValueError: naming the folder or files and the fix: fewer than two
            classes, an empty class folder, sampled files Pillow cannot
            read, or a test split whose classes differ from training's.
    """
    train_dir = os.path.join(root, "train")
    if not os.path.isdir(train_dir):
        raise FileNotFoundError(
            f"No folder {train_dir}. An image folder dataset is laid out as "
            "DIR/train/<class>/<image> (and DIR/test/<class>/<image> or "
            "DIR/val/...); pass that DIR.")
    names = _class_folders(train_dir)
    if len(names) < 2:
        raise ValueError(
            f"{train_dir} has {len(names)} class folder(s) {names}; a "
            "classifier needs at least 2. Put each class's images in its "
            "own sub-folder.")
    unread = {}
    paths, labels, names = list_image_folder(root, "train", names, unread)
    test_split = next((s for s in TEST_SPLITS
                       if os.path.isdir(os.path.join(root, s))), None)
    if test_split is not None:
        _check_same_classes(root, test_split, names)
        list_image_folder(root, test_split, names, unread)  # No empty class.
    if unread:
        logging.warning(
            "%s: leaving out %d image file(s) of types this library does "
            "not read (%s); the class counts are those of the JPEG, PNG, "
            "BMP, GIF and WebP files. Convert them (e.g. to PNG) to train "
            "and test on them.", root, sum(unread.values()),
            ", ".join(f"{n} {e}" for e, n in sorted(unread.items())))
    picks = np.linspace(0, len(paths) - 1, min(len(paths), HEADER_SAMPLE))
    headers = read_headers(paths[np.unique(np.round(picks).astype(int))],
                           num_threads)
    return FolderLayout(
        root=root, class_names=tuple(names),
        train_counts=tuple(int(n) for n in np.bincount(labels, None,
                                                       len(names))),
        test_split=test_split,
        grayscale=all(h[2] for h in headers),
        typical_side=int(np.median([max(h[:2]) for h in headers])),
    )


def read_headers(paths, num_threads=None):
    """`(width, height, grayscale)` of every file in `paths`, read from
    the headers (`image_file.read_header`), in order.

    Raises:
        ValueError: listing the files that are not readable images.
    """
    threads = num_threads or min(8, os.cpu_count() or 1)
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        headers = list(pool.map(image_file.read_header, paths))
    bad = [str(p) for p, h in zip(paths, headers) if h is None]
    if bad:
        raise ValueError(
            f"{len(bad)} file(s) are not readable images: "
            f"{bad[:_MAX_LISTED]}{' ...' if len(bad) > _MAX_LISTED else ''}"
            ". Delete or replace them (JPEG, PNG, GIF, WebP, or uncompressed "
            "BMP of 8, 24 or 32 bits per pixel).")
    return headers


def check_image_files(root, splits, num_threads=None):
    """Reads the header of every image of `root/<split>/...` for each
    split: a file that is not an image fails now, naming it, rather than
    when a streaming input pipeline reaches it.

    Raises:
        ValueError: listing the files that are not readable images.
    """
    for split in splits:
        read_headers(list_image_folder(root, split)[0], num_threads)


def _class_folders(split_dir):
    return sorted(e.name for e in os.scandir(split_dir)
                  if e.is_dir() and not e.name.startswith("."))


def _check_same_classes(root, split, train_names):
    """Raises `ValueError` if `root/<split>`'s class folders are not
    `train_names` (a class missing or added would shift every later id)."""
    names = _class_folders(os.path.join(root, split))
    if names == list(train_names):
        return
    missing = sorted(set(train_names) - set(names))
    extra = sorted(set(names) - set(train_names))
    nfc = {unicodedata.normalize("NFC", n) for n in missing}
    unicode = (
        " Some names differ only in their Unicode form (NFC/NFD, "
        "e.g. after copying from macOS): rename the folders of one "
        "split." if nfc & {unicodedata.normalize("NFC", n)
                           for n in extra} else "")
    raise ValueError(
        f"{os.path.join(root, split)} and {os.path.join(root, 'train')} hold "
        f"different classes (missing from {split}: {missing}; "
        f"not in train: {extra}). Give both splits the same class "
        f"folders (from Python, or pass class_names= to read the split "
        f"with those classes).{unicode}")


def list_image_folder(root, split="train", class_names=None, unread=None):
    """Sorted image paths and labels of `root/<split>/<class>/...`: the
    images of each class folder and its sub-folders
    (`image_file.image_files_under`).

    Args:
        root: dataset folder.
        split: sub-folder name, e.g. `"train"` or `"test"`.
        class_names: optional class order; default the sorted folder names
            of `root/train` (when it exists; the split must then hold the
            same class folders), else of `root/<split>`.
        unread: optional dict, counts the image files of types not read
            (extension -> count), as `image_files_under`.

    Returns:
        `(paths, labels, class_names)`: `(N,)` str array, `(N,)` int64,
        tuple of names.

    Raises:
        FileNotFoundError: if `root/<split>` does not exist or has no class
            folders.
        ValueError: if some class folders hold no images (lists them), or
            if `root/<split>` and `root/train` hold different classes
            (without `class_names`).
    """
    split_dir = os.path.join(root, split)
    if not os.path.isdir(split_dir):
        raise FileNotFoundError(
            f"No folder {split_dir}. Expected the layout "
            "root/<split>/<class>/<image>.jpg|png."
        )
    if class_names is None:
        train_dir = os.path.join(root, "train")
        if split != "train" and os.path.isdir(train_dir):
            class_names = _class_folders(train_dir)
            _check_same_classes(root, split, class_names)
        else:
            class_names = _class_folders(split_dir)
    if not class_names:
        raise FileNotFoundError(f"{split_dir} has no class folders.")
    paths, labels, empty = [], [], []
    for label, name in enumerate(class_names):
        class_dir = os.path.join(split_dir, name)
        files = []
        if os.path.isdir(class_dir):
            files = image_file.image_files_under(class_dir, unread)
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


def decode_images(paths, skip_corrupt=False, num_threads=None,
                  image_size=None, channels=3):
    """Decodes image files into one uint8 array (Pillow).

    Args:
        paths: `(N,)` file paths.
        skip_corrupt: if False, unreadable files raise; if True they are
            skipped with a logged warning listing them.
        num_threads: decoding threads; default `min(8, os.cpu_count())`.
        image_size: if set, every image is resized to `image_size` squared
            (`image_file.resize_image`, bilinear, antialiased; rounded to
            uint8); if None all images must have one size.
        channels: 3 (RGB) or 1 (grayscale).

    Returns:
        `(images, kept)`: `(K, H, W, channels)` uint8 and the `(K,)` int64
        indices of `paths` that decoded.

    Raises:
        ValueError: listing unreadable files (unless `skip_corrupt`) or
            images whose size differs from the first one.
    """
    threads = num_threads or min(8, os.cpu_count() or 1)

    def read(path):
        return _read_and_decode(path, image_size, channels)

    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        decoded = list(pool.map(read, paths))
    kept = np.asarray([i for i, im in enumerate(decoded) if im is not None],
                      np.int64)
    bad = [str(paths[i]) for i, im in enumerate(decoded) if im is None]
    if bad and not skip_corrupt:
        raise ValueError(
            f"{len(bad)} image file(s) could not be decoded: {bad}. Replace "
            "or delete them (from Python, skip_corrupt=True skips them)."
        )
    if bad:
        logging.warning("Skipping %d unreadable image(s): %s", len(bad), bad)
    images = [decoded[i] for i in kept]
    shapes = {im.shape for im in images}
    if len(shapes) > 1:
        raise ValueError(
            f"Images have different shapes {sorted(shapes)}; in-memory "
            "folders need one size. Pass image_size to resize them, or "
            "in_memory=False (paths)."
        )
    if not images:
        return np.zeros((0, 1, 1, channels), np.uint8), kept
    return np.stack(images), kept


def _read_and_decode(path, image_size=None, channels=3):
    with open(path, "rb") as f:
        image = image_file.decode_image(f.read(), channels)
    if image is None or image_size is None or image.shape[:2] == (
            image_size, image_size):
        return image
    resized = image_file.resize_image(image, (image_size, image_size))
    return np.round(resized).astype(np.uint8)


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
    image_size=None,
    channels=3,
):
    """An `ImageSource` from `root/<split>/<class>/*.jpg|png|bmp|gif|webp`.

    Args:
        root: dataset folder.
        split: sub-folder, e.g. `"train"`.
        class_names: optional class order (default: `root/train`'s sorted
            class folders, which another split must match; as
            `list_image_folder`).
        in_memory: decode all images into one uint8 array (same-size images
            only). If False the source holds paths, decoded lazily.
        cache_dir: if set (and `in_memory`), the decoded arrays are cached
            there as `.npz`, keyed by a fingerprint of paths, sizes, mtimes.
        skip_corrupt: skip unreadable files with a warning instead of
            raising.
        name: the source's name.
        image_size: in memory, resize every image to this side in pixels
            (bilinear, antialiased, as the SavedModel's `"resize"`); None:
            keep the size (all images must share it).
        channels: in memory, 3 (RGB) or 1 (grayscale) channels.

    Returns:
        `ImageSource` with images `(N, H, W, channels)` uint8 or paths.
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
            f"{name}-{split}-{_fingerprint(paths)}-{image_size}-{channels}"
            f"-v{_CACHE_VERSION}.npz",
        )
        if os.path.exists(cache):
            with np.load(cache) as data:
                _check_cached_skips(data["skipped"], skip_corrupt)
                return ImageSource(data["labels"], class_names,
                                   images=data["images"], name=name,
                                   split=split)
    images, kept = decode_images(paths, skip_corrupt=skip_corrupt,
                                 image_size=image_size, channels=channels)
    if cache is not None:
        skipped = np.setdiff1d(paths, paths[kept]).astype(str)
        temporary = f"{cache}.{os.getpid()}.tmp.npz"  # One per process.
        np.savez(temporary, images=images, labels=labels[kept],
                 skipped=skipped)
        os.replace(temporary, cache)
    return ImageSource(labels[kept], class_names, images=images, name=name,
                       split=split)


def _check_cached_skips(skipped, skip_corrupt):
    if skipped.size and not skip_corrupt:
        raise ValueError(
            f"{skipped.size} image file(s) could not be decoded: "
            f"{skipped.tolist()}. Replace or delete them (from Python, "
            "skip_corrupt=True skips them)."
        )
    if skipped.size:
        logging.warning("Skipping %d unreadable image(s): %s",
                        skipped.size, skipped.tolist())


def holdout_indices(labels, num_classes, per_class, seed=0):
    """A balanced, seeded hold-out: `per_class` indices of each class.

    Args:
        labels: `(N,)` int class ids in file order.
        num_classes: `C`.
        per_class: int >= 1, images held out per class; every class must
            have more (so that it keeps a training image).
        seed: int; the runner uses 0, so every run tests on the same images.

    Returns:
        `(C * per_class,)` int64 indices into `labels`, sorted.
    """
    labels = np.asarray(labels)
    rng = np.random.RandomState(seed)
    held = []
    for c in range(num_classes):
        members = np.flatnonzero(labels == c)
        if members.size <= per_class:
            raise ValueError(
                f"class {c} has {members.size} images; holding out "
                f"{per_class} would leave none for training.")
        held.append(rng.permutation(members)[:per_class])
    return np.sort(np.concatenate(held)).astype(np.int64)
