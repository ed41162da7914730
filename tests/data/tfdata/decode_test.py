"""tf.data's decoder gives the pixels Pillow gives, every format and
channel count (what `serving_bytes` and streamed folders rely on)."""

import io
import os

import numpy as np
import pytest

from balpoe_keras.data.image_file import decode_image
from tests.test_case import TestCase


@pytest.mark.tf_only
class DecodePixelsTest(TestCase):
    def test_every_format_and_channel_count_equals_pillow(self):
        import tensorflow as tf
        from PIL import Image

        from balpoe_keras.data.tfdata.decode import decode_pixels

        rng = np.random.default_rng(0)
        cases = (("JPEG", {}, (13, 17, 3)), ("JPEG", {}, (13, 17)),
                 ("PNG", {}, (13, 17, 3)), ("PNG", {}, (13, 17)),
                 ("BMP", {}, (13, 17, 3)), ("GIF", {}, (13, 17, 3)),
                 ("GIF", {}, (13, 17)), ("WEBP", dict(quality=80),
                                         (13, 17, 3)),
                 ("WEBP", dict(lossless=True), (13, 17, 3)))
        images = [(fmt, kwargs, Image.fromarray(
            rng.integers(0, 256, shape, np.uint8)))
            for fmt, kwargs, shape in cases]
        colour = Image.fromarray(rng.integers(0, 256, (13, 17, 3), np.uint8))
        translucent = colour.convert("RGBA")  # An opaque one saves as RGB.
        translucent.putalpha(Image.fromarray(
            rng.integers(0, 256, (13, 17), np.uint8)))
        gray = colour.convert("L")
        gray.putpixel((0, 0), 200)
        images += [
            # TensorFlow alone gives a paletted BMP's indices.
            ("BMP", {}, colour.quantize(7)),
            ("BMP", {}, colour.convert("L")),
            ("BMP", {}, colour.convert("RGBA")),
            # libjpeg gives no luma of a CMYK JPEG.
            ("JPEG", {}, colour.convert("CMYK")),
            # TensorFlow refuses 3 channels of a WebP with alpha.
            ("WEBP", dict(quality=80), translucent),
            ("WEBP", dict(lossless=True), translucent),
            ("PNG", {}, translucent),
            # A GIF's transparent index: black in TensorFlow, its palette
            # colour in Pillow unless made black.
            ("GIF", dict(transparency=2), colour.quantize(7)),
            ("GIF", dict(transparency=200), gray)]
        for fmt, kwargs, image in images:
            data = io.BytesIO()
            image.save(data, fmt, **kwargs)
            for channels in (1, 3):
                with self.subTest(fmt=fmt, mode=image.mode,
                                  channels=channels):
                    got = decode_pixels(tf.constant(data.getvalue()),
                                        channels).numpy()
                    np.testing.assert_array_equal(
                        got, decode_image(data.getvalue(), channels))

    def test_bmps_of_other_depths_are_refused_on_every_path(self):
        import tensorflow as tf
        from PIL import Image

        from balpoe_keras.data.image_file import read_header
        from balpoe_keras.data.tfdata.decode import decode_pixels

        gray = io.BytesIO()
        Image.fromarray(np.arange(64, dtype=np.uint8).reshape(8, 8)).save(
            gray, "BMP")
        gray = gray.getvalue()
        one_bit = io.BytesIO()
        Image.fromarray(np.eye(8, dtype=bool)).save(one_bit, "BMP")
        # An 8-bit BMP marked RLE8 (compression 1), and one whose DIB
        # header claims the 12 bytes of OS/2's: Pillow would read them,
        # TensorFlow's decoder cannot.
        rle = gray[:30] + (1).to_bytes(4, "little") + gray[34:]
        os2 = gray[:14] + (12).to_bytes(4, "little") + gray[18:]
        for name, data in (("1 bit", one_bit.getvalue()), ("RLE8", rle),
                           ("OS/2 header", os2), ("cut off", gray[:20])):
            path = os.path.join(self.get_temp_dir(), "bad.bmp")
            with open(path, "wb") as f:
                f.write(data)
            with self.subTest(name):
                self.assertIsNone(decode_image(data))
                self.assertIsNone(read_header(path))
                with self.assertRaisesRegex(
                        tf.errors.InvalidArgumentError,
                        "(?s)Unsupported BMP.*8, 24 or 32 bits"):
                    decode_pixels(tf.constant(data))
        np.testing.assert_array_equal(  # The valid one it came from.
            decode_pixels(tf.constant(gray), 1).numpy(),
            decode_image(gray, 1))
