"""CosineHead and ExpertAverage."""

import keras
import numpy as np

from balpoe_keras import layers
from balpoe_keras.layers import fast_path
from tests.test_case import TestCase


class CosineHeadTest(TestCase):
    def test_hand_computed_cosine_logits(self):
        # features [3, 4] -> [.6, .8]; kernel columns [1, 0] and [0, 2] ->
        # unit [1, 0], [0, 1]; cos = [.6, .8]; x 30 = [18, 24].
        head = layers.CosineHead(2, scale=30.0)
        head.build((None, 2))
        head.kernel.assign(np.array([[1.0, 0.0], [0.0, 2.0]]))
        self.assertAllClose(head(np.array([[3.0, 4.0]])), [[18.0, 24.0]],
                            atol=1e-5)

    def test_init_gives_unit_norm_class_columns(self):
        head = layers.CosineHead(7)
        head.build((None, 64))
        kernel = keras.ops.convert_to_numpy(head.kernel)
        self.assertEqual(kernel.shape, (64, 7))
        self.assertAllClose(np.linalg.norm(kernel, axis=0), np.ones(7),
                            atol=1e-6)
        self.assertLess(np.abs(kernel).max(), 1.0)

    def test_logits_bounded_by_scale_and_zero_features_safe(self):
        head = layers.CosineHead(5, scale=32.0)
        x = np.random.RandomState(0).randn(4, 16).astype("float32")
        x[0] = 0.0
        out = keras.ops.convert_to_numpy(head(x))
        self.assertTrue(np.all(np.isfinite(out)))
        self.assertLessEqual(np.abs(out).max(), 32.0 + 1e-4)
        self.assertAllClose(out[0], np.zeros(5))

    def test_float32_under_a_mixed_global_policy(self):
        # Under mixed_float16 a head took float16: 2048 features of about 6
        # square-sum past 65504, the norm was inf and every logit 0.
        features = np.full((2, 2048), 6.0, "float32")
        features[1, :1024] = -6.0
        previous = keras.config.dtype_policy()
        try:
            keras.config.set_dtype_policy("mixed_float16")
            head = layers.CosineHead(3)
            average = layers.ExpertAverage()
            logits = head(features)
            merged, _ = average([logits, logits])
        finally:
            keras.config.set_dtype_policy(previous)
        self.assertEqual(head.dtype_policy.name, "float32")
        self.assertEqual(keras.backend.standardize_dtype(logits.dtype),
                         "float32")
        self.assertEqual(keras.backend.standardize_dtype(merged.dtype),
                         "float32")
        kernel = keras.ops.convert_to_numpy(head.kernel)
        unit = features / np.linalg.norm(features, axis=-1, keepdims=True)
        expected = 30.0 * unit @ (kernel / np.linalg.norm(kernel, axis=0))
        self.assertAllClose(logits, expected, atol=1e-4)
        self.assertGreater(float(np.abs(expected).max()), 0.1)
        # A dtype given is kept.
        self.assertEqual(layers.CosineHead(3, dtype="bfloat16")
                         .dtype_policy.name, "bfloat16")

    def test_one_initializer_shared_by_heads_gives_each_its_kernel(self):
        shared = layers.UnitColumnUniform()
        kernels = []
        for _ in range(2):
            head = layers.CosineHead(4, kernel_initializer=shared)
            head.build((None, 8))
            kernels.append(keras.ops.convert_to_numpy(head.kernel))
        self.assertFalse(np.allclose(kernels[0], kernels[1]))
        seeded = layers.UnitColumnUniform(seed=3)
        self.assertAllClose(seeded((8, 4)), seeded((8, 4)))

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
            layers.CosineHead(1)
        with self.assertRaisesRegex(ValueError, "scale > 0"):
            layers.CosineHead(3, scale=0.0)
        with self.assertRaisesRegex(ValueError, r"\(batch, D\)"):
            layers.CosineHead(3).build((None, 4, 4))

    def test_config_round_trip(self):
        clone = self.run_serialization_test(layers.CosineHead(3, scale=32.0))
        self.assertEqual(clone.scale, 32.0)
        self.run_serialization_test(layers.UnitColumnUniform(seed=3))


class ExpertAverageTest(TestCase):
    def test_mean_and_stack(self):
        z = [np.full((2, 3), v, "float32") for v in (1.0, 2.0, 6.0)]
        logits, stacked = layers.ExpertAverage()(z)
        self.assertAllClose(logits, np.full((2, 3), 3.0))
        self.assertEqual(tuple(stacked.shape), (2, 3, 3))
        self.assertAllClose(stacked[:, 2], z[2])
        logits2, _ = layers.ExpertAverage()(keras.ops.stack(z, axis=1))
        self.assertAllClose(logits2, logits)

    def test_functional_model_round_trip(self):
        inputs = keras.Input((6,))
        heads = [layers.CosineHead(4, name=f"h{i}")(inputs) for i in range(3)]
        logits, expert_logits = layers.ExpertAverage()(heads)
        model = keras.Model(
            inputs, {"logits": logits, "expert_logits": expert_logits}
        )
        self.assertEqual(tuple(model.output["expert_logits"].shape),
                         (None, 3, 4))
        x = np.random.RandomState(1).randn(3, 6).astype("float32")
        self.run_keras_save_load_test(model, x)

    def test_bad_input(self):
        with self.assertRaisesRegex(ValueError, r"\(batch, M, C\)"):
            layers.ExpertAverage()(np.zeros((2, 3)))


class Conv2DTest(TestCase):
    """`layers.Conv2D` equals `keras.layers.Conv2D` on every backend (on
    PyTorch it takes the copy-free channels-last kernel)."""

    def test_matches_keras_conv_forward_and_backward(self):
        rng = np.random.default_rng(0)
        x = rng.normal(size=(2, 9, 9, 4)).astype("float32")
        for kwargs in (dict(kernel_size=3, padding="same"),
                       dict(kernel_size=3, strides=2, padding="valid"),
                       dict(kernel_size=1, strides=2, padding="valid"),
                       dict(kernel_size=3, padding="same", groups=2),
                       dict(kernel_size=2, padding="same", use_bias=True)):
            ours = layers.Conv2D(6, **kwargs)
            theirs = keras.layers.Conv2D(6, **kwargs)
            ours.build(x.shape)
            theirs.build(x.shape)
            theirs.set_weights(ours.get_weights())
            self.assertAllClose(ours(x), theirs(x), atol=1e-5)

    def test_config_and_keras_round_trip(self):
        self.run_serialization_test(layers.Conv2D(4, 3, padding="same"))

    def test_torch_gradients_match_keras_conv(self):
        if keras.backend.backend() != "torch":
            self.skipTest("the copy-free kernel runs on PyTorch")
        import torch

        x0 = np.random.default_rng(1).normal(size=(2, 8, 8, 4))
        grads = []
        for cls in (layers.Conv2D, keras.layers.Conv2D):
            keras.utils.set_random_seed(3)
            conv = cls(5, 3, strides=2, padding="valid")
            x = torch.tensor(x0, dtype=torch.float32, requires_grad=True)
            if cls is layers.Conv2D:  # The copy-free kernel applies here.
                conv.build(x.shape)
                self.assertIsNotNone(fast_path.run(
                    "balpoe_keras.layers", "conv2d", conv, x))
            (conv(x) ** 2).sum().backward()
            grads.append((x.grad.numpy(),
                          conv.kernel.value.grad.numpy().copy()))
        for a, b in zip(*grads):
            self.assertAllClose(a, b, atol=1e-4)
