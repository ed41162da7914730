"""TensorFlow-only: PIL-style image ops on uint8 images, as plain tf ops.

AutoAugment and RandAugment (the reference's `dataset/autoaugm.py`,
`dataset/randaugment.py`) were defined on
PIL images, whose ops read and write uint8. These ops therefore take and
return `(H, W, channels)` uint8 tensors and follow PIL's semantics:
blends (`color`, `contrast`, `brightness`, `sharpness`) compute in float
and truncate to uint8 like `Image.blend`; `posterize`, `solarize`,
`equalize`, `autocontrast` act on the 256 integer levels. Geometric ops use
`ImageProjectiveTransformV3` with PIL's affine convention (output pixel
`(x, y)` samples input `(a0 x + a1 y + a2, b0 x + b1 y + b2)`) and a
per-channel fill. Differences from PIL: bicubic is replaced by bilinear,
and PIL's half-pixel convention is converted, so nearest-neighbour
rotations and translations match PIL exactly. Ops work eagerly and inside
`tf.data` maps, and need no Keras backend. Single-channel images are
supported (`color` is then the identity).
"""

import functools
import math

import tensorflow as tf


def _uint8_op(fn):
    """Converts the first argument to a uint8 tensor before calling `fn`."""

    @functools.wraps(fn)
    def wrapper(image, *args, **kwargs):
        return fn(tf.convert_to_tensor(image, tf.uint8), *args, **kwargs)

    return wrapper


def _to_uint8(x):
    return tf.cast(tf.clip_by_value(tf.floor(x), 0.0, 255.0), tf.uint8)


def _blend(degenerate, image, factor):
    """PIL `Image.blend(degenerate, image, factor)`, truncated to uint8."""
    degenerate = tf.cast(degenerate, tf.float32)
    image = tf.cast(image, tf.float32)
    return _to_uint8(degenerate + factor * (image - degenerate))


@_uint8_op
def grayscale(image):
    """PIL `convert("L")` luma, kept at the input's channel count."""
    if image.shape[-1] == 1:
        return image
    weights = tf.constant([0.299, 0.587, 0.114], tf.float32)
    luma = tf.reduce_sum(tf.cast(image, tf.float32) * weights, -1, True)
    luma = tf.cast(tf.round(luma), tf.uint8)
    return tf.repeat(luma, image.shape[-1], axis=-1)


@_uint8_op
def invert(image):
    """`255 - image`."""
    return 255 - image


@_uint8_op
def posterize(image, bits):
    """Keeps the `bits` (0-8) most significant bits of every value."""
    bits = tf.cast(bits, tf.int32)
    mask = 255 - (tf.bitwise.left_shift(1, 8 - bits) - 1)
    return tf.cast(tf.bitwise.bitwise_and(tf.cast(image, tf.int32), mask),
                   tf.uint8)


@_uint8_op
def solarize(image, threshold):
    """Inverts values `>= threshold` (256 leaves the image unchanged)."""
    threshold = tf.cast(threshold, tf.float32)
    return tf.where(tf.cast(image, tf.float32) >= threshold, 255 - image,
                    image)


@_uint8_op
def solarize_add(image, addition, threshold=128):
    """Adds `addition` to values `< threshold`, clipped to 255 (timm)."""
    added = tf.cast(image, tf.float32) + tf.cast(addition, tf.float32)
    return tf.where(tf.cast(image, tf.float32) < threshold, _to_uint8(added),
                    image)


@_uint8_op
def autocontrast(image):
    """Stretches each channel to `[0, 255]` (PIL `autocontrast(cutoff=0)`)."""
    x = tf.cast(image, tf.float32)
    lo = tf.reduce_min(x, axis=[0, 1], keepdims=True)
    hi = tf.reduce_max(x, axis=[0, 1], keepdims=True)
    scale = 255.0 / tf.maximum(hi - lo, 1.0)
    stretched = _to_uint8((x - lo) * scale)  # truncated like PIL's lut
    return tf.where(hi > lo, stretched, image)


def _equalize_channel(channel):
    hist = tf.math.bincount(tf.cast(channel, tf.int32), minlength=256,
                            maxlength=256)
    nonzero = tf.boolean_mask(hist, hist > 0)
    step = (tf.reduce_sum(nonzero) - nonzero[-1]) // 255
    safe_step = tf.maximum(step, 1)
    lut = (tf.cumsum(hist) + safe_step // 2) // safe_step
    lut = tf.clip_by_value(tf.concat([[0], lut[:-1]], 0), 0, 255)
    equalized = tf.gather(lut, tf.cast(channel, tf.int32))
    return tf.where(step > 0, tf.cast(equalized, tf.uint8), channel)


@_uint8_op
def equalize(image):
    """Per-channel histogram equalisation (PIL `ImageOps.equalize`)."""
    channels = tf.unstack(image, num=image.shape[-1], axis=-1)
    return tf.stack([_equalize_channel(c) for c in channels], axis=-1)


@_uint8_op
def color(image, factor):
    """Saturation: blend with the grayscale image (PIL `Color`)."""
    return _blend(grayscale(image), image, factor)


@_uint8_op
def contrast(image, factor):
    """Blend with the mean gray level (PIL `Contrast`)."""
    mean = tf.reduce_mean(tf.cast(grayscale(image)[..., 0], tf.float32))
    degenerate = tf.fill(tf.shape(image), tf.floor(mean + 0.5))
    return _blend(degenerate, image, factor)


@_uint8_op
def brightness(image, factor):
    """Blend with black (PIL `Brightness`)."""
    return _blend(tf.zeros_like(image), image, factor)


@_uint8_op
def sharpness(image, factor):
    """Blend with PIL's SMOOTH-filtered image; borders stay unfiltered."""
    x = tf.cast(image, tf.float32)[None]
    kernel = tf.constant([[1, 1, 1], [1, 5, 1], [1, 1, 1]], tf.float32) / 13
    channels = image.shape[-1]
    kernel = tf.tile(kernel[:, :, None, None], [1, 1, channels, 1])
    smooth = tf.nn.depthwise_conv2d(x, kernel, [1, 1, 1, 1], "VALID")[0]
    smooth = tf.round(smooth)
    padded = tf.pad(smooth, [[1, 1], [1, 1], [0, 0]])
    interior = tf.pad(tf.ones_like(smooth), [[1, 1], [1, 1], [0, 0]])
    degenerate = tf.where(interior > 0, padded, x[0])
    return _blend(degenerate, image, factor)


@_uint8_op
def affine(image, coefficients, fill=128, interpolation="NEAREST"):
    """PIL-style affine transform with a constant per-channel fill.

    Args:
        image: `(H, W, channels)` uint8.
        coefficients: 6 numbers `(a0, a1, a2, b0, b1, b2)`: output pixel
            `(x, y)` samples the input at `(a0 x + a1 y + a2, b0 x + b1 y
            + b2)`.
        fill: scalar or per-channel fill value (0-255).
        interpolation: `"NEAREST"` or `"BILINEAR"`.

    Returns:
        `(H, W, channels)` uint8.
    """
    fill = tf.cast(tf.broadcast_to(fill, [image.shape[-1]]), tf.float32)
    x = tf.cast(image, tf.float32) - fill  # transform with 0 fill, add back
    a0, a1, a2, b0, b1, b2 = [tf.cast(c, tf.float32) for c in coefficients]
    # PIL samples at pixel centres (x + 0.5); TF at integer coordinates.
    a2 = a2 + 0.5 * (a0 + a1 - 1.0)
    b2 = b2 + 0.5 * (b0 + b1 - 1.0)
    coefficients = [a0, a1, a2, b0, b1, b2]
    transform = tf.concat([tf.stack(coefficients), tf.zeros([2])], 0)[None]
    out = tf.raw_ops.ImageProjectiveTransformV3(
        images=x[None], transforms=transform,
        output_shape=tf.shape(image)[:2], fill_value=0.0,
        interpolation=interpolation, fill_mode="CONSTANT")[0]
    return _to_uint8(tf.round(out + fill))


@_uint8_op
def shear_x(image, level, fill=128, interpolation="BILINEAR"):
    """PIL `transform(AFFINE, (1, level, 0, 0, 1, 0))`."""
    return affine(image, [1.0, level, 0.0, 0.0, 1.0, 0.0], fill,
                  interpolation)


@_uint8_op
def shear_y(image, level, fill=128, interpolation="BILINEAR"):
    """PIL `transform(AFFINE, (1, 0, 0, level, 1, 0))`."""
    return affine(image, [1.0, 0.0, 0.0, level, 1.0, 0.0], fill,
                  interpolation)


@_uint8_op
def translate_x(image, pixels, fill=128, interpolation="NEAREST"):
    """Output `(x, y)` samples input `(x + pixels, y)`."""
    return affine(image, [1.0, 0.0, pixels, 0.0, 1.0, 0.0], fill,
                  interpolation)


@_uint8_op
def translate_y(image, pixels, fill=128, interpolation="NEAREST"):
    """Output `(x, y)` samples input `(x, y + pixels)`."""
    return affine(image, [1.0, 0.0, 0.0, 0.0, 1.0, pixels], fill,
                  interpolation)


@_uint8_op
def rotate(image, degrees, fill=128, interpolation="NEAREST"):
    """Rotates counter-clockwise by `degrees` about the centre, no expand.

    `"NEAREST"` reproduces PIL's `Image.rotate` (and so torchvision's
    `RandomRotation` on PIL images) pixel for pixel: PIL evaluates the
    nearest-neighbour map in 16.16 fixed point, which this computes with
    the same integers (`balpoe_keras.data.arrays.augment.rotation_matrices` is
    the NumPy twin).
    """
    theta = tf.math.floormod(tf.cast(degrees, tf.float64), 360.0) * (
        -math.pi / 180.0)
    a0, a1 = _round15(tf.cos(theta)), _round15(tf.sin(theta))
    a3, a4 = -a1, a0
    size = tf.cast(tf.shape(image)[:2], tf.float64)
    cy, cx = size[0] / 2.0, size[1] / 2.0  # PIL's centre convention
    a2 = a0 * -cx + a1 * -cy + cx
    a5 = a3 * -cx + a4 * -cy + cy
    if interpolation != "NEAREST":
        return affine(image, [a0, a1, a2, a3, a4, a5], fill, interpolation)
    fixed = [_fix(a0), _fix(a1), _fix(a2 + a0 * 0.5 + a1 * 0.5), _fix(a3),
             _fix(a4), _fix(a5 + a3 * 0.5 + a4 * 0.5)]
    return _nearest_fixed_point(image, fixed, fill)


def _round15(x):
    return tf.round(x * 1e15) / 1e15


def _fix(value):
    return tf.cast(tf.floor(value * 65536.0 + 0.5), tf.int32)


def _nearest_fixed_point(image, m, fill):
    """PIL's `affine_fixed`: nearest sampling with 16.16 integer maths."""
    shape = tf.shape(image)
    y = tf.range(shape[0])[:, None]
    x = tf.range(shape[1])[None, :]
    cols = tf.bitwise.right_shift(m[2] + m[1] * y + m[0] * x, 16)
    rows = tf.bitwise.right_shift(m[5] + m[4] * y + m[3] * x, 16)
    inside = (rows >= 0) & (rows < shape[0]) & (cols >= 0) & (cols < shape[1])
    index = tf.stack([tf.clip_by_value(rows, 0, shape[0] - 1),
                      tf.clip_by_value(cols, 0, shape[1] - 1)], -1)
    fill = tf.cast(tf.broadcast_to(fill, [image.shape[-1]]), tf.uint8)
    return tf.where(inside[..., None], tf.gather_nd(image, index),
                    fill)
