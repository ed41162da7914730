"""Tests for balpoe_keras.data.tfdata: augment, policies, transforms."""

import numpy as np
import pytest
import tensorflow as tf
from absl.testing import parameterized

from balpoe_keras.data.recipes import RECIPES
from balpoe_keras.data.tfdata import augment
from balpoe_keras.data.tfdata import image_ops
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

    def test_flip_mirrors_about_half_the_seeds(self):
        image = _image((4, 5, 3))  # asymmetric
        flipped = 0
        for s in range(40):
            out = augment.random_flip(image, [1, s]).numpy()
            mirrored = np.array_equal(out, image[:, ::-1])
            self.assertTrue(mirrored or np.array_equal(out, image))
            flipped += mirrored
        # Bernoulli(0.5) over 40 seeds: 20 +- 4.5 sd (sd 3.2).
        self.assertBetween(flipped, 6, 34)

    def test_cutout_zeroes_a_clipped_16px_square(self):
        image = np.ones((32, 32, 3), np.float32)
        holes = [int((augment.cutout(image, [5, s]).numpy() == 0).all(-1)
                     .sum()) for s in range(10)]
        self.assertEqual(max(holes), 256)  # 16 * 16 when fully inside
        self.assertTrue(all(0 < h <= 256 for h in holes))

    def test_resize_and_center_crop(self):
        # Column ramp 40x60 -> shorter side 16: 16x24 (scale 0.4) -> the
        # centre 14x14 is columns 5..18 of 24, i.e. input columns
        # (j + 0.5) / 0.4 - 0.5 = 13.25 + 2.5 k, k = 0..13.
        ramp = np.tile(np.arange(60, dtype=np.uint8)[None, :, None],
                       [40, 1, 3])
        out = augment.resize_and_center_crop(ramp, 16, 14)
        self.assertEqual(out.shape, (14, 14, 3))
        self.assertEqual(out.dtype, tf.uint8)
        self.assertAllClose(out.numpy()[7, :, 0],
                            np.round(13.25 + 2.5 * np.arange(14)), atol=1)
        crop = augment.random_resized_crop(_image((40, 60, 3)), _SEED, 24)
        self.assertEqual(crop.shape, (24, 24, 3))

    def test_color_jitter_factors_stay_in_the_documented_range(self):
        # ColorJitter(0.4, 0.4, 0.4): each factor ~ U[0.6, 1.4]. Jitter one
        # property at a time and read its factor back by least squares
        # from what the op does: brightness x -> f x, contrast x -> m +
        # f (x - m) (m the mean gray level), saturation x -> g + f (x - g)
        # (g the pixel's gray level); truncation to uint8 moves pixels
        # by < 1.
        rng = np.random.RandomState(2)
        base = rng.randint(80, 150, (12, 12, 1))
        image = (base + rng.randint(-25, 26, (12, 12, 3))).astype(np.uint8)
        x = image.astype(np.float64)
        gray = image_ops.grayscale(image).numpy().astype(np.float64)
        mean = np.floor(gray.mean() + 0.5)
        references = {"brightness": 0.0, "contrast": mean,
                      "saturation": gray}
        for prop, ref in references.items():
            factors = []
            for s in range(30):
                strengths = dict(brightness=0.0, contrast=0.0,
                                 saturation=0.0)
                strengths[prop] = 0.4
                out = augment.color_jitter(image, [9, s], **strengths)
                out = out.numpy().astype(np.float64)
                d, dx = (out - ref).ravel(), (x - ref).ravel()
                f = d @ dx / (dx @ dx)
                np.testing.assert_allclose(out, ref + f * (x - ref),
                                           atol=1.5, err_msg=prop)
                factors.append(f)
            self.assertBetween(min(factors), 0.58, 0.75, prop)
            self.assertBetween(max(factors), 1.25, 1.42, prop)
        # Strength 0: the identity.
        for s in range(5):
            np.testing.assert_array_equal(
                augment.color_jitter(image, [9, s], 0.0, 0.0, 0.0), image)

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

    def test_resized_crop_recipes_crop_and_flip(self):
        # Pixels hold their coordinates (R = 4 row, G = 4 col of 64x64).
        # Inside the 16x16 output a linear ramp stays linear, so the slopes
        # give the crop's height and width (antialiased resize) and the
        # sign of the G slope the flip.
        rows, cols = np.meshgrid(np.arange(64), np.arange(64), indexing="ij")
        image = np.stack([4 * rows, 4 * cols, np.zeros_like(rows)],
                         -1).astype(np.uint8)
        fn = get_train_transform("inaturalist_standard", image_size=16)
        seeds = tf.random.experimental.stateless_split([3, 4], 40)
        outs = tf.data.Dataset.from_tensor_slices(seeds).map(
            lambda s: fn(image, s)).batch(40).get_single_element()
        out = np.round(outs.numpy() * 255) / 4  # (40, 16, 16, 3)
        h = (out[:, 11, 8, 0] - out[:, 4, 8, 0]) / 7 * 16
        w = (out[:, 8, 11, 1] - out[:, 8, 4, 1]) / 7 * 16
        flipped = w < 0
        w = np.abs(w)
        area, aspect = h * w / 64**2, w / h
        # RandomResizedCrop: area in [0.08, 1], aspect in [3/4, 4/3]
        # (estimates within ~1 px), inside the image.
        self.assertTrue(np.all((area > 0.06) & (area < 1.04)), area)
        self.assertTrue(np.all((aspect > 0.7) & (aspect < 1.42)), aspect)
        top = out[:, 4, 8, 0] - 4.5 * h / 16 + 0.5
        self.assertTrue(np.all((top > -1) & (top + h < 65)))
        # It really crops: many crops are far smaller than the image, and
        # not all square.
        self.assertGreater(np.sum(area < 0.5), 5)
        self.assertGreater(np.ptp(aspect), 0.2)
        # Flip ~ Bernoulli(0.5): 20 +- 4.5 sd of 40 seeds.
        self.assertBetween(int(flipped.sum()), 6, 34)

    def test_imagenet_recipe_adds_color_jitter_to_inaturalist(self):
        # A gray image stays gray under crop, flip, contrast and
        # saturation; brightness scales it by U[0.6, 1.4] in the ImageNet
        # recipe only.
        gray = np.full((40, 48, 3), 128, np.uint8)
        values = {}
        for recipe in ("imagenet_standard", "inaturalist_standard"):
            fn = get_train_transform(recipe, image_size=8)
            outs = np.stack([fn(gray, [6, s]).numpy() for s in range(12)])
            self.assertEqual(np.ptp(outs, axis=(1, 2, 3)).max(), 0.0)
            values[recipe] = np.round(outs[:, 0, 0, 0] * 255)
        np.testing.assert_array_equal(values["inaturalist_standard"], 128)
        jittered = values["imagenet_standard"]
        self.assertTrue(np.all((jittered >= 76) & (jittered <= 179)),
                        jittered)
        self.assertGreater(np.ptp(jittered), 30)

    def test_grayscale_cifar_standard(self):
        out = get_train_transform("cifar_standard")(_image((28, 28, 1)),
                                                    _SEED)
        self.assertEqual(out.shape, (28, 28, 1))


def _pil_timm_op(pil, name, level, sign):
    """timm's RandAugment op at `level` (of 10), written with PIL: the
    level mappings this recipe's ops must keep (`randaugment._apply_op`)."""
    from PIL import Image
    from PIL import ImageEnhance
    from PIL import ImageOps

    frac = level / 10.0
    fill = (124, 116, 104)
    enhance = 0.1 + 1.8 * frac
    width, height = pil.size
    if name in ("Color", "Contrast", "Brightness", "Sharpness"):
        return getattr(ImageEnhance, name)(pil).enhance(enhance)
    if name == "PosterizeTpu":
        return ImageOps.posterize(pil, int(4 * frac))
    if name == "Solarize":
        return ImageOps.solarize(pil, int(256 * frac))
    if name == "SolarizeAdd":
        add = int(110 * frac)
        return pil.point([min(255, i + add) if i < 128 else i
                          for i in range(256)] * 3)
    if name in ("TranslateXRel", "TranslateYRel"):
        shift = 0.45 * frac * (width if name.endswith("XRel") else height)
        shift *= sign
        matrix = ((1, 0, shift, 0, 1, 0) if name.endswith("XRel")
                  else (1, 0, 0, 0, 1, shift))
        return pil.transform(pil.size, Image.AFFINE, matrix, fillcolor=fill)
    if name == "Rotate":
        return pil.rotate(30 * frac * sign, resample=Image.BILINEAR,
                          fillcolor=fill)
    if name in ("ShearX", "ShearY"):
        shear = 0.3 * frac * sign
        matrix = ((1, shear, 0, 0, 1, 0) if name == "ShearX"
                  else (1, 0, 0, shear, 1, 0))
        return pil.transform(pil.size, Image.AFFINE, matrix,
                             resample=Image.BILINEAR, fillcolor=fill)
    return {"Invert": ImageOps.invert, "Equalize": ImageOps.equalize,
            "AutoContrast": ImageOps.autocontrast}[name](pil)


class RandAugmentLevelsTest(TestCase):
    # Level 7 of 10 and both signs: a changed level mapping (rotation
    # 30 degrees at level 10, translation 0.45 of the side, enhance
    # 0.1 + 1.8 * level / 10, posterize 4 bits, ...) moves whole pixels.
    _BILINEAR = ("Rotate", "ShearX", "ShearY")

    def test_each_op_at_a_level_is_timms_op(self):
        from PIL import Image

        from balpoe_keras.data.tfdata import randaugment

        image = _image((20, 24, 3))
        pil = Image.fromarray(image)
        for name in randaugment.OPS[1:]:
            for sign in (1.0, -1.0):
                with self.subTest(op=name, sign=sign):
                    got = randaugment._apply_op(
                        tf.constant(image), name, tf.constant(7.0),
                        tf.constant(sign), randaugment.FILL).numpy()
                    want = np.asarray(_pil_timm_op(pil, name, 7, sign))
                    off = np.abs(got.astype(int) - want.astype(int))
                    if name in self._BILINEAR:
                        # On noise, bilinear sums round apart from PIL's
                        # fixed point in ~4-7 % of the values (mean
                        # difference ~1.5 levels); half the angle or shear
                        # moves ~90 % of them, by ~48 levels on average.
                        self.assertLess(np.mean(off > 2), 0.15)
                        self.assertLess(off.mean(), 3.0)
                    elif name == "AutoContrast":
                        self.assertLessEqual(off.max(), 1)
                    else:
                        np.testing.assert_array_equal(got, want)
