"""balpoe_keras: Balanced Product of Experts (BalPoE) in Keras 3.

Backend-agnostic core (layers, losses, metrics, model builders) is imported
eagerly and never imports TensorFlow. TensorFlow-only subpackages
(`balpoe_keras.data`, `balpoe_keras.export`) load on first attribute access.
"""

import importlib

from balpoe_keras import layers
from balpoe_keras import losses
from balpoe_keras import metrics
from balpoe_keras import models
from balpoe_keras.layers import CosineHead
from balpoe_keras.layers import ExpertAverage
from balpoe_keras.losses import BalPoELoss
from balpoe_keras.losses import LogitAdjustedLoss
from balpoe_keras.losses import logit_adjusted_crossentropy
from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import GroupAccuracy
from balpoe_keras.metrics import MaximumCalibrationError
from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.models import balpoe_targets
from balpoe_keras.models import build_balpoe_resnet
from balpoe_keras.version import __version__

_LAZY_SUBMODULES = ("data", "export")

__all__ = [
    "BalPoELoss",
    "BalancedAccuracy",
    "CosineHead",
    "ExpectedCalibrationError",
    "ExpertAverage",
    "GroupAccuracy",
    "LogitAdjustedLoss",
    "MaximumCalibrationError",
    "__version__",
    "add_balpoe_heads",
    "balpoe_targets",
    "build_balpoe_resnet",
    "layers",
    "logit_adjusted_crossentropy",
    "losses",
    "metrics",
    "models",
]


def __getattr__(name):
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"balpoe_keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'balpoe_keras' has no attribute {name!r}")
