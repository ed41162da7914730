"""Training: per-epoch LR schedules, PyTorch-exact SGD, data parallelism,
mixed precision and a resumable `fit` loop.

Backend-agnostic; TensorFlow is imported only inside the TF-specific
functions of `distribute` (`get_strategy`).
"""

from balpoe_keras.data.batching import compute_steps_per_epoch
from balpoe_keras.optimizers import CosineEpochSchedule
from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.optimizers import WarmupStepSchedule
from balpoe_keras.training.callbacks import EpochCSVLogger
from balpoe_keras.training.callbacks import ImagesPerSecond
from balpoe_keras.training.callbacks import LearningRateLogger
from balpoe_keras.training.checkpoint import CheckpointManager
from balpoe_keras.training.compiling import cpu_has_bfloat16
from balpoe_keras.training.compiling import mixed_precision_scope
from balpoe_keras.training.compiling import resolve_mixed_precision
from balpoe_keras.training.distribute import data_parallel_scope
from balpoe_keras.training.distribute import get_data_parallel
from balpoe_keras.training.distribute import get_strategy
from balpoe_keras.training.distribute import validate_global_batch_size
from balpoe_keras.training.distribute import validate_strategy
from balpoe_keras.training.fit import FitResult
from balpoe_keras.training.fit import fit

__all__ = [
    "CheckpointManager",
    "CosineEpochSchedule",
    "EpochCSVLogger",
    "FitResult",
    "ImagesPerSecond",
    "LearningRateLogger",
    "TorchSGD",
    "WarmupStepSchedule",
    "compute_steps_per_epoch",
    "cpu_has_bfloat16",
    "data_parallel_scope",
    "fit",
    "get_data_parallel",
    "get_strategy",
    "mixed_precision_scope",
    "resolve_mixed_precision",
    "validate_global_batch_size",
    "validate_strategy",
]
