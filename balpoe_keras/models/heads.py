"""The layers BalPoE puts on a backbone: per-expert blocks, heads and
their average (the parts of `BalPoEClassifier`)."""

import keras

from balpoe_keras.layers import CosineHead
from balpoe_keras.layers import ExpertAverage

LOGITS = "logits"
EXPERT_LOGITS = "expert_logits"
HEADS = ("cosine", "linear")


def validate_head_args(head, scale):
    """Raises `ValueError` for an unknown `head` or a `scale` <= 0."""
    if head not in HEADS:
        raise ValueError(f"Expected head in {HEADS}. Received: head={head!r}")
    if not float(scale) > 0:
        raise ValueError(f"Expected scale > 0. Received: scale={scale}")


def _torch_linear_init():
    """PyTorch's nn.Linear default, kaiming_uniform(a=sqrt(5)), which is
    U(+-1/sqrt(D))."""
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")


def _clone(initializer):
    """A fresh copy, so experts never share one initializer instance."""
    if initializer is None:
        return None
    return initializer.__class__.from_config(initializer.get_config())


def make_expert_heads(num_classes, feature_dims, *, scale=30.0,
                      head="cosine", linear_init=None):
    """One classifier head per expert, computing in float32.

    Args:
        num_classes: int >= 2, classes `C`.
        feature_dims: `M` ints, the feature size `D` each head receives.
        scale: float > 0, cosine-logit scale `s` (the reference uses 30).
        head: `"cosine"` (the reference's `NormedLinear` times `s`) or
            `"linear"` (a Dense layer with bias; `scale` is ignored, as the
            reference forces `s = 1` without `use_norm`).
        linear_init: kernel initializer of the linear head, copied per
            expert (None: PyTorch's `nn.Linear` default, U(+-1/sqrt(D))).

    Returns:
        `M` layers `expert_{i}_head`, `(batch, D)` -> `(batch, C)` logits.
        Heads (and their average) compute in float32 under every dtype
        policy, as Keras advises for a model's last layers, so a
        mixed-precision backbone does not round the scaled cosine logits to
        bfloat16 (steps of 0.06-0.125 at |z| of 8-30).
    """
    validate_head_args(head, scale)
    heads = []
    for index, dim in enumerate(feature_dims):
        name = f"expert_{index}_head"
        if head == "cosine":
            heads.append(CosineHead(num_classes, scale=scale, name=name,
                                    dtype="float32"))
            continue
        bound = 1.0 / float(dim) ** 0.5  # PyTorch's bias init.
        heads.append(keras.layers.Dense(
            num_classes,
            kernel_initializer=_clone(linear_init) or _torch_linear_init(),
            bias_initializer=keras.initializers.RandomUniform(-bound, bound),
            name=name,
            dtype="float32",
        ))
    return heads


def make_expert_average():
    """The `expert_average` layer: `M` x `(batch, C)` -> the two outputs."""
    return ExpertAverage(name="expert_average", dtype="float32")


def merge_expert_logits(expert_logits, average):
    """`{"logits": (batch, C) mean, "expert_logits": (batch, M, C)}`."""
    logits, stacked = average(expert_logits)
    return {LOGITS: logits, EXPERT_LOGITS: stacked}


def expert_feature_list(features, num_experts):
    """`M` pooled features: the list itself, or `M` times one shared one."""
    if isinstance(features, (list, tuple)):
        return list(features)
    return [features] * num_experts


def make_pooling(rank, name):
    """Global average pooling for 4-D `(B, H, W, D)` or 3-D `(B, T, D)`
    features; None for pooled 2-D `(B, D)` ones."""
    if rank == 4:
        return keras.layers.GlobalAveragePooling2D(name=name)
    if rank == 3:
        return keras.layers.GlobalAveragePooling1D(name=name)
    if rank == 2:
        return None
    raise ValueError(
        f"Expected backbone features of rank 2, 3 or 4. Received rank {rank}."
    )


def make_expert_block(expert_layers, rank, index):
    """Expert `index`'s layers on shared features of rank `rank`: pooling
    `expert_{i}_pool` (if 3-D or 4-D), then `Dense(units, relu)` layers
    `expert_{i}_dense{d}` for `units` in `expert_layers` (None: none)."""
    block = [make_pooling(rank, f"expert_{index}_pool")]
    for depth, units in enumerate(expert_layers or ()):
        block.append(keras.layers.Dense(
            units, activation="relu", name=f"expert_{index}_dense{depth}"
        ))
    return [layer for layer in block if layer is not None]


def apply_block(x, block):
    """Applies the layers of `block` in order."""
    for layer in block:
        x = layer(x)
    return x
