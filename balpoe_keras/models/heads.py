"""BalPoE expert heads and their dict outputs; heads on any Keras backbone."""

import keras

from balpoe_keras.layers import CosineHead
from balpoe_keras.layers import ExpertAverage
from balpoe_keras.models.components import validate_backbone_args
from balpoe_keras.models.components import validate_num_classes

LOGITS = "logits"
EXPERT_LOGITS = "expert_logits"
HEADS = ("cosine", "linear")


def balpoe_targets(labels):
    """Maps labels to the targets of a BalPoE model's two outputs.

    Pure function: works on NumPy arrays, tensors and inside
    `tf.data.Dataset.map` (`ds.map(lambda x, y: (x, balpoe_targets(y)))`).

    Args:
        labels: int labels `(batch,)` or soft labels `(batch, C)`.

    Returns:
        `{"logits": labels, "expert_logits": labels}`.
    """
    return {LOGITS: labels, EXPERT_LOGITS: labels}


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


def apply_expert_heads(expert_features, num_classes, *, scale=30.0,
                       head="cosine", linear_init=None):
    """Per-expert classifier heads merged into the BalPoE outputs.

    Args:
        expert_features: list of `M` pooled feature tensors `(batch, D)`.
        num_classes: int >= 2, classes `C`.
        scale, head, linear_init: see `make_expert_heads`.

    Returns:
        Dict `{"logits": (batch, C), "expert_logits": (batch, M, C)}`,
        float32 under every dtype policy.
    """
    heads = make_expert_heads(
        num_classes, [f.shape[-1] for f in expert_features], scale=scale,
        head=head, linear_init=linear_init,
    )
    logits = [layer(f) for layer, f in zip(heads, expert_features)]
    return merge_expert_logits(logits, make_expert_average())


def expert_feature_list(features, num_experts):
    """`M` pooled features: the list itself, or `M` times one shared one."""
    if isinstance(features, (list, tuple)):
        return list(features)
    return [features] * num_experts


def build_expert_heads_model(backbone, num_classes, *, num_experts, scale,
                             head, linear_init, name):
    """One flat functional model: `backbone`'s layers, then a head per
    expert on its pooled features (the models of the ResNet builders).

    Args:
        backbone: a functional `keras.Model` returning `M` pooled
            `(batch, D)` features, or one that all `M` experts share.
        num_classes, num_experts, scale, head, linear_init: see
            `make_expert_heads`; `name`: the model name.

    Returns:
        A `keras.Model`: `backbone`'s input -> `{"logits": (batch, C),
        "expert_logits": (batch, M, C)}`.
    """
    features = expert_feature_list(backbone.output, num_experts)
    outputs = apply_expert_heads(features, num_classes, scale=scale,
                                 head=head, linear_init=linear_init)
    return keras.Model(backbone.input, outputs, name=name)


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


def _apply_expert_layers(x, expert_layers, index):
    """The optional per-expert block of `add_balpoe_heads`, then pooling."""
    if callable(expert_layers):
        x = expert_layers(x, index)
        return apply_block(x, make_expert_block(None, len(x.shape), index))
    return apply_block(x, make_expert_block(expert_layers, len(x.shape), index))


def add_balpoe_heads(backbone, num_classes, num_experts=3, scale=30.0,
                     expert_layers=None, head="cosine", name=None):
    """Puts BalPoE expert heads on a Keras backbone (any architecture).

    Per expert: optional block -> global average pooling (if the features
    are 3-D or 4-D) -> cosine head; then the mean over experts. The backbone
    is shared by all experts (as the reference shares its early stages) and
    appears as one nested layer named `backbone.name`. For a model that also
    knows its class counts and lambdas (compile defaults, evaluation and
    export without the run's settings), use `BalPoEClassifier`.

    Args:
        backbone: a built `keras.Model` with one input and one output, e.g.
            `keras.applications.ResNet50(include_top=False, weights=None)`.
            It must do its own pixel preprocessing.
        num_classes: int >= 2, classes `C`.
        num_experts: int >= 1, experts `M`.
        scale: float > 0, cosine-logit scale `s`.
        expert_layers: None (heads directly on the pooled features); a
            sequence of ints (per expert, `Dense(units, relu)` layers after
            pooling); or a callable `fn(features, expert_index) -> tensor`
            that builds new per-expert layers on the unpooled backbone
            output (its result is pooled if still 3-D or 4-D).
        head: `"cosine"` or `"linear"`, see `make_expert_heads`.
        name: model name (default `f"balpoe_{backbone.name}"`).

    Returns:
        A functional `keras.Model` mapping the backbone's input to
        `{"logits": (batch, C), "expert_logits": (batch, M, C)}`.
    """
    if not isinstance(backbone, keras.Model) or len(backbone.inputs) != 1:
        raise ValueError(
            "add_balpoe_heads needs a built keras.Model with exactly one "
            "input (build a Sequential backbone with keras.Input first). "
            f"Received: {backbone!r}"
        )
    validate_num_classes(num_classes)
    validate_backbone_args(num_experts, 0, 0)
    inputs = keras.Input(backbone.inputs[0].shape[1:], name="images")
    features = backbone(inputs)
    if isinstance(features, (list, tuple, dict)):
        raise ValueError(
            "add_balpoe_heads needs a backbone with a single output tensor. "
            f"Received outputs: {features}"
        )
    pooled = [_apply_expert_layers(features, expert_layers, index)
              for index in range(num_experts)]
    outputs = apply_expert_heads(pooled, num_classes, scale=scale, head=head)
    return keras.Model(inputs, outputs, name=name or f"balpoe_{backbone.name}")


__all__ = [
    "EXPERT_LOGITS",
    "LOGITS",
    "add_balpoe_heads",
    "apply_expert_heads",
    "balpoe_targets",
]
