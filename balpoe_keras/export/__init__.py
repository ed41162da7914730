"""TF-only: SavedModel export of BalPoE models for TF Serving.

Imports TensorFlow; `balpoe_keras.export` is loaded lazily by
`balpoe_keras`, so the backend-agnostic core never needs TensorFlow.
"""

from balpoe_keras.tensorflow_check import is_tensorflow_installed

if not is_tensorflow_installed():
    raise ModuleNotFoundError(
        "balpoe_keras.export writes TensorFlow SavedModels and needs "
        "TensorFlow: pip install 'balpoe_keras[tf]' (a model trained on JAX "
        "or PyTorch exports too; docs/serving.md).", name="tensorflow")

from balpoe_keras.export.saved_model import PREPROCESS_MODES  # noqa: E402
from balpoe_keras.export.saved_model import export_saved_model  # noqa: E402

__all__ = ["PREPROCESS_MODES", "export_saved_model"]
