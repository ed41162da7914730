"""ImageNet-LT / iNaturalist-2018 list-file sources (NumPy only).

A list file has one `relative/path label` line per image (the reference's
`imagenet_lt_data_loaders.py`). The source keeps paths (absolute, under
`root`); images
are decoded lazily in tf.data. Standard list names of both benchmarks,
including the forward/backward test distributions (the reference's
`test_all_imagenet.py`), are
in `IMAGENET_LT_LISTS` and `INATURALIST2018_LISTS`.
"""

import os

import numpy as np

from balpoe_keras.data.source import ImageSource

_SHIFTS = ("forward50", "forward25", "forward10", "forward5", "forward2",
           "uniform", "backward2", "backward5", "backward10", "backward25",
           "backward50")
IMAGENET_LT_LISTS = {
    s: f"ImageNet_LT_{s}.txt" for s in ("train", "val", "test") + _SHIFTS
}
INATURALIST2018_LISTS = {
    s: f"iNaturalist18_{s}.txt"
    for s in ("train", "val", "forward3", "forward2", "uniform", "backward2",
              "backward3")
}
INATURALIST2018_LISTS["test"] = "iNaturalist18_val.txt"  # val == test.
NUM_CLASSES = {"imagenet_lt": 1000, "inaturalist2018": 8142}
_SUBDIRS = {"imagenet_lt": "ImageNet_LT", "inaturalist2018": "iNaturalist18"}


def read_list_file(list_path, root, num_classes=None, check_files="all",
                   name="list_file", split=""):
    """An `ImageSource` of paths from a `relative/path label` list file.

    Args:
        list_path: the list file.
        root: folder the relative paths start from.
        num_classes: `C`; default `max(label) + 1`. Labels must be < C.
        check_files: `"all"` (default) checks that every listed file
            exists and is not empty (a `stat` each: about a second per
            100,000 files on a local disk), `"sample"` checks up to 100
            evenly spaced files (slow network file systems), `"none"`
            skips the check.
        name: the source's name.
        split: the source's split.

    Returns:
        `ImageSource` with `paths` and class names `"0" .. "C-1"`.

    Raises:
        FileNotFoundError: missing list file or images (lists some).
        ValueError: malformed lines or labels out of range.
    """
    if not os.path.isfile(list_path):
        raise FileNotFoundError(f"List file not found: {list_path}")
    paths, labels = [], []
    with open(list_path) as f:
        for line_no, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.strip().rsplit(maxsplit=1)
            if len(parts) != 2 or not parts[1].lstrip("-").isdigit():
                raise ValueError(
                    f"{list_path}:{line_no}: expected 'relative/path label', "
                    f"got {line.strip()!r}."
                )
            paths.append(os.path.join(root, parts[0]))
            labels.append(int(parts[1]))
    labels = np.asarray(labels, np.int64)
    if not labels.size:
        raise ValueError(f"{list_path} lists no images.")
    if num_classes is None:
        num_classes = int(labels.max()) + 1
    if labels.min() < 0 or labels.max() >= num_classes:
        raise ValueError(
            f"{list_path}: labels lie in [{labels.min()}, {labels.max()}] "
            f"but num_classes={num_classes}. Check the list or num_classes."
        )
    _check_exists(paths, check_files, root)
    return ImageSource(labels, [str(c) for c in range(num_classes)],
                       paths=np.asarray(paths), name=name, split=split)


def _check_exists(paths, check_files, root):
    if check_files not in ("sample", "all", "none"):
        raise ValueError(
            f"check_files must be 'sample', 'all' or 'none'. Received: "
            f"{check_files!r}"
        )
    if check_files == "none":
        return
    to_check = paths
    if check_files == "sample":
        to_check = [paths[i] for i in _evenly_spaced(len(paths), 100)]
    missing = [p for p in to_check if not os.path.isfile(p)]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} of {len(to_check)} checked images are missing "
            f"under root {root}, e.g. {missing[:5]}. Point `data_dir` to the "
            "folder the list's relative paths start from."
        )
    empty = [p for p in to_check if os.path.getsize(p) == 0]
    if empty:
        raise ValueError(
            f"{len(empty)} listed image file(s) are empty (0 bytes), e.g. "
            f"{empty[:5]}. Replace them or remove them from the list.")


def _evenly_spaced(count, at_most):
    """Up to `at_most` distinct indices evenly spaced over `range(count)`,
    first and last included."""
    return np.unique(np.linspace(0, count - 1, min(count, at_most))
                     .round().astype(np.int64)) if count else []


def load_benchmark_list(benchmark, split, data_dir, list_dir=None,
                        check_files="all"):
    """ImageNet-LT or iNaturalist-2018 split from the standard list files.

    Args:
        benchmark: `"imagenet_lt"` or `"inaturalist2018"`.
        split: a key of `IMAGENET_LT_LISTS` / `INATURALIST2018_LISTS`
            (train, val, test, uniform, forward50, backward2, ...).
        data_dir: image root (the list's paths are relative to it);
            None: `$BALPOE_KERAS_DATA`.
        list_dir: folder of the list files; default searches `data_dir`,
            `data_dir/data_txt/<ImageNet_LT|iNaturalist18>` and
            `data_dir/data_txt`.
        check_files: see `read_list_file`.

    Returns:
        `ImageSource` of paths with `C` = 1000 or 8142 classes.
    """
    lists = (IMAGENET_LT_LISTS if benchmark == "imagenet_lt"
             else INATURALIST2018_LISTS)
    if split not in lists:
        raise ValueError(
            f"Unknown {benchmark} split {split!r}. Known: {sorted(lists)}."
        )
    if data_dir is None:
        data_dir = os.environ.get("BALPOE_KERAS_DATA") or None
    if data_dir is None:
        raise FileNotFoundError(
            f"{benchmark} reads its images from a folder of your own: pass "
            f"data_dir= (the runner: --data_dir=DIR) or set "
            f"$BALPOE_KERAS_DATA to the image root, with the list files "
            f"from the BalPoE/PaCo `data_txt` folder in "
            f"DIR/data_txt/{_SUBDIRS[benchmark]} (docs/data.md)."
        )
    candidates = [list_dir] if list_dir else [
        data_dir,
        os.path.join(data_dir, "data_txt", _SUBDIRS[benchmark]),
        os.path.join(data_dir, "data_txt"),
    ]
    for folder in candidates:
        path = os.path.join(folder, lists[split])
        if os.path.isfile(path):
            return read_list_file(path, data_dir, NUM_CLASSES[benchmark],
                                  check_files, name=benchmark, split=split)
    raise FileNotFoundError(
        f"{lists[split]} not found; looked in {candidates}. Get the list "
        "files from the BalPoE-CalibratedLT repository (data_txt/) and place "
        f"them in data_dir (--data_dir) or data_dir/data_txt/"
        f"{_SUBDIRS[benchmark]}, or pass list_dir= from Python."
    )
