"""gLA and BalPoE losses (backend-agnostic, keras.ops only)."""

from balpoe_keras.labels import to_soft_labels
from balpoe_keras.losses.balpoe_loss import BalPoELoss
from balpoe_keras.losses.logit_adjusted import LogitAdjustedLoss
from balpoe_keras.losses.logit_adjusted import logit_adjusted_crossentropy

__all__ = [
    "BalPoELoss",
    "LogitAdjustedLoss",
    "logit_adjusted_crossentropy",
    "to_soft_labels",
]
