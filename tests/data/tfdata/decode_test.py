"""tf.data's decoder gives the pixels Pillow gives, every format and
channel count (what `serving_bytes` and streamed folders rely on)."""

import io

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
        for fmt, kwargs, shape in cases:
            data = io.BytesIO()
            Image.fromarray(rng.integers(0, 256, shape, np.uint8)).save(
                data, fmt, **kwargs)
            for channels in (1, 3):
                with self.subTest(fmt=fmt, shape=shape, channels=channels):
                    got = decode_pixels(tf.constant(data.getvalue()),
                                        channels).numpy()
                    np.testing.assert_array_equal(
                        got, decode_image(data.getvalue(), channels))
