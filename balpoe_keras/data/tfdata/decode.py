"""TensorFlow-only: decoding image files inside tf.data, naming bad files.

JPEGs decode exactly as Pillow decodes them
(`balpoe_keras.data.archive.decode_image`, the TensorFlow-free decoder of
in-memory sources), so a file gives the same pixels on both paths.
"""

import tensorflow as tf

from balpoe_keras.data.image_file import BMP_BITS
from balpoe_keras.data.image_file import BMP_COMPRESSIONS
from balpoe_keras.data.image_file import BMP_MIN_DIB


def decode_rgb(data):
    """Encoded bytes -> `(H, W, 3)` uint8, JPEG decoded exactly as PIL does
    (`decode_pixels` with 3 channels)."""
    return decode_pixels(data, channels=3)


def decode_pixels(data, channels=3):
    """Encoded bytes -> `(H, W, channels)` uint8, as training decodes them.

    JPEGs use `dct_method="INTEGER_ACCURATE"` (libjpeg's ISLOW, PIL's
    default; TF's default fast IDCT differs by ~1 level per pixel; with 1
    channel, their luma, and a CMYK JPEG's that of its RGB); PNG/GIF/WebP
    go through `decode_image`, 8-bit BMPs through their palette
    (TensorFlow returns the palette indices),
    24/32-bit BMPs as they are (with 1 channel: the luma of their RGB
    pixels, as Pillow's `L`). Equal to
    `balpoe_keras.data.image_file.decode_image`, pixel for pixel. Another
    BMP (1, 4, 16 bits per pixel, RLE, an OS/2 header) fails, saying so
    (`image_file.unsupported_bmp`).
    """
    def other():
        # TensorFlow decodes GIF and WebP to RGB only, and its PNG and BMP
        # luma differs by a level: the luma of the RGB pixels as Pillow's
        # `L` conversion computes it (a gray image keeps its values).
        rgb = tf.case([
            (tf.equal(tf.strings.substr(data, 0, 2), b"BM"),
             lambda: _decode_bmp(data)),
            (_is_webp(data), lambda: _decode_webp(data)),
        ], default=lambda: tf.io.decode_image(data, channels=3,
                                              expand_animations=False),
            exclusive=True)
        return rgb if channels == 3 else _luma(rgb)

    def jpeg():
        def decode(channels):
            return tf.io.decode_jpeg(data, channels=channels,
                                     dct_method="INTEGER_ACCURATE")

        if channels == 3:
            return decode(3)
        # libjpeg gives no luma of a CMYK JPEG: that of its RGB (= PIL's).
        return tf.cond(tf.io.extract_jpeg_shape(data)[2] == 4,
                       lambda: _luma(decode(3)), lambda: decode(1))

    image = tf.cond(tf.io.is_jpeg(data), jpeg, other)
    return tf.ensure_shape(image, [None, None, channels])


def header_bytes(data, offset, length):
    """`length` bytes of `data` (a string tensor, elementwise) from byte
    `offset`, zeros past its end: `substr` itself fails there, on the
    header of an empty or cut-off file."""
    padded = tf.strings.join([data, b"\0" * (offset + length)])
    return tf.strings.substr(padded, offset, length)


def _header_int(data, offset, dtype):
    """The little-endian `dtype` at byte `offset` of `data`, as int32 (0
    past the end)."""
    raw = header_bytes(data, offset, dtype.size)
    return tf.cast(tf.io.decode_raw(raw, dtype)[0], tf.int32)


def _decode_bmp(data):
    """BMP bytes -> `(H, W, 3)` uint8 RGB; 8-bit BMPs through their
    palette (BGR0 entries after the DIB header)."""
    dib = _header_int(data, 14, tf.int32)
    bits = _header_int(data, 28, tf.uint16)
    compression = _header_int(data, 30, tf.int32)
    readable = tf.reduce_all([
        dib >= BMP_MIN_DIB,
        tf.reduce_any(tf.equal(bits, list(BMP_BITS))),
        tf.reduce_any(tf.equal(compression, list(BMP_COMPRESSIONS))),
        tf.logical_or(bits != 8, compression == 0)])
    check = tf.debugging.Assert(readable, [
        "Unsupported BMP: bits per pixel", bits, "compression", compression,
        "; the model reads uncompressed Windows BMPs of 8, 24 or 32 bits "
        "per pixel: save the image as PNG."])

    def paletted():
        colours = _header_int(data, 46, tf.int32)
        colours = tf.clip_by_value(
            tf.where(colours == 0, 256, colours), 1, 256)
        start = 14 + dib
        entries = tf.io.decode_raw(
            tf.strings.substr(data, start, colours * 4), tf.uint8)
        palette = tf.reverse(tf.reshape(entries, [-1, 4])[:, :3], [1])
        palette = tf.pad(palette, [[0, 256 - tf.shape(palette)[0]], [0, 0]])
        index = tf.io.decode_bmp(data, channels=0)[..., 0]
        return tf.gather(palette, tf.cast(index, tf.int32))

    with tf.control_dependencies([check]):
        return tf.cond(
            tf.equal(bits, 8), paletted,
            lambda: tf.io.decode_image(data, channels=3,
                                       expand_animations=False))


def _is_webp(data):
    """True for WebP bytes (`RIFF....WEBP`)."""
    return tf.logical_and(
        tf.equal(header_bytes(data, 0, 4), b"RIFF"),
        tf.equal(header_bytes(data, 8, 4), b"WEBP"))


def _decode_webp(data):
    """WebP bytes -> `(H, W, 3)` uint8: its colour, alpha dropped (as
    Pillow's RGB conversion). TensorFlow refuses `channels=3` for a WebP
    with alpha, so it is decoded with its own channel count."""
    image = tf.io.decode_image(data, channels=0, expand_animations=False)
    return tf.ensure_shape(image[..., :3], [None, None, 3])


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
    truncated): <path>") for an empty file, or a JPEG / PNG without its
    end marker (`FFD9` / `IEND`) anywhere after its signature; decoders
    report those without the file name, mid-training. The marker may sit
    before trailing bytes (phones append metadata or a motion photo's
    video after a JPEG's end), which decoders ignore. A JPEG cut short
    after an embedded EXIF thumbnail (which ends with its own `FFD9`)
    passes, and its decoder's error names no file.
    """
    size = tf.strings.length(data)
    is_jpeg = tf.equal(header_bytes(data, 0, 3), b"\xff\xd8\xff")
    is_png = tf.equal(header_bytes(data, 0, 8), b"\x89PNG\r\n\x1a\n")

    def has(marker):
        body = tf.io.decode_raw(tf.strings.substr(data, 2, size), tf.uint8)
        found = tf.ones_like(body[len(marker) - 1:], tf.bool)
        for k, byte in enumerate(marker):
            end = tf.shape(body)[0] - (len(marker) - 1 - k)
            found = tf.logical_and(found, tf.equal(body[k:end], byte))
        return tf.reduce_any(found)

    complete = tf.case([
        (tf.logical_and(is_jpeg, size > 4), lambda: has(b"\xff\xd9")),
        (tf.logical_and(is_png, size > 6), lambda: has(b"IEND")),
    ], default=lambda: tf.logical_not(tf.logical_or(is_jpeg, is_png)),
        exclusive=True)
    check = tf.debugging.Assert(
        tf.logical_and(size > 0, complete),
        ["Unreadable image file (empty or truncated):", path])
    with tf.control_dependencies([check]):
        return tf.identity(data)


def _decode(path):
    return decode_rgb(check_encoded_image(tf.io.read_file(path), path))
