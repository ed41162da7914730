"""`build_balpoe_resnet`: the BalPoE model builders chosen by name."""

from balpoe_keras.models.resnet_cifar import build_balpoe_resnet32
from balpoe_keras.models.resnet_imagenet import build_balpoe_resnet50
from balpoe_keras.models.resnet_imagenet import build_balpoe_resnext50

ARCHITECTURES = {
    "resnet32": build_balpoe_resnet32,
    "resnet50": build_balpoe_resnet50,
    "resnext50": build_balpoe_resnext50,
}


def build_balpoe_resnet(architecture, num_classes, num_experts=3, **kwargs):
    """Builds a BalPoE multi-expert model by architecture name.

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
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}. Expected one of "
            f"{sorted(ARCHITECTURES)}. Use add_balpoe_heads() to put BalPoE "
            "heads on another Keras backbone."
        )
    builder = ARCHITECTURES[architecture]
    return builder(num_classes, num_experts=num_experts, **kwargs)
