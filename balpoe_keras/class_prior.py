"""Class counts, class priors, shot groups and per-expert lambdas (NumPy only).

Everything that turns the training-set class counts `n_c` into numbers the
model, loss or metrics need lives here, so the checks happen in one place.
Conventions follow reference `model/loss.py`, `test.py`: the prior is
`pi_c = n_c / sum(n)`, the log-prior is `log(pi_c + 1e-9)`, and the paper's
`lambda` relates to the reference code's `tau` by `lambda = 1 - tau`.
"""

import math

import numpy as np

LOG_PRIOR_EPS = 1e-9  # The reference's BSExpertLoss default (model/loss.py).
MANY_SHOT_MIN = 100  # many: n_c > 100 (the reference's test.py).
FEW_SHOT_MAX = 20  # few: n_c < 20; medium: 20 <= n_c <= 100.
SHOT_GROUPS = ("many", "medium", "few")


def validate_class_counts(class_counts, num_classes=None):
    """Checks per-class training counts and returns them as a list of ints.

    Args:
        class_counts: sequence of `C` positive integers, the number of
            training images of each class (a class without any has no
            prior: leave it out).
        num_classes: optional int. If given, `len(class_counts)` must match.

    Returns:
        `list[int]` of length `C`, every entry > 0.

    Raises:
        ValueError: if the counts are empty, not 1-D, not integral, not
            positive, or do not match `num_classes`.
    """
    counts = np.asarray(class_counts)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError(
            "Expected `class_counts` to be a non-empty 1-D sequence of "
            f"per-class training counts. Received shape {counts.shape}."
        )
    if not np.all(np.isfinite(counts)) or np.any(counts != np.round(counts)):
        raise ValueError(
            "Expected integral `class_counts`. Received: "
            f"{counts.tolist()}"
        )
    bad = np.flatnonzero(counts <= 0)
    if bad.size:
        raise ValueError(
            f"Every class needs at least one training image, but classes "
            f"{bad.tolist()} have counts {counts[bad].tolist()}. Remove those "
            "classes from the label space or add training data for them."
        )
    if num_classes is not None and counts.size != num_classes:
        raise ValueError(
            f"`class_counts` has {counts.size} entries but the model has "
            f"num_classes={num_classes}. Pass one count per class."
        )
    return [int(c) for c in counts]


def compute_prior(class_counts):
    """Training prior `pi_c = n_c / sum(n)`: `(C,)` float64 summing to 1."""
    counts = np.asarray(validate_class_counts(class_counts), np.float64)
    return counts / counts.sum()


def compute_log_prior(class_counts, eps=LOG_PRIOR_EPS):
    """Log training prior `log(pi_c + eps)`: `(C,)` float32, in nats."""
    return np.log(compute_prior(class_counts) + eps).astype("float32")


def compute_shot_groups(
    class_counts, many_min=MANY_SHOT_MIN, few_max=FEW_SHOT_MAX
):
    """Splits classes into many/medium/few-shot groups by training count.

    many: `n_c > many_min`; medium: `few_max <= n_c <= many_min`;
    few: `n_c < few_max` (the reference's `test.py`: 100 and 20).

    Args:
        class_counts: `(C,)` training counts.
        many_min: int, exclusive lower bound of the many-shot group.
        few_max: int, exclusive upper bound of the few-shot group.

    Returns:
        dict `{"many": mask, "medium": mask, "few": mask}` of `(C,)` bool
        NumPy arrays. A group may be empty (e.g. few-shot on CIFAR-10-LT).
    """
    counts = np.asarray(validate_class_counts(class_counts))
    return {
        "many": counts > many_min,
        "medium": (counts >= few_max) & (counts <= many_min),
        "few": counts < few_max,
    }


def spread_lambdas(num_experts, lambda_max=1.0, lambda_min=-1.0):
    """`M` lambdas evenly spaced from `lambda_max` down to `lambda_min`.

    The reference's `'limits'` tau list (`utils/util.py`) in the paper's
    lambda
    units: expert 0 is the head expert (largest lambda). For one expert the
    single value is the midpoint.

    Args:
        num_experts: int >= 1.
        lambda_max: float, lambda of the first (head) expert.
        lambda_min: float, lambda of the last (tail) expert.

    Returns:
        `list[float]` of length `num_experts`.

    Example:
        >>> spread_lambdas(3)
        [1.0, 0.0, -1.0]
    """
    if int(num_experts) != num_experts or num_experts < 1:
        raise ValueError(
            f"Expected num_experts >= 1. Received: num_experts={num_experts}"
        )
    if num_experts == 1:
        return [(lambda_max + lambda_min) / 2.0]
    step = (lambda_min - lambda_max) / (num_experts - 1)
    return [float(lambda_max + i * step) for i in range(num_experts)]


def validate_lambdas(lambdas, num_experts=None, allow_unbalanced=False):
    """Checks per-expert lambdas and returns them as a list of floats.

    BalPoE is Fisher-consistent for the balanced error only when the lambdas
    average to 0 (paper Corollary 1.1). The reference's ImageNet-LT setting
    averages to -0.25, so `allow_unbalanced=True` opts out of that check.

    Args:
        lambdas: sequence of `M` finite floats, one per expert.
        num_experts: optional int that `len(lambdas)` must equal.
        allow_unbalanced: bool. If False, `|mean(lambdas)| <= 1e-6` is
            required.

    Returns:
        `list[float]` of length `M`.

    Raises:
        ValueError: naming the problem and the fix.
    """
    values = [float(v) for v in np.ravel(np.asarray(lambdas, np.float64))]
    if not values or not all(math.isfinite(v) for v in values):
        raise ValueError(
            f"Expected a non-empty list of finite lambdas. Received: {values}"
        )
    if num_experts is not None and len(values) != num_experts:
        raise ValueError(
            f"Got {len(values)} lambdas for num_experts={num_experts}. Give "
            "exactly one lambda per expert (e.g. spread_lambdas(num_experts))."
        )
    mean = sum(values) / len(values)
    if not allow_unbalanced and abs(mean) > 1e-6:
        raise ValueError(
            f"The lambdas {values} average to {mean:.6g}, not 0, so the "
            "ensemble is not balanced (paper Corollary 1.1). Use lambdas "
            "that average to 0, or pass allow_unbalanced=True "
            "(--allow_unbalanced_lambdas) if this is intended, as in the "
            "reference ImageNet-LT setting."
        )
    return values


def lambdas_to_taus(lambdas):
    """Reference-code `tau = 1 - lambda` for each expert (list of floats)."""
    return [1.0 - float(lam) for lam in lambdas]


def compute_test_prior_bias(test_class_counts):
    """Post-hoc test-prior correction `log p_test`: `(C,)` float32 in nats.

    The reference's `test_all_cifar.py` adds `log(test_counts / total)` to
    the ensemble logits,
    without eps; classes absent from the target distribution get `-inf`,
    i.e. they are never predicted.
    """
    counts = np.asarray(test_class_counts, np.float64)
    if counts.ndim != 1 or counts.size == 0 or not np.all(
            np.isfinite(counts) & (counts >= 0)):
        raise ValueError(
            "Expected finite, non-negative 1-D test class counts (or "
            f"probabilities). Received: {counts.tolist()}"
        )
    if counts.sum() <= 0:
        raise ValueError("The test class counts sum to 0.")
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum()).astype("float32")


def deployment_prior_bias(target_counts, class_counts, lambdas):
    """What to add to a BalPoE ensemble's logits for its probabilities to
    be those of a deployment class distribution: `(C,)` float32, nats.

    Expert `m` learns `z_m = log p(x|y) + lambda_m log pi + const` (its
    gLA loss fits `z_m + (1 - lambda_m) log pi` to the training
    distribution), so the mean logits target `pi^lambda_bar` and the
    bias for a target `p_t` is `log p_t - lambda_bar log pi`. With the
    lambdas averaging 0 (every balanced setting) it is the reference's
    `log p_t` (`compute_test_prior_bias`); an ensemble trained with
    unbalanced lambdas (the reference's ImageNet-LT, lambda_bar = -0.25)
    is corrected for its tilt too. Classes absent from the target get
    `-inf`.

    Args:
        target_counts: `C` non-negative counts or probabilities.
        class_counts: `C` training counts (the prior `pi`).
        lambdas: the experts' lambdas.
    """
    bias = compute_test_prior_bias(target_counts)
    counts = validate_class_counts(class_counts)
    if bias.size != len(counts):
        raise ValueError(
            f"target_prior has {bias.size} entries for the model's "
            f"{len(counts)} classes; give one per class.")
    mean = float(np.mean(np.asarray(lambdas, np.float64)))
    if abs(mean) < 1e-6:
        return bias
    tilt = mean * np.log(np.asarray(counts, np.float64) / sum(counts))
    return (bias.astype(np.float64) - tilt).astype("float32")
