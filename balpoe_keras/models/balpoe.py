"""The BalPoE architectures by name: flat models, backbones, classifiers."""

import functools

from balpoe_keras import class_prior
from balpoe_keras.architectures import ARCHITECTURES as SPECS
from balpoe_keras.models import resnet_cifar
from balpoe_keras.models import resnet_imagenet
from balpoe_keras.models.balpoe_classifier import BalPoEClassifier
from balpoe_keras.models.heads import validate_head_args

# Family -> (flat builder, trunk builder, the reference's linear-head
# kernel initializer).
_FAMILIES = {
    "resnet32": (resnet_cifar.build_balpoe_resnet32,
                 resnet_cifar.build_resnet32_backbone,
                 resnet_cifar.make_linear_head_initializer),
    "resnet50": (resnet_imagenet.build_balpoe_resnet50,
                 resnet_imagenet.build_resnet50_backbone,
                 resnet_imagenet.make_linear_head_initializer),
    "resnext50": (resnet_imagenet.build_balpoe_resnext50,
                  resnet_imagenet.build_resnext50_backbone,
                  resnet_imagenet.make_linear_head_initializer),
}


def _bind(builder, spec):
    kwargs = dict(spec.builder_kwargs)
    return functools.partial(builder, **kwargs) if kwargs else builder


# Name (`balpoe_keras.architectures.ARCHITECTURES`) -> flat builder / trunk
# builder.
ARCHITECTURES = {name: _bind(_FAMILIES[spec.family][0], spec)
                 for name, spec in SPECS.items()}
BACKBONES = {name: _bind(_FAMILIES[spec.family][1], spec)
             for name, spec in SPECS.items()}


def _check_architecture(architecture):
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"Unknown architecture {architecture!r}. Expected one of "
            f"{sorted(ARCHITECTURES)}. Use BalPoEClassifier (or "
            "add_balpoe_heads) to put BalPoE heads on another Keras backbone."
        )


def build_balpoe_resnet(architecture, num_classes, *, num_experts=3,
                        **kwargs):
    """Builds a flat BalPoE multi-expert model by architecture name.

    Args:
        architecture: a name in `balpoe_keras.architectures`:
            `"resnet32"` (CIFAR; also `"resnet8"`, one block per stage),
            `"resnet50"`, `"resnext50"` (ImageNet-LT / iNaturalist).
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
        feature when every stage is shared), the `backbone` of a
        `BalPoEClassifier`.
    """
    _check_architecture(architecture)
    return BACKBONES[architecture](num_experts=num_experts, **kwargs)


# The arguments `build_balpoe_classifier` passes to `BalPoEClassifier`; all
# others go to the backbone builder.
_CLASSIFIER_ARGS = ("allow_unbalanced", "scale", "head", "class_names",
                    "name")


def build_balpoe_classifier(architecture, class_counts,
                            lambdas=(1.0, 0.0, -1.0), **kwargs):
    """Builds a `BalPoEClassifier` on a named multi-expert ResNet.

    Layers, their order and initializers equal those of
    `build_balpoe_resnet(architecture, len(class_counts),
    num_experts=len(lambdas), ...)`, so under the same
    `keras.utils.set_random_seed` both start from the same weights (this
    passes the architecture's linear-head initializer); the classifier
    nests the trunk as one layer (`model.backbone`).

    Args:
        architecture: `"resnet32"`, `"resnet50"` or `"resnext50"`.
        class_counts: `C` positive training counts.
        lambdas: `M` per-expert lambdas (`M` experts).
        **kwargs: `allow_unbalanced`, `scale`, `head`, `class_names` and
            `name` (default `f"balpoe_{backbone.name}"`, e.g.
            `"balpoe_resnet32"`) go to `BalPoEClassifier`; the others
            (`shared_stages`, `input_shape`, `pixel_mean`, `pixel_std`,
            `blocks_per_stage`, ...) to `build_balpoe_backbone`.

    Returns:
        A `BalPoEClassifier`: images `(batch, H, W, channels)` in `[0, 1]`
        -> `{"logits": (batch, C), "expert_logits": (batch, M, C)}`.

    Example:
        >>> model = build_balpoe_classifier("resnet32", [500, 50, 5])
        >>> model.name, model.num_experts
        ('balpoe_resnet32', 3)
    """
    _check_architecture(architecture)
    classifier_kwargs = {k: kwargs.pop(k) for k in _CLASSIFIER_ARGS
                         if k in kwargs}
    # Cheap checks before the trunk is built (the classifier repeats them).
    class_prior.validate_class_counts(class_counts)
    num_experts = len(class_prior.validate_lambdas(
        lambdas,
        allow_unbalanced=classifier_kwargs.get("allow_unbalanced", False)))
    validate_head_args(classifier_kwargs.get("head", "cosine"),
                       classifier_kwargs.get("scale", 30.0))
    backbone = build_balpoe_backbone(
        architecture, num_experts=num_experts, **kwargs)
    return BalPoEClassifier(
        backbone, class_counts, lambdas,
        linear_head_initializer=(
            _FAMILIES[SPECS[architecture].family][2]()),
        **classifier_kwargs,
    )
