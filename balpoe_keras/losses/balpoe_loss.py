"""BalPoE loss: the mean over experts of each expert's gLA loss (eq. 12)."""

import keras
from keras import ops

from balpoe_keras import class_prior
from balpoe_keras.losses.logit_adjusted import _check_num_classes
from balpoe_keras.losses.logit_adjusted import exact_labels
from balpoe_keras.losses.logit_adjusted import logit_adjusted_crossentropy
from balpoe_keras.losses.logit_adjusted import refuse_probabilities


@keras.saving.register_keras_serializable(package="balpoe_keras")
class BalPoELoss(keras.losses.Loss):
    """Balanced product-of-experts loss on stacked expert logits.

    Expert `m` with logits `z_m` and `tau_m = 1 - lambda_m` contributes
    `CE(y, z_m + tau_m * log(pi + 1e-9))`; the loss is the plain mean over
    the `M` experts (the reference's `model/loss.py`, paper eq. 12). With
    Mixup's soft labels
    this equals the reference's `lam * L(y) + (1 - lam) * L(y_perm)`.

    Args:
        class_counts: `C` positive training counts `n_c`.
        lambdas: `M` per-expert lambdas (head expert first). Must average
            to 0 (Fisher consistency, Corollary 1.1) unless
            `allow_unbalanced=True`.
        allow_unbalanced: bool, opt out of the mean-zero check (the
            reference's ImageNet-LT lambdas {1, -0.25, -1.5} average -0.25).
        name: loss name.
        **kwargs: `reduction`, `dtype` of `keras.losses.Loss`.

    Call arguments:
        y_true: `(B,)` / `(B, 1)` int labels or `(B, C)` soft labels.
        y_pred: `(B, M, C)` expert logits (the model's `"expert_logits"`);
            softmax outputs are refused where their values are at hand.

    Returns:
        Scalar loss in nats (per-sample `(B,)` with `reduction=None`).
    """

    def __init__(
        self,
        class_counts,
        lambdas=(1.0, 0.0, -1.0),
        allow_unbalanced=False,
        name="balpoe_loss",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        self.class_counts = class_prior.validate_class_counts(class_counts)
        self.allow_unbalanced = bool(allow_unbalanced)
        self.lambdas = class_prior.validate_lambdas(
            lambdas, allow_unbalanced=self.allow_unbalanced
        )
        self._log_prior = class_prior.compute_log_prior(self.class_counts)
        self._taus = class_prior.lambdas_to_taus(self.lambdas)

    def __call__(self, y_true, y_pred, sample_weight=None):
        y_true = exact_labels(y_true, len(self.class_counts), self.dtype)
        return super().__call__(y_true, y_pred, sample_weight)

    def call(self, y_true, y_pred):
        refuse_probabilities(y_pred)
        return ops.mean(self.expert_losses(y_true, y_pred), axis=-1)

    def expert_losses(self, y_true, y_pred):
        """Per-sample, per-expert gLA losses: `(B, M)` in nats."""
        if len(y_pred.shape) != 3 or y_pred.shape[1] != len(self.lambdas):
            raise ValueError(
                "BalPoELoss expects expert logits of shape (batch, "
                f"{len(self.lambdas)}, {len(self.class_counts)}) (one slice "
                f"per lambda). Received shape {tuple(y_pred.shape)}. Use the "
                "model's 'expert_logits' output and one lambda per expert."
            )
        _check_num_classes(y_pred, len(self.class_counts))
        return logit_adjusted_crossentropy(
            y_true, y_pred, self._log_prior, self._taus
        )

    def get_config(self):
        return {
            **super().get_config(),
            "class_counts": self.class_counts,
            "lambdas": self.lambdas,
            "allow_unbalanced": self.allow_unbalanced,
            # Keras' Loss.get_config leaves it out: a reload lost it.
            "dtype": self.dtype,
        }
