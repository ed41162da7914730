"""PyTorch fast path of `balpoe_keras.optimizers` (`layers.fast_path`).

Imported only when the Keras backend is PyTorch.
"""

import torch
from keras import ops


def sgd_update(optimizer, grads, variables, learning_rate):
    """`TorchSGD`'s step for all variables at once in `torch._foreach_*`.

    Buys: Keras' generic step calls the public `update_step` per variable
    (about 6 small ops for each of the ResNet-32's 217 variables); this is
    ~8 list ops, with the learning rate kept a device tensor (no host
    synchronisation per step, unlike Keras' own torch `SGD`). Measured only
    with the layers' torch kernels: `benchmarks/throughput.py --configs
    torch,reference_torch` (benchmarks/RESULTS.md, run 6, 0.88x -> 1.02x).

    Args:
        optimizer: the `TorchSGD`.
        grads: list of gradients.
        variables: the Keras variables, in the order of `grads`.
        learning_rate: scalar (tensor or float).

    Returns:
        True (the step is done).
    """
    bufs = None
    if optimizer.momentum != 0:
        bufs = [optimizer.momentums[optimizer._get_variable_index(v)].value
                for v in variables]
    foreach_sgd_update(
        [v.value for v in variables], list(grads), bufs,
        ops.convert_to_tensor(learning_rate), optimizer.momentum,
        optimizer.nesterov, optimizer.l2_weight_decay)
    return True


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
