"""Backend-agnostic BalPoE layers (keras.ops only)."""

from balpoe_keras.layers.cosine_head import CosineHead
from balpoe_keras.layers.cosine_head import UnitColumnUniform
from balpoe_keras.layers.expert_average import ExpertAverage

__all__ = ["CosineHead", "ExpertAverage", "UnitColumnUniform"]
