"""TensorFlow fast paths of `balpoe_keras.layers` (`fast_path.find`).

Imported only when the Keras backend is TensorFlow.
"""

import tensorflow as tf
from keras import ops


def batch_norm(layer, inputs, training, mask):
    """`BatchNorm.call` on a rank-4 channels-last input in one fused op.

    Buys: TensorFlow's `FusedBatchNormV3` (one op forward, one backward,
    oneDNN on CPUs) for Keras' ~10 element-wise and reduction ops, which the
    plain TF graph does not fuse: `tf_onednn` training 49.8 -> 87.5
    images/s (benchmarks/RESULTS.md, "What made the difference", 1: run 3
    vs run 4).

    Args:
        layer: the `BatchNorm` layer (its variables, epsilon, dtype).
        inputs: `(B, H, W, C)` tensor.
        training: Python bool (already False for a frozen layer).
        mask: None, or a mask (then None is returned).

    Returns:
        The outputs in the layer's compute dtype (the moving statistics
        updated when training), or None where the fused op does not apply.
    """
    if mask is not None or len(inputs.shape) != 4 or layer.axis not in (
            -1, 3):
        return None
    # The fused kernel takes float16/bfloat16 activations as they are
    # (statistics in float32): no casts under mixed precision.
    outputs, mean, unbiased = fused_batch_norm(
        inputs, layer.gamma if layer.scale else None,
        layer.beta if layer.center else None, layer.moving_mean,
        layer.moving_variance, layer.epsilon, training)
    if training:
        layer._update_moving(mean, unbiased)
    return ops.cast(outputs, layer.compute_dtype)


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
