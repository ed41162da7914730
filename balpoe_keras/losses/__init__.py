"""gLA and BalPoE losses (backend-agnostic, keras.ops only)."""

from balpoe_keras.losses.balpoe_loss import BalPoELoss
from balpoe_keras.losses.logit_adjusted import LogitAdjustedLoss
from balpoe_keras.losses.logit_adjusted import logit_adjusted_crossentropy
from balpoe_keras.losses.logit_adjusted import to_soft_labels

__all__ = [
    "BalPoELoss",
    "LogitAdjustedLoss",
    "logit_adjusted_crossentropy",
    "to_soft_labels",
]
