"""balpoe_keras: Balanced Product of Experts (BalPoE) in Keras 3.

Backend-agnostic core (layers, losses, metrics, model builders) is imported
eagerly and never imports TensorFlow. TensorFlow-only subpackages
(`balpoe_keras.data`, `balpoe_keras.export`) load on first attribute access.

"The reference" in docstrings is the authors' public PyTorch code,
github.com/emasa/BalPoE-CalibratedLT (commit ca607ae); file names such as
`model/loss.py` are paths in it.
"""

import contextlib
import importlib
import os
import sys


def _is_quiet_command_line_tool():
    """True for `python -m balpoe_keras.experiments.<tool>` runs without
    `--verbosity`/`-v` >= 0 (absl's flag: 0 = INFO, 1 = DEBUG)."""
    argv = list(getattr(sys, "orig_argv", ()))
    if "-m" not in argv[:-1]:
        return False
    if not argv[argv.index("-m") + 1].startswith("balpoe_keras.experiments"):
        return False
    return not any(a.startswith(("--verbosity", "-v")) and not a.endswith(
        ("=-1", "=-2", "=-3")) for a in argv)


@contextlib.contextmanager
def _stderr_silenced(enabled):
    """Sends file descriptor 2 to /dev/null while importing TensorFlow.

    TensorFlow 2.19+ prints C++ INFO lines at import that its
    `TF_CPP_MIN_LOG_LEVEL` no longer silences (tensorflow/tensorflow
    #100442). The command-line tools import this package, and with it keras
    and TensorFlow, before their own code runs, so their quiet default is
    applied here, and only for them; Python errors still surface (they are
    raised after stderr is restored).
    """
    if not enabled:
        yield
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 2)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# TensorFlow turns on its oneDNN CPU kernels by default only on some CPUs;
# on this project's AVX2 CPUs they train the ResNet-32 about 2x faster
# (benchmarks/RESULTS.md). TensorFlow reads the variable once, when it is
# imported, and importing keras imports TensorFlow on the TF backend, so this
# must run before the imports below. `setdefault`: TF_ENABLE_ONEDNN_OPTS=0
# still wins; no effect if TensorFlow was imported before balpoe_keras.
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")

with _stderr_silenced(_is_quiet_command_line_tool()):
    import keras  # noqa: E402,F401

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
from balpoe_keras.metrics import ExpertLoss  # noqa: E402
from balpoe_keras.metrics import GroupAccuracy  # noqa: E402
from balpoe_keras.metrics import MaximumCalibrationError  # noqa: E402
from balpoe_keras.models import BalPoEClassifier  # noqa: E402
from balpoe_keras.models import add_balpoe_heads  # noqa: E402
from balpoe_keras.models import balpoe_targets  # noqa: E402
from balpoe_keras.models import build_balpoe_backbone  # noqa: E402
from balpoe_keras.models import build_balpoe_classifier  # noqa: E402
from balpoe_keras.models import build_balpoe_resnet  # noqa: E402

# Compiled models save their optimizer (TorchSGD) and its LR schedule in
# their `.keras` files: importing these two modules registers both for
# `keras.saving.load_model`. (`training` itself is not exported.)
from balpoe_keras.training import optimizers as _optimizers  # noqa: E402,F401
from balpoe_keras.training import schedules as _schedules  # noqa: E402,F401
from balpoe_keras.version import __version__  # noqa: E402

_LAZY_SUBMODULES = ("data", "export")

__all__ = [
    "BalPoEClassifier",
    "BalPoELoss",
    "BalancedAccuracy",
    "CosineHead",
    "ExpectedCalibrationError",
    "ExpertAverage",
    "ExpertLoss",
    "GroupAccuracy",
    "LogitAdjustedLoss",
    "MaximumCalibrationError",
    "__version__",
    "add_balpoe_heads",
    "balpoe_targets",
    "build_balpoe_backbone",
    "build_balpoe_classifier",
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
