"""Checks of `BalPoEClassifier.compile()`'s arguments, before any step.

The classifier hands its loss the expert logits `(B, M, C)` and its metrics
the ensemble logits `(B, C)` with class ids `(B,)`. Keras' own losses and
the metrics that expect one-hot labels or probabilities would compute
something else without a word (a one-hot metric argmaxes the class ids over
the batch), or fail deep inside the first traced step; these checks name
the problem and the fix at `compile()`.
"""

import inspect

import keras

# Metrics that read `y_true` as one-hot (or binary) labels, with what to use
# on class ids instead.
_ONE_HOT_METRICS = {
    "CategoricalAccuracy": "'sparse_categorical_accuracy' (or 'accuracy')",
    "TopKCategoricalAccuracy":
        "keras.metrics.SparseTopKCategoricalAccuracy(k)",
    "CategoricalCrossentropy":
        "keras.metrics.SparseCategoricalCrossentropy(from_logits=True)",
    "CategoricalHinge": None,
    "KLDivergence": None,
    "BinaryAccuracy": "'sparse_categorical_accuracy' (or 'accuracy')",
    "BinaryCrossentropy":
        "keras.metrics.SparseCategoricalCrossentropy(from_logits=True)",
    "BinaryIoU": None,
}
_ONE_HOT_FUNCTIONS = {
    "categorical_accuracy": "CategoricalAccuracy",
    "top_k_categorical_accuracy": "TopKCategoricalAccuracy",
    "categorical_crossentropy": "CategoricalCrossentropy",
    "categorical_hinge": "CategoricalHinge",
    "kl_divergence": "KLDivergence",
    "binary_accuracy": "BinaryAccuracy",
    "binary_crossentropy": "BinaryCrossentropy",
}
# Metrics that take probabilities unless created with `from_logits=True`.
_LOGITS_METRICS = ("SparseCategoricalCrossentropy",
                   "ExpectedCalibrationError", "MaximumCalibrationError")


def check_compile_args(loss, metrics, kwargs):
    """Raises `ValueError` for compile arguments the classifier would use
    wrongly: per-output dicts, Keras' built-in losses (they take `(B, C)`,
    not the expert logits `(B, M, C)`), metrics that expect one-hot labels,
    and probability metrics without `from_logits=True`.

    Args:
        loss: the loss given to `compile()` (after `"auto"` is resolved).
        metrics: the metrics given to `compile()` (after `"auto"`).
        kwargs: the other `compile()` keyword arguments.
    """
    for key, value in (("loss", loss), ("metrics", metrics),
                       ("weighted_metrics", kwargs.get("weighted_metrics")),
                       ("loss_weights", kwargs.get("loss_weights"))):
        if isinstance(value, dict):
            raise ValueError(
                f"BalPoEClassifier.compile() takes one {key}, not a dict per "
                f"output: the loss applies to the expert logits and the "
                f"metrics to the ensemble logits. Received: {key}={value!r}"
            )
    _check_loss(loss)
    for key in ("metrics", "weighted_metrics"):
        value = metrics if key == "metrics" else kwargs.get(key)
        if value is None:
            continue
        items = value if isinstance(value, (list, tuple)) else [value]
        for item in items:
            _check_metric(key, item)


def _is_keras_own(obj):
    """True for Keras' built-in losses (instances, wrappers, functions)."""
    if isinstance(obj, keras.losses.Loss) and inspect.isfunction(
            getattr(obj, "fn", None)):
        obj = obj.fn  # A Keras loss class wrapping its loss function.
    owner = obj if inspect.isfunction(obj) else type(obj)
    return (getattr(owner, "__module__", "") or "").split(".")[0] == "keras"


def _check_loss(loss):
    if loss is None:
        return
    if isinstance(loss, str) or _is_keras_own(loss):
        name = loss if isinstance(loss, str) else getattr(
            loss, "name", None) or getattr(loss, "__name__", repr(loss))
        raise ValueError(
            f"BalPoEClassifier's loss receives the expert logits (batch, "
            f"M, C), which Keras' built-in loss {name!r} does not take. Use "
            f"loss='auto' (BalPoELoss with the model's class counts and "
            f"lambdas; lambda = 1 for every expert is plain cross-entropy: "
            f"BalPoELoss(class_counts, [1.0] * M, allow_unbalanced=True)), "
            f"or a loss of your own written for (batch, M, C) logits."
        )


def _check_metric(key, metric):
    if isinstance(metric, str):
        if metric in ("accuracy", "acc"):
            return  # Keras resolves it to sparse accuracy on class ids.
        if metric in ("crossentropy", "ce"):
            raise ValueError(
                f"{key}={metric!r} would read BalPoEClassifier's logits as "
                f"probabilities. Use keras.metrics.SparseCategoricalCrossen"
                f"tropy(from_logits=True)."
            )
        try:
            metric = keras.metrics.get(metric)
        except ValueError:
            return  # Keras names the unknown identifier itself.
    if isinstance(metric, keras.metrics.Metric):
        kind = type(metric).__name__
    else:
        kind = _ONE_HOT_FUNCTIONS.get(getattr(metric, "__name__", ""))
        if kind is None and getattr(metric, "__name__", "") == (
                "sparse_categorical_crossentropy"):
            kind = "SparseCategoricalCrossentropy"
            metric = None  # The bare function has from_logits=False.
    if kind in _ONE_HOT_METRICS:
        fix = _ONE_HOT_METRICS[kind]
        raise ValueError(
            f"BalPoEClassifier's metrics receive class ids (batch,), not "
            f"one-hot labels; {kind} would argmax them over the batch and "
            f"report a wrong number. "
            + (f"Use {fix}. " if fix else
               "Use a metric that takes class ids (a Sparse* metric). ")
            + f"Received: {key} entry {metric!r}"
        )
    if kind in _LOGITS_METRICS and not _from_logits(metric):
        raise ValueError(
            f"BalPoEClassifier's metrics receive logits; {kind} was created "
            f"for probabilities (from_logits=False) and would report NaN or "
            f"a wrong number. Create it with from_logits=True."
        )


def _from_logits(metric):
    if metric is None:
        return False
    if hasattr(metric, "from_logits"):
        return bool(metric.from_logits)
    return bool(getattr(metric, "_fn_kwargs", {}).get("from_logits", False))
