"""TensorFlow-only: random per-image augmentations (the recipes' steps).

All randomness is stateless: every transform takes a `(2,)` int seed, so a
pipeline output depends only on `(seed, epoch, position)`, not on thread
scheduling. Geometric and PIL-style steps work on uint8 images (as the
reference's PIL transforms do); `to_float` then gives float32 in `[0, 1]`,
the model input range (the model normalises; docs/ARCHITECTURE.md).
Everything is plain tf ops, independent of the Keras backend.
"""

import tensorflow as tf

from balpoe_keras.data.tfdata import image_ops


def split_seed(seed, num):
    """`num` independent `(2,)` seeds derived from `seed`."""
    return tf.unstack(
        tf.random.experimental.stateless_split(seed, num=num), num=num
    )


def to_float(image):
    """uint8 `(H, W, channels)` -> float32 in `[0, 1]` (PyTorch ToTensor)."""
    return tf.cast(image, tf.float32) / 255.0


def crop_with_padding(image, offsets, padding=4):
    """Zero-pads by `padding` pixels and crops the input size at `offsets`.

    Args:
        image: `(H, W, channels)` tensor.
        offsets: `(2,)` int `(top, left)` in `[0, 2 padding]` into the
            padded image (torchvision `RandomCrop`'s `i, j`).
    """
    image = tf.convert_to_tensor(image)
    padded = tf.pad(image, [[padding, padding], [padding, padding], [0, 0]])
    begin = tf.concat([tf.cast(offsets, tf.int32), [0]], 0)
    return tf.ensure_shape(tf.slice(padded, begin, tf.shape(image)),
                           image.shape)


def random_crop_with_padding(image, seed, padding=4):
    """`crop_with_padding` at offsets uniform in `[0, 2 padding]`."""
    offsets = tf.random.stateless_uniform([2], seed, 0, 2 * padding + 1,
                                          tf.int32)
    return crop_with_padding(image, offsets, padding)


def flip_left_right(image, flip):
    """Mirrors `image` left-right where the scalar bool `flip` is True."""
    image = tf.convert_to_tensor(image)
    return tf.where(flip, tf.reverse(image, [1]), image)


def random_flip(image, seed):
    """Horizontal flip with probability 0.5."""
    return flip_left_right(image, tf.random.stateless_uniform([], seed) < 0.5)


def random_rotation(image, seed, max_degrees=15.0):
    """Rotation by `U[-max_degrees, max_degrees]`, nearest, zero fill.

    The rotation is PIL's (`image_ops.rotate`), as torchvision's
    `RandomRotation` applies it to the reference's PIL images.
    """
    angle = tf.random.stateless_uniform([], seed, -max_degrees, max_degrees)
    return image_ops.rotate(image, angle, fill=0, interpolation="NEAREST")


def cutout(image, seed, size=16):
    """Zeros one `size` x `size` square centred at a uniform pixel, clipped.

    Args:
        image: `(H, W, channels)` float image.
        seed: `(2,)` seed.
        size: side of the square in pixels.
    """
    shape = tf.shape(image)
    cy_seed, cx_seed = split_seed(seed, 2)
    cy = tf.random.stateless_uniform([], cy_seed, 0, shape[0], tf.int32)
    cx = tf.random.stateless_uniform([], cx_seed, 0, shape[1], tf.int32)
    rows, cols = tf.range(shape[0]), tf.range(shape[1])
    in_rows = (rows >= cy - size // 2) & (rows < cy + size // 2)
    in_cols = (cols >= cx - size // 2) & (cols < cx + size // 2)
    hole = in_rows[:, None] & in_cols[None, :]
    return tf.where(hole[..., None], tf.zeros_like(image), image)


def random_resized_crop(image, seed, size=224, scale=(0.08, 1.0),
                        ratio=(3 / 4, 4 / 3)):
    """torchvision `RandomResizedCrop`: 10 tries, else a centre crop.

    Returns:
        `(size, size, channels)` uint8, resized bilinearly with antialias
        (as PIL does) and rounded.
    """
    image = tf.convert_to_tensor(image)
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    area = shape[0] * shape[1]
    seeds = split_seed(seed, 4)
    target = area * tf.random.stateless_uniform([10], seeds[0], *scale)
    log_ratio = tf.random.stateless_uniform(
        [10], seeds[1], tf.math.log(ratio[0]), tf.math.log(ratio[1]))
    aspect = tf.exp(log_ratio)
    w = tf.round(tf.sqrt(target * aspect))
    h = tf.round(tf.sqrt(target / aspect))
    ok = (w > 0) & (h > 0) & (w <= shape[1]) & (h <= shape[0])
    first = tf.argmax(tf.cast(ok, tf.int32))
    in_ratio = shape[1] / shape[0]
    fallback_w = tf.where(in_ratio < ratio[0], shape[1],
                          tf.where(in_ratio > ratio[1],
                                   tf.round(shape[0] * ratio[1]), shape[1]))
    fallback_h = tf.where(in_ratio < ratio[0], tf.round(shape[1] / ratio[0]),
                          shape[0])
    found = tf.reduce_any(ok)
    h = tf.cast(tf.where(found, h[first], fallback_h), tf.int32)
    w = tf.cast(tf.where(found, w[first], fallback_w), tf.int32)
    shape_i = tf.cast(shape, tf.int32)
    top_u, left_u = tf.unstack(tf.random.stateless_uniform([2], seeds[2]))
    top = tf.where(found, tf.cast(top_u * tf.cast(shape_i[0] - h + 1,
                                                 tf.float32), tf.int32),
                   (shape_i[0] - h) // 2)
    left = tf.where(found, tf.cast(left_u * tf.cast(shape_i[1] - w + 1,
                                                   tf.float32), tf.int32),
                    (shape_i[1] - w) // 2)
    crop = image[top:top + h, left:left + w]
    return resize_uint8(crop, [size, size])


def resize_uint8(image, size):
    """Antialiased bilinear resize to `size` `(H, W)`, rounded to uint8
    (as training stores pixels); the same values at the same size."""
    resized = tf.image.resize(image, size, "bilinear", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def resize_and_center_crop(image, resize=256, crop=224):
    """Shorter side -> `resize` (torchvision `Resize`: the longer side
    `int(long * resize / short)`), then the centre `crop` (an int, or
    `(height, width)`; torchvision `CenterCrop`: offsets rounded half to
    even). `balpoe_keras.data.image_file.resize_image` is its NumPy twin.
    """
    crop_h, crop_w = (crop, crop) if isinstance(crop, int) else crop
    image = tf.convert_to_tensor(image)
    shape = tf.shape(image)[:2]
    short = tf.cast(tf.reduce_min(shape), tf.float32)
    long_side = tf.cast(tf.cast(tf.reduce_max(shape), tf.float32) * resize
                        / short, tf.int32)
    new = tf.where(shape[0] <= shape[1], tf.stack([resize, long_side]),
                   tf.stack([long_side, resize]))
    resized = resize_uint8(image, new)
    top = tf.cast(tf.round(tf.cast(new[0] - crop_h, tf.float32) / 2),
                  tf.int32)
    left = tf.cast(tf.round(tf.cast(new[1] - crop_w, tf.float32) / 2),
                   tf.int32)
    return resized[top:top + crop_h, left:left + crop_w]


def color_jitter(image, seed, brightness=0.4, contrast=0.4, saturation=0.4):
    """torchvision `ColorJitter(b, c, s, hue=0)` on uint8, random order."""
    seeds = split_seed(seed, 4)
    order = tf.random.experimental.stateless_shuffle(tf.range(3), seeds[3])
    factors = [
        tf.random.stateless_uniform([], s, max(0.0, 1 - v), 1 + v)
        for s, v in zip(seeds[:3], (brightness, contrast, saturation))
    ]
    ops = [image_ops.brightness, image_ops.contrast, image_ops.color]
    image = tf.convert_to_tensor(image)
    for k in range(3):
        branches = [
            (lambda op=op, f=f, x=image: op(x, f))
            for op, f in zip(ops, factors)
        ]
        image = tf.switch_case(order[k], branches)
    return image
