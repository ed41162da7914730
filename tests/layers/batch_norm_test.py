"""BatchNorm: PyTorch's running-variance update; fused TF = generic path."""

import contextlib
from unittest import mock

import keras
import numpy as np
import pytest

from balpoe_keras import layers
from balpoe_keras.layers import fast_path
from tests.test_case import TestCase


def _generic_only():
    """Inside the block the layers run their keras.ops code only."""
    return mock.patch.object(fast_path, "run", return_value=None)


def _batch():
    # Channel 0: values 1..8, channel 1: 2 * (1..8) over a (2, 2, 2) batch.
    base = np.arange(1.0, 9.0, dtype="float32").reshape(2, 2, 2, 1)
    return np.concatenate([base, 2.0 * base], axis=-1)


class BatchNormTest(TestCase):
    def test_hand_computed_training_step(self):
        # Channel 0: mean 4.5, biased var 5.25, unbiased 6.0 (n = 8);
        # channel 1: mean 9, biased var 21, unbiased 24.
        bn = layers.BatchNorm(momentum=0.9, epsilon=0.0)
        x = _batch()
        y = keras.ops.convert_to_numpy(bn(x, training=True))
        self.assertAllClose(bn.moving_mean, [0.45, 0.9], atol=1e-6)
        # 0.9 * 1 + 0.1 * unbiased variance.
        self.assertAllClose(bn.moving_variance, [1.5, 3.3], atol=1e-5)
        # The batch is normalised with the biased variance.
        expected = (x[..., 0] - 4.5) / np.sqrt(5.25)
        self.assertAllClose(y[..., 0], expected, atol=1e-5)
        self.assertAllClose(y.mean(axis=(0, 1, 2)), [0.0, 0.0], atol=1e-5)

    def test_inference_uses_moving_statistics(self):
        bn = layers.BatchNorm(epsilon=0.0)
        bn.build((None, 2, 2, 2))
        bn.moving_mean.assign([1.0, 2.0])
        bn.moving_variance.assign([4.0, 16.0])
        bn.gamma.assign([2.0, 1.0])
        bn.beta.assign([0.5, -1.0])
        y = bn(_batch(), training=False)
        x = _batch()
        expected = np.stack([
            2.0 * (x[..., 0] - 1.0) / 2.0 + 0.5,
            (x[..., 1] - 2.0) / 4.0 - 1.0,
        ], axis=-1)
        self.assertAllClose(y, expected, atol=1e-5)
        self.assertAllClose(bn.moving_mean, [1.0, 2.0])

    def test_rank_2_and_frozen_layer(self):
        bn = layers.BatchNorm(epsilon=0.0)
        x = np.array([[1.0], [3.0]], "float32")
        y = bn(x, training=True)
        self.assertAllClose(y, [[-1.0], [1.0]], atol=1e-5)
        # Unbiased variance of [1, 3] is 2: 0.9 + 0.2.
        self.assertAllClose(bn.moving_variance, [1.1], atol=1e-6)
        bn.trainable = False
        bn(x, training=True)  # A frozen layer runs in inference mode.
        self.assertAllClose(bn.moving_variance, [1.1], atol=1e-6)

    def test_unsupported_arguments(self):
        with self.assertRaisesRegex(ValueError, "renorm=True"):
            layers.BatchNorm(renorm=True)
        with self.assertRaisesRegex(ValueError, "synchronized=True"):
            layers.BatchNorm(synchronized=True)

    def test_config_and_keras_round_trip(self):
        clone = self.run_serialization_test(layers.BatchNorm(momentum=0.8))
        self.assertEqual(clone.momentum, 0.8)
        self.assertEqual(clone.epsilon, 1e-5)
        inputs = keras.Input((4, 4, 3))
        outputs = layers.BatchNorm()(keras.layers.Conv2D(2, 3)(inputs))
        model = keras.Model(inputs, outputs)
        x = np.random.RandomState(0).rand(3, 4, 4, 3).astype("float32")
        model(x, training=True)  # Moves the statistics away from 0 / 1.
        self.run_keras_save_load_test(model, x)


@pytest.mark.tf_only
class FusedPathTest(TestCase):
    """On TensorFlow the fused op must equal the keras.ops path exactly."""

    def _pair(self):
        import tensorflow as tf

        x = tf.constant(np.random.RandomState(1).randn(4, 5, 5, 3) * 3 + 1,
                        "float32")
        fused = layers.BatchNorm()
        generic = layers.BatchNorm()
        for bn in (fused, generic):
            bn.build(x.shape)
            bn.gamma.assign([1.5, 0.5, 2.0])
            bn.beta.assign([0.1, -0.2, 0.3])
        return tf, x, fused, generic

    def test_forward_backward_and_statistics_match(self):
        tf, x, fused, generic = self._pair()
        self.assertIsNotNone(fast_path.run(  # The fused op applies here.
            "balpoe_keras.layers", "batch_norm", fused, x, False, None))
        results = []
        for bn in (fused, generic):
            scope = (_generic_only() if bn is generic
                     else contextlib.nullcontext())
            with scope, tf.GradientTape() as tape:
                tape.watch(x)
                y = bn(x, training=True)
                loss = tf.reduce_sum(y * tf.range(3, dtype=tf.float32) * x)
            grads = tape.gradient(loss, [x, bn.gamma, bn.beta])
            with scope:
                inference = bn(x, training=False)
            results.append((y, grads, bn.moving_mean, bn.moving_variance,
                            inference))
        (y_f, g_f, m_f, v_f, i_f), (y_g, g_g, m_g, v_g, i_g) = results
        self.assertAllClose(y_f, y_g, atol=1e-5)
        for a, b in zip(g_f, g_g):
            self.assertAllClose(a, b, atol=1e-4, rtol=1e-4)
        self.assertAllClose(m_f, m_g, atol=1e-6)
        self.assertAllClose(v_f, v_g, atol=1e-5)
        self.assertAllClose(i_f, i_g, atol=1e-5)


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the PyTorch kernel runs on the torch backend")
class TorchKernelTest(TestCase):
    """On PyTorch, F.batch_norm must equal the keras.ops path."""

    def test_forward_backward_and_statistics_match(self):
        import torch

        x0 = np.random.RandomState(1).randn(4, 5, 5, 3) * 3 + 1
        results = []
        for use_kernel in (True, False):
            bn = layers.BatchNorm()
            bn.build((4, 5, 5, 3))
            bn.gamma.assign([1.5, 0.5, 2.0])
            bn.beta.assign([0.1, -0.2, 0.3])
            x = torch.tensor(x0, dtype=torch.float32, requires_grad=True)
            if use_kernel:  # The kernel applies here.
                self.assertIsNotNone(fast_path.run(
                    "balpoe_keras.layers", "batch_norm", bn, x, False, None))
            with (contextlib.nullcontext() if use_kernel
                  else _generic_only()):
                y = bn(x, training=True)
                weights = torch.arange(3, dtype=torch.float32)
                (y * weights * x).sum().backward()
                results.append([t.detach().numpy().copy() for t in (
                    y, x.grad, bn.gamma.value.grad, bn.beta.value.grad,
                    bn.moving_mean.value, bn.moving_variance.value,
                    bn(x, training=False))])
        for a, b in zip(*results):
            self.assertAllClose(a, b, atol=1e-4, rtol=1e-4)


class MixedPrecisionTest(TestCase):
    def test_bfloat16_activations_match_float32_within_bf16_precision(self):
        # The fused (TF) / F.batch_norm (torch) kernels take bfloat16
        # activations without casting; statistics stay float32. Mean 3,
        # sd 2 per channel: one step (momentum 0.9) moves the moving mean
        # from 0 to ~0.3 and the variance from 1 to ~1.3, both far from
        # their start relative to the tolerance.
        x = (3 + 2 * np.random.RandomState(2).randn(4, 5, 5, 3)).astype(
            "float32")
        outputs, means, variances = [], [], []
        for policy in ("float32", "mixed_bfloat16"):
            bn = layers.BatchNorm(dtype=policy)
            y = bn(keras.ops.cast(x, bn.compute_dtype), training=True)
            self.assertEqual(keras.backend.standardize_dtype(y.dtype),
                             bn.compute_dtype)
            outputs.append(keras.ops.convert_to_numpy(
                keras.ops.cast(y, "float32")))
            means.append(keras.ops.convert_to_numpy(bn.moving_mean))
            variances.append(keras.ops.convert_to_numpy(bn.moving_variance))
            for stat in (bn.moving_mean, bn.moving_variance):
                self.assertEqual(keras.backend.standardize_dtype(
                    stat.dtype), "float32")
        # float32 statistics: the batch's, by the momentum (unbiased
        # variance as the reference's BatchNorm2d).
        n = 4 * 5 * 5
        rate = 1 - layers.BatchNorm().momentum
        batch_mean = x.mean(axis=(0, 1, 2))
        batch_var = x.var(axis=(0, 1, 2)) * n / (n - 1)
        self.assertAllClose(means[0], rate * batch_mean, rtol=1e-5)
        self.assertAllClose(variances[0], (1 - rate) + rate * batch_var,
                            rtol=1e-5)
        self.assertAllClose(outputs[1], outputs[0], atol=0.05, rtol=0.02)
        self.assertAllClose(means[1], means[0], rtol=1e-2)
        self.assertAllClose(variances[1] - 1, variances[0] - 1, rtol=2e-2)


class FastPathDispatchTest(TestCase):
    def test_each_backend_gets_its_own_fast_paths_only(self):
        expected = {"tensorflow": ["batch_norm"],
                    "torch": ["batch_norm", "conv2d"]}
        found = [name for name in ("batch_norm", "conv2d")
                 if fast_path.find("balpoe_keras.layers", name)]
        self.assertEqual(found, expected.get(keras.backend.backend(), []))
        # Not applicable (a mask): None, and the layer's generic code runs.
        bn = layers.BatchNorm()
        x = keras.ops.ones((2, 3, 3, 2))
        bn.build(x.shape)
        self.assertIsNone(fast_path.run("balpoe_keras.layers", "batch_norm",
                                        bn, x, False, keras.ops.ones(x.shape)))
