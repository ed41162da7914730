"""PyTorch-only kernel behind `TorchSGD` on the torch backend.

Imported only when the Keras backend is PyTorch. Keras' generic optimizer
path runs the update variable by variable (about 6 small ops for each of
the ResNet-32's 217 variables per step); this applies the same PyTorch SGD
update to all variables at once with `torch._foreach_*` ops, keeping the
learning rate a tensor (no host synchronisation per step).
"""

import torch


@torch.no_grad()
def foreach_sgd_update(params, grads, bufs, learning_rate, momentum,
                       nesterov, weight_decay):
    """One PyTorch SGD step for lists of tensors, in place.

    Args:
        params: list of parameter tensors (updated in place).
        grads: list of gradients, same shapes.
        bufs: list of momentum buffers (updated in place), or None when
            `momentum == 0`.
        learning_rate: scalar tensor or float.
        momentum, nesterov, weight_decay: as `TorchSGD`.
    """
    grads = [g.to(p.dtype) for g, p in zip(grads, params)]
    if weight_decay:
        grads = torch._foreach_add(grads, params, alpha=weight_decay)
    if momentum:
        torch._foreach_mul_(bufs, momentum)
        torch._foreach_add_(bufs, grads)
        if nesterov:
            grads = torch._foreach_add(grads, bufs, alpha=momentum)
        else:
            grads = bufs
    if not torch.is_tensor(learning_rate):
        learning_rate = torch.tensor(learning_rate)
    lr = learning_rate.to(device=params[0].device, dtype=params[0].dtype)
    torch._foreach_sub_(params, torch._foreach_mul(grads, lr))
