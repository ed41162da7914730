"""PyTorch-only kernel behind `balpoe_keras.layers.Conv2D`.

Imported only when the Keras backend is PyTorch.
"""

from torch.nn import functional as F


def conv2d_channels_last(x, kernel, strides, padding, groups):
    """2-D convolution of a channels-last tensor without layout copies.

    Args:
        x: `(B, H, W, C_in)` tensor (contiguous: a channels-last `(B, C_in,
            H, W)` tensor for PyTorch once permuted).
        kernel: Keras kernel `(kh, kw, C_in / groups, C_out)`.
        strides: `(sh, sw)`.
        padding: `"valid"` or `"same"` (odd kernels, stride 1: symmetric).
        groups: int.

    Returns:
        `(B, H', W', C_out)` tensor.
    """
    weight = kernel.permute(3, 2, 0, 1)  # (C_out, C_in / groups, kh, kw)
    pad = 0 if padding == "valid" else "same"
    y = F.conv2d(x.permute(0, 3, 1, 2), weight, stride=tuple(strides),
                 padding=pad, groups=groups)
    return y.permute(0, 2, 3, 1)
