"""`ExpertLoss`: the running mean of one expert's gLA loss (a metric)."""

import keras

from balpoe_keras import class_prior
from balpoe_keras.losses import logit_adjusted_crossentropy
from balpoe_keras.metrics.group_accuracy import STATE_DTYPE


@keras.saving.register_keras_serializable(package="balpoe_keras")
class ExpertLoss(keras.metrics.Mean):
    """Running mean of one expert's gLA loss, for per-expert logging.

    `BalPoEClassifier` reports one per expert as `expert_<i>_loss` (the
    reference's `loss_e_i`, `--track_expert_losses`).

    Args:
        expert_index: int, which expert `m` (0 = head expert).
        class_counts: `C` positive training counts.
        lambdas: the `M` per-expert lambdas of the model's `BalPoELoss`.
        name: metric name; default `expert_<i>_loss`.
        dtype: dtype of the result (the running sums are float32).

    Call arguments (`update_state`):
        y_true: `(B,)` int labels or `(B, C)` soft labels.
        y_pred: `(B, M, C)` expert logits.
        sample_weight: optional `(B,)` weights.

    Returns (`result()`): the mean of the weighted losses in nats,
    `sum(w * loss) / N` over the `N` samples seen: Keras' loss reduction
    (`"sum_over_batch_size"`), so a model's `loss` is the mean of its
    experts' with any `sample_weight` (not `sum(w * loss) / sum(w)`).
    """

    def __init__(
        self, expert_index, class_counts, lambdas, name=None, dtype=None
    ):
        lambdas = class_prior.validate_lambdas(lambdas, allow_unbalanced=True)
        if not 0 <= int(expert_index) < len(lambdas):
            raise ValueError(
                f"expert_index={expert_index} is out of range for "
                f"{len(lambdas)} lambdas. Use 0 <= expert_index < "
                f"{len(lambdas)}."
            )
        expert_index = int(expert_index)
        name = name or f"expert_{expert_index}_loss"
        # Sums and count in float32 whatever the dtype (a bfloat16 count
        # stops at 256); `result()` in `dtype`.
        super().__init__(name=name, dtype=STATE_DTYPE)
        self._result_dtype = keras.backend.standardize_dtype(
            dtype or keras.config.floatx())
        self.expert_index = expert_index
        self.class_counts = class_prior.validate_class_counts(class_counts)
        self.lambdas = lambdas
        self._log_prior = class_prior.compute_log_prior(self.class_counts)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) != 3 or y_pred.shape[1] != len(self.lambdas):
            raise ValueError(
                f"ExpertLoss expects (batch, {len(self.lambdas)}, C) expert "
                f"logits; received shape {tuple(y_pred.shape)}. Attach it to "
                "the 'expert_logits' output."
            )
        logits = y_pred[:, self.expert_index, :]
        tau = class_prior.lambdas_to_taus(self.lambdas)[self.expert_index]
        values = logit_adjusted_crossentropy(
            y_true, logits, self._log_prior, tau
        )
        if sample_weight is not None:
            weights = keras.ops.convert_to_tensor(sample_weight, values.dtype)
            values = values * keras.ops.reshape(weights, (-1,))
        return super().update_state(values)

    def result(self):
        return keras.ops.cast(super().result(), self._result_dtype)

    def get_config(self):
        return {
            "expert_index": self.expert_index,
            "class_counts": self.class_counts,
            "lambdas": self.lambdas,
            "name": self.name,
            "dtype": self._result_dtype,
        }
