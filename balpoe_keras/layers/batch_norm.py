"""BatchNormalization with PyTorch's running-variance update.

`BatchNorm` keeps the weights, config and inference maths of
`keras.layers.BatchNormalization` and matches PyTorch's `BatchNorm2d`: the
moving variance is updated with the *unbiased* batch variance
(`var * n / (n - 1)`, n the number of values per channel) on every backend,
while the batch itself is normalised with the biased variance, as both
frameworks do.

Its maths is keras.ops (about ten element-wise and reduction ops, which XLA
fuses on JAX). On TensorFlow and PyTorch it first offers the call to the
backend's fused kernel (`fast_path.find`: `tensorflow_fast_path.batch_norm`,
`torch_fast_path.batch_norm`), which computes the same in one op.
"""

import keras
from keras import ops

from balpoe_keras.layers import fast_path


@keras.saving.register_keras_serializable(package="balpoe_keras")
class BatchNorm(keras.layers.BatchNormalization):
    """Batch normalisation as PyTorch's `BatchNorm2d`, fused on TF/PyTorch.

    Same arguments as `keras.layers.BatchNormalization` (default momentum
    0.9 and epsilon 1e-5 here, PyTorch's 0.1 and 1e-5) except `renorm` and
    `synchronized`, which are not supported.

    Input shape: any, normalised along `axis` (channels-last `(B, H, W, C)`
    for the fused path). Output: same shape, in the layer's compute dtype
    (statistics in float32).

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

    def call(self, inputs, training=None, mask=None):
        training = bool(training) and self.trainable
        outputs = fast_path.run("balpoe_keras.layers", "batch_norm", self,
                                inputs, training, mask)
        if outputs is not None:
            return outputs
        if mask is not None:
            # Masked statistics: defer to Keras (biased running variance).
            return super().call(inputs, training=training, mask=mask)
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
