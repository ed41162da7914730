"""TensorFlow-only: AutoAugment CIFAR10Policy as stateless tf ops.

The 25 sub-policies and magnitude tables of reference `cifar_data_loaders.py`
(`dataset/autoaugm.py` of the reference). Per image one sub-policy is
chosen uniformly; it applies op1 with probability p1, then op2 with
probability p2. Ops act on uint8 images with PIL semantics
(`image_ops`); gray fill 128; shears use bilinear instead of PIL's bicubic.
"""

import numpy as np
import tensorflow as tf

from balpoe_keras.data.tfdata import image_ops

# (p1, op1, magnitude index 1, p2, op2, magnitude index 2), reference
# `dataset/autoaugm.py`.
CIFAR10_POLICY = (
    (0.1, "invert", 7, 0.2, "contrast", 6),
    (0.7, "rotate", 2, 0.3, "translateX", 9),
    (0.8, "sharpness", 1, 0.9, "sharpness", 3),
    (0.5, "shearY", 8, 0.7, "translateY", 9),
    (0.5, "autocontrast", 8, 0.9, "equalize", 2),
    (0.2, "shearY", 7, 0.3, "posterize", 7),
    (0.4, "color", 3, 0.6, "brightness", 7),
    (0.3, "sharpness", 9, 0.7, "brightness", 9),
    (0.6, "equalize", 5, 0.5, "equalize", 1),
    (0.6, "contrast", 7, 0.6, "sharpness", 5),
    (0.7, "color", 7, 0.5, "translateX", 8),
    (0.3, "equalize", 7, 0.4, "autocontrast", 8),
    (0.4, "translateY", 3, 0.2, "sharpness", 6),
    (0.9, "brightness", 6, 0.2, "color", 8),
    (0.5, "solarize", 2, 0.0, "invert", 3),
    (0.2, "equalize", 0, 0.6, "autocontrast", 0),
    (0.2, "equalize", 8, 0.6, "equalize", 4),
    (0.9, "color", 9, 0.6, "equalize", 6),
    (0.8, "autocontrast", 4, 0.2, "solarize", 8),
    (0.1, "brightness", 3, 0.7, "color", 0),
    (0.4, "solarize", 5, 0.9, "autocontrast", 3),
    (0.9, "translateY", 9, 0.7, "translateY", 9),
    (0.9, "autocontrast", 2, 0.8, "solarize", 3),
    (0.8, "equalize", 8, 0.1, "invert", 3),
    (0.7, "translateY", 9, 0.9, "autocontrast", 1),
)

_ENHANCE = np.linspace(0.0, 0.9, 10)
MAGNITUDES = {
    "shearX": np.linspace(0, 0.3, 10),
    "shearY": np.linspace(0, 0.3, 10),
    "translateX": np.linspace(0, 150 / 331, 10),  # times the image width
    "translateY": np.linspace(0, 150 / 331, 10),  # times the image height
    "rotate": np.linspace(0, 30, 10),
    "color": _ENHANCE,
    "contrast": _ENHANCE,
    "sharpness": _ENHANCE,
    "brightness": _ENHANCE,
    "posterize": np.round(np.linspace(8, 4, 10)).astype(int),
    "solarize": np.linspace(256, 0, 10),
    "autocontrast": np.zeros(10),
    "equalize": np.zeros(10),
    "invert": np.zeros(10),
}
FILL = 128


OP_NAMES = ("identity", "shearX", "shearY", "translateX", "translateY",
            "rotate", "color", "contrast", "sharpness", "brightness",
            "posterize", "solarize", "autocontrast", "equalize", "invert")


def _tables():
    """`(C, 2)` op ids, probabilities and magnitudes of the policy."""
    ops, probs, mags = [], [], []
    for p1, op1, i1, p2, op2, i2 in CIFAR10_POLICY:
        ops.append([OP_NAMES.index(op1), OP_NAMES.index(op2)])
        probs.append([p1, p2])
        mags.append([float(MAGNITUDES[op1][i1]), float(MAGNITUDES[op2][i2])])
    return (tf.constant(ops, tf.int32), tf.constant(probs, tf.float32),
            tf.constant(mags, tf.float32))


def _apply_op(image, name, m, sign):
    """One CIFAR10Policy op at magnitude `m`; `sign` is +-1 (float)."""
    size = tf.cast(tf.shape(image), tf.float32)
    if name == "identity":
        return image
    if name == "shearX":
        return image_ops.shear_x(image, m * sign, FILL, "BILINEAR")
    if name == "shearY":
        return image_ops.shear_y(image, m * sign, FILL, "BILINEAR")
    if name == "translateX":
        return image_ops.translate_x(image, m * size[1] * sign, FILL)
    if name == "translateY":
        return image_ops.translate_y(image, m * size[0] * sign, FILL)
    if name == "rotate":  # Always counter-clockwise in the reference.
        return image_ops.rotate(image, m, FILL)
    if name in ("color", "contrast", "sharpness", "brightness"):
        return getattr(image_ops, name)(image, 1.0 + m * sign)
    if name == "posterize":
        return image_ops.posterize(image, tf.cast(m, tf.int32))
    if name == "solarize":
        return image_ops.solarize(image, m)
    return getattr(image_ops, name)(image)  # autocontrast/equalize/invert


def cifar10_policy(image, seed):
    """Applies one uniformly chosen CIFAR10Policy sub-policy.

    The sub-policy's two (probability, op, magnitude) entries are looked up
    in tables, so each stage is a single `tf.switch_case` over op types
    (fast to trace).

    Args:
        image: `(H, W, channels)` uint8.
        seed: `(2,)` int seed.

    Returns:
        `(H, W, channels)` uint8.
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    shape = image.shape
    op_table, prob_table, mag_table = _tables()
    choice_seed, draw_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed, 2))
    choice = tf.random.stateless_uniform(
        [], choice_seed, 0, len(CIFAR10_POLICY), tf.int32)
    draws = tf.random.stateless_uniform([4], draw_seed)
    for k in range(2):
        apply = draws[k] < prob_table[choice, k]
        op = tf.where(apply, op_table[choice, k], 0)
        sign = tf.where(draws[2 + k] < 0.5, -1.0, 1.0)
        m = mag_table[choice, k]
        branches = [
            (lambda name=name, x=image: _apply_op(x, name, m, sign))
            for name in OP_NAMES
        ]
        image = tf.ensure_shape(tf.switch_case(op, branches), shape)
    return image
