"""Tests for `ExpertLoss`, the per-expert gLA loss metric."""

import math

import keras
import numpy as np

from balpoe_keras.metrics import ExpertLoss
from tests.test_case import TestCase

_COUNTS = [3, 1]  # prior [0.75, 0.25]
_LAMBDAS = [1.0, 0.0, -1.0]  # taus [0, 1, 2]


class ExpertLossTest(TestCase):
    def test_hand_computed(self):
        # All expert logits are 0, labels [0, 1], prior [0.75, 0.25]:
        # tau 0 (lambda 1): softmax [.5, .5] -> CE = log 2 for both labels.
        # tau 1 (lambda 0): softmax(log prior) = [.75, .25]
        #   -> mean(-log .75, -log .25) = (0.287682 + 1.386294) / 2.
        # tau 2 (lambda -1): softmax(2 log prior) = [.9, .1]
        #   -> mean(-log .9, -log .1) = (0.105361 + 2.302585) / 2.
        y_pred = np.zeros((2, 3, 2), "float32")
        y_true = np.array([0, 1])
        expected = [
            math.log(2.0),
            (-math.log(0.75) - math.log(0.25)) / 2,
            (-math.log(0.9) - math.log(0.1)) / 2,
        ]
        for index in range(3):
            metric = ExpertLoss(index, _COUNTS, _LAMBDAS)
            self.assertEqual(metric.name, f"expert_{index}_loss")
            metric.update_state(y_true, y_pred)
            self.assertAllClose(metric.result(), expected[index], atol=1e-5)

    def test_soft_labels_and_sample_weight(self):
        # Soft label [.5, .5] on tau 1: 0.5 (0.287682 + 1.386294) = 0.836988
        # with weight 1; the second sample has weight 0: sum(w l) / N =
        # 0.836988 / 2, as Keras reduces a loss.
        metric = ExpertLoss(1, _COUNTS, _LAMBDAS)
        y_true = np.array([[0.5, 0.5], [1.0, 0.0]], "float32")
        y_pred = np.zeros((2, 3, 2), "float32")
        metric.update_state(y_true, y_pred, sample_weight=np.array([1, 0]))
        self.assertAllClose(metric.result(), 0.418494, atol=1e-5)

    def test_half_precision_counts_every_sample(self):
        # A bfloat16 Mean's count stops at 256: the running mean drifted.
        y_pred = np.zeros((8, 3, 2), "float32")
        y_true = np.array([0, 1] * 4)
        for dtype in ("bfloat16", "float16"):
            with self.subTest(dtype=dtype):
                metric = ExpertLoss(0, _COUNTS, _LAMBDAS, dtype=dtype)
                for _ in range(150):  # 1,200 samples, 8 at a time.
                    metric.update_state(y_true, y_pred)
                self.assertEqual(float(metric.count), 1200.0)
                self.assertEqual(keras.backend.standardize_dtype(
                    metric.result().dtype), dtype)
                self.assertAllClose(float(metric.result()), math.log(2.0),
                                    atol=4e-3)
                clone = ExpertLoss.from_config(metric.get_config())
                self.assertEqual(clone.get_config()["dtype"], dtype)

    def test_serialization(self):
        metric = ExpertLoss(2, [5, 3, 1], [0.5, 0.0, -0.5], name="tail_loss")
        self.run_serialization_test(metric)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "expert_index"):
            ExpertLoss(3, _COUNTS, _LAMBDAS)
        metric = ExpertLoss(0, _COUNTS, _LAMBDAS)
        with self.assertRaisesRegex(ValueError, "expert_logits"):
            metric.update_state(np.array([0]), np.zeros((1, 2), "float32"))

    def test_registered_name_is_unchanged(self):
        # `.keras` files saved when it lived in balpoe_keras.training load.
        self.assertEqual(keras.saving.get_registered_name(ExpertLoss),
                         "balpoe_keras>ExpertLoss")
        self.assertIs(
            keras.saving.get_registered_object("balpoe_keras>ExpertLoss"),
            ExpertLoss)
