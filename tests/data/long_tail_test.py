"""Tests for balpoe_keras.data.long_tail (NumPy only)."""

import numpy as np

from balpoe_keras.data import long_tail
from balpoe_keras.data.long_tail import long_tail_counts
from balpoe_keras.data.long_tail import long_tail_subsample
from tests.test_case import TestCase


class LongTailCountsTest(TestCase):
    def test_cifar100_ir100(self):
        counts = long_tail_counts(100, 500, 100)
        # int(500 * 0.01**(1/99)) = int(477.4) = 477 (docs/reference.md
        # §5.1).
        self.assertEqual(counts[:5], [500, 477, 455, 434, 415])
        self.assertEqual(counts[-5:], [6, 5, 5, 5, 5])
        self.assertEqual(sum(counts), 10847)

    def test_cifar10_ir100(self):
        counts = long_tail_counts(10, 5000, 100)
        self.assertEqual(
            counts, [5000, 2997, 1796, 1077, 645, 387, 232, 139, 83, 50])
        self.assertEqual(sum(counts), 12406)

    def test_reference_totals(self):
        # (C, max, IR) -> total, docs/reference.md §5.1; Fashion-MNIST has
        # 6000 per class.
        cases = {(100, 500, 50): 12608, (100, 500, 10): 19573,
                 (10, 5000, 50): 13996, (10, 5000, 10): 20431,
                 (10, 6000, 100): 14886}
        for (c, n, ir), total in cases.items():
            self.assertEqual(sum(long_tail_counts(c, n, ir)), total)

    def test_reverse_step_pareto_balanced(self):
        self.assertEqual(long_tail_counts(10, 5000, 100, reverse=True)[::-1],
                         long_tail_counts(10, 5000, 100))
        self.assertEqual(long_tail_counts(4, 100, 10, "step"),
                         [100, 100, 10, 10])
        # n_c = int(400 * (c+1)**-a), a = log(100)/log(4), i.e.
        # 400 * 100**(-log(c+1)/log(4)) = 400, 40, 10.4, 4.
        self.assertEqual(long_tail_counts(4, 400, 100, "pareto"),
                         [400, 40, 10, 4])
        self.assertEqual(long_tail_counts(3, 7, 1), [7, 7, 7])

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "imbalance_ratio"):
            long_tail_counts(10, 500, 0.01)
        with self.assertRaisesRegex(ValueError, "num_classes"):
            long_tail_counts(1, 500, 10)
        with self.assertRaisesRegex(ValueError, "profile"):
            long_tail_counts(10, 500, 10, profile="linear")


class LargestLongTailTest(TestCase):
    def test_order_lays_the_profile_over_ranked_classes(self):
        # "apple" 10 images, "zebra" 1000, ratio 10: in id order apple is
        # the head and the tail gets 1 image; ranked by count zebra keeps
        # 100 (bounded by apple's 10 = 100 / 10).
        self.assertEqual(long_tail.largest_long_tail_counts([10, 1000], 10),
                         [10, 1])
        order = long_tail.head_first([10, 1000])
        np.testing.assert_array_equal(order, [1, 0])
        self.assertEqual(
            long_tail.largest_long_tail_counts([10, 1000], 10, order=order),
            [10, 100])
        # Ties keep the id order; counts that never rise rank as ids.
        np.testing.assert_array_equal(long_tail.head_first([5, 7, 7, 1]),
                                      [1, 2, 0, 3])
        np.testing.assert_array_equal(
            long_tail.head_first(long_tail.long_tail_counts(10, 500, 100)),
            np.arange(10))
        with self.assertRaisesRegex(ValueError, "permutation"):
            long_tail.largest_long_tail_counts([10, 1000], 10, order=[1, 1])


class LongTailSubsampleTest(TestCase):
    def test_matches_global_numpy_reference_loop(self):
        rng = np.random.RandomState(3)
        labels = rng.randint(0, 5, 200)
        counts = [20, 12, 8, 5, 3]
        # The reference: np.random.seed(0), then per class shuffle + slice.
        np.random.seed(0)
        expected = []
        for c, n in enumerate(counts):
            idx = np.where(labels == c)[0]
            np.random.shuffle(idx)
            expected.append(idx[:n])
        expected = np.concatenate(expected)
        np.testing.assert_array_equal(
            long_tail_subsample(labels, counts, seed=0), expected)

    def test_counts_and_determinism(self):
        labels = np.repeat(np.arange(100), 500)
        counts = long_tail_counts(100, 500, 100)
        a = long_tail_subsample(labels, counts, seed=0)
        self.assertEqual(a.size, 10847)
        np.testing.assert_array_equal(np.bincount(labels[a]), counts)
        np.testing.assert_array_equal(a, long_tail_subsample(labels, counts))
        self.assertEqual(len(np.unique(a)), a.size)
        self.assertFalse(np.array_equal(
            a, long_tail_subsample(labels, counts, seed=1)))

    def test_errors(self):
        labels = np.array([0, 0, 1])
        with self.assertRaisesRegex(ValueError, r"Classes \[1\] have \[1\]"):
            long_tail_subsample(labels, [2, 2])
        with self.assertRaisesRegex(ValueError, r"Labels must lie in"):
            long_tail_subsample(np.array([0, 3]), [1, 1])
