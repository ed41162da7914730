"""BatchNormalization with PyTorch's running-variance update and a fused path.

`keras.layers.BatchNormalization` computes batch norm as about ten separate
element-wise and reduction ops on every backend (`ops.moments` then
`ops.batch_normalization`), each a pass over the activation in the forward
and again in the backward pass. XLA (JAX, TF with jit) fuses them; the plain
TensorFlow graph that is our fastest CPU path does not. `BatchNorm` keeps the
layer's weights, config and inference maths, and on TensorFlow runs rank-4
channels-last inputs through TensorFlow's fused kernel
(`balpoe_keras/layers/tf_fused_batch_norm.py`; one op forward, one backward,
oneDNN on CPUs), and on PyTorch through `torch.nn.functional.batch_norm`
(`torch_batch_norm.py`). On JAX it uses keras.ops, which XLA fuses.

It also matches PyTorch's `BatchNorm2d`: the moving variance
is updated with the *unbiased* batch variance (`var * n / (n - 1)`, n the
number of values per channel) on every backend, while the batch itself is
normalised with the biased variance, as both frameworks do.
"""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="balpoe_keras")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation as PyTorch's `BatchNorm2d`, fused on TF/PyTorch.

    Same arguments as `keras.layers.BatchNormalization` (default momentum
    0.9 and epsilon 1e-5 here, PyTorch's 0.1 and 1e-5) except `renorm` and
    `synchronized`, which are not supported.

    Input shape: any, normalised along `axis` (channels-last `(B, H, W, C)`
    for the fused path). Output: same shape and dtype policy as the input.

    Training updates `moving_mean <- m * moving_mean + (1 - m) * mean` and
    `moving_variance <- m * moving_variance + (1 - m) * var * n / (n - 1)`,
    where `mean`/`var` are the batch statistics per channel and n the number
    of values per channel in the batch.
    """

    def __init__(self, momentum=0.9, epsilon=1e-5, **kwargs):
        for unsupported in ("renorm", "synchronized"):
            if kwargs.get(unsupported):
                raise ValueError(
                    f"BatchNorm does not support {unsupported}=True. Use "
                    "keras.layers.BatchNormalization for it."
                )
            kwargs.pop(unsupported, None)
        kwargs.pop("renorm_clipping", None)
        kwargs.pop("renorm_momentum", None)
        super().__init__(momentum=momentum, epsilon=epsilon, **kwargs)

    def _use_fused(self, inputs, mask):
        if mask is not None or keras.backend.backend() != "tensorflow":
            return False
        return len(inputs.shape) == 4 and self.axis in (-1, 3)

    def _use_torch_kernel(self, inputs):
        # PyTorch refuses epsilon <= 0 when training: keras.ops then.
        rank = len(inputs.shape)
        if (keras.backend.backend() != "torch" or self.epsilon <= 0
                or rank < 2 or self.axis not in (-1, rank - 1)):
            return False
        dtype = keras.backend.standardize_dtype(inputs.dtype)
        if dtype not in ("float32", "bfloat16"):
            return False
        from balpoe_keras.layers import torch_batch_norm

        return torch_batch_norm.is_concrete(inputs)

    def call(self, inputs, training=None, mask=None):
        training = bool(training) and self.trainable
        if self._use_fused(inputs, mask):
            from balpoe_keras.layers import tf_fused_batch_norm

            # The fused kernel takes float16/bfloat16 activations as they
            # are (statistics in float32): no casts under mixed precision.
            gamma = self.gamma if self.scale else None
            beta = self.beta if self.center else None
            outputs, mean, unbiased = tf_fused_batch_norm.fused_batch_norm(
                inputs, gamma, beta, self.moving_mean, self.moving_variance,
                self.epsilon, training,
            )
            if training:
                self._update_moving(mean, unbiased)
            return ops.cast(outputs, self.compute_dtype)
        if mask is not None:
            # Masked statistics: defer to Keras (biased running variance).
            return super().call(inputs, training=training, mask=mask)
        if self._use_torch_kernel(inputs):
            from balpoe_keras.layers import torch_batch_norm

            # Also takes bfloat16/float16 activations with float32 stats.
            outputs = torch_batch_norm.batch_norm(
                inputs, self.gamma.value if self.scale else None,
                self.beta.value if self.center else None,
                self.moving_mean.value, self.moving_variance.value,
                self.momentum, self.epsilon, training)
            return ops.cast(outputs, self.compute_dtype)
        x = ops.cast(inputs, "float32")
        axes = [a for a in range(len(x.shape)) if a != self.axis % len(x.shape)]
        if training:
            mean, variance = ops.moments(x, axes)
            n = ops.cast(ops.size(x) // ops.shape(x)[self.axis], "float32")
            unbiased = variance * n / ops.maximum(n - 1.0, 1.0)
            self._update_moving(mean, unbiased)
        else:
            mean = ops.cast(self.moving_mean, "float32")
            variance = ops.cast(self.moving_variance, "float32")
        outputs = ops.batch_normalization(
            x, mean, variance, axis=self.axis,
            offset=ops.cast(self.beta, "float32") if self.center else None,
            scale=ops.cast(self.gamma, "float32") if self.scale else None,
            epsilon=self.epsilon,
        )
        return ops.cast(outputs, self.compute_dtype)

    def _update_moving(self, mean, unbiased_variance):
        m = self.momentum
        self.moving_mean.assign(self.moving_mean * m + mean * (1.0 - m))
        self.moving_variance.assign(
            self.moving_variance * m + unbiased_variance * (1.0 - m)
        )

    def get_config(self):
        config = super().get_config()
        for key in ("renorm", "renorm_clipping", "renorm_momentum",
                    "synchronized"):
            config.pop(key, None)
        return config
