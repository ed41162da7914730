"""Pure NumPy scores on collected logits: accuracies, calibration, NLL, priors.

Conventions (reference `test_all_cifar.py`, `calibration_metrics.py`):

- accuracies, ECE and MCE are fractions in `[0, 1]` (the unit of the Keras
  metrics; only tables written for people show percent); NLL and KL are in
  nats;
- per-class accuracy is `correct_c / n_c` over the test images of class `c`;
  a class without test images has no accuracy (NaN internally) and is
  skipped in every per-class mean, never counted as 0;
- many/medium/few groups come from the *training* counts
  (`class_prior.compute_shot_groups`); a group with no evaluable class
  reports `None`, never a silent NaN;
- ECE/MCE use 15 equal-width `(l, u]` bins on the max softmax probability
  (`balpoe_keras.metrics.reliability_bins`).
"""

import numpy as np
from keras import ops

from balpoe_keras import class_prior
from balpoe_keras.evaluation.predict import validate_labels
from balpoe_keras.labels import raise_out_of_range
from balpoe_keras.metrics import reliability_bins
from balpoe_keras.metrics.calibration import check_finite
from balpoe_keras.metrics.group_accuracy import mean_class_accuracy
from balpoe_keras.metrics.group_accuracy import per_class_counts


def checked_outputs(logits, labels):
    """`logits` as `(N, C)` NumPy and `labels` as `(N,)` int64 class ids,
    or `ValueError`: logits not `(N, C)` or holding NaN or +infinity (a
    diverged model; `metrics.calibration.check_finite`),
    labels of another shape or count (`(N,)`, `(N, 1)` ids and `(N, C)`
    one-hot rows are accepted), ids outside `[0, C)`."""
    logits = np.asarray(logits)
    if logits.ndim != 2:
        raise ValueError(f"Expected (N, C) logits. Received {logits.shape}.")
    check_finite(logits, "logits")
    labels = validate_labels(labels, logits.shape[-1])
    if labels.size != len(logits):
        raise ValueError(f"Expected {len(logits)} labels, one per row of "
                         f"logits. Received {labels.size}.")
    return logits, labels


def compute_log_softmax(logits):
    """Numerically stable log-softmax in float64: `(N, C)` -> `(N, C)`."""
    logits = np.asarray(logits, np.float64)
    shifted = logits - np.max(logits, axis=-1, keepdims=True)
    return shifted - np.log(np.sum(np.exp(shifted), axis=-1, keepdims=True))


def compute_softmax(logits):
    """Softmax in float64: `(N, C)` logits -> `(N, C)` probabilities."""
    return np.exp(compute_log_softmax(logits))


def compute_per_class_accuracy(predictions, labels, num_classes):
    """Per-class accuracy (a fraction) and test count.

    Computed from the state of the Keras metrics
    (`metrics.group_accuracy.per_class_counts`), so the report and
    `BalancedAccuracy`/`GroupAccuracy` count the same hits.

    Args:
        predictions: `(N,)` int predicted class ids.
        labels: `(N,)` int true class ids in `[0, C)`.
        num_classes: int `C`.

    Returns:
        `(accuracy, counts)`: `(C,)` float64 accuracy in [0, 1], NaN where
        a class has no test image, and `(C,)` int64 test counts.
    """
    correct, total = _per_class_counts(predictions, labels, num_classes)
    return _per_class_accuracy(correct, total), total.astype(np.int64)


def _per_class_accuracy(correct, total):
    """`correct / total` per class, NaN where a class has no image."""
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, correct / total, np.nan)


def _per_class_counts(predictions, labels, num_classes):
    """`(correct, total)` `(C,)` float64 of `per_class_counts`."""
    labels = np.asarray(labels, np.int64).reshape(-1)
    if labels.size and (labels.min() < 0 or labels.max() >= num_classes):
        raise_out_of_range(labels, num_classes)
    counts = per_class_counts(labels, np.asarray(predictions, np.int64),
                              num_classes)
    return tuple(np.asarray(ops.convert_to_numpy(x), np.float64)
                 for x in counts)


def compute_group_accuracies(correct, total, class_counts):
    """Mean per-class accuracy in the many/medium/few-shot groups
    (`metrics.group_accuracy.mean_class_accuracy`, as `GroupAccuracy`).

    Args:
        correct, total: `(C,)` hits and test images per class.
        class_counts: `(C,)` *training* counts defining the groups.

    Returns:
        dict `group -> {"accuracy": float or None, "num_classes": int,
        "num_classes_evaluated": int}`; `accuracy` is None when no class of
        the group has a test image (e.g. few-shot on CIFAR-10-LT).
    """
    groups = {}
    for name, mask in class_prior.compute_shot_groups(class_counts).items():
        evaluated = int(np.sum(mask & (total > 0)))
        groups[name] = {
            "accuracy": _mean_class_accuracy(correct, total, mask)
            if evaluated else None,
            "num_classes": int(mask.sum()),
            "num_classes_evaluated": evaluated,
        }
    return groups


def _mean_class_accuracy(correct, total, mask=None):
    value = mean_class_accuracy(
        ops.convert_to_tensor(correct, "float32"),
        ops.convert_to_tensor(total, "float32"),
        None if mask is None else ops.convert_to_tensor(mask, "float32"))
    return float(ops.convert_to_numpy(value))


def compute_accuracy_summary(logits, labels, class_counts):
    """Micro ("All"), balanced and many/medium/few accuracy of logits.

    Args:
        logits: `(N, C)` logits (any additive bias already applied).
        labels: `(N,)` int class ids.
        class_counts: `(C,)` training counts (for the groups).

    Returns:
        dict with `accuracy`, `balanced_accuracy`, `acc_many`, `acc_medium`,
        `acc_few` (float or None), `groups` (see `compute_group_accuracies`),
        `per_class_accuracy` (`(C,)` NaN for absent classes) and
        `num_classes_without_test_images`.
    """
    logits, labels = checked_outputs(logits, labels)
    predictions = np.argmax(logits, axis=-1)
    correct, total = _per_class_counts(predictions, labels,
                                       logits.shape[-1])
    per_class = _per_class_accuracy(correct, total)
    groups = compute_group_accuracies(correct, total, class_counts)
    return {
        "num_examples": int(labels.size),
        "accuracy": float(np.mean(predictions == labels)),
        "balanced_accuracy": _mean_class_accuracy(correct, total)
        if np.any(total > 0) else None,
        "acc_many": groups["many"]["accuracy"],
        "acc_medium": groups["medium"]["accuracy"],
        "acc_few": groups["few"]["accuracy"],
        "groups": groups,
        "per_class_accuracy": per_class,
        "num_classes_without_test_images": int(np.sum(total == 0)),
    }


def compute_nll(logits, labels):
    """Mean negative log-likelihood `-log softmax(logits)_y` in nats
    (inputs as `checked_outputs`)."""
    logits, labels = checked_outputs(logits, labels)
    log_probs = compute_log_softmax(logits)
    return float(-np.mean(log_probs[np.arange(labels.size), labels]))


def compute_calibration(logits, labels, num_bins=15):
    """ECE and MCE (fractions) of `softmax(logits)`, plus the reliability bins.

    Returns:
        dict with `ece`, `mce` (in [0, 1]) and `reliability`: lists `edges`
        `(num_bins + 1,)`, `confidence`, `accuracy` (fractions, 0 where a bin
        is empty) and `count` `(num_bins,)`.
    """
    logits, labels = checked_outputs(logits, labels)
    bins = reliability_bins(
        labels, compute_softmax(logits), num_bins=num_bins, from_logits=False
    )
    keys = ("edges", "confidence", "accuracy", "count")
    return {
        "ece": float(bins["ece"]),
        "mce": float(bins["mce"]),
        "reliability": {k: np.asarray(bins[k]).tolist() for k in keys},
    }


def compute_classification_metrics(
    logits, labels, *, class_counts, num_bins=15, details=True
):
    """Accuracy, balanced/group accuracy, ECE, MCE and NLL of `(N, C)` logits.

    Args:
        logits: `(N, C)` finite logits.
        labels: `(N,)` or `(N, 1)` int class ids (or `(N, C)` one-hot).
        class_counts: `(C,)` training counts.
        num_bins: int >= 1, calibration bins.
        details: bool. If True, also return `per_class_accuracy` (a list
            with None for absent classes) and the `reliability` bins.

    Returns:
        A JSON-ready dict (see `compute_accuracy_summary`,
        `compute_calibration`) plus `nll`.
    """
    metrics = compute_accuracy_summary(logits, labels, class_counts)
    calibration = compute_calibration(logits, labels, num_bins)
    metrics.update(ece=calibration["ece"], mce=calibration["mce"])
    metrics["nll"] = compute_nll(logits, labels)
    per_class = metrics.pop("per_class_accuracy")
    if details:
        metrics["per_class_accuracy"] = [
            None if np.isnan(v) else float(v) for v in per_class
        ]
        metrics["reliability"] = calibration["reliability"]
    return metrics


def compute_expected_prior(class_counts, lam):
    """Expected test prior of a lambda-expert, `pi^lambda / sum(pi^lambda)`."""
    log_prior = np.log(class_prior.compute_prior(class_counts)) * float(lam)
    return compute_softmax(log_prior[None])[0]


def compute_kl_divergence(p, q):
    """`KL(p || q) = sum p log(p / q)` in nats; terms with `p = 0` are 0."""
    p = np.asarray(p, np.float64)
    q = np.asarray(q, np.float64)
    mask = p > 0
    return float(np.sum(p[mask] * (np.log(p[mask]) - np.log(q[mask]))))


def compute_prior_match(logits, class_counts, lam):
    """Paper Fig. 4: estimated vs expected prior of one (lambda-)predictor.

    Args:
        logits: `(N, C)` logits on the *balanced* test set.
        class_counts: `(C,)` training counts.
        lam: float, the lambda whose prior `P_train^lambda` is expected.

    Returns:
        dict with `lambda`, `estimated` (`(C,)` mean softmax probability),
        `expected` (`(C,)`, proportional to `pi^lambda`) and
        `kl` = `KL(expected || estimated)` in nats.
    """
    estimated = compute_softmax(logits).mean(axis=0)
    expected = compute_expected_prior(class_counts, lam)
    return {
        "lambda": float(lam),
        "estimated": estimated.tolist(),
        "expected": expected.tolist(),
        "kl": compute_kl_divergence(expected, estimated),
    }
