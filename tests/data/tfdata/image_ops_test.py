"""Tests for balpoe_keras.data.tfdata.image_ops against PIL and by hand."""

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from PIL import ImageEnhance
from PIL import ImageOps

from balpoe_keras.data.tfdata import image_ops
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only

_GRAY = (128, 128, 128)


def _image():
    image = np.random.RandomState(0).randint(0, 256, (9, 11, 3))
    image[..., 1] = image[..., 1] // 2 + 40  # a channel with a short range
    return image.astype(np.uint8)


def _pil_cases():
    pil = Image.fromarray(_image())
    size = pil.size
    return {
        "equalize": (image_ops.equalize, ImageOps.equalize(pil)),
        "posterize3": (lambda x: image_ops.posterize(x, 3),
                       ImageOps.posterize(pil, 3)),
        "solarize100": (lambda x: image_ops.solarize(x, 100),
                        ImageOps.solarize(pil, 100)),
        "color0.3": (lambda x: image_ops.color(x, 0.3),
                     ImageEnhance.Color(pil).enhance(0.3)),
        "contrast1.7": (lambda x: image_ops.contrast(x, 1.7),
                        ImageEnhance.Contrast(pil).enhance(1.7)),
        "brightness1.4": (lambda x: image_ops.brightness(x, 1.4),
                          ImageEnhance.Brightness(pil).enhance(1.4)),
        "sharpness0.2": (lambda x: image_ops.sharpness(x, 0.2),
                         ImageEnhance.Sharpness(pil).enhance(0.2)),
        "rotate17": (lambda x: image_ops.rotate(x, 17.0, 128),
                     pil.rotate(17, fillcolor=_GRAY)),
        "translate_x3": (lambda x: image_ops.translate_x(x, 3.0, 128),
                         pil.transform(size, Image.AFFINE, (1, 0, 3, 0, 1, 0),
                                       fillcolor=_GRAY)),
    }


class ImageOpsTest(TestCase):
    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    def test_match_pil_exactly_eager_and_in_dataset_map(self):
        for name, (op, expected) in _pil_cases().items():
            expected = np.asarray(expected)
            eager = op(_image()).numpy()
            np.testing.assert_array_equal(eager, expected, err_msg=name)
            mapped = next(iter(tf.data.Dataset.from_tensors(_image()).map(op)))
            np.testing.assert_array_equal(mapped.numpy(), expected,
                                          err_msg=name)

    def test_autocontrast_within_one_level_of_pil(self):
        expected = np.asarray(ImageOps.autocontrast(Image.fromarray(_image())))
        got = image_ops.autocontrast(_image()).numpy()
        self.assertLessEqual(np.abs(got.astype(int) - expected).max(), 1)
        self.assertEqual((got.min(), got.max()), (0, 255))

    def test_hand_computed_values(self):
        x = np.array([[[0], [100], [127], [128], [200], [255]]], np.uint8)
        # invert: 255 - x.
        self.assertAllClose(image_ops.invert(x)[0, :, 0],
                            [255, 155, 128, 127, 55, 0])
        # solarize(128): values >= 128 inverted: 128 -> 127, 200 -> 55.
        self.assertAllClose(image_ops.solarize(x, 128)[0, :, 0],
                            [0, 100, 127, 127, 55, 0])
        self.assertAllClose(image_ops.solarize(x, 256), x)
        # posterize 2 bits keeps mask 0b11000000 = 192: 100 -> 64, 200 -> 192.
        self.assertAllClose(image_ops.posterize(x, 2)[0, :, 0],
                            [0, 64, 64, 128, 192, 192])
        self.assertAllClose(image_ops.posterize(x, 0), np.zeros_like(x))
        # solarize_add(+50) below 128: 100 -> 150, 127 -> 177; others kept.
        self.assertAllClose(image_ops.solarize_add(x, 50)[0, :, 0],
                            [50, 150, 177, 128, 200, 255])

    def test_rotate_90_is_rot90_and_single_channel_works(self):
        square = _image()[:9, :9, :1]
        self.assertAllClose(image_ops.rotate(square, 90.0, fill=0),
                            np.rot90(square))
        self.assertAllClose(image_ops.color(square, 0.0), square)
