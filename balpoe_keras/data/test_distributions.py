"""Shifted test sets of the test-agnostic evaluation (NumPy only).

Builds the test-agnostic evaluation sets of reference `test_all_cifar.py` from a
balanced test set: "forward-rho" sets (long-tailed like the training set,
class 0 the head), the full "uniform" set, and "backward-rho" sets (class
`C-1` the head), picked with the same generator as the training subset
(`long_tail_subsample`, seed 0, per-class shuffle).
"""

import numpy as np

from balpoe_keras.data.long_tail import long_tail_counts
from balpoe_keras.data.long_tail import long_tail_subsample
from balpoe_keras.data.long_tail import ranked

DEFAULT_RATIOS = (50, 25, 10, 5, 2)


def distribution_names(ratios=DEFAULT_RATIOS):
    """Ordered names: `forward<max>..forward<min>, uniform, backward<min>..`.

    Args:
        ratios: imbalance ratios (> 1) of the shifted sets.

    Returns:
        `list[str]` of length `2 * len(ratios) + 1`.
    """
    descending = sorted({int(r) for r in ratios}, reverse=True)
    return (
        [f"forward{r}" for r in descending]
        + ["uniform"]
        + [f"backward{r}" for r in reversed(descending)]
    )


def make_test_distributions(
    labels, num_classes, ratios=DEFAULT_RATIOS, max_count=None, seed=0,
    order=None,
):
    """Indices of the forward / uniform / backward test distributions.

    For ratio `rho`, "forward{rho}" keeps
    `n_c = int(max_count * (1/rho)**(c/(C-1)))` images of class `c`
    (class 0 keeps `max_count`), "backward{rho}" the same counts reversed.
    CIFAR-100 (100 test images per class) gives 2,486 / 2,956 / 3,876 /
    4,932 / 7,166 images for rho = 50 / 25 / 10 / 5 / 2.

    Args:
        labels: `(N,)` int test labels in original order.
        num_classes: int, `C`.
        ratios: integer imbalance ratios > 1.
        max_count: head count; default the smallest per-class test count
            (100 for CIFAR-100, as in the reference's `img_max`).
        seed: int, the reference reseeds with 0 for every set.
        order: `C` class ids, head first, that the profile's ranks fall on
            ("forward" keeps most of `order[0]`); default the ids' order,
            the reference's. Pass `long_tail.head_first(train_counts)`
            where class ids carry no ranking (an image folder).

    Returns:
        dict name -> `(n,)` int64 indices into `labels`, ordered as
        `distribution_names(ratios)`; "uniform" is `arange(N)`.

    Raises:
        ValueError: for ratios <= 1 or a class without test images.
    """
    labels = np.asarray(labels)
    if any(int(r) != r or r <= 1 for r in ratios):
        raise ValueError(
            f"Expected integer ratios > 1. Received: {list(ratios)}"
        )
    available = np.bincount(labels, minlength=num_classes)
    if max_count is None:
        max_count = int(available.min())
    if max_count < 1:
        missing = np.flatnonzero(available == 0).tolist()
        raise ValueError(
            f"Classes {missing} have no test images; forward/backward test "
            "sets need every class. Pass `max_count` or fix the test set."
        )
    out = {}
    for name in distribution_names(ratios):
        if name == "uniform":
            out[name] = np.arange(labels.size, dtype=np.int64)
            continue
        reverse = name.startswith("backward")
        ratio = int(name[len("backward") if reverse else len("forward") :])
        counts = ranked(long_tail_counts(
            num_classes, max_count, ratio, reverse=reverse), order)
        out[name] = long_tail_subsample(labels, counts, seed=seed)
    return out
