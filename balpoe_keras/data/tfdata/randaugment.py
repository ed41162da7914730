"""TensorFlow-only: timm-style RandAugment ("rand-n2-m10-mstd0.5").

The reference's `dataset/randaugment.py` (PaCo's recipe, used for
ImageNet-LT / iNat long
training): per image, `num_ops` ops are drawn uniformly with replacement
from the 15 ops `OPS[1:]` (`OPS[0]` is the no-op used when an op is
skipped); each is applied with probability 0.5 at a magnitude drawn from
`Normal(magnitude, magnitude_std)` clipped to `[0, 10]`. Ops act on uint8
images with PIL semantics (`image_ops`); the geometric fill is the
ImageNet mean `(124, 116, 104)`; bilinear replaces timm's random
bilinear/bicubic choice.
"""

import tensorflow as tf

from balpoe_keras.data.tfdata import image_ops

OPS = ("Identity", "AutoContrast", "Equalize", "Invert", "Rotate",
       "PosterizeTpu", "Solarize", "SolarizeAdd", "Color", "Contrast",
       "Brightness", "Sharpness", "ShearX", "ShearY", "TranslateXRel",
       "TranslateYRel")
FILL = (124, 116, 104)
MAX_LEVEL = 10.0


def _apply_op(image, name, level, sign, fill):
    """One timm op at `level` in `[0, 10]`; `sign` is +-1 (float)."""
    frac = level / MAX_LEVEL
    size = tf.cast(tf.shape(image), tf.float32)
    enhance = 0.1 + 1.8 * frac
    ops = {
        "Identity": lambda: image,
        "AutoContrast": lambda: image_ops.autocontrast(image),
        "Equalize": lambda: image_ops.equalize(image),
        "Invert": lambda: image_ops.invert(image),
        "Rotate": lambda: image_ops.rotate(image, 30.0 * frac * sign, fill,
                                           "BILINEAR"),
        "PosterizeTpu": lambda: image_ops.posterize(
            image, tf.cast(4.0 * frac, tf.int32)),
        "Solarize": lambda: image_ops.solarize(
            image, tf.floor(256.0 * frac)),
        "SolarizeAdd": lambda: image_ops.solarize_add(
            image, tf.floor(110.0 * frac)),
        "Color": lambda: image_ops.color(image, enhance),
        "Contrast": lambda: image_ops.contrast(image, enhance),
        "Brightness": lambda: image_ops.brightness(image, enhance),
        "Sharpness": lambda: image_ops.sharpness(image, enhance),
        "ShearX": lambda: image_ops.shear_x(image, 0.3 * frac * sign, fill),
        "ShearY": lambda: image_ops.shear_y(image, 0.3 * frac * sign, fill),
        "TranslateXRel": lambda: image_ops.translate_x(
            image, 0.45 * frac * size[1] * sign, fill),
        "TranslateYRel": lambda: image_ops.translate_y(
            image, 0.45 * frac * size[0] * sign, fill),
    }
    return ops[name]()


def rand_augment(image, seed, num_ops=2, magnitude=10.0, magnitude_std=0.5,
                 fill=FILL):
    """Applies RandAugment to one image.

    Args:
        image: `(H, W, channels)` uint8.
        seed: `(2,)` int seed.
        num_ops: ops drawn per image (with replacement).
        magnitude: mean level in `[0, 10]`.
        magnitude_std: std of the level; 0 keeps it fixed.
        fill: fill colour for geometric ops (per channel).

    Returns:
        `(H, W, channels)` uint8.
    """
    image = tf.convert_to_tensor(image, tf.uint8)
    shape = image.shape
    seeds = tf.random.experimental.stateless_split(seed, num_ops)
    fill = fill if shape[-1] == len(fill) else fill[0]
    for k in range(num_ops):
        op_seed, draw_seed, level_seed = tf.unstack(
            tf.random.experimental.stateless_split(seeds[k], 3))
        op = tf.random.stateless_uniform([], op_seed, 1, len(OPS), tf.int32)
        apply, sign_draw = tf.unstack(
            tf.random.stateless_uniform([2], draw_seed))
        level = magnitude + magnitude_std * tf.random.stateless_normal(
            [], level_seed)
        level = tf.clip_by_value(level, 0.0, MAX_LEVEL)
        sign = tf.where(sign_draw < 0.5, -1.0, 1.0)
        branches = [
            (lambda name=name, x=image: _apply_op(x, name, level, sign, fill))
            for name in OPS
        ]
        op = tf.where(apply < 0.5, op, 0)  # 0 = Identity (not applied)
        image = tf.ensure_shape(tf.switch_case(op, branches), shape)
    return image
