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
    for item in _flat(loss):
        _check_loss(item)
    for key in ("metrics", "weighted_metrics"):
        value = metrics if key == "metrics" else kwargs.get(key)
        for item in _flat(value):
            _check_metric(key, item)


def _flat(value):
    """The items of a compile argument as Keras reads one output's: nested
    lists flattened, `None` dropped."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in keras.tree.flatten(list(value)) if v is not None]
    return [value]


def _from_keras(obj):
    """True for an object (or class, or function) defined in Keras."""
    owner = obj if inspect.isfunction(obj) or inspect.isclass(obj) else (
        type(obj))
    return (getattr(owner, "__module__", "") or "").split(".")[0] == "keras"


def _check_loss(loss):
    if inspect.isclass(loss):
        builtin = _from_keras(loss)
    elif isinstance(loss, str):
        builtin = True  # Keras resolves a name to one of its own losses.
    elif type(loss).__name__ == "LossFunctionWrapper" and callable(
            getattr(loss, "fn", None)):
        builtin = _from_keras(loss.fn)  # Keras' wrapper of a function.
    else:
        builtin = _from_keras(loss)  # A Keras instance or function.
    if not builtin:
        return  # The user's own (also a subclass of a Keras loss).
    name = loss if isinstance(loss, str) else getattr(
        loss, "name", None) or getattr(loss, "__name__", repr(loss))
    raise ValueError(
        f"BalPoEClassifier's loss receives the expert logits (batch, M, C), "
        f"which Keras' built-in loss {name!r} does not take. Use "
        f"loss='auto' (BalPoELoss with the model's class counts and "
        f"lambdas; lambda = 1 for every expert is plain cross-entropy: "
        f"BalPoELoss(class_counts, [1.0] * M, allow_unbalanced=True)), or a "
        f"loss of your own written for (batch, M, C) logits."
    )


def _check_metric(key, metric):
    if isinstance(metric, str):
        if metric.lower() in ("accuracy", "acc"):
            return  # Keras resolves it to sparse accuracy on class ids.
        if metric.lower() in ("crossentropy", "ce"):
            raise ValueError(
                f"{key}={metric!r}: Keras reads 'crossentropy' as a loss "
                f"name, not a metric's. For the cross-entropy of "
                f"BalPoEClassifier's logits use keras.metrics."
                f"SparseCategoricalCrossentropy(from_logits=True)."
            )
    if isinstance(metric, (str, dict)) or inspect.isclass(metric):
        try:
            metric = keras.metrics.get(metric)
        except (ValueError, TypeError):
            return  # Keras names the identifier it cannot read itself.
    kind = _kind(metric)
    if kind in _ONE_HOT_METRICS:
        fix = _ONE_HOT_METRICS[kind]
        what = ("would argmax them over the batch" if "Categorical" in kind
                and "Crossentropy" not in kind else "would read them as "
                "one-hot or binary targets")
        raise ValueError(
            f"BalPoEClassifier's metrics receive class ids (batch,), not "
            f"one-hot labels; {kind} {what} and report a wrong number. "
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


def _kind(metric):
    """The Keras or balpoe_keras metric class name `metric` is (an instance
    or a Keras metric function), else None: a metric of the user's own
    is theirs to define."""
    if isinstance(metric, keras.metrics.Metric):
        module = type(metric).__module__.split(".")[0]
        return type(metric).__name__ if module in (
            "keras", "balpoe_keras") else None
    if not _from_keras(metric):
        return None
    name = getattr(metric, "__name__", "")
    if name == "sparse_categorical_crossentropy":
        return "SparseCategoricalCrossentropy"  # from_logits=False.
    return _ONE_HOT_FUNCTIONS.get(name)


def _from_logits(metric):
    if not isinstance(metric, keras.metrics.Metric):
        return False  # A bare function takes probabilities.
    if hasattr(metric, "from_logits"):
        return bool(metric.from_logits)
    return bool(getattr(metric, "_fn_kwargs", {}).get("from_logits", False))
