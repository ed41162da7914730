"""Tests of `add_balpoe_heads`, `balpoe_targets` and the output keys."""

import os

import keras
import numpy as np
import pytest

from balpoe_keras.models import EXPERT_LOGITS
from balpoe_keras.models import LOGITS
from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.models import balpoe_targets
from tests.models.helpers import SKIP_ON_JAX
from tests.models.helpers import count_params
from tests.models.helpers import run_model
from tests.test_case import TestCase


def _tiny_backbone():
    """(16, 16, 3) -> (8, 8, 8) conv features; 3*3*3*8 + 8 = 224 params."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c")(inputs)
    return keras.Model(inputs, x, name="tiny")


class AddBalPoEHeadsTest(TestCase):
    def test_outputs_and_counts(self):
        model = add_balpoe_heads(_tiny_backbone(), num_classes=5)
        out = run_model(model, np.random.rand(2, 16, 16, 3).astype("float32"))
        self.assertEqual(tuple(out[LOGITS].shape), (2, 5))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (2, 3, 5))
        # Backbone 224 + 3 cosine heads of 8 * 5 = 344.
        self.assertEqual(count_params(model.trainable_weights), 224 + 120)
        experts = out[EXPERT_LOGITS]
        self.assertAllClose(out[LOGITS], experts.mean(axis=1), atol=1e-5)
        self.assertIsNotNone(model.get_layer("tiny"))

    def test_dense_expert_layers(self):
        model = add_balpoe_heads(
            _tiny_backbone(), 4, num_experts=2, expert_layers=[6]
        )
        # 224 + 2 * (Dense 8 * 6 + 6 + head 6 * 4) = 224 + 2 * 78 = 380.
        self.assertEqual(count_params(model.trainable_weights), 380)
        self.assertIsNotNone(model.get_layer("expert_1_dense0"))

    def test_callable_expert_layers_before_pooling(self):
        def conv_block(x, index):
            return keras.layers.Conv2D(4, 1, name=f"expert_{index}_conv")(x)

        model = add_balpoe_heads(
            _tiny_backbone(), 3, num_experts=2, expert_layers=conv_block
        )
        # 224 + 2 * (1x1 conv 8 * 4 + 4 + head 4 * 3) = 224 + 2 * 48 = 320.
        self.assertEqual(count_params(model.trainable_weights), 320)
        out = run_model(model, np.zeros((1, 16, 16, 3), "float32"))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (1, 2, 3))

    def test_flat_backbone_and_linear_head(self):
        inputs = keras.Input((10,))
        backbone = keras.Model(inputs, keras.layers.Dense(6)(inputs))
        model = add_balpoe_heads(backbone, 3, num_experts=1, head="linear")
        out = run_model(model, np.ones((2, 10), "float32"))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (2, 1, 3))
        # Backbone 66 + one Dense(6 -> 3) with bias 21.
        self.assertEqual(count_params(model.trainable_weights), 87)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "num_experts >= 1"):
            add_balpoe_heads(_tiny_backbone(), 4, num_experts=0)
        with self.assertRaisesRegex(ValueError, "one input"):
            add_balpoe_heads(keras.layers.Dense(3), 4)
        with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
            add_balpoe_heads(_tiny_backbone(), 1)

    def test_keras_round_trip(self):
        model = add_balpoe_heads(_tiny_backbone(), 4, num_experts=2)
        x = np.random.rand(2, 16, 16, 3).astype("float32")
        path = os.path.join(self.get_temp_dir(), "heads.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertAllClose(
            run_model(reloaded, x)[LOGITS], run_model(model, x)[LOGITS],
            atol=1e-5,
        )

    @pytest.mark.large
    @SKIP_ON_JAX
    def test_keras_applications_backbone(self):
        backbone = keras.applications.MobileNetV3Small(
            input_shape=(32, 32, 3), include_top=False, weights=None,
            include_preprocessing=False,
        )
        model = add_balpoe_heads(backbone, 10, num_experts=3)
        out = model.predict(np.random.rand(2, 32, 32, 3), verbose=0)
        self.assertEqual(out[EXPERT_LOGITS].shape, (2, 3, 10))
        # Three cosine heads on MobileNetV3Small's 576 channels: 3 * 5,760.
        self.assertEqual(
            count_params(model.trainable_weights),
            count_params(backbone.trainable_weights) + 3 * 576 * 10,
        )


class BalPoETargetsTest(TestCase):
    def test_numpy_labels(self):
        labels = np.array([3, 1])
        targets = balpoe_targets(labels)
        self.assertEqual(set(targets), {"logits", "expert_logits"})
        self.assertIs(targets[LOGITS], labels)
        self.assertIs(targets[EXPERT_LOGITS], labels)

    @pytest.mark.tf_only
    def test_inside_tf_data_map(self):
        import tensorflow as tf

        ds = tf.data.Dataset.from_tensor_slices(
            (np.zeros((2, 4), "float32"), np.array([0, 1]))
        ).map(lambda x, y: (x, balpoe_targets(y)))
        _, targets = next(iter(ds.batch(2)))
        self.assertAllClose(targets[EXPERT_LOGITS], [0, 1])


class MixedPrecisionHeadsTest(TestCase):
    def test_heads_compute_in_float32_under_mixed_bfloat16(self):
        from balpoe_keras.training import mixed_precision_scope

        images = np.random.default_rng(0).random((2, 16, 16, 3))
        for head in ("cosine", "linear"):
            with mixed_precision_scope("mixed_bfloat16"):
                model = add_balpoe_heads(_tiny_backbone(), 5, head=head)
            self.assertEqual(model.get_layer("tiny").compute_dtype,
                             "bfloat16")
            heads = [layer for layer in model.layers
                     if layer.name.endswith("_head")
                     or layer.name == "expert_average"]
            self.assertLen(heads, 4)
            for layer in heads:
                self.assertEqual(layer.compute_dtype, "float32", layer.name)
            outputs = model(images)
            for key in (LOGITS, EXPERT_LOGITS):
                self.assertEqual(keras.backend.standardize_dtype(
                    outputs[key].dtype), "float32")
            # Not rounded to bfloat16 (8 significant bits) on the way out.
            logits = keras.ops.convert_to_numpy(outputs[EXPERT_LOGITS])
            rounded = keras.ops.convert_to_numpy(keras.ops.cast(
                keras.ops.cast(logits, "bfloat16"), "float32"))
            self.assertFalse(np.array_equal(logits, rounded), head)
