"""balpoe_keras: Balanced Product of Experts (BalPoE) in Keras 3.

Backend-agnostic core (layers, losses, metrics, model builders) is imported
eagerly and never imports TensorFlow. TensorFlow-only subpackages
(`balpoe_keras.data`, `balpoe_keras.export`) load on first attribute access.
"""

import importlib
import os

# TensorFlow turns on its oneDNN CPU kernels by default only on some CPUs;
# on this project's AVX2 CPUs they train the ResNet-32 about 2x faster
# (benchmarks/RESULTS.md). TensorFlow reads the variable once, when it is
# imported, and importing keras imports TensorFlow on the TF backend, so this
# must run before the imports below. `setdefault`: TF_ENABLE_ONEDNN_OPTS=0
# still wins; no effect if TensorFlow was imported before balpoe_keras.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

from balpoe_keras import layers  # noqa: E402
from balpoe_keras import losses  # noqa: E402
from balpoe_keras import metrics  # noqa: E402
from balpoe_keras import models  # noqa: E402
from balpoe_keras.layers import CosineHead  # noqa: E402
from balpoe_keras.layers import ExpertAverage  # noqa: E402
from balpoe_keras.losses import BalPoELoss  # noqa: E402
from balpoe_keras.losses import LogitAdjustedLoss  # noqa: E402
from balpoe_keras.losses import logit_adjusted_crossentropy  # noqa: E402
from balpoe_keras.metrics import BalancedAccuracy  # noqa: E402
from balpoe_keras.metrics import ExpectedCalibrationError  # noqa: E402
from balpoe_keras.metrics import GroupAccuracy  # noqa: E402
from balpoe_keras.metrics import MaximumCalibrationError  # noqa: E402
from balpoe_keras.models import add_balpoe_heads  # noqa: E402
from balpoe_keras.models import balpoe_targets  # noqa: E402
from balpoe_keras.models import build_balpoe_resnet  # noqa: E402
from balpoe_keras.version import __version__  # noqa: E402

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
