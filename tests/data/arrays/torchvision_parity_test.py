"""`balpoe_keras.data.arrays` augmentation == torchvision's, pixel for pixel.

The reference trains on torchvision's PIL transforms (docs/reference.md
§5.2); the in-memory path must give the same images for the same crop
offsets, flips and angles, and draw its Mixup weight and permutation as
the reference.
"""

import numpy as np
import pytest
from scipy import stats

from balpoe_keras.data.arrays import augment
from balpoe_keras.data.arrays import dataset
from tests import torchvision_reference as tv
from tests.test_case import TestCase


def _uint8(x):
    x = np.asarray(x) * 255.0
    return np.round(x).astype(np.uint8)


def _ours(images, params, padding=4):
    height, width = images.shape[1:3]
    rotations = None
    if params["angles"] is not None:
        rotations = augment.rotation_matrices(params["angles"], height, width)
    return _uint8(augment.apply_crop_flip(
        images, params["offsets"], params["flips"], rotations, padding))


def _reference(images, params, padding=4):
    angles = params["angles"]
    return np.stack([
        tv.crop_flip_rotate(image, params["offsets"][k], params["flips"][k],
                            None if angles is None else angles[k], padding)
        for k, image in enumerate(images)])


class CropFlipRotationParityTest(TestCase):
    def _check(self, images, params, padding=4):
        ours, ref = _ours(images, params, padding), _reference(
            images, params, padding)
        bad = np.flatnonzero((ours != ref).reshape(len(images), -1).any(1))
        self.assertEqual(bad.tolist(), [], "images differing from "
                         "torchvision (index list)")

    def test_random_parameters_match_torchvision(self):
        images = tv.random_images(400)
        params = augment.draw_crop_flip_params(400, 0, 4, 15.0)
        self._check(images, params)

    def test_edge_angles_and_all_offsets_match_torchvision(self):
        angles = np.asarray(tv.EDGE_ANGLES, np.float32)
        n = len(angles)
        images = tv.random_images(n, seed=1)
        offsets = np.stack([np.arange(n) % 9, (np.arange(n) * 4) % 9], 1)
        params = {"offsets": offsets.astype(np.int32),
                  "flips": np.arange(n) % 2 == 0, "angles": angles}
        self._check(images, params)

    def test_crop_and_flip_without_rotation_match_torchvision(self):
        images = tv.random_images(81, seed=2)
        offsets = np.stack(np.meshgrid(np.arange(9), np.arange(9)), -1)
        params = {"offsets": offsets.reshape(-1, 2).astype(np.int32),
                  "flips": np.arange(81) % 3 == 0, "angles": None}
        self._check(images, params)

    def test_grayscale_and_non_square_images_match_torchvision(self):
        # The rotation centre is (W/2, H/2): a non-square image checks
        # that rows and columns are not swapped.
        for shape in [(28, 28, 1), (24, 40, 3)]:
            images = tv.random_images(60, *shape, seed=3)
            params = augment.draw_crop_flip_params(60, 4, 4, 15.0,
                                                   shape[:2])
            self._check(images, params)

    def test_array_dataset_batches_match_torchvision(self):
        images = tv.random_images(24, seed=5)
        labels = np.arange(24) % 3
        ds = dataset.ArrayDataset((images, labels), global_batch_size=8,
                                  seed=7, max_degrees=15.0)
        for k in range(len(ds)):
            x, _ = ds[k]
            ref = _reference(images[ds.batch_indices(k)], ds.batch_params(k))
            np.testing.assert_array_equal(_uint8(x), ref)

    def test_draws_follow_torchvision_distributions(self):
        p = augment.draw_crop_flip_params(20000, 11, 4, 15.0)
        # RandomCrop: i, j ~ randint(0, 2 * 4 + 1), each value ~ 1/9.
        counts = np.bincount(p["offsets"].reshape(-1), minlength=9)
        self.assertEqual(len(counts), 9)
        expected = 40000 / 9  # sd sqrt(40000 * 1/9 * 8/9) = 62.9
        self.assertLess(np.abs(counts - expected).max(), 5 * 62.9)
        # RandomRotation: angle ~ U[-15, 15].
        ks = stats.kstest(p["angles"], stats.uniform(-15, 30).cdf)
        self.assertGreater(ks.pvalue, 1e-4)
        self.assertLess(abs(p["flips"].mean() - 0.5), 5 * 0.5 / 141.4)


class MixupParityTest(TestCase):
    def test_one_beta_weight_per_batch(self):
        # 4000 batches: lam ~ Beta(0.8, 0.8) (KS test, deterministic seeds).
        rng = np.random.default_rng(0)
        lams = [augment.draw_mixup_params(16, 0.8, rng)[0]
                for _ in range(4000)]
        ks = stats.kstest(lams, stats.beta(0.8, 0.8).cdf)
        self.assertGreater(ks.pvalue, 1e-4)

    def test_permutation_is_uniform_and_may_fix_points(self):
        # B = 3: all 6 permutations (the identity included), ~1/6 each.
        rng = np.random.default_rng(1)
        perms = [tuple(augment.draw_mixup_params(3, 0.4, rng)[1])
                 for _ in range(6000)]
        counts = {p: perms.count(p) for p in set(perms)}
        self.assertEqual(len(counts), 6)
        # sd sqrt(6000 * 1/6 * 5/6) = 28.9
        self.assertLess(max(abs(c - 1000) for c in counts.values()),
                        5 * 28.9)

    @pytest.mark.filterwarnings("ignore::DeprecationWarning")
    def test_fixed_draw_equals_the_reference_mixed_loss(self):
        # Reference: x' = lam x + (1-lam) x[perm]; loss = lam L(y) +
        # (1-lam) L(y[perm]). Ours: the same x' and soft labels, whose
        # cross-entropy equals that loss.
        from balpoe_keras import losses

        images = np.random.default_rng(2).random((4, 2, 2, 3), np.float32)
        labels = np.array([2, 0, 1, 2])
        perm, lam = np.array([3, 2, 0, 1]), 0.35
        mixed, soft = augment.apply_mixup(images, labels, lam, perm, 3)
        self.assertAllClose(mixed, lam * images + (1 - lam) * images[perm],
                            atol=1e-7)
        self.assertAllClose(soft[0], [0.0, 0.0, 1.0])  # perm[0] = 3: 2, 2
        self.assertAllClose(soft[1], [0.35, 0.65, 0.0])  # y 0, y[2] = 1
        logits = np.random.default_rng(3).normal(size=(4, 3, 3)) * 5
        loss = losses.BalPoELoss([50, 20, 5], lambdas=[1.0, 0.0, -1.0])
        eye = np.eye(3, dtype=np.float32)
        reference = (lam * loss(eye[labels], logits)
                     + (1 - lam) * loss(eye[labels[perm]], logits))
        self.assertAllClose(loss(soft, logits), reference, atol=1e-5)
