"""`BalPoEClassifier`: the BalPoE task model, a backbone plus expert heads.

The model holds what it is: its training class counts (the prior), the
per-expert lambdas, the head settings and optionally the class names. So
`compile()` needs no arguments, and evaluation and export read all of it
from the `.keras` file.
"""

import copy

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras.models import compile_defaults
from balpoe_keras.models.components import validate_num_classes
from balpoe_keras.models.heads import LOGITS
from balpoe_keras.models.heads import apply_block
from balpoe_keras.models.heads import expert_feature_list
from balpoe_keras.models.heads import make_expert_average
from balpoe_keras.models.heads import make_expert_block
from balpoe_keras.models.heads import make_expert_heads
from balpoe_keras.models.heads import merge_expert_logits
from balpoe_keras.models.heads import validate_head_args


@keras.saving.register_keras_serializable(package="balpoe_keras")
class BalPoEClassifier(keras.Model):
    """Balanced product of experts on a Keras backbone (Sanchez Aimar et
    al., CVPR 2023).

    Expert `m` has a head on its features and is trained (`compile()`'s
    default loss) with the gLA loss `CE(z_m + (1 - lambda_m) log pi)`,
    `pi` the training prior from `class_counts`; the prediction is the mean
    of the expert logits `z_m`. When the lambdas average to 0 the ensemble
    is Fisher-consistent for the balanced error (paper Corollary 1.1).

    The backbone is one nested layer (`model.backbone`) and is either
    - single-output, rank 2, 3 or 4 (`(B, D)`, `(B, T, D)`, `(B, H, W, D)`):
      all experts share it; per expert, global average pooling (for rank 3
      or 4, layer `expert_{i}_pool`), optional `Dense(units, relu)` layers
      (`expert_layers`), then the head; or
    - a list of `M` pooled `(B, D)` features, one per expert (the ResNet
      backbones of `build_balpoe_backbone`): expert `m` gets feature `m`.

    Args:
        backbone: a built `keras.Model` with one input, e.g.
            `build_balpoe_backbone("resnet32", num_experts=3)` or
            `keras.applications.ResNet50(include_top=False, weights=None)`.
            It must do its own pixel preprocessing.
        class_counts: `C` >= 2 positive ints, training images per class.
        lambdas: `M` floats, one per expert, head expert first. They must
            average to 0 unless `allow_unbalanced=True`.
        allow_unbalanced: bool, allow lambdas that do not average to 0 (the
            reference's ImageNet-LT setting {1, -0.25, -1.5}).
        scale: float > 0, the cosine-logit scale `s` (reference: 30).
        head: `"cosine"` (the reference's `NormedLinear` times `scale`) or
            `"linear"` (Dense with bias; `scale` unused).
        linear_head_initializer: kernel initializer of `head="linear"`
            (None: PyTorch's `nn.Linear` default, U(+-1/sqrt(D))).
        expert_layers: None, or a list of ints: `Dense(units, relu)` layers
            per expert after pooling (single-output backbones only).
        class_names: optional `C` strings, saved with the model (used by the
            evaluation report and the SavedModel's `top_k_names`).
        **kwargs: `keras.Model` arguments: `name` (default
            `f"balpoe_{backbone.name}"`), `trainable`.

    Outputs: `{"logits": (B, C), "expert_logits": (B, M, C)}`, float32:
    the ensemble logits (predict with them) and the stacked per-expert
    logits (the loss's input).

    Example:
        >>> backbone = build_balpoe_backbone("resnet32", num_experts=3)
        >>> model = BalPoEClassifier(backbone, class_counts=[500, 50, 5])
        >>> model.compile()  # BalPoELoss, report metrics, TorchSGD(0.1)
        >>> model.fit(images, balpoe_targets(labels), epochs=200)
        >>> model.predict_proba(images).shape
        (N, 3)
    """

    def __init__(self, backbone, class_counts, lambdas=(1.0, 0.0, -1.0), *,
                 allow_unbalanced=False, scale=30.0, head="cosine",
                 linear_head_initializer=None, expert_layers=None,
                 class_names=None, **kwargs):
        counts = class_prior.validate_class_counts(class_counts)
        validate_num_classes(len(counts))
        lams = class_prior.validate_lambdas(
            lambdas, allow_unbalanced=allow_unbalanced)
        validate_head_args(head, scale)
        expert_layers = _validate_expert_layers(expert_layers)
        shared = _validate_backbone(backbone, lams, expert_layers)
        names = _validate_class_names(class_names, len(counts))
        linear_init = None
        if linear_head_initializer is not None:
            linear_init = keras.initializers.get(linear_head_initializer)
        num_experts = len(lams)

        # === Layers ===
        # Built in this order (per-expert blocks, then heads) so the draws
        # of their initializers match the ResNet builders'.
        if shared:
            rank = len(backbone.output.shape)
            blocks = [make_expert_block(expert_layers, rank, i)
                      for i in range(num_experts)]
            dim = expert_layers[-1] if expert_layers else (
                backbone.output.shape[-1])
            dims = [dim] * num_experts
        else:
            blocks = [[] for _ in range(num_experts)]
            dims = [feature.shape[-1] for feature in backbone.output]
        heads = make_expert_heads(len(counts), dims, scale=scale, head=head,
                                  linear_init=linear_init)
        average = make_expert_average()

        # === Functional Model ===
        inputs = backbone.input
        features = expert_feature_list(backbone(inputs), num_experts)
        logits = [layer(apply_block(x, block))
                  for layer, block, x in zip(heads, blocks, features)]
        outputs = merge_expert_logits(logits, average)
        kwargs.setdefault("name", f"balpoe_{backbone.name}")
        super().__init__(inputs=inputs, outputs=outputs, **kwargs)

        # === Config ===
        self.backbone = backbone
        self.expert_blocks = blocks
        self.expert_heads = heads
        self.expert_average = average
        self.class_counts = counts
        self.lambdas = lams
        self.class_names = names
        self.allow_unbalanced = bool(allow_unbalanced)
        self.scale = float(scale)
        self.head = head
        self.linear_head_initializer = linear_init
        self.expert_layers = expert_layers

    @property
    def num_classes(self):
        """`C`, the number of classes (of `class_counts`)."""
        return len(self.class_counts)

    @property
    def num_experts(self):
        """`M`, the number of experts (of `lambdas`)."""
        return len(self.lambdas)

    @property
    def log_prior(self):
        """`log(pi_c + 1e-9)`, `(C,)` float32 NumPy, in nats, of the
        training prior `pi_c = n_c / sum(n)` (`class_prior`)."""
        return class_prior.compute_log_prior(self.class_counts)

    def compile(self, optimizer="auto", loss="auto", metrics="auto",
                **kwargs):
        """Configures the model for training; `"auto"` picks BalPoE's own.

        Args:
            optimizer: `"auto"` (the reference's SGD: `TorchSGD()`,
                momentum 0.9, Nesterov, coupled weight decay 5e-4, constant
                learning rate 0.1) or any Keras optimizer.
            loss: `"auto"`, `{"logits": None, "expert_logits":
                BalPoELoss(class_counts, lambdas)}`, or your own.
            metrics: `"auto"`: on `"logits"` accuracy, `BalancedAccuracy`,
                the non-empty many/medium/few `GroupAccuracy`s and
                `ExpectedCalibrationError(from_logits=True)`; on
                `"expert_logits"` one `ExpertLoss` per expert. Or your own.
            **kwargs: other `keras.Model.compile` arguments
                (`jit_compile`, `steps_per_execution`, ...).
        """
        if _is_auto(optimizer):
            optimizer = compile_defaults.make_default_optimizer()
        if _is_auto(loss):
            loss = compile_defaults.make_balpoe_loss(
                self.class_counts, self.lambdas,
                allow_unbalanced=self.allow_unbalanced)
        if _is_auto(metrics):
            metrics = compile_defaults.make_balpoe_metrics(
                self.class_counts, self.lambdas)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        **kwargs)

    def compile_from_config(self, config):
        # keras.Model skips an overridden `compile()` when loading a
        # `.keras` file; ours takes the saved explicit values like its own.
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def predict_proba(self, x, batch_size=None, verbose=0, **kwargs):
        """Class probabilities: softmax of the ensemble logits.

        They are calibrated for the balanced (uniform-prior) test
        distribution when the lambdas average to 0 (the ensemble then
        models it, paper Corollary 1.1) and the model was trained with
        Mixup, which the paper finds necessary for calibrated experts.

        Args:
            x: float images `(N, H, W, channels)` in `[0, 1]` (or anything
                `predict` accepts).
            batch_size: int, as `keras.Model.predict`.
            verbose: as `keras.Model.predict` (default silent).
            **kwargs: other `keras.Model.predict` arguments.

        Returns:
            `(N, C)` float32 NumPy array; rows sum to 1.
        """
        outputs = self.predict(x, batch_size=batch_size, verbose=verbose,
                               **kwargs)
        logits = keras.ops.convert_to_tensor(outputs[LOGITS], "float32")
        return np.asarray(keras.ops.convert_to_numpy(
            keras.ops.softmax(logits, axis=-1)), np.float32)

    def get_config(self):
        # Not chained to keras.Model's: a functional model's config is its
        # layer graph, which our constructor does not take (as keras-hub's
        # tasks).
        initializer = self.linear_head_initializer
        return {
            "name": self.name,
            "trainable": self.trainable,
            "backbone": keras.saving.serialize_keras_object(self.backbone),
            "class_counts": list(self.class_counts),
            "lambdas": list(self.lambdas),
            "allow_unbalanced": self.allow_unbalanced,
            "scale": self.scale,
            "head": self.head,
            "linear_head_initializer": None if initializer is None
            else keras.initializers.serialize(initializer),
            "expert_layers": None if self.expert_layers is None
            else list(self.expert_layers),
            "class_names": None if self.class_names is None
            else list(self.class_names),
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if isinstance(config["backbone"], dict):
            # A copy: deserializing consumes the dict it is given.
            config["backbone"] = keras.saving.deserialize_keras_object(
                copy.deepcopy(config["backbone"]))
        return cls(**config)


def _is_auto(value):
    return isinstance(value, str) and value == "auto"


def _validate_expert_layers(expert_layers):
    """None or a list of ints >= 1."""
    if expert_layers is None:
        return None
    if callable(expert_layers) or isinstance(expert_layers, (str, int)):
        raise ValueError(
            "Expected expert_layers as a list of ints (units of the Dense "
            "layers per expert), which the model can save. For other "
            "per-expert layers, build them into a backbone that returns one "
            "(batch, D) feature per expert, or use add_balpoe_heads(). "
            f"Received: expert_layers={expert_layers!r}"
        )
    units = tuple(expert_layers)
    if not units or any(int(u) != u or u < 1 for u in units):
        raise ValueError(
            "Expected expert_layers as a non-empty list of ints >= 1, or "
            f"None. Received: expert_layers={expert_layers!r}"
        )
    return [int(u) for u in units]


def _validate_backbone(backbone, lambdas, expert_layers):
    """True for a single-output (shared) backbone, False for one feature
    per expert; raises `ValueError` naming the problem and the fix."""
    if not isinstance(backbone, keras.Model) or len(backbone.inputs) != 1:
        raise ValueError(
            "Expected a built keras.Model backbone with exactly one input "
            "(build a Sequential one with keras.Input first). Received: "
            f"backbone={backbone!r}"
        )
    output = backbone.output
    if isinstance(output, dict):
        raise ValueError(
            "Expected a backbone returning one tensor or a list of per-expert "
            f"features, not a dict. Received outputs: {sorted(output)}"
        )
    if not isinstance(output, (list, tuple)):
        if len(output.shape) not in (2, 3, 4) or output.shape[-1] is None:
            raise ValueError(
                "Expected backbone features of rank 2, 3 or 4 with a known "
                "last dimension, (batch, D), (batch, T, D) or (batch, H, W, "
                f"D). Received shape {tuple(output.shape)}."
            )
        return True
    if len(output) != len(lambdas):
        raise ValueError(
            f"The backbone returns {len(output)} expert features but there "
            f"are {len(lambdas)} lambdas (one per expert). Received: "
            f"lambdas={lambdas}. Pass one lambda per backbone output, or "
            f"build the backbone with num_experts={len(lambdas)}."
        )
    bad = [tuple(f.shape) for f in output
           if len(f.shape) != 2 or f.shape[-1] is None]
    if bad:
        raise ValueError(
            "Expected the per-expert backbone outputs as pooled (batch, D) "
            f"features. Received shapes {bad}. Pool them in the backbone "
            "(e.g. GlobalAveragePooling2D) or return one shared tensor."
        )
    if expert_layers is not None:
        raise ValueError(
            "expert_layers adds per-expert layers on a shared single-output "
            "backbone; this backbone already returns one feature per expert. "
            f"Received: expert_layers={list(expert_layers)}. Pass None."
        )
    return False


def _validate_class_names(class_names, num_classes):
    """None or a list of `C` strings."""
    if class_names is None:
        return None
    if isinstance(class_names, str):
        raise ValueError(
            "Expected class_names as a list of strings, one per class. "
            f"Received: class_names={class_names!r}"
        )
    names = [str(n) for n in class_names]
    if len(names) != num_classes:
        raise ValueError(
            f"Got {len(names)} class_names for {num_classes} classes (one "
            f"per class_counts entry). Received: class_names={names}"
        )
    return names
