"""Building blocks shared by the BalPoE model builders (keras.ops only).

PyTorch-parity pieces (PyTorch's defaults): symmetric padding for strided convs,
BatchNorm with PyTorch's eps/momentum, untruncated Kaiming-normal init, the
parameter-free option-A shortcut and in-model pixel normalisation.
"""

import keras
import numpy as np
from keras import ops

from balpoe_keras import layers
from balpoe_keras.data.datasets import CIFAR_MEAN  # noqa: F401
from balpoe_keras.data.datasets import CIFAR_STD  # noqa: F401
from balpoe_keras.data.datasets import IMAGENET_MEAN  # noqa: F401
from balpoe_keras.data.datasets import IMAGENET_STD  # noqa: F401

# PyTorch BatchNorm2d defaults: eps 1e-5, momentum 0.1 (Keras: 1 - 0.1).
BN_EPSILON = 1e-5
BN_MOMENTUM = 0.9



@keras.saving.register_keras_serializable(package="balpoe_keras")
class PixelNormalization(keras.layers.Layer):
    """Per-channel `(x - mean) / std` of images with pixels in `[0, 1]`.

    Args:
        mean: sequence of floats, one per channel (or one for all).
        std: sequence of floats > 0, same length as `mean`.
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: `(batch, H, W, channels)`. Output: same shape, normalised.
    """

    def __init__(self, mean, std, **kwargs):
        super().__init__(**kwargs)
        # Tuples, not lists: Keras would track a list attribute, and its
        # TrackedList breaks torch.compile's graph (dynamo cannot proxy it).
        self.mean = tuple(float(m) for m in mean)
        self.std = tuple(float(s) for s in std)
        if len(self.mean) != len(self.std) or not self.mean:
            raise ValueError(
                "Expected `mean` and `std` of the same non-zero length (one "
                f"value per channel). Received: mean={mean}, std={std}"
            )
        if min(self.std) <= 0:
            raise ValueError(f"Expected every std > 0. Received: std={std}")
        if max(abs(m) for m in self.mean) > 1 or max(self.std) > 1:
            raise ValueError(
                "Expected mean and std in units of [0, 1] pixels (e.g. "
                "ImageNet's mean (0.485, 0.456, 0.406)); values above 1 are "
                "in 0-255 units: divide them by 255. Received: "
                f"mean={mean}, std={std}"
            )

    def build(self, input_shape):
        channels = input_shape[-1]
        if len(self.mean) != 1 and channels not in (None, len(self.mean)):
            raise ValueError(
                f"PixelNormalization got {len(self.mean)} per-channel values "
                f"for an input with {channels} channels. Pass pixel_mean and "
                "pixel_std with one value per input channel."
            )

    def call(self, inputs):
        inputs = ops.cast(inputs, self.compute_dtype)
        mean = ops.convert_to_tensor(self.mean, dtype=inputs.dtype)
        std = ops.convert_to_tensor(self.std, dtype=inputs.dtype)
        return (inputs - mean) / std

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "mean": list(self.mean),
                "std": list(self.std)}


@keras.saving.register_keras_serializable(package="balpoe_keras")
class OptionAShortcut(keras.layers.Layer):
    """Parameter-free ResNet shortcut "option A" (He et al. 2016, CIFAR).

    Takes rows and columns 0, 2, 4, ... (`x[:, ::2, ::2, :]`) and zero-pads
    the channels symmetrically: `(out - in) // 2` zeros before the input
    channels and the rest after, so the input channels sit in the middle
    (16 -> 32: channels 8..23 hold the input). As in the reference, the
    spatial subsampling always halves.

    Args:
        output_channels: int, number of channels after padding (>= input).
        **kwargs: standard `keras.layers.Layer` arguments.

    Input shape: `(batch, H, W, in)`. Output shape:
    `(batch, ceil(H / 2), ceil(W / 2), output_channels)`.
    """

    def __init__(self, output_channels, **kwargs):
        super().__init__(**kwargs)
        self.output_channels = int(output_channels)

    def build(self, input_shape):
        if input_shape[-1] is None or input_shape[-1] > self.output_channels:
            raise ValueError(
                "OptionAShortcut needs a known number of input channels <= "
                f"output_channels={self.output_channels}. Received input "
                f"shape {input_shape}."
            )

    def call(self, inputs):
        extra = self.output_channels - inputs.shape[-1]
        before = extra // 2
        subsampled = inputs[:, ::2, ::2, :]
        return ops.pad(
            subsampled, [[0, 0], [0, 0], [0, 0], [before, extra - before]]
        )

    def compute_output_shape(self, input_shape):
        batch, height, width, _ = input_shape
        half = lambda n: None if n is None else (n + 1) // 2  # noqa: E731
        return (batch, half(height), half(width), self.output_channels)

    def get_config(self):
        return {**super().get_config(), "output_channels": self.output_channels}


def kaiming_normal(mode):
    """PyTorch's `kaiming_normal_` (gain sqrt(2), untruncated); `mode` is
    `"fan_in"` (CIFAR ResNets) or `"fan_out"` (ImageNet ResNets)."""
    return keras.initializers.VarianceScaling(2.0, mode, "untruncated_normal")


def apply_conv(x, filters, kernel_size, *, strides=1, init_mode, name,
               groups=1):
    """Bias-free conv with PyTorch's symmetric `kernel_size // 2` padding.

    Stride 1 uses `padding="same"` (identical for odd kernels); stride 2
    uses `ZeroPadding2D` + `"valid"`, because Keras `"same"` pads only
    after, which shifts the sampling grid (PyTorch pads 1 pixel on every side).

    Args:
        x: `(batch, H, W, C_in)` tensor.
        filters: int, output channels.
        kernel_size: int (odd).
        strides: int, 1 or 2.
        init_mode: `"fan_in"` or `"fan_out"` for the Kaiming-normal init.
        name: layer name; the padding layer is `f"{name}_pad"`.
        groups: int, grouped convolution (ResNeXt).

    Returns:
        `(batch, H', W', filters)` tensor.
    """
    padding = "same"
    if strides > 1 and kernel_size > 1:
        x = keras.layers.ZeroPadding2D(kernel_size // 2, name=f"{name}_pad")(x)
        padding = "valid"
    return layers.Conv2D(
        filters,
        kernel_size,
        strides=strides,
        padding=padding,
        groups=groups,
        use_bias=False,
        kernel_initializer=kaiming_normal(init_mode),
        name=name,
    )(x)


def apply_batch_norm(x, name):
    """`layers.BatchNorm`: PyTorch's eps 1e-5, momentum 0.1, unbiased
    running variance; TensorFlow's fused kernel on the TF backend."""
    return layers.BatchNorm(
        momentum=BN_MOMENTUM, epsilon=BN_EPSILON, name=name
    )(x)


def validate_num_classes(num_classes):
    """Raises `ValueError` unless `num_classes` is an integer >= 2."""
    if int(num_classes) != num_classes or num_classes < 2:
        raise ValueError(
            f"Expected an integer num_classes >= 2. Received: "
            f"num_classes={num_classes}"
        )


def validate_backbone_args(num_experts, shared_stages, num_stages):
    """Raises `ValueError` naming the argument and the fix."""
    if int(num_experts) != num_experts or num_experts < 1:
        raise ValueError(
            f"Expected an integer num_experts >= 1. Received: "
            f"num_experts={num_experts}"
        )
    if int(shared_stages) != shared_stages or not (
        0 <= shared_stages <= num_stages
    ):
        raise ValueError(
            f"Expected shared_stages in [0, {num_stages}] (how many residual "
            f"stages all experts share). Received: shared_stages="
            f"{shared_stages}"
        )


def apply_expert_branches(x, *, num_experts, shared_stages, num_stages,
                          apply_stages):
    """Shared stages, then one branch per expert, each globally pooled.

    Args:
        x: `(batch, H, W, C)` normalised images.
        num_experts: int, `M`.
        shared_stages: int in `[0, num_stages]`, stages shared by all
            experts (0: every expert also has its own stem).
        num_stages: int, residual stages of the backbone.
        apply_stages: `fn(x, first, last, prefix) -> tensor` applying stages
            `first..last` (stage 0 is the stem) with layer-name `prefix`.

    Returns:
        A list of `M` pooled `(batch, D)` features (layers
        `expert_{i}_pool`); when every stage is shared ("linear experts"),
        one pooled `(batch, D)` feature (layer `pool`) for all experts.
    """
    shared, first = x, 0
    if shared_stages:
        shared = apply_stages(x, 0, shared_stages, "")
        first = shared_stages + 1
    if shared_stages == num_stages:
        return keras.layers.GlobalAveragePooling2D(name="pool")(shared)
    features = []
    for index in range(num_experts):
        y = apply_stages(shared, first, num_stages, f"expert_{index}_")
        pool = keras.layers.GlobalAveragePooling2D(name=f"expert_{index}_pool")
        features.append(pool(y))
    return features


def check_backbone_pixel_range(backbone):
    """Raises `ValueError` if an image backbone rescales 0-255 pixels.

    `BalPoEClassifier` feeds its backbone images with pixels in `[0, 1]`
    (it refuses larger values). A backbone whose own preprocessing expects
    0-255 pixels -- the `Rescaling(1/255)` or `Rescaling(1/127.5, -1)` of
    `keras.applications` models built with their preprocessing, or a
    `Normalization` whose mean is in 0-255 units -- would see pixels 255
    times too small and give wrong features without a word. The check
    multiplies the scales of every `Rescaling` layer (nested models
    included), so a `Rescaling(255)` placed before such a layer passes.

    Args:
        backbone: a `keras.Model` taking `(batch, H, W, channels)` images.
    """
    found = list(_preprocessing_layers(backbone))
    rescalings = [(layer, _largest_scale(layer)) for layer in found
                  if isinstance(layer, keras.layers.Rescaling)]
    scale = float(np.prod([s for _, s in rescalings]))
    problem = None
    if rescalings and scale < 0.01:
        layer, smallest = min(rescalings, key=lambda pair: pair[1])
        problem = (f"its layer {layer.name!r} (Rescaling, scale "
                   f"{smallest:.4g}) expects 0-255 pixels")
    elif scale < 2:  # A Normalization sees pixels in [0, scale].
        for layer in found:
            if not isinstance(layer, keras.layers.Normalization):
                continue
            mean = _normalization_mean_max(layer)
            if mean > 1.5:
                problem = (f"its layer {layer.name!r} (Normalization, mean "
                           f"{mean:.4g}) expects 0-255 pixels")
                break
    if problem is not None:
        raise ValueError(
            f"The backbone {backbone.name!r} rescales its input itself: "
            f"{problem}, but BalPoEClassifier gives it pixels in [0, 1]. "
            "Build it without its preprocessing (keras.applications "
            "MobileNetV3, EfficientNetV2, ConvNeXt: "
            "include_preprocessing=False, then normalise with "
            "PixelNormalization in [0, 1] units), or put "
            "keras.layers.Rescaling(255.0) in front of it inside your "
            "backbone (EfficientNet B0-B7 always rescale)."
        )


def _largest_scale(layer):
    """A `Rescaling` layer's scale; the largest of per-channel scales."""
    return float(np.max(np.abs(np.asarray(layer.scale, np.float64))))


def _preprocessing_layers(model):
    for layer in getattr(model, "layers", []):
        if isinstance(layer, (keras.layers.Rescaling,
                              keras.layers.Normalization)):
            yield layer
        elif isinstance(layer, keras.Model):
            yield from _preprocessing_layers(layer)


def _normalization_mean_max(layer):
    mean = getattr(layer, "input_mean", None)
    if mean is None:
        mean = getattr(layer, "mean", None)
    if mean is None:
        return 0.0
    return float(ops.max(ops.abs(ops.convert_to_tensor(mean, "float32"))))
