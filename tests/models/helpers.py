"""Helpers for the model tests: builds, parameter counts, forward passes."""

import keras
import numpy as np
import pytest

from balpoe_keras import class_prior
from balpoe_keras.models import build_balpoe_classifier

# For checks that do not depend on the backend (parameter counts, layer
# configs) on large builds: Keras-on-JAX compiles the initializer of every new
# weight shape (0.5-2 s each), so these builds are skipped there. The
# grouped-conv forward pass and the CIFAR tests still run on JAX.
SKIP_ON_JAX = pytest.mark.skipif(
    keras.backend.backend() == "jax",
    reason="backend-independent check; slow per-shape init compiles on JAX",
)


def classifier(architecture, num_classes, num_experts, **kwargs):
    """`build_balpoe_classifier` with `C = num_classes` classes (counts
    `C, C - 1, ..., 1`) and `M = num_experts` experts (lambdas spread
    evenly from 1 to -1, or `[0]` for one expert); `kwargs` as there."""
    counts = [num_classes - c for c in range(num_classes)]
    lambdas = class_prior.spread_lambdas(num_experts)
    return build_balpoe_classifier(architecture, counts, lambdas, **kwargs)


def count_params(weights):
    """Sum of `prod(w.shape)` over `weights`, e.g. `model.trainable_weights`."""
    return int(sum(np.prod(w.shape) for w in weights))


def flat_layers(model):
    """The layers of `model`, with those of nested models (the backbone of
    a `BalPoEClassifier`) in place of the nested model."""
    layers = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            layers.extend(flat_layers(layer))
        else:
            layers.append(layer)
    return layers


def count_layer_params(model, prefix, trainable=True):
    """Trainable (or all) parameters of the layers named `prefix*`,
    nested models included."""
    total = 0
    for layer in flat_layers(model):
        if layer.name.startswith(prefix):
            weights = layer.trainable_weights if trainable else layer.weights
            total += count_params(weights)
    return total


def run_model(model, x):
    """Model outputs as NumPy (both outputs of a `BalPoEClassifier`):
    `predict` (one jit compile) on JAX, where an eager call compiles every
    op separately; an eager call elsewhere."""
    if keras.backend.backend() == "jax":
        predict = getattr(model, "predict_outputs", model.predict)
        return predict(x, verbose=0, batch_size=len(x))
    return keras.tree.map_structure(keras.ops.convert_to_numpy, model(x))


def expert_logits_by_hand(model, x):
    """`(B, M, C)` logits of a `BalPoEClassifier`, expert by expert: expert
    `m`'s backbone feature through its own block layers and head, each
    layer called on its own."""
    features = run_model(model.backbone, x)
    if not isinstance(features, (list, tuple)):
        features = [features] * model.num_experts  # One shared feature.
    logits = []
    for feature, block, head in zip(features, model.expert_blocks,
                                    model.expert_heads):
        for layer in block:
            feature = layer(feature)
        logits.append(keras.ops.convert_to_numpy(head(feature)))
    return np.stack(logits, axis=1)


def assert_experts_wired(test, model, x, atol=1e-5):
    """The model's `expert_logits[:, m]` is expert `m`'s feature, block and
    head (`expert_logits_by_hand`), its `logits` their mean, and the experts
    differ from each other, so a swap or a shared head would show. Returns
    the model's outputs."""
    out = run_model(model, x)
    by_hand = expert_logits_by_hand(model, x)
    test.assertEqual(out["expert_logits"].shape, by_hand.shape)
    test.assertAllClose(out["expert_logits"], by_hand, atol=atol)
    test.assertAllClose(out["logits"], by_hand.mean(axis=1), atol=atol)
    for a in range(model.num_experts):
        for b in range(a):
            test.assertGreater(
                np.abs(by_hand[:, a] - by_hand[:, b]).max(), 1e-2,
                f"experts {b} and {a} give the same logits")
    return out
