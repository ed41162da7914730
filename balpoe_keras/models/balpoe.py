"""The BalPoE architectures by name (backbones, classifiers), and BalPoE on
your own backbone (`add_balpoe_heads`)."""

import functools

from balpoe_keras import class_prior
from balpoe_keras.architectures import ARCHITECTURES as SPECS
from balpoe_keras.models import resnet_cifar
from balpoe_keras.models import resnet_imagenet
from balpoe_keras.models.balpoe_classifier import BalPoEClassifier
from balpoe_keras.models.heads import validate_head_args

# Family -> (trunk builder, the reference's linear-head kernel
# initializer).
_FAMILIES = {
    "resnet32": (resnet_cifar.build_resnet32_backbone,
                 resnet_cifar.make_linear_head_initializer),
    "resnet50": (resnet_imagenet.build_resnet50_backbone,
                 resnet_imagenet.make_linear_head_initializer),
    "resnext50": (resnet_imagenet.build_resnext50_backbone,
                  resnet_imagenet.make_linear_head_initializer),
}


def _bind(builder, spec):
    kwargs = dict(spec.builder_kwargs)
    return functools.partial(builder, **kwargs) if kwargs else builder


# Name (`balpoe_keras.architectures.ARCHITECTURES`) -> trunk builder.
BACKBONES = {name: _bind(_FAMILIES[spec.family][0], spec)
             for name, spec in SPECS.items()}


def _check_architecture(architecture):
    if architecture not in BACKBONES:
        raise ValueError(
            f"Unknown architecture {architecture!r}. Expected one of "
            f"{sorted(BACKBONES)}. Use add_balpoe_heads(backbone, "
            "class_counts) to put BalPoE heads on another Keras backbone."
        )


def build_balpoe_backbone(architecture, *, num_experts=3, **kwargs):
    """Builds a multi-expert ResNet trunk by name, up to pooled features.

    Args:
        architecture: a key of `balpoe_keras.architectures.ARCHITECTURES`:
            `"resnet32"`, `"resnet50"`, `"resnext50"`, or `"resnet8"` (a
            ResNet-32 with one block per stage, for quick checks).
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

    The classifier nests the trunk as one layer (`model.backbone`); with
    `head="linear"` the heads take the reference's kernel initializer of
    the architecture.

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
        >>> sum(int(np.prod(w.shape)) for w in model.trainable_weights)
        1343440
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
            _FAMILIES[SPECS[architecture].family][1]()),
        **classifier_kwargs,
    )


def add_balpoe_heads(backbone, class_counts, lambdas=(1.0, 0.0, -1.0), *,
                     expert_layers=None, **kwargs):
    """Puts BalPoE expert heads on your own Keras backbone.

    Per expert: global average pooling (if the features are 3-D or 4-D),
    optional `Dense(units, relu)` layers, a cosine head; the prediction is
    the mean of the expert logits. All experts share the backbone.

    Args:
        backbone: a built `keras.Model` with one input, e.g.
            `keras.applications.ResNet50(include_top=False, weights=None,
            input_shape=(224, 224, 3))` behind your own pixel
            preprocessing, or one returning `M` pooled features.
        class_counts: `C` positive training counts.
        lambdas: `M` per-expert lambdas (`M` experts), averaging to 0.
        expert_layers: None, or a list of ints: per expert, `Dense(units,
            relu)` layers after pooling.
        **kwargs: other `BalPoEClassifier` arguments (`scale`, `head`,
            `class_names`, `allow_unbalanced`, `name`).

    Returns:
        A `BalPoEClassifier`: `compile()` it and `fit(x, y)`.
    """
    return BalPoEClassifier(backbone, class_counts, lambdas,
                            expert_layers=expert_layers, **kwargs)
