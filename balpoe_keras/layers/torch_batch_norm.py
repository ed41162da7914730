"""PyTorch-only kernel behind `balpoe_keras.layers.BatchNorm`.

Imported only when the Keras backend is PyTorch. One
`torch.nn.functional.batch_norm` call (forward and backward each one
kernel) instead of Keras' ten element-wise and reduction ops; it updates
the running statistics in place with PyTorch's own rule (unbiased
variance), which `BatchNorm` matches on every backend.
"""

import torch
from torch.nn import functional as F


def batch_norm(x, gamma, beta, moving_mean, moving_variance, momentum,
               epsilon, training):
    """Batch norm of a channels-last `(B, ..., C)` float32 tensor.

    Args:
        x: float32 tensor, channels last.
        gamma, beta: `(C,)` tensors or None.
        moving_mean, moving_variance: `(C,)` tensors, updated in place when
            training (`m * old + (1 - m) * batch`, unbiased variance).
        momentum: Keras momentum `m` (PyTorch's is `1 - m`).
        epsilon: float.
        training: Python bool.

    Returns:
        Tensor like `x`.
    """
    order = [0, x.dim() - 1, *range(1, x.dim() - 1)]
    inverse = [0, *range(2, x.dim()), 1]
    y = F.batch_norm(x.permute(*order), moving_mean, moving_variance,
                     weight=gamma, bias=beta, training=training,
                     momentum=1.0 - momentum, eps=epsilon)
    return y.permute(*inverse)


def is_concrete(x):
    """False for the meta tensors of Keras' symbolic shape inference."""
    return torch.is_tensor(x) and not x.is_meta
