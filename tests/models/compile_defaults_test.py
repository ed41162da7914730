"""Tests of the default loss, metrics and optimizer of BalPoE models."""

import keras
import numpy as np

from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import ExpertLoss
from balpoe_keras.metrics import GroupAccuracy
from balpoe_keras.models import compile_defaults
from tests.test_case import TestCase

# many: n > 100; medium: 20 <= n <= 100; few: n < 20.
_COUNTS = [500, 120, 60, 30, 10]


class CompileDefaultsTest(TestCase):
    def test_loss_only_on_the_expert_logits(self):
        loss = compile_defaults.make_balpoe_loss(_COUNTS, [1.0, 0.0, -1.0])
        self.assertEqual(set(loss), {"logits", "expert_logits"})
        self.assertIsNone(loss["logits"])
        self.assertIsInstance(loss["expert_logits"], BalPoELoss)
        self.assertEqual(loss["expert_logits"].class_counts, _COUNTS)
        self.assertEqual(loss["expert_logits"].lambdas, [1.0, 0.0, -1.0])
        with self.assertRaisesRegex(ValueError, "allow_unbalanced"):
            compile_defaults.make_balpoe_loss(_COUNTS, [1.0, -0.25, -1.5])
        unbalanced = compile_defaults.make_balpoe_loss(
            _COUNTS, [1.0, -0.25, -1.5], allow_unbalanced=True)
        self.assertTrue(unbalanced["expert_logits"].allow_unbalanced)

    def test_ensemble_metrics_leave_out_empty_groups(self):
        metrics = compile_defaults.make_ensemble_metrics(_COUNTS)
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

    def test_one_expert_loss_per_expert(self):
        metrics = compile_defaults.make_balpoe_metrics(
            _COUNTS, [1.0, 0.5, -0.5, -1.0])
        experts = metrics["expert_logits"]
        self.assertEqual([type(m) for m in experts], [ExpertLoss] * 4)
        self.assertEqual([m.expert_index for m in experts], [0, 1, 2, 3])
        self.assertEqual(len(metrics["logits"]), 6)  # acc, bal, 3 groups, ece
        plain = compile_defaults.make_balpoe_metrics(
            _COUNTS, [0.0], ensemble_metrics=["accuracy"],
            track_expert_losses=False)
        self.assertEqual(plain, {"logits": ["accuracy"]})

    def test_default_optimizer_is_the_reference_sgd(self):
        from balpoe_keras.training import TorchSGD

        optimizer = compile_defaults.make_default_optimizer()
        self.assertIsInstance(optimizer, TorchSGD)
        self.assertEqual(
            (optimizer.momentum, optimizer.nesterov,
             optimizer.l2_weight_decay), (0.9, True, 5e-4))
        self.assertAllClose(keras.ops.convert_to_numpy(
            optimizer.learning_rate), np.float32(0.1))
