"""Tests for balpoe_keras.data.tfdata: augment, policies, transforms."""

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from balpoe_keras.data.recipes import RECIPES
from balpoe_keras.data.tfdata import augment
from balpoe_keras.data.tfdata.autoaugment import CIFAR10_POLICY
from balpoe_keras.data.tfdata.autoaugment import MAGNITUDES
from balpoe_keras.data.tfdata.autoaugment import cifar10_policy
from balpoe_keras.data.tfdata.randaugment import rand_augment
from balpoe_keras.data.tfdata.transforms import get_eval_transform
from balpoe_keras.data.tfdata.transforms import get_train_transform
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only

_SEED = tf.constant([3, 4], tf.int64)
# AutoAugment / RandAugment recipes take ~5 s each to trace: large test.
_FAST_RECIPES = ("none", "cifar_standard", "imagenet_standard",
                 "inaturalist_standard")


def _image(shape=(32, 32, 3)):
    return np.random.RandomState(1).randint(1, 256, shape).astype(np.uint8)


class AugmentTest(TestCase):
    def test_crop_pads_with_zeros(self):
        ones = np.full((8, 8, 1), 255, np.uint8)
        crops = [augment.random_crop_with_padding(ones, [0, s]).numpy()
                 for s in range(8)]
        self.assertTrue(all(c.shape == (8, 8, 1) for c in crops))
        # Some offset != (4, 4) exposes zero padding; every crop keeps at
        # least a 4x4 block of the original image.
        self.assertTrue(any((c == 0).any() for c in crops))
        self.assertTrue(all((c == 255).sum() >= 16 for c in crops))

    def test_flip_is_identity_or_mirror(self):
        image = _image((4, 5, 3))
        for s in range(4):
            out = augment.random_flip(image, [1, s]).numpy()
            self.assertTrue(np.array_equal(out, image)
                            or np.array_equal(out, image[:, ::-1]))

    def test_cutout_zeroes_a_clipped_16px_square(self):
        image = np.ones((32, 32, 3), np.float32)
        holes = [int((augment.cutout(image, [5, s]).numpy() == 0).all(-1)
                     .sum()) for s in range(10)]
        self.assertEqual(max(holes), 256)  # 16 * 16 when fully inside
        self.assertTrue(all(0 < h <= 256 for h in holes))

    def test_resize_and_center_crop(self):
        out = augment.resize_and_center_crop(_image((40, 60, 3)), 16, 14)
        self.assertEqual(out.shape, (14, 14, 3))
        self.assertEqual(out.dtype, tf.uint8)
        crop = augment.random_resized_crop(_image((40, 60, 3)), _SEED, 24)
        self.assertEqual(crop.shape, (24, 24, 3))

    def test_policy_tables(self):
        self.assertLen(CIFAR10_POLICY, 25)
        self.assertEqual(list(MAGNITUDES["posterize"]),
                         [8, 8, 7, 7, 6, 6, 5, 5, 4, 4])
        self.assertAllClose(MAGNITUDES["solarize"][1], 227.555, atol=1e-3)

    def test_policies_keep_shape_dtype_and_vary(self):
        image = _image()
        outs = [cifar10_policy(image, [7, s]).numpy() for s in range(6)]
        outs += [rand_augment(image, [8, s]).numpy() for s in range(6)]
        for out in outs:
            self.assertEqual((out.shape, out.dtype), (image.shape, np.uint8))
        self.assertTrue(any(not np.array_equal(o, image) for o in outs))

    @parameterized.parameters(*_FAST_RECIPES)
    def test_recipe_eager_and_in_dataset_map(self, recipe):
        self._check_recipe(recipe)

    @pytest.mark.large
    def test_policy_recipes_eager_and_in_dataset_map(self):
        for recipe in sorted(set(RECIPES) - set(_FAST_RECIPES)):
            self._check_recipe(recipe)

    def _check_recipe(self, recipe):
        fn = get_train_transform(recipe, image_size=24)
        eager = fn(_image(), _SEED)
        mapped = next(iter(tf.data.Dataset.from_tensors(
            (_image(), _SEED)).map(fn)))
        size = 24 if recipe.startswith(("imagenet", "inat")) else 32
        for out in (eager, mapped):
            self.assertEqual(out.shape, (size, size, 3))
            self.assertEqual(out.dtype, tf.float32)
            self.assertBetween(float(tf.reduce_min(out)), 0.0, 1.0)
            self.assertBetween(float(tf.reduce_max(out)), 0.0, 1.0)
        self.assertAllClose(eager, mapped)  # stateless: same seed
        evaluated = get_eval_transform(recipe, image_size=24)(_image())
        self.assertEqual(evaluated.shape, (size, size, 3))

    def test_none_recipe_is_to_float_and_unknown_recipe_raises(self):
        image = _image()
        self.assertAllClose(get_train_transform("none")(image, _SEED),
                            image / 255.0)
        with self.assertRaisesRegex(ValueError, "cifar_standard"):
            get_train_transform("cifar_fancy")

    def test_grayscale_cifar_standard(self):
        out = get_train_transform("cifar_standard")(_image((28, 28, 1)),
                                                    _SEED)
        self.assertEqual(out.shape, (28, 28, 1))
