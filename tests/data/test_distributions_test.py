"""Tests for balpoe_keras.data.test_distributions (NumPy only)."""

import numpy as np

from balpoe_keras.data.test_distributions import distribution_names
from balpoe_keras.data.test_distributions import make_test_distributions
from tests.test_case import TestCase


class TestDistributionsTest(TestCase):
    def test_cifar100_sizes(self):
        labels = np.tile(np.arange(100), 100)  # 100 test images per class.
        sets = make_test_distributions(labels, 100)
        self.assertEqual(list(sets), distribution_names())
        self.assertEqual(list(sets)[0], "forward50")
        self.assertEqual(list(sets)[-1], "backward50")
        # docs/reference.md §5.4: sizes for rho = 50, 25, 10, 5, 2.
        sizes = {50: 2486, 25: 2956, 10: 3876, 5: 4932, 2: 7166}
        for rho, size in sizes.items():
            self.assertLen(sets[f"forward{rho}"], size)
            self.assertLen(sets[f"backward{rho}"], size)
        self.assertLen(sets["uniform"], 10000)
        fwd = np.bincount(labels[sets["forward50"]], minlength=100)
        bwd = np.bincount(labels[sets["backward50"]], minlength=100)
        self.assertEqual((fwd[0], fwd[-1]), (100, 2))
        np.testing.assert_array_equal(bwd, fwd[::-1])

    def test_order_puts_the_head_on_the_given_classes(self):
        # 3 classes, 10 test images each; class 2 ranked first, then 0, 1:
        # forward5 keeps int(10 * 5**(-k/2)) = 10, 4, 2 images by rank.
        labels = np.repeat(np.arange(3), 10)
        sets = make_test_distributions(labels, 3, ratios=(5,),
                                       order=[2, 0, 1])
        forward = np.bincount(labels[sets["forward5"]], minlength=3)
        backward = np.bincount(labels[sets["backward5"]], minlength=3)
        np.testing.assert_array_equal(forward, [4, 2, 10])
        np.testing.assert_array_equal(backward, [4, 10, 2])
        with self.assertRaisesRegex(ValueError, "permutation"):
            make_test_distributions(labels, 3, order=[0, 0, 1])

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "ratios > 1"):
            make_test_distributions(np.arange(4), 4, ratios=(1,))
        with self.assertRaisesRegex(ValueError, r"Classes \[2\]"):
            make_test_distributions(np.array([0, 1, 3]), 4)
