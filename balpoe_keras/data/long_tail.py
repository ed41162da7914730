"""Long-tailed class counts and subsets (NumPy only).

Builds the per-class image counts of a long-tailed training set and picks
which images to keep, reproducing the LDAM-DRW / BalPoE generator
(the reference's `data_loader/imbalance_cifar.py`) index for index:
with the original file order, `long_tail_subsample(labels, counts, seed=0)`
selects exactly the images the reference keeps.

Naming: `imbalance_ratio` is `max_count / min_count >= 1` (100 for
CIFAR-100-LT IR100). The reference's `imb_factor` is its inverse (0.01).
"""

import math

import numpy as np

PROFILES = ("exp", "step", "pareto")


def long_tail_counts(
    num_classes, max_count, imbalance_ratio, profile="exp", reverse=False
):
    """Per-class image counts of a long-tailed set.

    Profiles, for class `c = 0 .. C-1` (class 0 is the head) and
    `f = 1 / imbalance_ratio`:

    - `"exp"` (the reference's default): `n_c = int(max_count * f**(c/(C-1)))`,
      truncated toward zero exactly as `int()` does in the reference.
    - `"step"`: the first `C // 2` classes keep `max_count`, the others
      `int(max_count * f)`.
    - `"pareto"`: a power law `n_c = int(max_count * (c+1)**(-a))` with
      `a = log(imbalance_ratio) / log(C)`, so the tail ends at
      `max_count / imbalance_ratio` (guarded against float round-down); a
      Zipf/Pareto-type profile for custom data, not used by the reference.

    Args:
        num_classes: int >= 2, `C`.
        max_count: int >= 1, images of the head class.
        imbalance_ratio: float >= 1, `max / min`. 1 gives a balanced set.
        profile: one of `"exp"`, `"step"`, `"pareto"`.
        reverse: if True, class `C-1` is the head (the reference's
            `reverse=True`, used for the "backward" test sets).

    Returns:
        `list[int]` of length `C`.

    Raises:
        ValueError: for a bad argument, naming it.
    """
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(f"Expected num_classes >= 2. Received: {num_classes}")
    if int(max_count) != max_count or max_count < 1:
        raise ValueError(f"Expected max_count >= 1. Received: {max_count}")
    if not imbalance_ratio >= 1:
        raise ValueError(
            "Expected imbalance_ratio = max/min count >= 1 (e.g. 100; the "
            f"reference's imb_factor is its inverse). Received: "
            f"{imbalance_ratio}"
        )
    if profile not in PROFILES:
        raise ValueError(
            f"Unknown profile {profile!r}. Expected one of {PROFILES}."
        )
    factor = 1.0 / imbalance_ratio  # == the reference's imb_factor literal.
    last = num_classes - 1
    counts = []
    for c in range(num_classes):
        rank = last - c if reverse else c
        if profile == "exp":
            n = max_count * (factor ** (rank / (num_classes - 1.0)))
        elif profile == "step":
            n = max_count if rank < num_classes // 2 else max_count * factor
        else:
            exponent = math.log(imbalance_ratio) / math.log(num_classes)
            n = max_count * (rank + 1) ** (-exponent) * (1 + 1e-12)
        counts.append(int(n))
    return counts


def long_tail_subsample(labels, class_counts, seed=0):
    """Indices of a class-wise random subset with the given counts.

    Reproduces reference `imbalance_cifar.py`: the RNG is seeded once
    (`np.random.RandomState(seed)`, which draws the same stream as the
    reference's `np.random.seed(seed)` + `np.random.shuffle`), then for each
    class in ascending order that class's indices, in original order, are
    shuffled and the first `class_counts[c]` kept. The result is
    class-sorted (class 0 block first), like the reference's new data array.

    Args:
        labels: `(N,)` integer class ids in `[0, C)`, in original file order.
        class_counts: `C` non-negative ints, images to keep per class.
        seed: int, the reference uses 0.

    Returns:
        `(sum(class_counts),)` int64 indices into `labels`.

    Raises:
        ValueError: if labels fall outside `[0, C)` or a class has fewer
            images than requested.
    """
    labels = np.asarray(labels)
    counts = np.asarray(class_counts, dtype=np.int64)
    if labels.ndim != 1 or counts.ndim != 1 or np.any(counts < 0):
        raise ValueError(
            "Expected 1-D `labels` and 1-D non-negative `class_counts`. "
            f"Received shapes {labels.shape} and {counts.shape}."
        )
    num_classes = counts.size
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}) for {num_classes} class "
            f"counts. Received labels in [{labels.min()}, {labels.max()}]."
        )
    available = np.bincount(labels, minlength=num_classes)
    short = np.flatnonzero(available < counts)
    if short.size:
        raise ValueError(
            f"Classes {short.tolist()} have {available[short].tolist()} "
            f"images but {counts[short].tolist()} were requested. Lower "
            "max_count or the requested counts."
        )
    rng = np.random.RandomState(seed)
    selected = []
    for c in range(num_classes):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        selected.append(idx[: counts[c]])
    return np.concatenate(selected).astype(np.int64)


def make_long_tailed(images, labels, num_classes, imbalance_ratio, seed=0):
    """The exponential-profile long-tailed subset of in-memory arrays.

    As the reference's `imbalance_cifar.py`: head count `N / C`,
    `n_c = int(max * (1/imbalance_ratio)**(c/(C-1)))`, a per-class shuffle
    seeded once with `seed`.

    Args:
        images: `(N, ...)` array.
        labels: `(N,)` int class ids.
        num_classes: int `C`.
        imbalance_ratio: float >= 1, max/min class count.
        seed: int, the subsampling seed (the reference always uses 0).

    Returns:
        `(images, labels, class_counts)`: the class-sorted subset and the
        `C` per-class counts (`list[int]`).
    """
    counts = long_tail_counts(
        num_classes, len(labels) // num_classes, imbalance_ratio)
    index = long_tail_subsample(labels, counts, seed=seed)
    return images[index], labels[index], counts


def head_first(class_counts):
    """Class ids ranked by their count, most images first, ties by id:
    the order in which to lay a long-tail profile over classes whose ids
    mean nothing (an image folder's alphabetical classes). For counts that
    never rise with the id (the benchmarks') it is `arange(C)`.

    Args:
        class_counts: `C` ints.

    Returns:
        `(C,)` int64 class ids.
    """
    return np.argsort(-np.asarray(class_counts, np.int64), kind="stable")


def ranked(counts, order):
    """Per-rank `counts` (rank 0 the head) placed on the classes `order`
    ranks: `out[order[k]] = counts[k]`; `order=None` is the identity.
    Returns `list[int]`."""
    if order is None:
        return [int(n) for n in counts]
    order = np.asarray(order, np.int64)
    if sorted(order.tolist()) != list(range(len(counts))):
        raise ValueError(
            f"Expected order as a permutation of the {len(counts)} class "
            f"ids. Received: {order.tolist()}")
    out = np.empty(len(counts), np.int64)
    out[order] = counts
    return out.tolist()


def largest_long_tail_counts(class_counts, imbalance_ratio, order=None):
    """The largest exponential long tail that `class_counts` can supply.

    `long_tail_counts(C, n, imbalance_ratio)` with the largest head count
    `n` for which every class has enough images; for a balanced set of `N`
    images that is `N / C`, the reference's choice.

    Args:
        class_counts: `C` ints, images available per class.
        imbalance_ratio: float >= 1, the tail's max/min count.
        order: `C` class ids, head first, that the profile's ranks fall
            on (e.g. `head_first(class_counts)`); default the ids' order
            (class 0 the head, as the benchmarks).

    Returns:
        `list[int]` of length `C`, each `<= class_counts[c]`.

    Raises:
        ValueError: if the tail class would get no image.
    """
    available = np.asarray(class_counts, np.int64)
    if order is not None:
        ranked(available, order)  # Checks the permutation.
        available = available[np.asarray(order, np.int64)]
    last = available.size - 1
    factors = (1.0 / imbalance_ratio) ** (np.arange(available.size) / last)
    head = int(np.min(np.floor(available / factors)))
    while head >= 1:
        counts = long_tail_counts(available.size, head, imbalance_ratio)
        if np.all(np.asarray(counts) <= available):
            break
        head -= 1  # Float round-up at a boundary.
    if head < 1 or counts[-1] < 1:
        raise ValueError(
            f"An exponential long tail with max/min {imbalance_ratio} leaves "
            f"the last class no image from counts {available.tolist()}; use "
            "a smaller ratio.")
    return ranked(counts, order)
