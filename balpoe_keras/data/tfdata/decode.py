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
    end marker (`FFD9` / `IEND`); decoders report those without the file
    name, mid-training. Most files end with the marker (a check of their
    last bytes); otherwise it is searched for: it may sit before trailing
    bytes (phones append metadata or a motion photo's video after a
    JPEG's end), which decoders ignore. A JPEG's marker must follow the
    start of its image data (`_jpeg_scan_start`), so one cut short after
    an embedded EXIF thumbnail (a whole JPEG inside a header segment,
    with its own `FFD9`) is named too. A file cut right after an `FFD9`
    pair in its headers (the thumbnail's end, or such bytes in other
    metadata) ends with a marker and passes; its decoder's error names no
    file.
    """
    size, is_jpeg, is_png = _size_and_kind(data)

    def ends_with(marker, before):
        return tf.equal(tf.strings.substr(
            data, tf.maximum(size - before, 0), len(marker)), marker)

    at_end = tf.logical_or(
        tf.logical_and(tf.logical_and(is_jpeg, size > 4),
                       ends_with(b"\xff\xd9", 2)),
        tf.logical_and(is_png, ends_with(b"IEND", 8)))
    complete = tf.cond(
        tf.logical_or(at_end, tf.logical_not(tf.logical_or(is_jpeg, is_png))),
        lambda: tf.constant(True), lambda: _searched_complete(data))
    check = tf.debugging.Assert(
        tf.logical_and(size > 0, complete),
        ["Unreadable image file (empty or truncated):", path])
    with tf.control_dependencies([check]):
        return tf.identity(data)


@tf.function(autograph=False, reduce_retracing=True,
             experimental_attributes={"_noinline": True})
def _searched_complete(data):
    """True for a JPEG / PNG whose end marker is found before trailing
    bytes. A function of its own, not inlined: its ops would otherwise
    cost every file's check, also where it does not run."""
    size, is_jpeg, is_png = _size_and_kind(data)

    def jpeg():
        start = _jpeg_scan_start(data, size)
        return tf.case([
            (start >= 0, lambda: _has(data, b"\xff\xd9", start + 2)),
            (tf.equal(start, -1), lambda: tf.constant(False)),
        ], default=lambda: _has(data, b"\xff\xd9", 2))

    return tf.case([
        (tf.logical_and(is_jpeg, size > 4), jpeg),
        (tf.logical_and(is_png, size > 6), lambda: _has(data, b"IEND", 8)),
    ], default=lambda: tf.constant(False), exclusive=True)


def _has(data, marker, start):
    """True when `marker` occurs in `data` from byte `start` on."""
    body = tf.io.decode_raw(
        tf.strings.substr(data, start, tf.strings.length(data)), tf.uint8)
    found = tf.ones_like(body[len(marker) - 1:], tf.bool)
    for k, byte in enumerate(marker):
        end = tf.shape(body)[0] - (len(marker) - 1 - k)
        found = tf.logical_and(found, tf.equal(body[k:end], byte))
    return tf.reduce_any(found)


# A JPEG's header segments are followed to its first scan over at most
# 2**6 = 64 segments (photos carry about 10-20: APPn metadata, ICC
# chunks, tables) within its first 256 KiB; a longer chain, or one going
# further, falls back to a search of the whole file.
_JPEG_SEGMENT_DOUBLINGS = 6
_JPEG_HEADER_BYTES = 1 << 18


def _size_and_kind(data):
    """`(size in bytes, is a JPEG, is a PNG)` of encoded `data`, by its
    signature."""
    return (tf.strings.length(data),
            tf.equal(header_bytes(data, 0, 2), b"\xff\xd8"),
            tf.equal(header_bytes(data, 0, 8), b"\x89PNG\r\n\x1a\n"))


def _jpeg_scan_start(data, size):
    """Byte offset of a JPEG's first start-of-scan marker (`FFDA`), found
    by following its header segments by their lengths from byte 2, so
    that bytes inside a segment (an EXIF thumbnail's markers) are
    skipped; -1 when the chain runs past the end of the file (a file cut
    short in its headers), -2 when the bytes are not a segment chain
    (stray bytes, which decoders skip), or one of more than 64 segments
    or beyond the first `_JPEG_HEADER_BYTES`.

    Without a loop (a loop in the graph slows every file's check): each
    byte offset gets the offset its segment leads to, and that table is
    composed with itself 6 times (pointer doubling); a scan's start and
    the outcomes are fixed points."""
    n = tf.minimum(size, _JPEG_HEADER_BYTES)
    body = tf.cast(tf.io.decode_raw(tf.strings.substr(data, 0, n),
                                    tf.uint8), tf.int32)
    padded = tf.concat([body, tf.zeros([4], tf.int32)], 0)
    offsets = tf.range(n)
    first, second = body, padded[1:n + 1]
    length = padded[2:n + 2] * 256 + padded[3:n + 3]
    fill = tf.equal(second, 0xFF)
    standalone = tf.logical_or(tf.equal(second, 0x01), tf.logical_and(
        second >= 0xD0, second <= 0xD8))
    marker = tf.logical_and(tf.equal(first, 0xFF), tf.logical_or(
        fill, tf.logical_or(tf.equal(second, 0x01), second >= 0xC0)))
    scan = tf.logical_and(tf.equal(first, 0xFF), tf.equal(second, 0xDA))
    leads_to = tf.where(fill, offsets + 1, tf.where(
        standalone, offsets + 2, offsets + 2 + length))
    ran_out, not_a_chain = n, n + 1
    table = tf.where(
        offsets + 3 >= n, ran_out, tf.where(
            scan, offsets, tf.where(
                tf.logical_not(marker), not_a_chain,
                tf.minimum(leads_to, ran_out))))
    table = tf.concat([table, tf.stack([ran_out, not_a_chain])], 0)
    for _ in range(_JPEG_SEGMENT_DOUBLINGS):
        table = tf.gather(table, table)
    end = table[2]
    is_scan = tf.gather(tf.concat([scan, [False, False]], 0), end)
    past_the_file = tf.logical_and(tf.equal(end, ran_out), tf.equal(n, size))
    return tf.where(is_scan, end, tf.where(past_the_file, -1, -2))


def _decode(path):
    return decode_rgb(check_encoded_image(tf.io.read_file(path), path))
