"""Class-balanced accuracies: balanced (mean per-class) and shot groups."""

import keras
import numpy as np
from keras import ops

from balpoe_keras import class_prior
from balpoe_keras.labels import class_ids
from balpoe_keras.labels import count_invalid_weights
from balpoe_keras.labels import count_out_of_range

# The metrics' counts and sums, whatever the metric's dtype: in bfloat16
# (float16) a count stops growing at 256 (2048).
STATE_DTYPE = "float32"


def per_class_counts(labels, predictions, num_classes, sample_weight=None):
    """Weighted hits and samples of each class: the state of the metrics.

    Args:
        labels: `(B,)` int class ids in `[0, C)`.
        predictions: `(B,)` int predicted class ids.
        num_classes: int `C`.
        sample_weight: optional `(B,)` non-negative weights.

    Returns:
        `(correct, total)`: two `(C,)` float32 tensors.
    """
    onehot = ops.one_hot(ops.cast(labels, "int32"), num_classes)
    if sample_weight is not None:
        weight = ops.reshape(ops.cast(sample_weight, "float32"), (-1, 1))
        onehot = onehot * weight
    hit = ops.equal(ops.cast(predictions, "int32"), ops.cast(labels, "int32"))
    hit = ops.expand_dims(ops.cast(hit, "float32"), 1)
    return ops.sum(onehot * hit, 0), ops.sum(onehot, 0)


def mean_class_accuracy(correct, total, mask=None):
    """Mean per-class accuracy `correct_c / total_c` (a fraction) over the
    classes with `total_c > 0` (and `mask_c` set); 0 when there is none.

    Args:
        correct, total: `(C,)` from `per_class_counts`, summed over
            batches.
        mask: optional `(C,)` 0/1 floats, the classes of a shot group.
    """
    seen = ops.cast(total > 0, correct.dtype)
    if mask is not None:
        seen = seen * ops.cast(mask, correct.dtype)
    # Exact for any non-negative sample weights (a class's total may be
    # below 1).
    accuracy = ops.divide_no_nan(correct, total)
    return ops.divide_no_nan(ops.sum(accuracy * seen), ops.sum(seen))


class _PerClassAccuracy(keras.metrics.Metric):
    """Streams per-class correct counts and totals: two `(C,)` vectors."""

    def __init__(self, num_classes, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(f"Expected num_classes >= 2. Got {num_classes}.")
        self.num_classes = int(num_classes)
        kw = dict(shape=(self.num_classes,), initializer="zeros")
        kw.update(aggregation="sum", dtype=STATE_DTYPE)
        self.correct = self.add_variable(name="correct", **kw)
        self.total = self.add_variable(name="total", **kw)
        # Labels outside [0, C) and NaN, inf or negative sample weights
        # seen in compiled steps (eager ones raise): the result is then NaN.
        self.invalid_labels = self.add_variable(
            name="invalid_labels", shape=(), initializer="zeros",
            aggregation="sum", dtype=STATE_DTYPE)

    def update_state(self, y_true, y_pred, sample_weight=None):
        """`y_true`: `(B,)` ids or `(B, C)` soft; `y_pred`: `(B, C)`."""
        if len(y_pred.shape) != 2:
            raise ValueError(
                "Expected y_pred of shape (batch, num_classes). Received "
                f"shape {tuple(y_pred.shape)}. Pass the ensemble 'logits' "
                "output.")
        if y_pred.shape[-1] != self.num_classes:
            raise ValueError(
                f"{self.name} was built for {self.num_classes} classes but "
                f"y_pred has shape {tuple(y_pred.shape)}."
            )
        labels = class_ids(y_true, self.num_classes)
        invalid = count_out_of_range(labels, self.num_classes)
        if sample_weight is not None:
            invalid = invalid + count_invalid_weights(sample_weight)
        self.invalid_labels.assign_add(ops.cast(invalid, STATE_DTYPE))
        correct, total = per_class_counts(
            labels, ops.argmax(y_pred, axis=-1), self.num_classes,
            sample_weight)
        self.total.assign_add(ops.cast(total, STATE_DTYPE))
        self.correct.assign_add(ops.cast(correct, STATE_DTYPE))

    def _mean_accuracy(self, mask):
        """Mean per-class accuracy over `mask` classes seen at least once."""
        value = mean_class_accuracy(self.correct, self.total, mask)
        return ops.cast(ops.where(self.invalid_labels > 0, float("nan"),
                                  value), self.dtype)


@keras.saving.register_keras_serializable(package="balpoe_keras")
class BalancedAccuracy(_PerClassAccuracy):
    """Balanced accuracy: the mean of per-class recalls.

    Classes with no samples seen so far are left out of the mean (the
    reference's `test.py` computes it on the balanced test set, where every
    class is present).

    Args:
        num_classes: int >= 2.
        name: metric name, `"balanced_accuracy"`.

    Inputs: `y_true` `(B,)` class ids (or `(B, C)` soft labels, argmax
    taken); `y_pred` `(B, C)` logits or probabilities. Result: fraction.
    """

    def __init__(self, num_classes, name="balanced_accuracy", **kwargs):
        super().__init__(num_classes, name=name, **kwargs)

    def result(self):
        return self._mean_accuracy(ops.ones((self.num_classes,), STATE_DTYPE))

    def get_config(self):
        return {**super().get_config(), "num_classes": self.num_classes}


@keras.saving.register_keras_serializable(package="balpoe_keras")
class GroupAccuracy(_PerClassAccuracy):
    """Mean per-class accuracy over the many-, medium- or few-shot classes.

    Groups come from the *training* counts: many `n_c > 100`, medium
    `20 <= n_c <= 100`, few `n_c < 20` (the reference's `test.py`).

    Args:
        class_counts: `C` positive training counts.
        group: one of `"many"`, `"medium"`, `"few"`.
        name: metric name, default `"acc_<group>"`.
        **kwargs: `keras.metrics.Metric` arguments (`dtype`: of the result;
            the counts are summed in float32 whatever it is).

    Inputs: `y_true` `(B,)` / `(B, 1)` class ids (or `(B, C)` one-hot or
    soft labels, argmax taken); `y_pred` `(B, C)` logits or probabilities;
    optional `sample_weight` `(B,)` finite and >= 0. Result: a fraction.

    Raises:
        ValueError: if the group has no classes (e.g. few-shot on
            CIFAR-10-LT); such a metric would have no value, so do not add
            it (the evaluation report lists empty groups as null).
    """

    def __init__(self, class_counts, group, name=None, **kwargs):
        self.class_counts = class_prior.validate_class_counts(class_counts)
        if group not in class_prior.SHOT_GROUPS:
            raise ValueError(
                f"Expected group in {class_prior.SHOT_GROUPS}. Received: "
                f"group={group!r}"
            )
        mask = class_prior.compute_shot_groups(self.class_counts)[group]
        if not mask.any():
            raise ValueError(
                f"The {group!r}-shot group has no classes for these training "
                f"counts (min {min(self.class_counts)}, max "
                f"{max(self.class_counts)}), so its accuracy is undefined. "
                "Leave this metric out for this dataset."
            )
        self.group = group
        self._mask = mask.astype(np.float32)
        super().__init__(
            len(self.class_counts), name=name or f"acc_{group}", **kwargs
        )

    def result(self):
        return self._mean_accuracy(ops.convert_to_tensor(self._mask))

    def get_config(self):
        return {
            **super().get_config(),
            "class_counts": self.class_counts,
            "group": self.group,
        }
