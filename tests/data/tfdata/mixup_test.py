"""Tests for balpoe_keras.data.tfdata.mixup."""

import numpy as np
import pytest
import tensorflow as tf

from balpoe_keras.data.tfdata.mixup import cutmix_batch
from balpoe_keras.data.tfdata.mixup import cutmix_box
from balpoe_keras.data.tfdata.mixup import mix_batch
from balpoe_keras.data.tfdata.mixup import mixup_batch
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only

_SEED = tf.constant([1, 2], tf.int64)


def _batch(b=6, size=8):
    # Every pixel of every image is unique: image i, row y, column x holds
    # 100 i + size y + x, so a mixed pixel tells where it came from. Label
    # i = image i (C = b), so a soft label names the partner and its weight.
    y, x = np.meshgrid(np.arange(size), np.arange(size), indexing="ij")
    images = (100 * np.arange(b)[:, None, None] + size * y + x)
    return images[..., None].astype(np.float32), np.arange(b)


def _decode_pairs(soft):
    """`(lam, partner)` per row of soft labels over unique labels: `lam` the
    weight of the row's own label, `partner` the other label (the row
    itself when the weight is all its own)."""
    b = len(soft)
    lam = soft[np.arange(b), np.arange(b)]
    others = soft.copy()
    others[np.arange(b), np.arange(b)] = -1
    partner = np.where(lam < 1 - 1e-6, others.argmax(-1), np.arange(b))
    # At most two classes carry weight, and they sum to 1.
    np.testing.assert_allclose(
        soft[np.arange(b), partner] + np.where(partner == np.arange(b), 0,
                                               lam), 1.0, atol=1e-6)
    return lam, partner


class MixupTest(TestCase):
    def test_convex_combination_and_soft_labels(self):
        images, labels = _batch()
        # Seed (1, 0) draws lam = 0.285 (_SEED's 0.983 would hide a
        # missing blend within the tolerance).
        mixed, soft = mixup_batch(images, labels, [1, 0], 0.4, 6)
        soft = soft.numpy()
        lam, partner = _decode_pairs(soft)
        # x' = lam x_i + (1 - lam) x_perm(i), with the lam and partner read
        # from the soft labels; the partners are a permutation.
        for i in range(6):
            self.assertAllClose(
                mixed[i], lam[i] * images[i]
                + (1 - lam[i]) * images[partner[i]], atol=1e-4)
        self.assertEqual(sorted(partner), list(range(6)))
        # This seed really mixes (lam well inside (0, 1), some image paired
        # with another), with one lam per batch.
        moved = partner != np.arange(6)
        self.assertGreaterEqual(moved.sum(), 2)
        self.assertBetween(float(lam[moved][0]), 0.05, 0.95)
        self.assertAllClose(lam[moved], np.full(moved.sum(), lam[moved][0]))

    def test_id_columns_and_one_hot_rows_mix_as_ids(self):
        # (B, 1) ids (keras.datasets' layout) gave (B, B, C) soft labels,
        # one-hot rows (B, C, C).
        from balpoe_keras.data.arrays import augment
        from balpoe_keras.data.tfdata import mixup

        images, labels = _batch()
        onehot = np.eye(6, dtype=np.float32)[labels]
        _, expected = mixup_batch(images, labels, [1, 0], 0.4, 6)
        _, expected_mix = mix_batch(images, labels, [1, 0], 6,
                                    mixup_alpha=0.4)
        for given in (labels[:, None], onehot):
            with self.subTest(shape=given.shape):
                _, soft = mixup_batch(images, given, [1, 0], 0.4, 6)
                self.assertAllClose(soft, expected)
                _, soft = mix_batch(images, given, [1, 0], 6,
                                    mixup_alpha=0.4)
                self.assertAllClose(soft, expected_mix)
        perm = np.array([1, 0, 3, 2, 5, 4])
        for apply in (augment.apply_mixup, mixup.apply_mixup):
            _, soft = apply(images, labels, 0.3, perm, 6)
            for given in (labels[:, None], onehot):
                with self.subTest(apply=apply.__module__, shape=given.shape):
                    self.assertAllClose(
                        apply(images, given, 0.3, perm, 6)[1], soft)
        with self.assertRaisesRegex(ValueError, r"\(batch, 6\) one-hot"):
            mixup_batch(images, labels[:, None, None], [1, 0], 0.4, 6)

    def test_alpha_is_checked(self):
        images, labels = _batch()
        for alpha in (0.0, -1.0, float("nan")):
            with self.assertRaisesRegex(ValueError, "mixup_alpha"):
                mixup_batch(images, labels, [1, 0], alpha, 6)
            with self.assertRaisesRegex(ValueError, "cutmix_alpha"):
                cutmix_batch(images, labels, [1, 0], alpha, 6)

    def test_per_sample_lambdas_differ(self):
        images, labels = _batch(8)
        mixed, soft = mixup_batch(images, labels, _SEED, 1.0, 8, True)
        lam, partner = _decode_pairs(soft.numpy())
        moved = partner != np.arange(8)
        # Among the rows mixed with another image (self-pairs have weight
        # 1 whatever lam), the weights differ, and each row's pixels use
        # its own weight.
        self.assertGreaterEqual(moved.sum(), 2)
        self.assertEqual(len(np.unique(np.round(lam[moved], 5))),
                         moved.sum())
        for i in range(8):
            self.assertAllClose(
                mixed[i], lam[i] * images[i]
                + (1 - lam[i]) * images[partner[i]], atol=1e-4)

    def test_cutmix_box_sides_and_centre(self):
        # lam = 0.75 -> ratio sqrt(0.25) = 0.5 -> sides of 16 px of 32,
        # centred on a pixel c: (c - 8, c + 8) clipped to [0, 32].
        sides = []
        for s in range(20):
            y1, y2, x1, x2 = [int(v) for v in cutmix_box(32, 32, 0.75,
                                                         [1, s])]
            for lo, hi in ((y1, y2), (x1, x2)):
                self.assertIn((lo, hi), [(max(c - 8, 0), min(c + 8, 32))
                                         for c in range(32)])
            sides.append((y2 - y1, x2 - x1))
        self.assertIn((16, 16), sides)  # fully inside for some seed

    def test_cutmix_pastes_the_partners_box_and_weights_its_area(self):
        images, labels = _batch()
        pasted_rows, fractions = 0, set()
        for s in range(8):
            mixed, soft = cutmix_batch(images, labels, [1, s], 1.0, 6)
            mixed, soft = mixed.numpy(), soft.numpy()
            boxes = set()
            for i in range(6):
                changed = (mixed[i] != images[i])[..., 0]
                if not changed.any():
                    # Paired with itself (or an empty box): its own label.
                    self.assertAllClose(soft[i], np.eye(6)[i])
                    continue
                # The changed pixels are one rectangle, copied from one
                # partner image at the same place.
                rows, cols = changed.any(1), changed.any(0)
                np.testing.assert_array_equal(changed, np.outer(rows, cols))
                for mask in (rows, cols):
                    idx = np.flatnonzero(mask)
                    self.assertEqual(idx[-1] - idx[0] + 1, idx.size)
                j = int(mixed[i][changed][0, 0] // 100)
                self.assertNotEqual(j, i)
                np.testing.assert_array_equal(mixed[i][changed],
                                              images[j][changed])
                np.testing.assert_array_equal(mixed[i][~changed],
                                              images[i][~changed])
                # Label weights: the pasted area fraction for the partner,
                # the rest for the own image.
                area = changed.mean()
                expected = (1 - area) * np.eye(6)[i] + area * np.eye(6)[j]
                self.assertAllClose(soft[i], expected, atol=1e-6)
                boxes.add(changed.tobytes())
                fractions.add(float(area))
                pasted_rows += 1
            self.assertLessEqual(len(boxes), 1)  # one box per batch
        self.assertGreater(pasted_rows, 10)
        self.assertGreater(len(fractions), 2)  # box sizes vary with lam

    def test_mixup_cutmix_picks_one_per_batch(self):
        images, labels = _batch()
        kinds = []
        for s in range(12):
            mixed, _ = mix_batch(images, labels, [5, s], 6, 0.4, 1.0,
                                 "mixup_cutmix")
            # Pasted: every pixel is a pixel of some image at that place.
            # Blended: most are not.
            from_images = (mixed.numpy()[:, None] == images[None]).any(1)
            kinds.append("cut" if from_images.all() else "blend")
        self.assertEqual(sorted(set(kinds)), ["blend", "cut"])

    def test_seeded_and_modes(self):
        images, labels = _batch()
        a = mix_batch(images, labels, _SEED, 6, 0.4, 1.0, "mixup_cutmix")
        b = mix_batch(images, labels, _SEED, 6, 0.4, 1.0, "mixup_cutmix")
        self.assertAllClose(a[0], b[0])
        with self.assertRaisesRegex(ValueError, "cutmix_alpha > 0"):
            mix_batch(images, labels, _SEED, 6, 0.4, 0.0, "cutmix")
        with self.assertRaisesRegex(ValueError, "Unknown mix mode"):
            mix_batch(images, labels, _SEED, 6, 0.4, 0.0, "blend")
