"""tf.data CIFAR augmentation == torchvision's, pixel for pixel.

The `cifar_standard` recipe (docs/reference.md §5.2) against torchvision's
functional ops on PIL images with the same crop offsets, flip and angle,
and the batch Mixup's draws against the reference's.
"""

import numpy as np
import pytest
import tensorflow as tf
from scipy import stats

from balpoe_keras.data.tfdata import augment
from balpoe_keras.data.tfdata import image_ops
from balpoe_keras.data.tfdata import mixup
from balpoe_keras.data.tfdata import transforms
from tests import torchvision_reference as tv
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only


def _apply(image, offsets, flip, angle):
    image = augment.crop_with_padding(image, offsets)
    image = augment.flip_left_right(image, flip)
    if angle is not None:
        image = image_ops.rotate(image, angle, fill=0)
    return image.numpy()


class CropFlipRotationParityTest(TestCase):
    def test_fixed_parameters_match_torchvision(self):
        rng = np.random.default_rng(0)
        angles = list(tv.EDGE_ANGLES) + list(
            rng.uniform(-15, 15, 150).astype(np.float32))
        images = tv.random_images(len(angles), seed=1)
        bad = []
        for k, (image, angle) in enumerate(zip(images, angles)):
            offsets, flip = rng.integers(0, 9, 2), bool(k % 2)
            ours = _apply(image, offsets, flip, np.float32(angle))
            ref = tv.crop_flip_rotate(image, offsets, flip, angle)
            if not np.array_equal(ours, ref):
                bad.append((k, float(angle)))
        self.assertEqual(bad, [])

    def test_grayscale_and_non_square_images_match_torchvision(self):
        rng = np.random.default_rng(2)
        for shape in [(28, 28, 1), (24, 40, 3)]:
            for image in tv.random_images(30, *shape, seed=3):
                offsets, angle = rng.integers(0, 9, 2), rng.uniform(-15, 15)
                np.testing.assert_array_equal(
                    _apply(image, offsets, True, np.float32(angle)),
                    tv.crop_flip_rotate(image, offsets, True,
                                        np.float32(angle)))

    def test_cifar_standard_recipe_is_crop_flip_rotation_in_that_order(self):
        # Recover the recipe's own draws from its seeds and replay them in
        # torchvision: same pixels, inside a Dataset.map too.
        transform = transforms.get_train_transform("cifar_standard")
        images = tv.random_images(40, seed=4)
        seeds = tf.random.experimental.stateless_split([7, 8], 40)
        mapped = tf.data.Dataset.from_tensor_slices((images, seeds)).map(
            transform)
        for image, seed, got in zip(images, seeds, mapped):
            s = augment.split_seed(seed, 6)
            offsets = tf.random.stateless_uniform([2], s[0], 0, 9, tf.int32)
            flip = bool(tf.random.stateless_uniform([], s[1]) < 0.5)
            angle = tf.random.stateless_uniform([], s[2], -15.0, 15.0)
            ref = tv.crop_flip_rotate(image, offsets.numpy(), flip,
                                      float(angle))
            np.testing.assert_array_equal(
                np.round(got.numpy() * 255).astype(np.uint8), ref)

    def test_draws_follow_torchvision_distributions(self):
        seeds = tf.random.experimental.stateless_split([1, 2], 9000)
        offsets = tf.stack([tf.random.stateless_uniform(
            [2], s, 0, 9, tf.int32) for s in seeds[:4500]]).numpy()
        counts = np.bincount(offsets.reshape(-1), minlength=9)
        self.assertEqual(len(counts), 9)  # 0..8 only
        # 9000 draws, 1/9 each: sd sqrt(9000 / 9 * 8 / 9) = 29.8
        self.assertLess(np.abs(counts - 1000).max(), 5 * 29.8)
        angles = [float(tf.random.stateless_uniform([], s, -15.0, 15.0))
                  for s in seeds[4500:]]
        ks = stats.kstest(angles, stats.uniform(-15, 30).cdf)
        self.assertGreater(ks.pvalue, 1e-4)


class MixupParityTest(TestCase):
    def test_one_beta_weight_per_batch(self):
        images = tf.zeros([6, 1, 1, 1])
        labels = tf.constant([0, 1, 2, 0, 1, 2])
        lams = []
        for seed in tf.random.experimental.stateless_split([3, 4], 3000):
            _, soft = mixup.mixup_batch(images, labels, seed, 0.8, 3)
            # Row 0 is class 0 mixed with y[perm[0]]; its class-0 weight
            # is lam or 1 (self / same-class partner). Read lam from the
            # rows where y != y[perm]: one value for the whole batch.
            soft = soft.numpy()
            own = soft[np.arange(6), labels.numpy()]
            mixed = own[own < 1 - 1e-6]
            if mixed.size:
                self.assertAllClose(mixed, np.full_like(mixed, mixed[0]))
                lams.append(mixed[0])
        ks = stats.kstest(
            lams, lambda x: stats.beta(0.8, 0.8).cdf(x)
            / stats.beta(0.8, 0.8).cdf(1 - 1e-6))
        self.assertGreater(ks.pvalue, 1e-4)

    def test_fixed_draw_is_exact(self):
        images = np.random.default_rng(5).random((4, 2, 2, 3), np.float32)
        labels = np.array([2, 0, 1, 2])
        perm, lam = np.array([3, 2, 0, 1]), 0.35
        mixed, soft = mixup.apply_mixup(images, labels, lam, perm, 3)
        self.assertAllClose(mixed, lam * images + (1 - lam) * images[perm],
                            atol=1e-7)
        eye = np.eye(3)
        self.assertAllClose(soft, lam * eye[labels]
                            + (1 - lam) * eye[labels[perm]], atol=1e-7)


class CenterCropParityTest(TestCase):
    """The evaluation transform (and so `serving_bytes`, which uses it)
    crops the pixels torchvision's `Resize(r)` + `CenterCrop` crops."""

    def test_odd_margins_and_non_square_crops_match_torchvision(self):
        import torch  # Before torchvision's transforms (tests/...reference).
        from torchvision import transforms as T

        for shape, crop in (((100, 131), 72), ((131, 100), 72),
                            ((73, 200), 72), ((80, 81), (72, 64)),
                            ((201, 75), (64, 72))):
            rows, cols = np.meshgrid(np.arange(shape[0]),
                                     np.arange(shape[1]), indexing="ij")
            # Ramps of ~3 levels per output pixel: a crop one pixel off
            # moves every value by ~3; the same crop by < 0.5 (rounding).
            for ramp in (rows * 250.0 / shape[0], cols * 250.0 / shape[1]):
                ramp = ramp.astype(np.float32)
                ours = augment.resize_and_center_crop(
                    np.repeat(ramp[..., None], 3, -1), 82, crop).numpy()
                theirs = T.CenterCrop(crop)(T.Resize(82, antialias=True)(
                    torch.from_numpy(ramp)[None]))[0].numpy()
                with self.subTest(shape=shape, crop=crop):
                    self.assertEqual(ours.shape[:2], theirs.shape)
                    self.assertLess(
                        np.abs(ours[..., 0] - theirs).max(), 0.5 + 1e-3)
