"""Tests of the PyTorch-parity building blocks of the BalPoE models."""

import keras
import numpy as np

from balpoe_keras.models.components import OptionAShortcut
from balpoe_keras.models.components import PixelNormalization
from balpoe_keras.models.components import apply_conv
from balpoe_keras.models.components import kaiming_normal
from tests.test_case import TestCase


class PixelNormalizationTest(TestCase):
    def test_per_channel_values(self):
        layer = PixelNormalization([0.5, 0.25], [0.5, 0.125])
        x = np.array([[[[1.0, 0.5]]]], "float32")  # (1, 1, 1, 2)
        # (1 - .5) / .5 = 1 ; (.5 - .25) / .125 = 2
        self.assertAllClose(layer(x), [[[[1.0, 2.0]]]])

    def test_single_channel(self):
        layer = PixelNormalization([0.2860], [0.3530])
        x = np.full((2, 28, 28, 1), 0.6390, "float32")
        # (0.6390 - 0.2860) / 0.3530 = 1.0
        self.assertAllClose(layer(x), np.ones((2, 28, 28, 1)), atol=1e-5)

    def test_channel_mismatch_raises(self):
        layer = PixelNormalization([0.1, 0.2, 0.3], [1.0, 1.0, 1.0])
        with self.assertRaisesRegex(ValueError, "pixel_mean and pixel_std"):
            layer(np.zeros((1, 4, 4, 1), "float32"))

    def test_bad_std_raises(self):
        with self.assertRaisesRegex(ValueError, "std > 0"):
            PixelNormalization([0.5], [0.0])
        with self.assertRaisesRegex(ValueError, "same non-zero length"):
            PixelNormalization([0.5, 0.5], [0.2])

    def test_mean_or_std_in_0_255_units_raises(self):
        with self.assertRaisesRegex(ValueError, "0-255 units: divide"):
            PixelNormalization([123.675, 116.28, 103.53], [58.4, 57.1, 57.4])
        with self.assertRaisesRegex(ValueError, "0-255 units"):
            PixelNormalization([0.5], [58.4])
        PixelNormalization([0.0], [1.0])  # the identity is in range

    def test_config_round_trip(self):
        self.run_serialization_test(PixelNormalization([0.4], [0.2]))

    def test_call_traces_without_graph_breaks_under_torch_compile(self):
        # A list attribute becomes Keras' TrackedList, which dynamo cannot
        # put into a graph (the first break of the whole model).
        if keras.backend.backend() != "torch":
            self.skipTest("torch.compile")
        import torch

        layer = PixelNormalization([0.5, 0.25], [0.5, 0.125])
        layer.build((None, 2, 2, 2))
        explained = torch._dynamo.explain(layer.call)(torch.ones(1, 2, 2, 2))
        self.assertEqual(explained.graph_break_count, 0)


class OptionAShortcutTest(TestCase):
    def test_channels_in_the_middle_and_even_rows_taken(self):
        # x[b, h, w, c] = 100 * h + 10 * w + c + 1 (never 0), 5x5, 4 -> 8.
        h, w, c = np.meshgrid(np.arange(5), np.arange(5), np.arange(4),
                              indexing="ij")
        x = (100 * h + 10 * w + c + 1).astype("float32")[None]
        y = keras.ops.convert_to_numpy(OptionAShortcut(8)(x))
        self.assertEqual(y.shape, (1, 3, 3, 8))  # ceil(5 / 2) = 3
        # (8 - 4) // 2 = 2 zero channels before and 2 after.
        self.assertAllClose(y[..., :2], 0.0)
        self.assertAllClose(y[..., 6:], 0.0)
        # Rows/cols 0, 2, 4: y[0, i, j, 2 + k] = x[0, 2i, 2j, k].
        self.assertAllClose(y[0, :, :, 2:6], x[0, ::2, ::2, :])
        self.assertAllClose(y[0, 1, 2, 2], 100 * 2 + 10 * 4 + 0 + 1)

    def test_reference_widths(self):
        # 16 -> 32: input channels at 8..23; 32 -> 64: at 16..47.
        for c_in, c_out, before in ((16, 32, 8), (32, 64, 16)):
            x = np.ones((1, 4, 4, c_in), "float32")
            y = keras.ops.convert_to_numpy(OptionAShortcut(c_out)(x))
            expected = np.zeros(c_out)
            expected[before:before + c_in] = 1.0
            self.assertAllClose(y[0, 0, 0], expected)

    def test_no_parameters_and_output_shape(self):
        layer = OptionAShortcut(32)
        self.assertEqual(
            layer.compute_output_shape((None, 7, 8, 16)), (None, 4, 4, 32)
        )
        layer(np.zeros((1, 8, 8, 16), "float32"))
        self.assertEqual(layer.weights, [])

    def test_too_many_input_channels_raises(self):
        with self.assertRaisesRegex(ValueError, "output_channels=8"):
            OptionAShortcut(8)(np.zeros((1, 4, 4, 16), "float32"))

    def test_config_round_trip(self):
        self.run_serialization_test(OptionAShortcut(64))


class ConvTest(TestCase):
    def _centre_tap_conv(self, x, strides):
        """3x3 conv whose kernel passes the centre pixel through."""
        inputs = keras.Input(x.shape[1:])
        outputs = apply_conv(inputs, x.shape[-1], 3, strides=strides,
                             init_mode="fan_in", name="c")
        model = keras.Model(inputs, outputs)
        kernel = np.zeros((3, 3, x.shape[-1], x.shape[-1]), "float32")
        for channel in range(x.shape[-1]):
            kernel[1, 1, channel, channel] = 1.0
        model.get_layer("c").set_weights([kernel])
        return keras.ops.convert_to_numpy(model(x))

    def test_stride2_conv_samples_even_pixels_like_the_shortcut(self):
        # PyTorch pads 1 on every side, so output (i, j) is centred on input
        # (2i, 2j), the pixels the option-A shortcut keeps. Keras "same"
        # would centre on (2i + 1, 2j + 1).
        x = np.random.rand(2, 8, 8, 4).astype("float32")
        y = self._centre_tap_conv(x, strides=2)
        shortcut = keras.ops.convert_to_numpy(OptionAShortcut(4)(x))
        self.assertEqual(y.shape, (2, 4, 4, 4))
        self.assertAllClose(y, x[:, ::2, ::2, :], atol=1e-6)
        self.assertAllClose(y, shortcut, atol=1e-6)

    def test_stride2_conv_pads_symmetrically(self):
        # All-ones input, all-ones 3x3 kernel: the top-left output sees a
        # 2x2 patch of real pixels (sum 4) and the bottom-right one a 3x3
        # patch (sum 9) for an 8x8 input with padding (1, 1).
        inputs = keras.Input((8, 8, 1))
        model = keras.Model(inputs, apply_conv(
            inputs, 1, 3, strides=2, init_mode="fan_in", name="c"))
        model.get_layer("c").set_weights([np.ones((3, 3, 1, 1), "float32")])
        y = keras.ops.convert_to_numpy(model(np.ones((1, 8, 8, 1), "float32")))
        self.assertAllClose(y[0, 0, 0, 0], 4.0)
        self.assertAllClose(y[0, 3, 3, 0], 9.0)

    def test_kaiming_normal_is_untruncated(self):
        # 3x3 conv 64 -> 64: fan_in = 9 * 64 = 576, std = sqrt(2 / 576).
        init = kaiming_normal("fan_in")
        values = keras.ops.convert_to_numpy(init((3, 3, 64, 64)))
        std = np.sqrt(2.0 / 576.0)
        self.assertAllClose(values.std(), std, rtol=0.03)
        # A normal has 4.55% of values beyond 2 std; a truncated one none.
        self.assertGreater(np.mean(np.abs(values) > 2 * std), 0.03)

    def test_kaiming_fan_out(self):
        # 1x1 conv 256 -> 64: fan_out = 64, std = sqrt(2 / 64) = 0.1768.
        init = kaiming_normal("fan_out")
        values = keras.ops.convert_to_numpy(init((1, 1, 256, 64)))
        self.assertAllClose(values.std(), np.sqrt(2.0 / 64.0), rtol=0.03)
