"""PyTorch fast paths of `balpoe_keras.layers` (`fast_path.find`).

Imported only when the Keras backend is PyTorch. Each applies to concrete
tensors only, not to the meta tensors of Keras' symbolic shape inference.
Measured only together with `TorchSGD`'s fast path: `benchmarks/
throughput.py --configs torch,reference_torch` (benchmarks/RESULTS.md, run
6: the torch backend 0.88x -> 1.02x the reference with all three, on two
different CPUs; neither kernel timed alone).
"""

import keras
import torch
from keras import ops
from torch.nn import functional as F


def batch_norm(layer, inputs, training, mask):
    """`BatchNorm.call` through one `torch.nn.functional.batch_norm`.

    Buys: one kernel forward and one backward for Keras' ~10 element-wise
    and reduction ops (measured by `benchmarks/throughput.py --configs
    torch`). It updates the running statistics in place with PyTorch's own
    rule (unbiased variance), which `BatchNorm` matches on every backend.

    Args:
        layer: the `BatchNorm` layer.
        inputs: channels-last float32 or bfloat16 tensor, rank >= 2.
        training: Python bool (already False for a frozen layer).
        mask: None, or a mask (then None is returned).

    Returns:
        The outputs in the layer's compute dtype, or None where the kernel
        does not apply (a mask, epsilon <= 0, which PyTorch refuses when
        training, another axis or dtype, a meta tensor).
    """
    rank = len(inputs.shape)
    if (mask is not None or layer.epsilon <= 0 or rank < 2
            or layer.axis not in (-1, rank - 1)):
        return None
    dtype = keras.backend.standardize_dtype(inputs.dtype)
    if dtype not in ("float32", "bfloat16") or not _is_concrete(inputs):
        return None
    # float32 or bfloat16 activations (float32 statistics); float16 takes
    # the generic path.
    order = [0, rank - 1, *range(1, rank - 1)]
    inverse = [0, *range(2, rank), 1]
    y = F.batch_norm(
        inputs.permute(*order), layer.moving_mean.value,
        layer.moving_variance.value,
        weight=layer.gamma.value if layer.scale else None,
        bias=layer.beta.value if layer.center else None, training=training,
        momentum=1.0 - layer.momentum, eps=layer.epsilon)
    return ops.cast(y.permute(*inverse), layer.compute_dtype)


def conv2d(layer, inputs):
    """`Conv2D.call` on channels-last input without layout copies.

    Buys: Keras copies a channels-last input to channels-first memory and
    then to PyTorch's channels-last format, plus the output (about 17 % of
    the ResNet-32's CPU training time when profiled; measured by
    `benchmarks/throughput.py --configs torch`). A contiguous
    `(B, H, W, C)` tensor already is a channels-last `(B, C, H, W)` one, so
    its permuted view goes to `torch.nn.functional.conv2d` directly.

    Args:
        layer: the `Conv2D` layer (kernel `(kh, kw, C_in / groups, C_out)`).
        inputs: `(B, H, W, C_in)` tensor.

    Returns:
        `(B, H', W', C_out)` outputs (bias and activation applied), or None
        where it does not apply (channels-first, dilation, "same" padding
        with an even kernel or a stride, a meta tensor).
    """
    if layer.data_format != "channels_last" or any(
            d != 1 for d in layer.dilation_rate):
        return None
    if layer.padding == "same" and (
            any(k % 2 == 0 for k in layer.kernel_size)
            or any(s != 1 for s in layer.strides)):
        return None
    if not _is_concrete(inputs):
        return None
    weight = layer.kernel.value.permute(3, 2, 0, 1)  # (C_out, C_in/g, kh, kw)
    pad = 0 if layer.padding == "valid" else "same"
    y = F.conv2d(inputs.permute(0, 3, 1, 2), weight,
                 stride=tuple(layer.strides), padding=pad,
                 groups=layer.groups)
    outputs = y.permute(0, 2, 3, 1)
    if layer.use_bias:
        outputs = outputs + layer.bias.value
    if layer.activation is not None:
        outputs = layer.activation(outputs)
    return outputs


def _is_concrete(x):
    """False for the meta tensors of Keras' symbolic shape inference."""
    return torch.is_tensor(x) and not x.is_meta
