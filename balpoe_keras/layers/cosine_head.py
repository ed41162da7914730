"""Cosine classifier head (the reference's `NormedLinear`)."""

import keras
from keras import ops

_NORM_EPS = 1e-12  # torch.nn.functional.normalize's default eps.


def l2_normalize(x, axis):
    """`x / max(||x||_2, 1e-12)` along `axis`, as PyTorch's `normalize`."""
    norm = ops.sqrt(ops.sum(ops.square(x), axis=axis, keepdims=True))
    return x / ops.maximum(norm, _NORM_EPS)


@keras.saving.register_keras_serializable(package="balpoe_keras")
class UnitColumnUniform(keras.initializers.Initializer):
    """Draws `U(-1, 1)` and rescales every column to unit L2 norm.

    The reference initialises the `(D, C)` cosine-head weight this way, so
    each class vector (column) starts with norm 1 (reference `NormedLinear`).

    Args:
        seed: optional int seed: each call then gives the same kernel (as
            Keras' seeded initializers); without one, each call differs.
    """

    def __init__(self, seed=None):
        self.seed = seed

    def __call__(self, shape, dtype=None):
        if len(shape) != 2:
            raise ValueError(
                f"UnitColumnUniform needs a 2-D (D, C) shape. Received: {shape}"
            )
        # Unseeded, each call draws anew: one instance shared by the heads
        # of several experts gives each its own kernel.
        uniform = keras.initializers.RandomUniform(-1.0, 1.0, self.seed)
        return l2_normalize(uniform(shape, dtype=dtype), axis=0)

    def get_config(self):
        return {"seed": self.seed}


@keras.saving.register_keras_serializable(package="balpoe_keras")
class CosineHead(keras.layers.Layer):
    """Cosine classifier: `scale * cos(features, w_c)` for every class `c`.

    Features `(batch, D)` and each class column of the `(D, C)` kernel are L2
    normalised, so the logits lie in `[-scale, scale]`. The reference code
    uses `scale=30` for every dataset; the paper states 32.

    Args:
        num_classes: int >= 2, the number of classes `C`.
        scale: float > 0, the logit scale `s` (kappa in the paper).
        kernel_initializer: initializer of the `(D, C)` kernel; defaults to
            the reference's unit-norm uniform columns.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).
            `dtype` defaults to `"float32"` whatever the global policy: the
            norms of float16 features overflow (a sum of squares above
            65504 gave all-zero logits), and bfloat16 would round them.

    Input shape: `(batch, D)`. Output shape: `(batch, C)` logits.

    Example:
        >>> head = CosineHead(num_classes=10)
        >>> head(np.ones((2, 64))).shape
        (2, 10)
    """

    def __init__(
        self, num_classes, scale=30.0, kernel_initializer=None, **kwargs
    ):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float32"  # Not the global mixed policy.
        super().__init__(**kwargs)
        if int(num_classes) != num_classes or num_classes < 2:
            raise ValueError(
                "Expected num_classes >= 2. Received: "
                f"num_classes={num_classes}"
            )
        if not scale > 0:
            raise ValueError(f"Expected scale > 0. Received: scale={scale}")
        self.num_classes = int(num_classes)
        self.scale = float(scale)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer or UnitColumnUniform()
        )

    def build(self, input_shape):
        if len(input_shape) != 2 or input_shape[-1] is None:
            raise ValueError(
                "CosineHead expects pooled features of shape (batch, D) with "
                f"a known D. Received: {input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.num_classes),
            initializer=self.kernel_initializer,
        )

    def call(self, features):
        weights = l2_normalize(ops.cast(self.kernel, features.dtype), axis=0)
        cosine = ops.matmul(l2_normalize(features, axis=-1), weights)
        return self.scale * cosine

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.num_classes)

    def get_config(self):
        return {
            **super().get_config(),
            "num_classes": self.num_classes,
            "scale": self.scale,
            "kernel_initializer": keras.initializers.serialize(
                self.kernel_initializer
            ),
        }
