"""TensorFlow-only: decoding image files inside tf.data, naming bad files.

JPEGs decode exactly as Pillow decodes them
(`balpoe_keras.data.archive.decode_image`, the TensorFlow-free decoder of
in-memory sources), so a file gives the same pixels on both paths.
"""

import tensorflow as tf


def decode_rgb(data):
    """Encoded bytes -> `(H, W, 3)` uint8, JPEG decoded exactly as PIL does
    (`decode_pixels` with 3 channels)."""
    return decode_pixels(data, channels=3)


def decode_pixels(data, channels=3):
    """Encoded bytes -> `(H, W, channels)` uint8, as training decodes them.

    JPEGs use `dct_method="INTEGER_ACCURATE"` (libjpeg's ISLOW, PIL's
    default; TF's default fast IDCT differs by ~1 level per pixel; with 1
    channel, their luma); PNG/BMP/GIF/WebP go through `decode_image`
    (with 1 channel: the luma of their RGB pixels, as Pillow's `L`).
    Equal to `balpoe_keras.data.image_file.decode_image`, pixel for pixel.
    """
    def other():
        if channels != 1:
            return tf.io.decode_image(data, channels=channels,
                                      expand_animations=False)
        # TensorFlow decodes GIF and WebP to RGB only, and its PNG and BMP
        # luma differs by a level: the luma of the RGB pixels as Pillow's
        # `L` conversion computes it (a gray image keeps its values).
        return _luma(tf.io.decode_image(data, channels=3,
                                        expand_animations=False))

    image = tf.cond(
        tf.io.is_jpeg(data),
        lambda: tf.io.decode_jpeg(data, channels=channels,
                                  dct_method="INTEGER_ACCURATE"),
        other,
    )
    return tf.ensure_shape(image, [None, None, channels])


def _luma(rgb):
    """uint8 RGB -> `(H, W, 1)` uint8 luma, exactly as Pillow's `L`
    conversion: `(19595 R + 38470 G + 7471 B + 2**15) >> 16`."""
    weights = tf.constant([19595, 38470, 7471], tf.int32)
    total = tf.reduce_sum(tf.cast(rgb, tf.int32) * weights, -1,
                          keepdims=True)
    return tf.cast(tf.bitwise.right_shift(total + 32768, 16), tf.uint8)


def check_encoded_image(data, path):
    """`data` unchanged, after an in-graph check that names `path`.

    Fails (InvalidArgumentError: "Unreadable image file (empty or
    truncated): <path>") for an empty file, or a JPEG / PNG whose end
    marker (`FFD9` / `IEND`) is missing from its last 64 bytes; decoders
    report those without the file name, mid-training.
    """
    size = tf.strings.length(data)
    tail = tf.strings.bytes_split(
        tf.strings.substr(data, tf.maximum(size - 64, 0), 64))
    pairs = tf.strings.join([tail[:-1], tail[1:]])
    quads = tf.strings.join([tail[:-3], tail[1:-2], tail[2:-1], tail[3:]])
    is_jpeg = tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(tf.strings.substr(data, 0, 8), b"\x89PNG\r\n\x1a\n")
    complete = tf.logical_and(
        tf.logical_or(tf.logical_not(is_jpeg),
                      tf.reduce_any(tf.equal(pairs, b"\xff\xd9"))),
        tf.logical_or(tf.logical_not(is_png),
                      tf.reduce_any(tf.equal(quads, b"IEND"))))
    check = tf.debugging.Assert(
        tf.logical_and(size > 0, complete),
        ["Unreadable image file (empty or truncated):", path])
    with tf.control_dependencies([check]):
        return tf.identity(data)


def _decode(path):
    return decode_rgb(check_encoded_image(tf.io.read_file(path), path))
