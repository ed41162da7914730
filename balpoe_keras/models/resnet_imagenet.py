"""Multi-expert ResNet-50 / ResNeXt-50 (32x4d), as the reference's
`Expert_ResNet.py` / `Expert_ResNeXt.py`.

Shared stem, stage 1 and stage 2; one copy of stages 3-4 per expert, global
average pooling and a cosine head per expert; the ensemble logits are the
mean of the expert logits. Bottlenecks are torchvision v1.5 (the stride sits
on the 3x3 conv). `build_resnet50_backbone` / `build_resnext50_backbone`
build everything up to the pooled expert features; `BalPoEClassifier` adds
the heads. With its cosine heads (`s = 30`), M=3 and C=1000 the ResNet-50
has 73,778,240 trainable parameters (25,556,032 for M=1), the ResNeXt-50
72,258,880 (25,027,904 for M=1). The reference's ResNeXt pools with a fixed
7x7 window (224x224 inputs only); global average pooling is identical there
and works at any size.
"""

import keras

from balpoe_keras.models.components import IMAGENET_MEAN
from balpoe_keras.models.components import IMAGENET_STD
from balpoe_keras.models.components import PixelNormalization
from balpoe_keras.models.components import apply_batch_norm
from balpoe_keras.models.components import apply_conv
from balpoe_keras.models.components import apply_expert_branches
from balpoe_keras.models.components import validate_backbone_args

_INIT_MODE = "fan_out"  # kaiming_normal_(mode="fan_out"), Expert_ResNet.py
_PLANES = (64, 128, 256, 512)
_EXPANSION = 4
_NUM_STAGES = 4


def make_linear_head_initializer():
    """None: the linear head (`head="linear"`) keeps PyTorch's `nn.Linear`
    default init, which `Expert_ResNet.py` does not override."""
    return None


def apply_bottleneck_block(x, planes, *, strides, groups, width_per_group,
                           name):
    """Bottleneck v1.5: 1x1 -> 3x3 (strides, groups) -> 1x1 (x4), + shortcut.

    The shortcut is a 1x1 conv (with `strides`) + BN when the shape changes
    (the first block of every stage), else the identity.

    Args:
        x: `(batch, H, W, C_in)` tensor.
        planes: int, stage planes; output channels are `4 * planes`.
        strides: int, 1 or 2 (on the 3x3 conv).
        groups: int, groups of the 3x3 conv (1: ResNet, 32: ResNeXt).
        width_per_group: int, 64 for ResNet, 4 for ResNeXt-50 32x4d.
        name: prefix of the block's layer names.

    Returns:
        `(batch, H / strides, W / strides, 4 * planes)` tensor.
    """
    width = int(planes * width_per_group / 64) * groups
    filters = planes * _EXPANSION
    shortcut = x
    if strides != 1 or x.shape[-1] != filters:
        shortcut = apply_conv(x, filters, 1, strides=strides,
                              init_mode=_INIT_MODE,
                              name=f"{name}_downsample_conv")
        shortcut = apply_batch_norm(shortcut, f"{name}_downsample_bn")
    y = apply_conv(x, width, 1, init_mode=_INIT_MODE, name=f"{name}_conv1")
    y = apply_batch_norm(y, f"{name}_bn1")
    y = keras.layers.ReLU(name=f"{name}_relu1")(y)
    y = apply_conv(y, width, 3, strides=strides, init_mode=_INIT_MODE,
                   name=f"{name}_conv2", groups=groups)
    y = apply_batch_norm(y, f"{name}_bn2")
    y = keras.layers.ReLU(name=f"{name}_relu2")(y)
    y = apply_conv(y, filters, 1, init_mode=_INIT_MODE, name=f"{name}_conv3")
    y = apply_batch_norm(y, f"{name}_bn3")
    y = keras.layers.Add(name=f"{name}_add")([y, shortcut])
    return keras.layers.ReLU(name=f"{name}_out")(y)


def apply_imagenet_stem(x, name="stem"):
    """7x7/2 conv (pad 3) -> BN -> ReLU -> 3x3/2 max pool (pad 1).

    PyTorch pads the max pool with -inf; its input is post-ReLU (>= 0), so
    zero padding gives identical results.
    """
    x = apply_conv(x, 64, 7, strides=2, init_mode=_INIT_MODE,
                   name=f"{name}_conv")
    x = apply_batch_norm(x, f"{name}_bn")
    x = keras.layers.ReLU(name=f"{name}_relu")(x)
    x = keras.layers.ZeroPadding2D(1, name=f"{name}_pool_pad")(x)
    return keras.layers.MaxPooling2D(3, strides=2, name=f"{name}_pool")(x)


def _apply_trunk(x, first, last, prefix, *, blocks, groups,
                 width_per_group):
    """Stem (if `first == 0`) then stages `max(first, 1)..last`, 1-based."""
    if first == 0:
        x = apply_imagenet_stem(x, f"{prefix}stem")
    for stage in range(max(first, 1), last + 1):
        for block in range(blocks[stage - 1]):
            x = apply_bottleneck_block(
                x, _PLANES[stage - 1],
                strides=2 if block == 0 and stage > 1 else 1,
                groups=groups, width_per_group=width_per_group,
                name=f"{prefix}stage{stage}_block{block}",
            )
    return x


def build_resnet50_backbone(
    *,
    num_experts=3,
    shared_stages=2,
    blocks_per_stage=(3, 4, 6, 3),
    groups=1,
    width_per_group=64,
    input_shape=(224, 224, 3),
    pixel_mean=IMAGENET_MEAN,
    pixel_std=IMAGENET_STD,
    name="resnet50",
):
    """Builds the multi-expert ResNet-50 trunk, up to pooled features.

    Pixel normalisation, the shared stem and stages, then one branch per
    expert, each globally average pooled: the reference's `Expert_ResNet`
    without its heads. Put BalPoE heads on it with `BalPoEClassifier`.

    Args:
        num_experts: int >= 1, experts `M`.
        shared_stages: int in [0, 4], stages shared by all experts (2 is the
            reference; 3 is its `share_layer3`; 0 gives each expert its own
            stem; 4 shares the whole trunk).
        blocks_per_stage: 4 ints; `(3, 4, 6, 3)` is ResNet-50.
        groups: int, groups of every 3x3 conv (32 for ResNeXt).
        width_per_group: int, bottleneck width per group (4 for ResNeXt
            32x4d); the 3x3 convs have `planes * width_per_group / 64 *
            groups` channels.
        input_shape: `(H, W, channels)`; `(None, None, 3)` accepts any size.
        pixel_mean: per-channel mean of `[0, 1]` pixels (ImageNet default).
        pixel_std: per-channel std of `[0, 1]` pixels (ImageNet default).
        name: model name.

    Returns:
        A functional `keras.Model`: float images in `[0, 1]` -> a list of
        `M` expert features `(batch, 2048)`; with `shared_stages=4`, one
        `(batch, 2048)` feature (layer `pool`) that all experts share.
    """
    validate_backbone_args(num_experts, shared_stages, _NUM_STAGES)
    blocks = tuple(int(b) for b in blocks_per_stage)
    if len(blocks) != _NUM_STAGES or min(blocks) < 1:
        raise ValueError(
            "Expected blocks_per_stage as 4 ints >= 1. Received: "
            f"blocks_per_stage={blocks}"
        )
    inputs = keras.Input(input_shape, name="images")
    x = PixelNormalization(pixel_mean, pixel_std, name="normalize")(inputs)
    features = apply_expert_branches(
        x, num_experts=num_experts, shared_stages=shared_stages,
        num_stages=_NUM_STAGES,
        apply_stages=lambda t, first, last, prefix: _apply_trunk(
            t, first, last, prefix, blocks=blocks, groups=groups,
            width_per_group=width_per_group,
        ),
    )
    return keras.Model(inputs, features, name=name)


def build_resnext50_backbone(*, name="resnext50", **kwargs):
    """Builds the multi-expert ResNeXt-50 (32x4d) trunk, up to pooled
    features: `build_resnet50_backbone` with grouped 3x3 convs (32 groups
    of width 4), the reference's `Expert_ResNeXt` without its heads.

    Args: those of `build_resnet50_backbone` but `groups` and
        `width_per_group`.

    Returns:
        A functional `keras.Model`: float images in `[0, 1]` -> a list of
        `M` expert features `(batch, 2048)` (one shared with
        `shared_stages=4`).
    """
    return build_resnet50_backbone(groups=32, width_per_group=4, name=name,
                                   **kwargs)
