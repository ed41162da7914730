"""BalPoE layers (keras.ops; `BatchNorm` adds a fused TensorFlow kernel)."""

from balpoe_keras.layers.batch_norm import BatchNorm
from balpoe_keras.layers.cosine_head import CosineHead
from balpoe_keras.layers.cosine_head import UnitColumnUniform
from balpoe_keras.layers.expert_average import ExpertAverage

__all__ = ["BatchNorm", "CosineHead", "ExpertAverage", "UnitColumnUniform"]
