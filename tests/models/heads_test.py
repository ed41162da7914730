"""Tests of `add_balpoe_heads` (BalPoE on your own backbone) and the
output keys."""

import os

import keras
import numpy as np
import pytest

from balpoe_keras.models import EXPERT_LOGITS
from balpoe_keras.models import LOGITS
from balpoe_keras.models import BalPoEClassifier
from balpoe_keras.models import add_balpoe_heads
from tests.models.helpers import SKIP_ON_JAX
from tests.models.helpers import assert_experts_wired
from tests.models.helpers import count_params
from tests.models.helpers import run_model
from tests.test_case import TestCase

_COUNTS5 = [50, 20, 10, 5, 2]
_COUNTS4 = [8, 4, 2, 1]
_COUNTS3 = [3, 2, 1]


def _tiny_backbone():
    """(16, 16, 3) -> (8, 8, 8) conv features; 3*3*3*8 + 8 = 224 params."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", name="c")(inputs)
    return keras.Model(inputs, x, name="tiny")


class AddBalPoEHeadsTest(TestCase):
    def test_outputs_and_counts(self):
        model = add_balpoe_heads(_tiny_backbone(), _COUNTS5)
        self.assertIsInstance(model, BalPoEClassifier)
        self.assertEqual(model.class_counts, _COUNTS5)
        self.assertEqual(model.lambdas, [1.0, 0.0, -1.0])
        # Expert m: the pooled features through head m (the three differ);
        # the ensemble is their mean.
        out = assert_experts_wired(
            self, model, np.random.rand(2, 16, 16, 3).astype("float32"))
        self.assertEqual(tuple(out[LOGITS].shape), (2, 5))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (2, 3, 5))
        # Backbone 224 + 3 cosine heads of 8 * 5 = 344.
        self.assertEqual(count_params(model.trainable_weights), 224 + 120)
        self.assertIs(model.get_layer("tiny"), model.backbone)

    def test_dense_expert_layers(self):
        model = add_balpoe_heads(
            _tiny_backbone(), _COUNTS4, (1.0, -1.0), expert_layers=[6]
        )
        # 224 + 2 * (Dense 8 * 6 + 6 + head 6 * 4) = 224 + 2 * 78 = 380.
        self.assertEqual(count_params(model.trainable_weights), 380)
        self.assertEqual(model.expert_layers, [6])
        self.assertEqual(
            [[layer.name for layer in block] for block in model.expert_blocks],
            [["expert_0_pool", "expert_0_dense0"],
             ["expert_1_pool", "expert_1_dense0"]])
        # Each expert's logits: pool -> its own Dense(6) -> its own head.
        out = assert_experts_wired(
            self, model, np.random.rand(2, 16, 16, 3).astype("float32"))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (2, 2, 4))

    def test_per_expert_layers_before_pooling_go_in_the_backbone(self):
        # A callable `expert_layers` (which the model could not save) is
        # refused; per-expert layers on the unpooled features belong in a
        # backbone returning one pooled feature per expert.
        def conv_block(x, index):
            return keras.layers.Conv2D(4, 1, name=f"expert_{index}_conv")(x)

        with self.assertRaisesRegex(ValueError,
                                    "list of ints.*one .batch, D. feature"):
            add_balpoe_heads(_tiny_backbone(), _COUNTS3, (1.0, -1.0),
                             expert_layers=conv_block)
        trunk = _tiny_backbone()
        features = [
            keras.layers.GlobalAveragePooling2D(name=f"expert_{i}_pool")(
                conv_block(trunk.output, i))
            for i in range(2)
        ]
        backbone = keras.Model(trunk.input, features, name="branches")
        model = add_balpoe_heads(backbone, _COUNTS3, (1.0, -1.0))
        # 224 + 2 * (1x1 conv 8 * 4 + 4 + head 4 * 3) = 224 + 2 * 48 = 320.
        self.assertEqual(count_params(model.trainable_weights), 320)
        out = run_model(model, np.zeros((1, 16, 16, 3), "float32"))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (1, 2, 3))

    def test_flat_backbone_and_linear_head(self):
        inputs = keras.Input((10,))
        backbone = keras.Model(inputs, keras.layers.Dense(6)(inputs))
        model = add_balpoe_heads(backbone, _COUNTS3, (0.0,), head="linear")
        out = run_model(model, np.ones((2, 10), "float32"))
        self.assertEqual(tuple(out[EXPERT_LOGITS].shape), (2, 1, 3))
        # Backbone 66 + one Dense(6 -> 3) with bias 21.
        self.assertEqual(count_params(model.trainable_weights), 87)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "non-empty list of .*lambdas"):
            add_balpoe_heads(_tiny_backbone(), _COUNTS4, ())
        with self.assertRaisesRegex(ValueError, "one input"):
            add_balpoe_heads(keras.layers.Dense(3), _COUNTS4)
        with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
            add_balpoe_heads(_tiny_backbone(), [4])

    def test_keras_round_trip(self):
        model = add_balpoe_heads(_tiny_backbone(), _COUNTS4, (1.0, -1.0))
        x = np.random.rand(2, 16, 16, 3).astype("float32")
        path = os.path.join(self.get_temp_dir(), "heads.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertIsInstance(reloaded, BalPoEClassifier)
        expected, actual = run_model(model, x), run_model(reloaded, x)
        for key in (LOGITS, EXPERT_LOGITS):
            self.assertAllClose(actual[key], expected[key], atol=1e-5)

    @pytest.mark.large
    @SKIP_ON_JAX
    def test_keras_applications_backbone(self):
        backbone = keras.applications.MobileNetV3Small(
            input_shape=(32, 32, 3), include_top=False, weights=None,
            include_preprocessing=False,
        )
        model = add_balpoe_heads(backbone, list(range(10, 0, -1)))
        out = model.predict_outputs(np.random.rand(2, 32, 32, 3))
        self.assertEqual(out[EXPERT_LOGITS].shape, (2, 3, 10))
        self.assertEqual(model.predict(np.random.rand(2, 32, 32, 3),
                                       verbose=0).shape, (2, 10))
        # Three cosine heads on MobileNetV3Small's 576 channels: 3 * 5,760.
        self.assertEqual(
            count_params(model.trainable_weights),
            count_params(backbone.trainable_weights) + 3 * 576 * 10,
        )


class MixedPrecisionHeadsTest(TestCase):
    def test_heads_compute_in_float32_under_mixed_bfloat16(self):
        from balpoe_keras.training import mixed_precision_scope

        images = np.random.default_rng(0).random((2, 16, 16, 3))
        for head in ("cosine", "linear"):
            with mixed_precision_scope("mixed_bfloat16"):
                model = add_balpoe_heads(_tiny_backbone(), _COUNTS5,
                                         head=head)
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
