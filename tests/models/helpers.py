"""Helpers for the model tests: parameter counts, forward passes."""

import keras
import numpy as np
import pytest

# For checks that do not depend on the backend (parameter counts, layer
# configs) on large builds: Keras-on-JAX compiles the initializer of every new
# weight shape (0.5-2 s each), so these builds are skipped there. The
# grouped-conv forward pass and the CIFAR tests still run on JAX.
SKIP_ON_JAX = pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="backend-independent check; slow per-shape init compiles on JAX",
)


def count_params(weights):
    """Sum of `prod(w.shape)` over `weights`, e.g. `model.trainable_weights`."""
    return int(sum(np.prod(w.shape) for w in weights))


def count_layer_params(model, prefix, trainable=True):
    """Trainable (or all) parameters of the layers named `prefix*`."""
    total = 0
    for layer in model.layers:
        if layer.name.startswith(prefix):
            weights = layer.trainable_weights if trainable else layer.weights
            total += count_params(weights)
    return total


def run_model(model, x):
    """Model outputs as NumPy: `predict` (one jit compile) on JAX, where an
    eager call compiles every op separately; an eager call elsewhere."""
    if keras.backend.backend() == "jax":
        return model.predict(x, verbose=0, batch_size=len(x))
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(x))
