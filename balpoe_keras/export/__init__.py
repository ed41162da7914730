"""TF-only: SavedModel export of BalPoE models for TF Serving.

Imports TensorFlow; `balpoe_keras.export` is loaded lazily by
`balpoe_keras`, so the backend-agnostic core never needs TensorFlow.
"""

from balpoe_keras.export.saved_model import PREPROCESS_MODES
from balpoe_keras.export.saved_model import export_saved_model

__all__ = ["PREPROCESS_MODES", "export_saved_model"]
