"""`BalPoEClassifier`: the BalPoE task model, a backbone plus expert heads.

The model holds what it is: its training class counts (the prior), the
per-expert lambdas, the head settings and optionally the class names. So
`compile()` needs no arguments, and evaluation and export read all of it
from the `.keras` file.
"""

import contextlib
import copy
import inspect

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras import labels
from balpoe_keras.metrics import ExpertLoss
from balpoe_keras.models import compile_checks
from balpoe_keras.models import compile_defaults
from balpoe_keras.models.components import check_backbone_pixel_range
from balpoe_keras.models.components import validate_num_classes
from balpoe_keras.models.heads import EXPERT_LOGITS
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

    Train it like any Keras classifier: `compile()` (BalPoE's loss, the
    report metrics and the reference's SGD by default), then `fit(x, y)`
    with integer labels `(N,)`, one-hot or Mixup soft labels `(N, C)`.
    `fit` and `evaluate` report the loss, accuracy, balanced accuracy, the
    non-empty many/medium/few accuracies, ECE (all fractions in [0, 1])
    and each expert's gLA loss `expert_<i>_loss` (nats).

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

    Call: images `(B, H, W, channels)` -> `{"logits": (B, C),
    "expert_logits": (B, M, C)}`, float32: the ensemble logits and the
    stacked per-expert logits (what the loss sees). `predict` returns the
    ensemble logits `(N, C)`, `predict_proba` their softmax and
    `predict_outputs` both outputs (`["expert_logits"]`: `(N, M, C)`).

    Example:
        >>> backbone = build_balpoe_backbone("resnet32", num_experts=3)
        >>> model = BalPoEClassifier(backbone, class_counts=[500, 50, 5])
        >>> model.compile()  # BalPoELoss, report metrics, TorchSGD(0.1)
        >>> model.fit(images, labels, epochs=1)
        >>> # The reference's 200 epochs warm up and drop the rate:
        >>> # compile(optimizer=bk.TorchSGD(
        >>> #     bk.optimizers.WarmupStepSchedule(0.1, steps_per_epoch)))
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
        kwargs.setdefault("name", f"balpoe_{backbone.name}")
        super().__init__(**kwargs)

        # === Layers ===
        self.backbone = backbone
        if shared:
            rank = len(backbone.output.shape)
            self.expert_blocks = [make_expert_block(expert_layers, rank, i)
                                  for i in range(num_experts)]
            dim = expert_layers[-1] if expert_layers else (
                backbone.output.shape[-1])
            dims = [dim] * num_experts
        else:
            self.expert_blocks = [[] for _ in range(num_experts)]
            dims = [feature.shape[-1] for feature in backbone.output]
        self.expert_heads = make_expert_heads(
            len(counts), dims, scale=scale, head=head,
            linear_init=linear_init)
        self.expert_average = make_expert_average()
        # Each expert's gLA loss, reported by fit/evaluate (nats).
        self.expert_losses = [
            ExpertLoss(i, counts, lams) for i in range(num_experts)]
        # Labels outside [0, C) seen by compiled steps (eager ones raise);
        # fit/evaluate turn a count > 0 into the error (`_LabelGuard`).
        self.invalid_labels = keras.metrics.Sum(name=_INVALID_LABELS)
        # Images with pixels outside [0, 1] (e.g. 0-255), likewise.
        self.invalid_images = keras.metrics.Sum(name=_INVALID_IMAGES)
        # Streamed sample weights that are NaN, inf or negative, likewise.
        self.invalid_weights = keras.metrics.Sum(name=_INVALID_WEIGHTS)

        # === Config ===
        self.class_counts = counts
        self.lambdas = lams
        self.class_names = names
        self.allow_unbalanced = bool(allow_unbalanced)
        self.scale = float(scale)
        self.head = head
        self.linear_head_initializer = linear_init
        self.expert_layers = expert_layers

        # Built here, outside the model's name scope, so that variable
        # paths do not depend on the model's name (`expert_0_head/kernel`,
        # as the backbone's `stem_conv/kernel`).
        self._build_experts(tuple(backbone.input.shape))
        self.built = True

    def build(self, input_shape):
        """Nothing to do: the model is built when constructed."""

    def _build_experts(self, input_shape):
        """Builds the expert blocks and heads on the backbone's features
        (the backbone is built already), expert by expert."""
        features = self.backbone.compute_output_spec(
            keras.KerasTensor(input_shape))
        shapes = [tuple(f.shape) for f in expert_feature_list(
            features, self.num_experts)]
        head_shapes = []
        for shape, block, head in zip(shapes, self.expert_blocks,
                                      self.expert_heads):
            for layer in block:
                layer.build(shape)
                shape = tuple(layer.compute_output_shape(shape))
            head.build(shape)
            head_shapes.append(shape[:-1] + (self.num_classes,))
        self.expert_average.build(head_shapes)

    def call(self, images, training=None):
        if self._takes_images:
            _check_image_spec(images, self.input_shape)
        features = expert_feature_list(
            self.backbone(images, training=training), self.num_experts)
        logits = [head(apply_block(x, block))
                  for head, block, x in zip(self.expert_heads,
                                            self.expert_blocks, features)]
        return merge_expert_logits(logits, self.expert_average)

    def compute_output_spec(self, images, training=None):
        batch, classes = images.shape[0], self.num_classes
        return {
            LOGITS: keras.KerasTensor((batch, classes), "float32"),
            EXPERT_LOGITS: keras.KerasTensor(
                (batch, self.num_experts, classes), "float32"),
        }

    @property
    def input_shape(self):
        """`(None, H, W, channels)`, the backbone's image input shape."""
        return tuple(self.backbone.input.shape)

    @property
    def _takes_images(self):
        """Rank-4 input `(B, H, W, channels)`: pixels checked in [0, 1]."""
        return len(self.input_shape) == 4

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
            loss: `"auto"` (`BalPoELoss(class_counts, lambdas)`) or your
                own loss on the expert logits: it is called with the labels
                and the `(B, M, C)` expert logits.
            metrics: `"auto"`: accuracy, `BalancedAccuracy`, the non-empty
                many/medium/few `GroupAccuracy`s and
                `ExpectedCalibrationError(from_logits=True)`. Or your own
                list. Metrics see the ensemble logits `(B, C)` and class ids
                `(B,)` (the argmax of one-hot or soft labels). Each
                expert's loss is reported in any case.
            **kwargs: other `keras.Model.compile` arguments
                (`jit_compile`, `steps_per_execution`, ...).

        Raises:
            ValueError: for per-output dicts, Keras' built-in losses (they
                take `(B, C)`, not the expert logits), metrics that read
                one-hot labels, and probability metrics without
                `from_logits=True` (`compile_checks`).
        """
        if _is_auto(optimizer):
            optimizer = compile_defaults.make_default_optimizer()
        if _is_auto(loss):
            loss = compile_defaults.make_balpoe_loss(
                self.class_counts, self.lambdas,
                allow_unbalanced=self.allow_unbalanced)
        if _is_auto(metrics):
            metrics = compile_defaults.make_ensemble_metrics(
                self.class_counts)
        compile_checks.check_compile_args(loss, metrics, kwargs)
        super().compile(optimizer=optimizer, loss=loss, metrics=metrics,
                        **kwargs)

    def compile_from_config(self, config):
        # keras.Model skips an overridden `compile()` when loading a
        # `.keras` file; ours takes the saved explicit values like its own.
        config = keras.saving.deserialize_keras_object(config)
        if isinstance(config.get("loss"), dict) or isinstance(
                config.get("metrics"), dict):
            raise ValueError(
                "This .keras file was compiled with per-output losses or "
                "metrics by an older balpoe_keras. Load it with "
                "keras.saving.load_model(path, compile=False) and call "
                "model.compile() again."
            )
        try:
            self.compile(**config)
        except ValueError as error:
            raise ValueError(
                f"This .keras file was compiled with arguments "
                f"BalPoEClassifier.compile() now refuses: {error} Load it "
                "with keras.saving.load_model(path, compile=False) and call "
                "model.compile() again.") from None
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None,
                     training=True):
        """The compiled loss on the expert logits `(B, M, C)`, plus
        regularization losses; a scalar in nats."""
        return super().compute_loss(
            x, y, _expert_logits(y_pred), sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on the ensemble logits and class
        ids, and each expert's loss on the expert logits."""
        if self._takes_images:
            self.invalid_images.update_state(_count_unscaled_images(x))
        ids = labels.class_ids(y, self.num_classes)
        self.invalid_labels.update_state(
            labels.count_out_of_range(ids, self.num_classes))
        if sample_weight is not None:
            self.invalid_weights.update_state(
                labels.count_invalid_weights(sample_weight))
        if self._compile_metrics is not None:
            self._compile_metrics.update_state(ids, y_pred[LOGITS],
                                               sample_weight)
        for metric in self.expert_losses:
            metric.update_state(y, y_pred[EXPERT_LOGITS], sample_weight)
        return self.get_metrics_result()

    def fit(self, *args, **kwargs):
        """`keras.Model.fit` (same arguments), with checks before training.

        `class_weight` is refused: the logit adjustment already balances
        the classes, and weighting them again would break the loss's Fisher
        consistency. Labels outside `[0, C)` and images outside [0, 1]
        raise `ValueError`: NumPy inputs (also a NumPy `validation_data`
        tuple) before training, streamed ones after the first step of each
        epoch and at the end of the epoch that saw them. A NumPy
        `sample_weight` (or validation weight) with NaN, inf or negative
        values is refused before training; streamed ones as streamed
        labels are.
        """
        call = _bound(keras.Model.fit, self, args, kwargs)
        arguments = call.arguments
        if arguments.get("class_weight") is not None:
            raise ValueError(_CLASS_WEIGHT_MESSAGE.format("fit"))
        self._check_arrays(arguments.get("x"), arguments.get("y"),
                           arguments.get("sample_weight"))
        validation = arguments.get("validation_data")
        if isinstance(validation, (tuple, list)) and 2 <= len(
                validation) <= 3:
            try:
                self._check_arrays(*validation)
            except ValueError as error:
                raise ValueError(f"In validation_data: {error}") from None
        arguments["callbacks"] = _guarded(arguments.get("callbacks"), self)
        with _weights_kept_on_error(self):
            return super().fit(*call.args[1:], **call.kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate` (same arguments); labels outside `[0, C)`
        raise `ValueError` (NumPy labels before the first step), as NumPy
        `sample_weight` values that are NaN, inf or negative do."""
        call = _bound(keras.Model.evaluate, self, args, kwargs)
        arguments = call.arguments
        self._check_arrays(arguments.get("x"), arguments.get("y"),
                           arguments.get("sample_weight"))
        arguments["callbacks"] = _guarded(arguments.get("callbacks"), self)
        with _weights_kept_on_error(self):
            return super().evaluate(*call.args[1:], **call.kwargs)

    def get_metrics_result(self):
        # The count of invalid labels is read by fit/evaluate's guard; it is
        # no result (0 whenever training goes on).
        results = super().get_metrics_result()
        results.pop(_INVALID_LABELS, None)
        results.pop(_INVALID_IMAGES, None)
        results.pop(_INVALID_WEIGHTS, None)
        return results

    def _check_arrays(self, x, y, sample_weight=None):
        """NumPy images, labels and sample weights, read once on the host
        before any step (never from a device, so also where the steps run
        on a GPU)."""
        if self._takes_images:
            _check_array_images(x)
        _check_sample_weight(sample_weight)
        if y is None or not isinstance(y, (np.ndarray, list, tuple)):
            return
        labels.host_class_ids(y, self.num_classes)

    def train_on_batch(self, x, y=None, sample_weight=None,
                       class_weight=None, return_dict=False):
        """`keras.Model.train_on_batch`, with `fit`'s checks on the batch
        before its step: labels in `[0, C)`, images in [0, 1], finite
        non-negative sample weights (backend tensors are copied to the
        host for them); `class_weight` is refused as by `fit`."""
        if class_weight is not None:
            raise ValueError(_CLASS_WEIGHT_MESSAGE.format("train_on_batch"))
        self._check_arrays(_on_host(x), _on_host(y), _on_host(sample_weight))
        with _weights_kept_on_error(self):
            return super().train_on_batch(x, y, sample_weight=sample_weight,
                                          return_dict=return_dict)

    def test_on_batch(self, x, y=None, sample_weight=None,
                      return_dict=False):
        """`keras.Model.test_on_batch`, with `evaluate`'s checks on the
        batch before it is scored."""
        self._check_arrays(_on_host(x), _on_host(y), _on_host(sample_weight))
        with _weights_kept_on_error(self):
            return super().test_on_batch(x, y, sample_weight=sample_weight,
                                         return_dict=return_dict)

    def predict(self, x, batch_size=None, verbose="auto", steps=None,
                callbacks=None):
        """The ensemble logits `(N, C)` float32 NumPy, as
        `keras.Model.predict` (images in `[0, 1]`)."""
        return self.predict_outputs(x, batch_size, verbose, steps,
                                    callbacks)[LOGITS]

    def predict_outputs(self, x, batch_size=None, verbose=0, steps=None,
                        callbacks=None):
        """Both outputs over `x`, batched as `keras.Model.predict`:
        `{"logits": (N, C), "expert_logits": (N, M, C)}` float32 NumPy
        (the ensemble logits are the mean of the expert logits)."""
        if self._takes_images:
            x, steps = _checked_images(x, steps)
        with _weights_kept_on_error(self):
            return super().predict(x, batch_size=batch_size,
                                   verbose=verbose, steps=steps,
                                   callbacks=callbacks)

    def predict_on_batch(self, x):
        """The ensemble logits `(B, C)` of one batch, as NumPy."""
        if self._takes_images:
            _check_array_images(_on_host(x))
        return super().predict_on_batch(x)[LOGITS]

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
        logits = self.predict(x, batch_size=batch_size, verbose=verbose,
                              **kwargs)
        logits = keras.ops.convert_to_tensor(logits, "float32")
        return np.asarray(keras.ops.convert_to_numpy(
            keras.ops.softmax(logits, axis=-1)), np.float32)

    def get_config(self):
        # Not chained to keras.Model's (as keras-hub's tasks): the
        # constructor takes the backbone and the BalPoE settings.
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


def check_model(model):
    """Raises `ValueError` unless `model` has `predict_outputs` (a
    `BalPoEClassifier`), naming what to do."""
    if not callable(getattr(model, "predict_outputs", None)):
        raise ValueError(
            "Expected a BalPoEClassifier (build_balpoe_classifier or "
            "add_balpoe_heads). Received a "
            f"{type(model).__name__}; a .keras file of a plain functional "
            "model was saved by an older balpoe_keras: build the classifier "
            "and train it again."
        )


_INVALID_LABELS = "invalid_labels"
_INVALID_IMAGES = "invalid_images"
_INVALID_WEIGHTS = "invalid_weights"
_CLASS_WEIGHT_MESSAGE = (
    "BalPoEClassifier.{}() takes no class_weight: its loss already "
    "balances the classes through class_counts, and class weights would "
    "balance them twice (the ensemble would no longer target the balanced "
    "error). To balance for another class distribution, build the model "
    "with those class_counts; for per-sample weights, pass sample_weight."
)

# Pixels are float in [0, 1]; this much beyond passes (resampling
# overshoot, rounding).
PIXEL_TOLERANCE = 1e-3
_PIXEL_MESSAGE = (
    "BalPoEClassifier takes float images with pixels in [0, 1]; {}. "
    "Scale 0-255 images first: images.astype('float32') / 255. Images "
    "already standardised ((x - mean) / std, negative values): pass the "
    "[0, 1] pixels instead, the model normalises them itself."
)


def _check_image_spec(images, input_shape):
    """Static checks (free at run time): a float dtype and the backbone's
    channel count."""
    dtype = keras.backend.standardize_dtype(images.dtype)
    if "float" not in dtype:
        raise ValueError(_PIXEL_MESSAGE.format(f"received {dtype} images"))
    if len(images.shape) != len(input_shape):
        raise ValueError(
            f"This model takes a batch of images of shape "
            f"{tuple(input_shape)} (batch, height, width, channels); "
            f"received shape {tuple(images.shape)}. Add the missing axis "
            "(a grayscale batch (B, H, W): images[..., None]; one image: "
            "images[None]).")
    channels = input_shape[-1]
    if images.shape[-1] is not None and channels is not None and (
            images.shape[-1] != channels):
        raise ValueError(
            f"This model takes images with {channels} channel(s); received "
            f"shape {tuple(images.shape)}. Convert the images (grayscale "
            "to RGB: repeat the channel 3 times; RGB to grayscale: "
            "weighted sum) or build the model for "
            f"{images.shape[-1]} channel(s)."
        )


def _count_unscaled_images(images):
    """Images `(B, H, W, C)` with a pixel outside [0, 1] or not finite
    (scalar)."""
    images = keras.ops.convert_to_tensor(images)
    if "float" not in keras.backend.standardize_dtype(images.dtype):
        return keras.ops.convert_to_tensor(0.0)  # `call` refuses them.
    flat = keras.ops.reshape(images, (keras.ops.shape(images)[0], -1))
    # Not max/min alone: XLA's max/min reductions may skip a NaN.
    bad = keras.ops.logical_not(keras.ops.logical_and(
        keras.ops.all(keras.ops.isfinite(flat), axis=-1),
        keras.ops.logical_and(
            keras.ops.max(flat, axis=-1) <= 1.0 + PIXEL_TOLERANCE,
            keras.ops.min(flat, axis=-1) >= -PIXEL_TOLERANCE)))
    return keras.ops.sum(keras.ops.cast(bad, "float32"))


def _check_array_images(x):
    """One pass over NumPy images before any step."""
    if not isinstance(x, np.ndarray) or x.size == 0:
        return
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(_PIXEL_MESSAGE.format(f"received {x.dtype} images"))
    low, high = x.min(), x.max()  # NaN if any pixel is.
    if not (np.isfinite(low) and np.isfinite(high)):
        raise ValueError(
            "BalPoEClassifier received images with non-finite pixels (NaN "
            "or inf): they would turn every weight into NaN. Find them with "
            "np.flatnonzero(~np.isfinite(images).all(axis=(1, 2, 3))) and "
            "fix or drop them.")
    # In the images' dtype, as the in-graph check and serving compare.
    if high > x.dtype.type(1.0 + PIXEL_TOLERANCE) or low < x.dtype.type(
            -PIXEL_TOLERANCE):
        raise ValueError(_PIXEL_MESSAGE.format(
            f"received pixels in [{float(low):g}, {float(high):g}]"))


def _check_sample_weight(sample_weight):
    """NumPy (or list) sample weights: finite and non-negative. A NaN made
    the model's weights NaN, a negative one turns that sample's
    gradient step into an ascent; Keras takes both."""
    if sample_weight is None or not isinstance(sample_weight,
                                               (np.ndarray, list, tuple)):
        return
    weights = np.asarray(sample_weight)
    if weights.size == 0 or not np.issubdtype(weights.dtype, np.number):
        return
    bad = ~np.isfinite(weights) | (weights < 0)
    if bad.any():
        first = np.flatnonzero(bad.reshape(-1))[:5]
        values = weights.reshape(-1)[first]
        raise ValueError(
            f"sample_weight must be finite and >= 0; {int(bad.sum())} of "
            f"{weights.size} values are not (first at flat indices "
            f"{first.tolist()}: {values.tolist()}). A NaN would turn the "
            "model weights into NaN and a negative weight would push "
            "the model away from that sample's label: fix or drop them (a "
            "weight of 0 leaves a sample out).")


def _checked_images(x, steps):
    """`x` for `predict`: NumPy arrays checked at once, anything else
    (tf.data, generators, `PyDataset`) batch by batch on the host as
    `predict` draws it; returns `(x, steps)`."""
    x = _on_host(x)
    if isinstance(x, np.ndarray):
        _check_array_images(x)
        return x, steps
    if isinstance(x, keras.utils.PyDataset) and steps is None:
        steps = len(x)
    return _checked_batches(x), steps


def _on_host(value):
    """A backend tensor as a NumPy array (a copy from the device); anything
    else as given."""
    if not isinstance(value, np.ndarray) and hasattr(value, "shape") and (
            hasattr(value, "dtype")):
        return np.asarray(keras.ops.convert_to_numpy(value))
    return value


def _checked_batches(batches):
    for batch in batches:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        images = np.asarray(keras.ops.convert_to_numpy(images))
        _check_array_images(images)
        yield (images,)


class _LabelGuard(keras.callbacks.Callback):
    """Raises `ValueError` when a compiled step saw labels outside `[0, C)`
    or images outside [0, 1]: after the first step (or first execution of
    `steps_per_execution` steps) of each epoch and evaluation, so that a
    stream that is wrong throughout (0-255 pixels, a shifted label map)
    stops at once, and at the end of the epoch or evaluation (before any
    later callback records or checkpoints it; for an epoch with
    `validation_data`, when its validation begins, as that resets the
    counts). It reads the model's counts at those points only, and has no
    batch-end hooks, so Keras may run the others' off the training thread
    (`async_safe`)."""

    async_safe = True

    def __init__(self):
        super().__init__()
        self._epoch, self._in_epoch = 0, False
        self._first_step_checked = False

    def _check_first_step(self, batch, when):
        # Batch-begin hooks run on the training thread, in order; a later
        # batch's begin follows the first step's completion.
        if batch > 0 and not self._first_step_checked:
            self._first_step_checked = True
            self._check(when)

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch, self._in_epoch = epoch, True
        self._first_step_checked = False

    def on_train_batch_begin(self, batch, logs=None):
        self._check_first_step(
            batch, f"in the first step trained in epoch {self._epoch + 1} "
            "(the model took it)")

    def on_test_begin(self, logs=None):
        if self._in_epoch:
            # fit's validation, before the epoch ends: it resets the
            # counts, so the training steps' are read now.
            self._check(f"in epoch {self._epoch + 1}")
        self._first_step_checked = False

    def on_test_batch_begin(self, batch, logs=None):
        self._check_first_step(batch, "in the first step of the evaluation")

    def _check(self, when):
        sync = getattr(self.model, "jax_state_sync", None)
        if sync is not None:  # JAX keeps the state off the model mid-epoch.
            sync()
        count = _read(self.model.invalid_labels)
        if count > 0:
            raise ValueError(
                f"Labels must be class ids in [0, {self.model.num_classes}):"
                f" {count} label(s) outside that range {when} (or one-hot "
                "/ soft label rows that are not distributions: a negative "
                "value or a sum away from 1, such as the all-zero row "
                "keras.ops.one_hot gives for an id outside the range; or "
                "float ids that are not whole numbers). Check "
                "the dataset's label map and the class counts (one per "
                "class)."
            )
        count = _read(self.model.invalid_images)
        if count > 0:
            raise ValueError(_PIXEL_MESSAGE.format(
                f"{count} image(s) {when} had pixels outside it or not "
                "finite (NaN, inf)"))
        count = _read(self.model.invalid_weights)
        if count > 0:
            raise ValueError(
                f"sample_weight must be finite and >= 0; {count} weight(s) "
                f"{when} were not (NaN, inf or negative). A NaN turns the "
                "model weights into NaN and a negative weight pushes the "
                "model away from that sample's label: fix or drop them in "
                "the dataset (a weight of 0 leaves a sample out)."
            )

    def on_epoch_end(self, epoch, logs=None):
        self._in_epoch = False
        self._check(f"in epoch {epoch + 1}")

    def on_test_end(self, logs=None):
        self._check("in the evaluation")
        # Keras' end-of-epoch validation runs inside the training epoch;
        # the epoch-end check then reads the validation's counts.
        self._first_step_checked = True


@contextlib.contextmanager
def _weights_kept_on_error(model):
    """On JAX, Keras detaches the variables' values while a loop runs and
    reattaches them after each completed step; an error raised in the
    first step (a bad batch) would leave them detached, i.e. lose the
    weights. Keeps references (JAX arrays are immutable: no copy) and
    reattaches any value still detached when an error leaves the loop."""
    if keras.backend.backend() != "jax":
        yield
        return
    values = [(v, v.value) for v in model.variables]
    try:
        yield
    except BaseException:
        for variable, value in values:
            if variable._value is None:  # Detached by the JAX trainer.
                variable.assign(value)
        raise


def _bound(method, model, args, kwargs):
    """`inspect.BoundArguments` of a call to `keras.Model` `method`, so
    that an argument is found whether given by position or keyword (an
    unknown one raises Keras' own `TypeError`)."""
    return inspect.signature(method).bind(model, *args, **kwargs)


def _read(metric):
    return int(float(keras.ops.convert_to_numpy(metric.result())))


def _guarded(callbacks, model):
    """The caller's callbacks with a `_LabelGuard` first (before anything
    records the epoch)."""
    if isinstance(callbacks, keras.callbacks.CallbackList):
        return callbacks  # Already assembled by the caller.
    return [_LabelGuard(), *(callbacks or [])]


def _expert_logits(y_pred):
    """The `(B, M, C)` expert logits of the model's outputs."""
    return y_pred[EXPERT_LOGITS] if isinstance(y_pred, dict) else y_pred


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
    if len(backbone.inputs[0].shape) == 4:
        check_backbone_pixel_range(backbone)
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
