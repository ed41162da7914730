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


def _batch(b=6):
    # Image i is constant i, so a mixed image reveals its weights.
    images = np.tile(np.arange(b, dtype=np.float32)[:, None, None, None],
                     [1, 4, 4, 1])
    return images, np.arange(b) % 3


class MixupTest(TestCase):
    def test_convex_combination_and_soft_labels(self):
        images, labels = _batch()
        mixed, soft = mixup_batch(images, labels, _SEED, 0.4, 3)
        self.assertEqual(soft.shape, (6, 3))
        self.assertAllClose(tf.reduce_sum(soft, -1), np.ones(6))
        # lam is the soft weight on the own label; x' = lam x + (1-lam) x[p].
        lam = soft.numpy()[np.arange(6), labels]
        partner = (mixed.numpy()[:, 0, 0, 0] - lam * np.arange(6))
        for i in range(6):
            if lam[i] < 1:
                j = partner[i] / (1 - lam[i])
                self.assertAllClose(j, np.round(j), atol=1e-4)
        pairs_equal = np.isclose(lam, lam[0]) | (soft.numpy().max(-1) > 0.99)
        self.assertTrue(pairs_equal.all())  # one lam per batch

    def test_per_sample_lambdas_differ(self):
        images, labels = _batch(8)
        _, soft = mixup_batch(images, np.arange(8), _SEED, 1.0, 8, True)
        own = soft.numpy()[np.arange(8), np.arange(8)]
        self.assertGreater(len(np.unique(np.round(own, 5))), 1)

    def test_cutmix_box_and_recomputed_lambda(self):
        # lam = 0.75 -> ratio sqrt(0.25) = 0.5 -> cut 16 px of 32.
        y1, y2, x1, x2 = [int(v) for v in cutmix_box(32, 32, 0.75, _SEED)]
        self.assertLessEqual(y2 - y1, 16)
        self.assertLessEqual(x2 - x1, 16)
        images, labels = _batch()
        mixed, soft = cutmix_batch(images, labels, _SEED, 1.0, 3)
        # Fraction of pixels kept from the own image is the label weight.
        kept = (mixed.numpy() == images).mean(axis=(1, 2, 3))
        lam = soft.numpy()[np.arange(6), labels]
        moved = kept < 1
        self.assertAllClose(lam[moved], kept[moved], atol=1e-6)
        self.assertAllClose(tf.reduce_sum(soft, -1), np.ones(6))

    def test_seeded_and_modes(self):
        images, labels = _batch()
        a = mix_batch(images, labels, _SEED, 3, 0.4, 1.0, "mixup_cutmix")
        b = mix_batch(images, labels, _SEED, 3, 0.4, 1.0, "mixup_cutmix")
        self.assertAllClose(a[0], b[0])
        with self.assertRaisesRegex(ValueError, "cutmix_alpha > 0"):
            mix_batch(images, labels, _SEED, 3, 0.4, 0.0, "cutmix")
        with self.assertRaisesRegex(ValueError, "Unknown mix mode"):
            mix_batch(images, labels, _SEED, 3, 0.4, 0.0, "blend")
