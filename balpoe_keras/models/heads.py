"""BalPoE expert heads and their dict outputs; heads on any Keras backbone."""

import keras

from balpoe_keras.layers import CosineHead
from balpoe_keras.layers import ExpertAverage
from balpoe_keras.models.components import validate_model_args

LOGITS = "logits"
EXPERT_LOGITS = "expert_logits"
_HEADS = ("cosine", "linear")
# PyTorch's nn.Linear default, kaiming_uniform(a=sqrt(5)) = U(+-1/sqrt(D)).
def _torch_linear_init():
    return keras.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform")



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


def apply_expert_heads(expert_features, num_classes, scale=30.0, head="cosine",
                       linear_init=None):
    """Per-expert classifier heads merged into the BalPoE outputs.

    Args:
        expert_features: list of `M` pooled feature tensors `(batch, D)`.
        num_classes: int >= 2, classes `C`.
        scale: float > 0, cosine-logit scale `s` (the reference uses 30).
        head: `"cosine"` (the reference's `NormedLinear` times `s`) or
            `"linear"` (a Dense layer with bias; `scale` is ignored, as the
            reference forces `s = 1` without `use_norm`).
        linear_init: kernel initializer of the linear head (None:
            PyTorch's `nn.Linear` default, U(+-1/sqrt(D))).

    Returns:
        Dict `{"logits": (batch, C), "expert_logits": (batch, M, C)}`,
        float32 under every dtype policy: the heads and their average
        compute in float32 (as Keras advises for a model's last layers),
        so a mixed-precision backbone does not round the scaled cosine
        logits to bfloat16 (steps of 0.06-0.125 at |z| of 8-30).
    """
    if head not in _HEADS:
        raise ValueError(
            f"Expected head in {_HEADS}. Received: head={head!r}"
        )
    expert_logits = []
    for index, features in enumerate(expert_features):
        name = f"expert_{index}_head"
        if head == "cosine":
            layer = CosineHead(num_classes, scale=scale, name=name,
                               dtype="float32")
        else:
            bound = 1.0 / float(features.shape[-1]) ** 0.5  # PyTorch bias.
            layer = keras.layers.Dense(
                num_classes,
                kernel_initializer=_clone(linear_init) or _torch_linear_init(),
                bias_initializer=keras.initializers.RandomUniform(
                    -bound, bound
                ),
                name=name,
                dtype="float32",
            )
        expert_logits.append(layer(features))
    logits, stacked = ExpertAverage(name="expert_average", dtype="float32")(
        expert_logits)
    return {LOGITS: logits, EXPERT_LOGITS: stacked}


def _clone(initializer):
    """A fresh copy, so experts never share one initializer instance."""
    if initializer is None:
        return None
    return initializer.__class__.from_config(initializer.get_config())


def _pool(x, name):
    """Global average pooling of 4-D `(B, H, W, D)` or 3-D `(B, T, D)`."""
    if len(x.shape) == 4:
        return keras.layers.GlobalAveragePooling2D(name=name)(x)
    if len(x.shape) == 3:
        return keras.layers.GlobalAveragePooling1D(name=name)(x)
    if len(x.shape) == 2:
        return x
    raise ValueError(
        "add_balpoe_heads expects backbone features of rank 2, 3 or 4. "
        f"Received shape {x.shape}."
    )


def _apply_expert_layers(x, expert_layers, index):
    """The optional per-expert block of `add_balpoe_heads`."""
    if callable(expert_layers):
        return expert_layers(x, index)
    x = _pool(x, f"expert_{index}_pool")
    for depth, units in enumerate(expert_layers or ()):
        x = keras.layers.Dense(
            units, activation="relu", name=f"expert_{index}_dense{depth}"
        )(x)
    return x


def add_balpoe_heads(backbone, num_classes, num_experts=3, scale=30.0,
                     expert_layers=None, head="cosine", name=None):
    """Puts BalPoE expert heads on a Keras backbone (any architecture).

    Per expert: optional block -> global average pooling (if the features
    are 3-D or 4-D) -> cosine head; then the mean over experts. The backbone
    is shared by all experts (as the reference shares its early stages) and
    appears as one nested layer named `backbone.name`.

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
        head: `"cosine"` or `"linear"`, see `apply_expert_heads`.
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
    validate_model_args(num_classes, num_experts, 0, 0)
    inputs = keras.Input(backbone.inputs[0].shape[1:], name="images")
    features = backbone(inputs)
    if isinstance(features, (list, tuple, dict)):
        raise ValueError(
            "add_balpoe_heads needs a backbone with a single output tensor. "
            f"Received outputs: {features}"
        )
    pooled = []
    for index in range(num_experts):
        x = _apply_expert_layers(features, expert_layers, index)
        if len(x.shape) > 2:
            x = _pool(x, f"expert_{index}_pool")
        pooled.append(x)
    outputs = apply_expert_heads(pooled, num_classes, scale=scale, head=head)
    return keras.Model(inputs, outputs, name=name or f"balpoe_{backbone.name}")


__all__ = [
    "EXPERT_LOGITS",
    "LOGITS",
    "add_balpoe_heads",
    "apply_expert_heads",
    "balpoe_targets",
]
