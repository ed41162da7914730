"""TensorFlow-only kernel behind `balpoe_keras.layers.BatchNorm`.

Imported only when the Keras backend is TensorFlow.
"""

import tensorflow as tf


def fused_batch_norm(x, gamma, beta, moving_mean, moving_variance, epsilon,
                     training):
    """Batch norm of a `(B, H, W, C)` tensor with one fused op.

    Args:
        x: float32, float16 or bfloat16 tensor `(B, H, W, C)` (statistics,
            scale and offset are float32 in every case).
        gamma, beta: `(C,)` scale and offset variables, or None (1 / 0).
        moving_mean, moving_variance: `(C,)` variables, used when not
            training.
        epsilon: float added to the variance.
        training: Python bool; True normalises with the batch statistics.

    Returns:
        `(y, mean, variance)`: `y` like `x`; when training, the batch mean
        and the *unbiased* batch variance (TensorFlow's fused op applies the
        `n / (n - 1)` correction), else the moving statistics.
    """
    channels = x.shape[-1]
    x = tf.convert_to_tensor(x)
    if x.dtype not in (tf.float32, tf.float16, tf.bfloat16):
        x = tf.cast(x, tf.float32)
    gamma = tf.ones([channels]) if gamma is None else tf.cast(gamma,
                                                              tf.float32)
    beta = tf.zeros([channels]) if beta is None else tf.cast(beta,
                                                             tf.float32)
    if training:
        return tf.compat.v1.nn.fused_batch_norm(
            x, gamma, beta, epsilon=epsilon, data_format="NHWC",
            is_training=True,
        )
    mean = tf.cast(moving_mean, tf.float32)
    variance = tf.cast(moving_variance, tf.float32)
    y, _, _ = tf.compat.v1.nn.fused_batch_norm(
        x, gamma, beta, mean=mean, variance=variance, epsilon=epsilon,
        data_format="NHWC", is_training=False,
    )
    return y, mean, variance
