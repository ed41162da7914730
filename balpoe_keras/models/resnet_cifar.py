"""Multi-expert CIFAR ResNet-32 (the reference's `ResNet_s`).

A shared stem and first stage, then one copy of stages 2-3 per expert, global
average pooling and a cosine head per expert; the ensemble logits are the
mean of the expert logits. `build_resnet32_backbone` builds everything up to
the pooled expert features; `BalPoEClassifier` adds the heads.

Defaults reproduce the reference exactly: stem + stage 1 shared, stages 2-3
per expert; with the classifier's cosine heads (`s = 30`) the trainable
parameters are `23,824 + M * (439,680 + 64 * C)` (1,362,064 for M=3,
C=100).
"""

import keras

from balpoe_keras.models.components import CIFAR_MEAN
from balpoe_keras.models.components import CIFAR_STD
from balpoe_keras.models.components import OptionAShortcut
from balpoe_keras.models.components import PixelNormalization
from balpoe_keras.models.components import apply_batch_norm
from balpoe_keras.models.components import apply_conv
from balpoe_keras.models.components import apply_expert_branches
from balpoe_keras.models.components import kaiming_normal
from balpoe_keras.models.components import validate_backbone_args

_INIT_MODE = "fan_in"  # kaiming_normal_ defaults (expert_resnet_cifar.py).
_NUM_STAGES = 3


def make_linear_head_initializer():
    """Kernel initializer of the linear head (`head="linear"`): the
    reference's Kaiming normal (`fan_in`) for `ResNet_s`."""
    return kaiming_normal(_INIT_MODE)


def apply_basic_block(x, filters, *, strides, name):
    """ResNet basic block with the parameter-free option-A shortcut.

    conv3x3(strides) -> BN -> ReLU -> conv3x3 -> BN, plus the shortcut, then
    ReLU. The shortcut is `OptionAShortcut` when `strides != 1` or the
    channel count changes, else the identity.

    Args:
        x: `(batch, H, W, C_in)` tensor.
        filters: int, output channels.
        strides: int, 1 or 2 (on the first conv).
        name: prefix of the block's layer names.

    Returns:
        `(batch, H / strides, W / strides, filters)` tensor.
    """
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = OptionAShortcut(filters, name=f"{name}_shortcut")(x)
    y = apply_conv(x, filters, 3, strides=strides, init_mode=_INIT_MODE,
                   name=f"{name}_conv1")
    y = apply_batch_norm(y, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = apply_conv(y, filters, 3, init_mode=_INIT_MODE, name=f"{name}_conv2")
    y = apply_batch_norm(y, f"{name}_bn2")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_cifar_stage(x, filters, *, num_blocks, strides, name):
    """`num_blocks` basic blocks; the first one carries `strides`."""
    for block in range(num_blocks):
        x = apply_basic_block(x, filters, strides=strides if block == 0 else 1,
                              name=f"{name}_block{block}")
    return x


def _apply_trunk(x, first, last, prefix, *, widths, blocks_per_stage):
    """Stem (if `first == 0`) then residual stages `max(first, 1)..last`."""
    if first == 0:
        x = apply_conv(x, widths[0], 3, init_mode=_INIT_MODE,
                       name=f"{prefix}stem_conv")
        x = apply_batch_norm(x, f"{prefix}stem_bn")
        x = keras.layers.ReLU(name=f"{prefix}stem_relu")(x)
    for stage in range(max(first, 1), last + 1):
        x = apply_cifar_stage(
            x, widths[stage - 1], num_blocks=blocks_per_stage,
            strides=1 if stage == 1 else 2, name=f"{prefix}stage{stage}",
        )
    return x


def build_resnet32_backbone(
    *,
    num_experts=3,
    shared_stages=1,
    reduce_dimension=False,
    blocks_per_stage=5,
    input_shape=(32, 32, 3),
    pixel_mean=CIFAR_MEAN,
    pixel_std=CIFAR_STD,
    name=None,
):
    """Builds the multi-expert CIFAR ResNet-32 trunk, up to pooled features.

    Pixel normalisation, the shared stem and stages, then one branch per
    expert, each globally average pooled; the reference's `ResNet_s`
    without its heads. Put BalPoE heads on it with `BalPoEClassifier`.

    Args:
        num_experts: int >= 1, experts `M`.
        shared_stages: int in [0, 3], residual stages shared by all experts:
            1 (reference), 2 (`share_layer2`), 3 (the paper's "linear
            experts", only the heads differ). 0 also gives each expert its
            own stem (independent networks; not in the reference).
        reduce_dimension: bool, stage widths 16/24/48 instead of 16/32/64.
        blocks_per_stage: int >= 1; 5 gives ResNet-32 (depth 6n + 2).
        input_shape: `(H, W, channels)` of the images; any size works.
        pixel_mean: per-channel mean of `[0, 1]` pixels (CIFAR default).
        pixel_std: per-channel std of `[0, 1]` pixels (CIFAR default).
        name: model name (default `f"resnet{6n+2}"`).

    Returns:
        A functional `keras.Model`: float images `(batch, H, W, channels)`
        in `[0, 1]` -> a list of `M` expert features `(batch, D)`, `D` = 64
        (48 with `reduce_dimension`); with `shared_stages=3`, one `(batch,
        D)` feature (layer `pool`) that all experts share.
    """
    validate_backbone_args(num_experts, shared_stages, _NUM_STAGES)
    if int(blocks_per_stage) != blocks_per_stage or blocks_per_stage < 1:
        raise ValueError(
            "Expected an integer blocks_per_stage >= 1. Received: "
            f"blocks_per_stage={blocks_per_stage}"
        )
    widths = (16, 24, 48) if reduce_dimension else (16, 32, 64)
    inputs = keras.Input(input_shape, name="images")
    x = PixelNormalization(pixel_mean, pixel_std, name="normalize")(inputs)
    features = apply_expert_branches(
        x, num_experts=num_experts, shared_stages=shared_stages,
        num_stages=_NUM_STAGES,
        apply_stages=lambda t, first, last, prefix: _apply_trunk(
            t, first, last, prefix, widths=widths,
            blocks_per_stage=blocks_per_stage,
        ),
    )
    depth = 6 * blocks_per_stage + 2
    return keras.Model(inputs, features, name=name or f"resnet{depth}")
