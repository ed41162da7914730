"""Balanced and many/medium/few accuracy against hand-computed values."""

import numpy as np

from balpoe_keras import metrics
from tests.test_case import TestCase

# labels [0, 0, 0, 1, 2], predictions [0, 0, 1, 1, 0]:
# class 0: 2/3, class 1: 1/1, class 2: 0/1
# balanced = (2/3 + 1 + 0) / 3 = 0.555556 (micro would be 3/5)
LABELS = np.array([0, 0, 0, 1, 2])
LOGITS = np.eye(3, dtype="float32")[[0, 0, 1, 1, 0]] * 5.0
COUNTS = [500, 50, 5]  # many {0}, medium {1}, few {2}


class GroupAccuracyTest(TestCase):
    def test_balanced_accuracy_streaming(self):
        metric = metrics.BalancedAccuracy(3)
        metric.update_state(LABELS[:2], LOGITS[:2])
        metric.update_state(LABELS[2:], LOGITS[2:])
        self.assertAllClose(metric.result(), 0.555556, atol=1e-6)

    def test_unseen_classes_are_left_out(self):
        # Only class 0 seen: 2/3.
        metric = metrics.BalancedAccuracy(3)
        metric.update_state(LABELS[:3], LOGITS[:3])
        self.assertAllClose(metric.result(), 2 / 3, atol=1e-6)

    def test_groups(self):
        expected = {"many": 2 / 3, "medium": 1.0, "few": 0.0}
        for group, value in expected.items():
            metric = metrics.GroupAccuracy(COUNTS, group)
            metric.update_state(np.eye(3)[LABELS], LOGITS)  # soft labels
            self.assertAllClose(metric.result(), value, atol=1e-6)
            self.assertEqual(metric.name, f"acc_{group}")

    def test_sample_weight(self):
        # Weight 0 on the wrong class-0 sample: class 0 -> 2/2.
        metric = metrics.BalancedAccuracy(3)
        metric.update_state(LABELS, LOGITS, sample_weight=[1, 1, 0, 1, 1])
        self.assertAllClose(metric.result(), (1 + 1 + 0) / 3, atol=1e-6)

    def test_empty_group_is_an_error_not_nan(self):
        with self.assertRaisesRegex(ValueError, "'few'-shot group has no"):
            metrics.GroupAccuracy([5000, 2997, 50], "few")
        with self.assertRaisesRegex(ValueError, "Expected group in"):
            metrics.GroupAccuracy(COUNTS, "tail")

    def test_wrong_number_of_classes(self):
        with self.assertRaisesRegex(ValueError, "built for 3 classes"):
            metrics.BalancedAccuracy(3).update_state(LABELS, np.zeros((5, 4)))

    def test_config_round_trip(self):
        self.run_serialization_test(metrics.BalancedAccuracy(4))
        clone = self.run_serialization_test(
            metrics.GroupAccuracy(COUNTS, "medium")
        )
        self.assertEqual(clone.group, "medium")
