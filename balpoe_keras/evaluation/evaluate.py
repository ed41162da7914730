"""Evaluates a BalPoE model: balanced test set, experts, test-agnostic sets.

`evaluate_model` runs the model once per distinct test set, then computes
everything from the collected logits in NumPy (`scores.py`), so it works on
every Keras backend. The result is a JSON-ready dict that `write_report`
turns into `report.json`, `report.md` and plots. Conventions: accuracies and
ECE/MCE are fractions in [0, 1] (the reference's `test_all_cifar.py` and
`utils/calibration_metrics.py` print percent; so do our Markdown tables),
NLL and KL in nats.
"""

import numpy as np

from balpoe_keras import class_prior
from balpoe_keras.evaluation import predict
from balpoe_keras.evaluation import scores

BALANCED_SET_NAMES = ("uniform", "test")
SUMMARY_KEYS = (
    "accuracy",
    "balanced_accuracy",
    "acc_many",
    "acc_medium",
    "acc_few",
    "ece",
    "mce",
    "nll",
)


def _check_before_predicting(model, test_sets, balanced_name, class_counts,
                             lambdas, class_names):
    """Checks what needs no prediction and returns the validated
    `(class_counts, lambdas)`: counts, lambdas and names against the
    model's sizes, NumPy labels against the classes and the images, indices
    against the balanced set. Raises `ValueError` naming the problem."""
    num_classes = model.num_classes
    counts = class_prior.validate_class_counts(class_counts, num_classes)
    lams = class_prior.validate_lambdas(lambdas, model.num_experts,
                                        allow_unbalanced=True)
    if class_names is not None and len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class_names for {num_classes} classes."
        )
    balanced_size = None
    for name, test_set in test_sets.items():
        if not (isinstance(test_set, (tuple, list)) and len(test_set) == 2
                and isinstance(test_set[0], np.ndarray)):
            continue
        try:
            labels = predict.validate_labels(test_set[1], num_classes)
        except ValueError as error:
            raise ValueError(f"Test set {name!r}: {error}") from None
        if len(labels) != len(test_set[0]):
            raise ValueError(
                f"Test set {name!r} has {len(test_set[0])} images but "
                f"{len(labels)} labels; give one label per image."
            )
        if name == balanced_name:
            balanced_size = len(labels)
    for test_set in test_sets.values():
        if balanced_size is not None and predict.is_index_array(test_set):
            predict.check_indices(test_set, balanced_size)
    return counts, lams


def evaluate_model(
    model,
    test_sets,
    *,
    class_counts=None,
    lambdas=None,
    class_names=None,
    batch_size=256,
    num_bins=15,
    test_prior_correction=True,
    balanced_set=None,
):
    """Evaluates `model` on a balanced test set and test-agnostic variants.

    Args:
        model: Keras model mapping float32 images `(B, H, W, C)` in `[0, 1]`
            to `{"logits": (B, C), "expert_logits": (B, M, C)}`.
        test_sets: an `(images, labels)` pair / `tf.data.Dataset` (the
            balanced set), or a dict `name -> test set` where a value is an
            `(images, labels)` pair, a dataset of `(images, labels)` batches,
            or a 1-D int array of indices into the balanced set (e.g. the
            forward/backward long-tailed sets of reference `test_all_cifar.py`)
            in the order it yields its images: a dataset given as the
            balanced set must then not be shuffled.
        class_counts: `(C,)` training counts (prior and shot groups);
            default: the model's (`BalPoEClassifier.class_counts`).
        lambdas: `M` per-expert lambdas (`tau = 1 - lambda`); they need not
            average to 0 (the reference ImageNet-LT setting does not);
            default: the model's.
        class_names: optional `C` strings, stored in the results; default:
            the model's, if it stores them.
        batch_size: int, prediction batch size for NumPy inputs.
        num_bins: int, equal-width calibration bins.
        test_prior_correction: bool. Also score every test-agnostic set with
            the post-hoc correction `+ log p_test` (the reference's
            `--posthoc_bias_correction`).
        balanced_set: name of the balanced set in `test_sets`; by default
            "uniform", else "test", else the only entry.

    Returns:
        JSON-ready dict: `summary` (flat `test/<metric>` numbers), `balanced`
        (`ensemble`, `experts`, `expert_prior`), `test_agnostic` (per set:
        `plain` and, if enabled, `posthoc` accuracies) and metadata.

    Raises:
        ValueError: before predicting, for counts, lambdas or names that do
            not fit the model, NumPy labels outside `[0, C)` or not one per
            image, indices outside the balanced set; streamed labels once
            read.
    """
    predict.check_model(model)
    class_counts = _from_model(model, "class_counts", class_counts)
    lambdas = _from_model(model, "lambdas", lambdas)
    if class_names is None:
        class_names = getattr(model, "class_names", None)
    if not isinstance(test_sets, dict):
        test_sets = {"test": test_sets}
    balanced_name = _find_balanced_set(test_sets, balanced_set)
    counts, lams = _check_before_predicting(
        model, test_sets, balanced_name, class_counts, lambdas, class_names)
    outputs = predict.predict_outputs(
        model, test_sets[balanced_name], batch_size=batch_size
    )
    num_classes = outputs["logits"].shape[-1]
    balanced = evaluate_balanced(outputs, counts, lams, num_bins=num_bins)
    agnostic = {}
    for name, test_set in test_sets.items():
        if name == balanced_name:
            subset = outputs
        elif predict.is_index_array(test_set):
            subset = predict.select_outputs(outputs, test_set)
        else:
            subset = predict.predict_outputs(
                model, test_set, batch_size=batch_size
            )
        agnostic[name] = evaluate_test_agnostic(
            subset["logits"], subset["labels"], counts, test_prior_correction
        )
    groups = class_prior.compute_shot_groups(counts)
    test_counts = np.bincount(np.asarray(outputs["labels"], np.int64),
                              minlength=num_classes)
    return {
        "summary": {
            f"test/{k}": balanced["ensemble"][k] for k in SUMMARY_KEYS
        },
        "num_classes": num_classes,
        "num_experts": len(lams),
        "class_counts": counts,
        "class_names": None if class_names is None else list(class_names),
        "lambdas": lams,
        "taus": class_prior.lambdas_to_taus(lams),
        "num_bins": num_bins,
        "shot_groups": {k: int(v.sum()) for k, v in groups.items()},
        "balanced_test_set": balanced_name,
        # Images per class of that set: equal unless a user's own test
        # folder is skewed (the report then says so).
        "balanced_test_counts": test_counts.tolist(),
        "balanced": balanced,
        "test_agnostic": agnostic,
    }


def _from_model(model, name, value):
    """`value`, or the classifier's attribute `name`."""
    return getattr(model, name) if value is None else value


def _find_balanced_set(test_sets, balanced_set):
    if not test_sets:
        raise ValueError("`test_sets` is empty; pass at least one test set.")
    if balanced_set is not None:
        if balanced_set not in test_sets:
            raise ValueError(
                f"balanced_set={balanced_set!r} is not in test_sets "
                f"{sorted(test_sets)}."
            )
        name = balanced_set
    else:
        found = [n for n in BALANCED_SET_NAMES if n in test_sets]
        if not found and len(test_sets) > 1:
            raise ValueError(
                "Cannot tell which test set is the balanced one among "
                f"{sorted(test_sets)}. Name it 'uniform' or pass balanced_set."
            )
        name = found[0] if found else next(iter(test_sets))
    if predict.is_index_array(test_sets[name]):
        raise ValueError(
            f"The balanced test set {name!r} must hold images and labels, "
            "not indices (indices refer to it)."
        )
    return name


def evaluate_balanced(outputs, class_counts, lambdas, *, num_bins=15):
    """Ensemble, per-expert and expert-prior metrics on the balanced set.

    Args:
        outputs: dict from `predict.predict_outputs` (`logits` `(N, C)`,
            `expert_logits` `(N, M, C)`, `labels` `(N,)`).
        class_counts: `(C,)` training counts.
        lambdas: `M` floats.
        num_bins: int.

    Returns:
        dict with `ensemble` (metrics of the mean logits), `experts` (per
        expert: `raw` = metrics of `z_m`, which models `P_train^lambda`, and
        `adjusted` = metrics of `z_m + tau_m log pi`, which models
        `P_train`), and `expert_prior` (paper Fig. 4).
    """
    labels = outputs["labels"]
    log_prior = class_prior.compute_log_prior(class_counts)
    ensemble = scores.compute_classification_metrics(
        outputs["logits"], labels, class_counts=class_counts, num_bins=num_bins
    )
    experts, priors = [], []
    for m, lam in enumerate(lambdas):
        z_m = outputs["expert_logits"][:, m]
        tau = 1.0 - lam
        experts.append(
            {
                "index": m,
                "lambda": lam,
                "tau": tau,
                "raw": scores.compute_classification_metrics(
                    z_m, labels, class_counts=class_counts,
                    num_bins=num_bins, details=False,
                ),
                "adjusted": scores.compute_classification_metrics(
                    z_m + tau * log_prior, labels, class_counts=class_counts,
                    num_bins=num_bins, details=False,
                ),
            }
        )
        priors.append(scores.compute_prior_match(z_m, class_counts, lam))
    mean_lambda = float(np.mean(lambdas))
    return {
        "num_examples": int(labels.size),
        "ensemble": ensemble,
        "experts": experts,
        "expert_prior": {
            "experts": priors,
            "ensemble": scores.compute_prior_match(
                outputs["logits"], class_counts, mean_lambda
            ),
        },
    }


def evaluate_test_agnostic(logits, labels, class_counts, test_prior_correction):
    """All/many/medium/few accuracy (fractions) on one (long-tailed) test set.

    Args:
        logits: `(N, C)` ensemble logits.
        labels: `(N,)` or `(N, 1)` int class ids.
        class_counts: `(C,)` training counts (for the groups).
        test_prior_correction: bool. Also score `logits + log p_test`, with
            `p_test` the test set's own label frequencies (`-inf` for absent
            classes, as in the reference).

    Returns:
        dict with `num_examples`, `num_classes_without_test_images` (those
        classes are skipped in the per-class means), `plain` and optionally
        `posthoc`, each `{"all", "many", "medium", "few"}` (None for a group
        with no evaluable class).
    """
    logits, labels = scores.checked_outputs(logits, labels)
    num_classes = logits.shape[-1]
    result = {"num_examples": int(labels.size)}
    variants = {"plain": logits}
    if test_prior_correction:
        test_counts = np.bincount(labels, minlength=num_classes)
        bias = class_prior.compute_test_prior_bias(test_counts)
        variants["posthoc"] = logits + bias
    for name, variant in variants.items():
        summary = scores.compute_accuracy_summary(variant, labels, class_counts)
        result["num_classes_without_test_images"] = summary[
            "num_classes_without_test_images"
        ]
        result[name] = {
            "all": summary["accuracy"],
            "many": summary["acc_many"],
            "medium": summary["acc_medium"],
            "few": summary["acc_few"],
        }
    return result
