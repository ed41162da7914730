"""The BalPoE architectures by name: flat models and backbones."""

from balpoe_keras.models import resnet_cifar
from balpoe_keras.models import resnet_imagenet

ARCHITECTURES = {
    "resnet32": resnet_cifar.build_balpoe_resnet32,
    "resnet50": resnet_imagenet.build_balpoe_resnet50,
    "resnext50": resnet_imagenet.build_balpoe_resnext50,
}
BACKBONES = {
    "resnet32": resnet_cifar.build_resnet32_backbone,
    "resnet50": resnet_imagenet.build_resnet50_backbone,
    "resnext50": resnet_imagenet.build_resnext50_backbone,
}
def _check_architecture(architecture):
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}. Expected one of "
            f"{sorted(ARCHITECTURES)}. Use add_balpoe_heads() to put BalPoE "
            "heads on another Keras backbone."
        )


def build_balpoe_resnet(architecture, num_classes, *, num_experts=3,
                        **kwargs):
    """Builds a flat BalPoE multi-expert model by architecture name.

    Args:
        architecture: one of `"resnet32"` (CIFAR), `"resnet50"`,
            `"resnext50"` (ImageNet-LT / iNaturalist).
        num_classes: int >= 2, classes `C`.
        num_experts: int >= 1, experts `M`.
        **kwargs: passed to the builder (`build_balpoe_resnet32`,
            `build_balpoe_resnet50` or `build_balpoe_resnext50`), e.g.
            `scale`, `shared_stages`, `input_shape`, `pixel_mean`.

    Returns:
        A functional `keras.Model`: float images `(batch, H, W, channels)`
        in `[0, 1]` -> `{"logits": (batch, C), "expert_logits":
        (batch, M, C)}`.

    Example:
        >>> model = build_balpoe_resnet("resnet32", num_classes=100)
        >>> model.count_params()  # 1,362,064 trainable + 6,112 BN stats
        1368176
    """
    _check_architecture(architecture)
    builder = ARCHITECTURES[architecture]
    return builder(num_classes, num_experts=num_experts, **kwargs)


def build_balpoe_backbone(architecture, *, num_experts=3, **kwargs):
    """Builds a multi-expert ResNet trunk by name, up to pooled features.

    Args:
        architecture: `"resnet32"`, `"resnet50"` or `"resnext50"`.
        num_experts: int >= 1, experts `M`.
        **kwargs: passed to `build_resnet32_backbone`,
            `build_resnet50_backbone` or `build_resnext50_backbone`:
            `shared_stages`, `input_shape`, `pixel_mean`, `pixel_std`,
            `blocks_per_stage`, `name` (and `reduce_dimension` for
            ResNet-32).

    Returns:
        A functional `keras.Model`: float images `(batch, H, W, channels)`
        in `[0, 1]` -> a list of `M` features `(batch, D)` (one shared
        feature when every stage is shared).
    """
    _check_architecture(architecture)
    return BACKBONES[architecture](num_experts=num_experts, **kwargs)
