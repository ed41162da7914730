"""Generalized logit-adjusted (gLA) cross-entropy (paper eq. 10).

`loss = -sum_c y_c * log_softmax(logits + tau * log_prior)_c`, with the
paper's `lambda = 1 - tau` (`model/loss.py`): `lambda = 1` is plain CE,
`lambda = 0` the logit-adjusted (balanced softmax) loss.
"""

import keras
from keras import ops

from balpoe_keras import class_prior
from balpoe_keras.labels import concrete_value
from balpoe_keras.labels import probability_rows
from balpoe_keras.labels import to_soft_labels


def exact_labels(y_true, num_classes, dtype):
    """`y_true` as a loss of `dtype` should see it before Keras casts it.

    `keras.losses.Loss.__call__` casts the labels to the loss dtype: in
    float16 (bfloat16) class ids above 2048 (256) round to other classes.
    For those dtypes the labels become float32 one-hot or soft rows
    `(B, C)` first, which the cast keeps exact (0 and 1).
    """
    if keras.backend.standardize_dtype(dtype) in ("float16", "bfloat16"):
        return to_soft_labels(y_true, num_classes)
    return y_true


def logit_adjusted_crossentropy(y_true, logits, log_prior, tau):
    """Per-sample gLA loss: CE of `logits + tau * log_prior`.

    Args:
        y_true: `(B,)` int class ids or `(B, C)` soft labels summing to 1.
        logits: `(B, C)` scaled logits (or `(B, M, C)` with `tau` of shape
            `(M,)`, one tau per expert).
        log_prior: `(C,)` log training prior in nats
            (`class_prior.compute_log_prior`).
        tau: float, or `(M,)` for expert logits; `tau = 1 - lambda`.

    Returns:
        `(B,)` loss values in nats (`(B, M)` for expert logits).
    """
    logits = ops.cast(logits, "float32")
    num_classes = logits.shape[-1]
    soft = to_soft_labels(y_true, num_classes)
    bias = ops.cast(log_prior, "float32")
    tau = ops.cast(ops.convert_to_tensor(tau), "float32")
    if len(logits.shape) == 3:
        bias = ops.expand_dims(tau, -1) * bias  # (M, C)
        soft = ops.expand_dims(soft, 1)  # (B, 1, C)
    else:
        bias = tau * bias
    log_probs = ops.log_softmax(logits + bias, axis=-1)
    return -ops.sum(soft * log_probs, axis=-1)


@keras.saving.register_keras_serializable(package="balpoe_keras")
class LogitAdjustedLoss(keras.losses.Loss):
    """gLA loss of a single model (paper eq. 10) on `(batch, C)` logits.

    Args:
        class_counts: `C` positive training counts (defines the prior).
        lam: float, the paper's lambda. `1.0` = plain cross-entropy,
            `0.0` = logit adjustment (balanced), `-1.0` = reversed prior.
        name: loss name.
        **kwargs: `reduction`, `dtype` of `keras.losses.Loss`.

    Call arguments:
        y_true: `(B,)` / `(B, 1)` int labels or `(B, C)` soft labels.
        y_pred: `(B, C)` logits; softmax outputs are refused where their
            values are at hand (`refuse_probabilities`).

    Returns:
        Scalar loss in nats (per-sample `(B,)` with `reduction=None`).

    Example:
        >>> model.compile(loss=LogitAdjustedLoss([500, 50, 5], lam=0.0))
    """

    def __init__(
        self, class_counts, lam=0.0, name="logit_adjusted_loss", **kwargs
    ):
        super().__init__(name=name, **kwargs)
        self.class_counts = class_prior.validate_class_counts(class_counts)
        self.lam = float(class_prior.validate_lambdas([lam], 1, True)[0])
        self._log_prior = class_prior.compute_log_prior(self.class_counts)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_true = exact_labels(y_true, len(self.class_counts), self.dtype)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        _check_num_classes(y_pred, len(self.class_counts))
        refuse_probabilities(y_pred)
        return logit_adjusted_crossentropy(
            y_true, y_pred, self._log_prior, 1.0 - self.lam
        )

    def get_config(self):
        return {
            **super().get_config(),
            "class_counts": self.class_counts,
            "lam": self.lam,
            # Keras' Loss.get_config leaves it out: a reload lost it.
            "dtype": self.dtype,
        }


def refuse_probabilities(y_pred):
    """Raises `ValueError` when `y_pred`'s values are at hand (eager steps,
    host memory) and every row is a probability distribution
    (`labels.probability_rows`: a softmax output). The losses take logits
    and apply their own log-softmax; on probabilities they would train,
    without a word, toward something else. (Logits almost never look like
    that in a whole batch.) Compiled steps are not checked."""
    if y_pred.shape[-1] is not None and y_pred.shape[-1] < 2:
        return
    rows = probability_rows(y_pred)
    every = concrete_value(ops.logical_and(ops.all(rows),
                                           ops.size(rows) > 0))
    if every is not None and bool(every):
        raise ValueError(
            "Every row of y_pred is a probability distribution (values in "
            "[0, 1] summing to 1), but the loss takes logits: it applies "
            "its own softmax after the logit adjustment. Remove the "
            "model's final softmax (e.g. Dense(C) without activation).")


def _check_num_classes(y_pred, num_classes):
    if y_pred.shape[-1] != num_classes:
        raise ValueError(
            f"The logits have {y_pred.shape[-1]} classes but class_counts "
            f"has {num_classes} entries. Build the model and the loss with "
            "the same number of classes."
        )
