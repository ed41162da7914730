"""Calibration metrics: ECE, MCE and reliability-diagram bins.

Definitions follow the reference's `utils/calibration_metrics.py` (Guo et
al. 2017; Naeini et al. 2015):
confidence = max softmax probability, prediction = its argmax. The `[0, 1]`
range is split into `num_bins` equal-width bins that are **lower-exclusive,
upper-inclusive**, `(l, u]`, as in the reference: a confidence exactly on an
edge goes to the lower bin, and a confidence of exactly 0 is not binned.
`ECE = sum_b (n_b / N) |acc_b - conf_b|`, `MCE = max_b |acc_b - conf_b|`
(empty bins count 0). Values are fractions in `[0, 1]` (multiply by 100 for
the paper's %).
"""

import keras
import numpy as np
from keras import ops

from balpoe_keras.labels import class_ids
from balpoe_keras.labels import concrete_value
from balpoe_keras.labels import count_invalid_weights
from balpoe_keras.labels import count_out_of_range
from balpoe_keras.labels import host_class_ids
from balpoe_keras.labels import probability_rows
from balpoe_keras.metrics.group_accuracy import STATE_DTYPE


def check_num_bins(num_bins):
    """`num_bins` as an int >= 1, else `ValueError`."""
    if isinstance(num_bins, bool) or int(num_bins) != num_bins or (
            num_bins < 1):
        raise ValueError(f"Expected num_bins >= 1. Received: {num_bins}")
    return int(num_bins)


def _bin_edges(num_bins, dtype):
    return np.linspace(0.0, 1.0, num_bins + 1).astype(dtype)


class _CalibrationMetric(keras.metrics.Metric):
    """Streams per-bin counts, confidence sums and correct sums.

    State is three `(num_bins,)` vectors (fixed size, summed across
    devices), so it works inside compiled train steps and under
    `tf.distribute.MirroredStrategy`.
    """

    def __init__(self, num_bins=15, from_logits=False, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        self.num_bins = check_num_bins(num_bins)
        self.from_logits = bool(from_logits)
        self._interior_edges = _bin_edges(self.num_bins, "float32")[1:-1]
        kw = dict(shape=(self.num_bins,), initializer="zeros")
        kw.update(aggregation="sum", dtype=STATE_DTYPE)
        self.counts = self.add_variable(name="counts", **kw)
        self.conf_sums = self.add_variable(name="conf_sums", **kw)
        self.correct_sums = self.add_variable(name="correct_sums", **kw)
        # Rows that were not probabilities (from_logits=False only),
        # labels outside [0, C) and NaN, inf or negative sample weights:
        # the result is NaN once any was seen inside a compiled step (eager
        # steps raise).
        self.invalid_inputs = self.add_variable(
            name="invalid_inputs", shape=(), initializer="zeros",
            aggregation="sum", dtype=STATE_DTYPE)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """`y_true`: `(B,)` ids or `(B, C)` soft; `y_pred`: `(B, C)`."""
        conf, hit, bad_labels = _confidence_and_hits(
            y_true, y_pred, self.from_logits)
        invalid = bad_labels
        if sample_weight is not None:
            invalid = invalid + count_invalid_weights(sample_weight)
        if self.from_logits:
            invalid = invalid + _count_probability_batches(y_pred)
        else:
            invalid = invalid + _count_nonprobability_rows(y_pred)
        self.invalid_inputs.assign_add(ops.cast(invalid, STATE_DTYPE))
        edges = ops.convert_to_tensor(self._interior_edges)
        bins = ops.sum(
            ops.cast(ops.expand_dims(conf, -1) > edges, "int32"), axis=-1
        )
        weight = ops.cast(conf > 0.0, "float32")  # 0 is outside (0, 1].
        if sample_weight is not None:
            weight = weight * ops.reshape(
                ops.cast(sample_weight, "float32"), (-1,)
            )
        onehot = ops.one_hot(bins, self.num_bins) * ops.expand_dims(weight, -1)
        self.counts.assign_add(ops.cast(ops.sum(onehot, 0), STATE_DTYPE))
        self.conf_sums.assign_add(
            ops.cast(ops.sum(onehot * ops.expand_dims(conf, -1), 0),
                     STATE_DTYPE)
        )
        self.correct_sums.assign_add(
            ops.cast(ops.sum(onehot * ops.expand_dims(hit, -1), 0),
                     STATE_DTYPE)
        )

    def _guard(self, value):
        """NaN if invalid labels or (`from_logits=False`) non-probability
        rows were seen."""
        return ops.cast(ops.where(self.invalid_inputs > 0, float("nan"),
                                  value), self.dtype)

    def _gaps(self):
        # Exact for any non-negative sample weights (a bin's weight may be
        # below 1); empty bins give 0.
        return ops.divide_no_nan(
            ops.abs(self.correct_sums - self.conf_sums), self.counts)

    def get_config(self):
        return {
            **super().get_config(),
            "num_bins": self.num_bins,
            "from_logits": self.from_logits,
        }


@keras.saving.register_keras_serializable(package="balpoe_keras")
class ExpectedCalibrationError(_CalibrationMetric):
    """Expected calibration error of the max-softmax confidence.

    Args:
        num_bins: int >= 1, equal-width `(l, u]` bins (15 as the reference).
        from_logits: bool, True if `y_pred` are logits (softmax applied).
        name: metric name, `"ece"`.
        **kwargs: `dtype` of `keras.metrics.Metric`.

    Inputs: `y_true` `(B,)` class ids (or `(B, C)` soft labels, argmax
    taken), `y_pred` `(B, C)` probabilities or logits.
    Result: scalar fraction in `[0, 1]`.

    With `from_logits=False`, rows that are not probabilities (a value
    outside [0, 1] or a sum away from 1, e.g. logits passed by mistake)
    raise `ValueError` when the values are at hand (eager), and make the
    result NaN inside compiled steps -- never a plausible wrong number.
    With `from_logits=True`, a batch whose every row is a probability
    distribution (a softmax output passed by mistake, which a second
    softmax would flatten) is refused the same way.
    """

    def __init__(self, num_bins=15, from_logits=False, name="ece", **kwargs):
        super().__init__(num_bins, from_logits, name=name, **kwargs)

    def result(self):
        return self._guard(ops.divide_no_nan(
            ops.sum(self.counts * self._gaps()), ops.sum(self.counts)))


@keras.saving.register_keras_serializable(package="balpoe_keras")
class MaximumCalibrationError(_CalibrationMetric):
    """Maximum calibration error: the largest per-bin `|acc - conf|`.

    Same arguments, inputs and input checks as `ExpectedCalibrationError`;
    name `"mce"`. Empty bins count 0. Result: scalar fraction in `[0, 1]`.
    """

    def __init__(self, num_bins=15, from_logits=False, name="mce", **kwargs):
        super().__init__(num_bins, from_logits, name=name, **kwargs)

    def result(self):
        return self._guard(ops.max(self._gaps()))


def _confidence_and_hits(y_true, y_pred, from_logits):
    """`(B,)` max probability, `(B,)` float correctness indicator and the
    number of labels outside `[0, C)` (raises if they are concrete)."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    if len(y_pred.shape) != 2:
        raise ValueError(
            "Expected y_pred of shape (batch, num_classes). Received shape "
            f"{tuple(y_pred.shape)}. Pass the ensemble 'logits' output."
        )
    probs = ops.softmax(y_pred, axis=-1) if from_logits else y_pred
    num_classes = y_pred.shape[-1]
    labels = class_ids(y_true, num_classes)
    bad = count_out_of_range(labels, num_classes)
    pred = ops.cast(ops.argmax(probs, axis=-1), "int32")
    hit = ops.cast(ops.equal(pred, labels), "float32")
    return ops.max(probs, axis=-1), hit, bad


def _count_nonprobability_rows(y_pred):
    """Rows of `y_pred` `(B, C)` that are not probabilities (a value outside
    [0, 1], NaN included, or a sum away from 1); raises `ValueError` when
    the values are concrete (eager), else returns the count for the
    metric's NaN guard."""
    bad = ops.logical_not(probability_rows(y_pred))
    count = ops.sum(ops.cast(bad, "int32"))
    value = concrete_value(count)  # None in compiled steps: NaN instead.
    if value is not None and int(value):
        raise ValueError(
            f"{int(value)} rows of y_pred are not probabilities (values "
            "outside [0, 1] or rows not summing to 1). For logits, such as a "
            "BalPoEClassifier's outputs, create the metric with "
            "from_logits=True."
        )
    return count


def _count_probability_batches(y_pred):
    """1 if every row of the `(B, C)` `y_pred` given as logits is a
    probability distribution (values in [0, 1], rows summing to 1: a
    softmax output; logits almost never are, in a whole batch), else 0;
    raises `ValueError` when the values are concrete (eager)."""
    count = ops.cast(ops.all(probability_rows(y_pred)), "int32")
    value = concrete_value(count)  # None in compiled steps: NaN instead.
    if value is not None and int(value):
        raise ValueError(
            "Every row of y_pred is a probability distribution, but the "
            "metric was created with from_logits=True and would apply a "
            "second softmax (a confident model would look uncertain). For "
            "a softmax output, create the metric with from_logits=False.")
    return count


def check_finite(values, name):
    """Raises `ValueError` if the NumPy `(N, C)` `values` hold NaN or
    +infinity, or a row holds no finite value: scores of such outputs (a
    diverged model, a broken input) would look plausible and mean nothing.
    A -infinity among finite values is a valid logit (probability 0, as a
    test-prior correction gives the classes absent from a test set)."""
    values = np.asarray(values)
    bad = np.isnan(values) | np.isposinf(values)
    rows = np.any(bad, axis=-1) | ~np.any(np.isfinite(values), axis=-1)
    if rows.any():
        first = np.nonzero(rows)[0]
        raise ValueError(
            f"{name} holds NaN or infinite values in {first.size} of "
            f"{len(values)} rows, first rows {first[:5].tolist()}: the "
            "model diverged or was given invalid inputs, and no score of "
            "these outputs would mean anything.")


def reliability_bins(y_true, y_pred, num_bins=15, from_logits=False):
    """Per-bin statistics for a reliability diagram (NumPy).

    Uses the same `(l, u]` float32 bin edges as the streaming metrics, so
    `ece`/`mce` here equal `ExpectedCalibrationError` /
    `MaximumCalibrationError` on the same data.

    Args:
        y_true: `(N,)` int class ids or `(N, C)` soft labels.
        y_pred: `(N, C)` probabilities (or logits with `from_logits=True`).
        num_bins: int >= 1, number of equal-width bins.
        from_logits: bool.

    Raises:
        ValueError: non-finite predictions (a diverged model), rows of
            `y_pred` that are not probabilities (without `from_logits`),
            or are all probabilities (with it),
            labels not matching the predictions in number, or `num_bins`
            below 1.

    Returns:
        dict of NumPy arrays: `edges` `(num_bins + 1,)`, `confidence`,
        `accuracy` (mean per bin, 0 where empty) and `count` `(num_bins,)`,
        plus floats `ece` and `mce` (fractions).
    """
    num_bins = check_num_bins(num_bins)
    y_pred = np.asarray(y_pred, np.float32)
    if y_pred.ndim != 2:
        raise ValueError(f"Expected (N, C) predictions. Got {y_pred.shape}.")
    check_finite(y_pred, "y_pred")
    if not from_logits:
        _count_nonprobability_rows(y_pred)  # Raises here (NumPy values).
    if from_logits:
        _count_probability_batches(y_pred)  # Raises for a softmax output.
        shifted = y_pred - y_pred.max(axis=-1, keepdims=True)
        y_pred = np.exp(shifted) / np.exp(shifted).sum(-1, keepdims=True)
    num_classes = y_pred.shape[-1]
    y_true = host_class_ids(y_true, num_classes).astype(np.int64)
    if y_true.size != len(y_pred):
        raise ValueError(f"Expected {len(y_pred)} labels, one per row of "
                         f"y_pred. Received {y_true.size}.")
    conf = y_pred.max(-1).astype(np.float32)
    hit = (y_pred.argmax(-1) == y_true).astype(np.float64)
    edges = _bin_edges(num_bins, "float32")
    bins = (conf[:, None] > edges[None, 1:-1]).sum(-1)
    valid = conf > 0
    count = np.bincount(bins[valid], minlength=num_bins).astype(np.float64)
    conf_sum = np.bincount(bins[valid], conf[valid], minlength=num_bins)
    hit_sum = np.bincount(bins[valid], hit[valid], minlength=num_bins)
    denom = np.maximum(count, 1.0)
    confidence, accuracy = conf_sum / denom, hit_sum / denom
    gaps = np.abs(accuracy - confidence)
    return {
        "edges": edges.astype(np.float64),
        "confidence": confidence,
        "accuracy": accuracy,
        "count": count,
        "ece": float((count * gaps).sum() / max(count.sum(), 1.0)),
        "mce": float(gaps.max()),
    }
