"""Tests of the default loss, metrics and optimizer of BalPoE models
(the model's per-expert losses: balpoe_classifier_test.py)."""

import keras
import numpy as np

from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import GroupAccuracy
from balpoe_keras.models import compile_defaults
from tests.test_case import TestCase

# many: n > 100; medium: 20 <= n <= 100; few: n < 20.
_COUNTS = [500, 120, 60, 30, 10]


class CompileDefaultsTest(TestCase):
    def test_loss_is_one_balpoe_loss(self):
        loss = compile_defaults.make_balpoe_loss(_COUNTS, [1.0, 0.0, -1.0])
        self.assertIsInstance(loss, BalPoELoss)
        self.assertEqual(loss.class_counts, _COUNTS)
        self.assertEqual(loss.lambdas, [1.0, 0.0, -1.0])
        self.assertFalse(loss.allow_unbalanced)
        with self.assertRaisesRegex(ValueError, "allow_unbalanced"):
            compile_defaults.make_balpoe_loss(_COUNTS, [1.0, -0.25, -1.5])
        unbalanced = compile_defaults.make_balpoe_loss(
            _COUNTS, [1.0, -0.25, -1.5], allow_unbalanced=True)
        self.assertTrue(unbalanced.allow_unbalanced)

    def test_ensemble_metrics_leave_out_empty_groups(self):
        metrics = compile_defaults.make_ensemble_metrics(_COUNTS)
        self.assertLen(metrics, 6)  # acc, bal, 3 groups, ece
        self.assertEqual(metrics[0], "accuracy")
        self.assertIsInstance(metrics[1], BalancedAccuracy)
        groups = [m.group for m in metrics if isinstance(m, GroupAccuracy)]
        self.assertEqual(groups, ["many", "medium", "few"])
        self.assertIsInstance(metrics[-1], ExpectedCalibrationError)
        self.assertTrue(metrics[-1].from_logits)
        # No class below 20 images: no few-shot metric.
        metrics = compile_defaults.make_ensemble_metrics([500, 120, 60])
        groups = [m.group for m in metrics if isinstance(m, GroupAccuracy)]
        self.assertEqual(groups, ["many", "medium"])

    def test_default_optimizer_is_the_reference_sgd(self):
        from balpoe_keras.training import TorchSGD

        optimizer = compile_defaults.make_default_optimizer()
        self.assertIsInstance(optimizer, TorchSGD)
        self.assertEqual(
            (optimizer.momentum, optimizer.nesterov,
             optimizer.l2_weight_decay), (0.9, True, 5e-4))
        self.assertAllClose(keras.ops.convert_to_numpy(
            optimizer.learning_rate), np.float32(0.1))
