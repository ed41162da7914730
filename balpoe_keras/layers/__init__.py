"""BalPoE layers (keras.ops; `BatchNorm` and `Conv2D` use TensorFlow /
PyTorch kernels where they apply: `fast_path`, `*_fast_path.py`)."""

from balpoe_keras.layers.batch_norm import BatchNorm
from balpoe_keras.layers.conv import Conv2D
from balpoe_keras.layers.cosine_head import CosineHead
from balpoe_keras.layers.cosine_head import UnitColumnUniform
from balpoe_keras.layers.expert_average import ExpertAverage

__all__ = ["BatchNorm", "Conv2D", "CosineHead", "ExpertAverage",
           "UnitColumnUniform"]
