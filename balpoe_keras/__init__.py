"""balpoe_keras: Balanced Product of Experts (BalPoE) in Keras 3.

The backend-agnostic core (layers, losses, metrics, model builders) never
imports TensorFlow. `import balpoe_keras` imports it, which registers every
serializable class (so `.keras` files load after this import alone), and
changes no environment variable and no file descriptor. The input package
(`balpoe_keras.data`) and the SavedModel exporter (`balpoe_keras.export`)
load on first attribute access.

The command-line tools (`python -m balpoe_keras.experiments.run`, ...)
choose TensorFlow's start-up settings and quiet its start-up logging before
Keras is imported (`balpoe_keras.experiments.cli`). So that they can, the
core is imported by the tool itself while Python is still locating it (it
sets `sys.argv[0]` to `"-m"` then); every name below resolves on first use
in that case too.

"The reference" in docstrings is the authors' public PyTorch code,
github.com/emasa/BalPoE-CalibratedLT (commit ca607ae); file names such as
`model/loss.py` are paths in it.
"""

import importlib
import sys

from balpoe_keras.version import __version__  # noqa: F401

# Public name -> the module that defines it.
_API = {
    "CosineHead": "balpoe_keras.layers",
    "ExpertAverage": "balpoe_keras.layers",
    "BalPoELoss": "balpoe_keras.losses",
    "LogitAdjustedLoss": "balpoe_keras.losses",
    "logit_adjusted_crossentropy": "balpoe_keras.losses",
    "BalancedAccuracy": "balpoe_keras.metrics",
    "ExpectedCalibrationError": "balpoe_keras.metrics",
    "GroupAccuracy": "balpoe_keras.metrics",
    "TorchSGD": "balpoe_keras.optimizers",
    "ExpertLoss": "balpoe_keras.metrics",
    "MaximumCalibrationError": "balpoe_keras.metrics",
    "BalPoEClassifier": "balpoe_keras.models",
    "add_balpoe_heads": "balpoe_keras.models",
    "build_balpoe_backbone": "balpoe_keras.models",
    "build_balpoe_classifier": "balpoe_keras.models",
}
# Every serializable class lives in these; compiled models also save their
# optimizer (TorchSGD) and LR schedule, hence `optimizers`.
_CORE = ("layers", "losses", "metrics", "optimizers", "models")
_LAZY_SUBMODULES = ("data", "export")

__all__ = sorted(["__version__", *_API, *_CORE])


_core = {"loading": False, "loaded": False}


def _load_core():
    """Imports the core (registering its classes); binds the API names."""
    if _core["loading"] or _core["loaded"]:
        return
    _core["loading"] = True
    try:
        _import_core(globals())
        _core["loaded"] = True
    finally:
        _core["loading"] = False


def _import_core(namespace):
    for name in _CORE:
        namespace[name] = importlib.import_module(f"balpoe_keras.{name}")
    for name, module in _API.items():
        namespace[name] = getattr(importlib.import_module(module), name)


def __getattr__(name):
    if (name in _API or name in _CORE) and not _core["loading"]:
        _load_core()
        return globals()[name]
    if name in _LAZY_SUBMODULES:
        module = importlib.import_module(f"balpoe_keras.{name}")
        globals()[name] = module
        return module
    raise AttributeError(f"module 'balpoe_keras' has no attribute {name!r}")


def _locating_a_tool():
    """True while `python -m balpoe_keras.<...>` locates its module."""
    argv = list(getattr(sys, "orig_argv", ()))
    return (sys.argv[:1] == ["-m"] and "-m" in argv[:-1]
            and argv[argv.index("-m") + 1].startswith("balpoe_keras."))


if not _locating_a_tool():
    _load_core()
