"""Tests for `ExpertLoss`, `compile_balpoe` and `mixed_precision_scope`."""

import math

import keras
import numpy as np

from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.models import balpoe_targets
from balpoe_keras.training.compiling import ExpertLoss
from balpoe_keras.training.compiling import compile_balpoe
from balpoe_keras.training.compiling import mixed_precision_scope
from balpoe_keras.training.optimizers import TorchSGD
from tests.test_case import TestCase

_COUNTS = [3, 1]  # prior [0.75, 0.25]
_LAMBDAS = [1.0, 0.0, -1.0]  # taus [0, 1, 2]


def _tiny_balpoe_model(num_classes=4, num_experts=3):
    inputs = keras.Input((5,), name="images")
    features = keras.layers.Dense(6, activation="relu")(inputs)
    backbone = keras.Model(inputs, features, name="tiny")
    return add_balpoe_heads(backbone, num_classes, num_experts=num_experts)


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
        # with weight 1; the second sample has weight 0.
        metric = ExpertLoss(1, _COUNTS, _LAMBDAS)
        y_true = np.array([[0.5, 0.5], [1.0, 0.0]], "float32")
        y_pred = np.zeros((2, 3, 2), "float32")
        metric.update_state(y_true, y_pred, sample_weight=np.array([1, 0]))
        self.assertAllClose(metric.result(), 0.836988, atol=1e-5)

    def test_serialization(self):
        metric = ExpertLoss(2, [5, 3, 1], [0.5, 0.0, -0.5], name="tail_loss")
        self.run_serialization_test(metric)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "expert_index"):
            ExpertLoss(3, _COUNTS, _LAMBDAS)
        metric = ExpertLoss(0, _COUNTS, _LAMBDAS)
        with self.assertRaisesRegex(ValueError, "expert_logits"):
            metric.update_state(np.array([0]), np.zeros((1, 2), "float32"))


class CompileBalPoETest(TestCase):
    def test_logs_expert_losses_and_mean_equals_loss(self):
        model = _tiny_balpoe_model()
        compile_balpoe(
            model,
            class_counts=[4, 3, 2, 1],
            optimizer=TorchSGD(0.1),
            lambdas=_LAMBDAS,
        )
        x = np.random.RandomState(0).rand(6, 5).astype("float32")
        y = np.array([0, 1, 2, 3, 0, 1])
        logs = model.evaluate(
            x, balpoe_targets(y), batch_size=6, verbose=0, return_dict=True
        )
        keys = [f"expert_logits_expert_{i}_loss" for i in range(3)]
        self.assertContainsSubset(keys + ["logits_accuracy", "loss"], logs)
        # BalPoELoss is the plain mean of the expert gLA losses.
        self.assertAllClose(
            np.mean([logs[k] for k in keys]), logs["loss"], atol=1e-5
        )

    def test_mixed_precision_checks_the_model_policy(self):
        model = _tiny_balpoe_model()
        with self.assertRaisesRegex(ValueError, "mixed_precision_scope"):
            compile_balpoe(
                model,
                class_counts=[4, 3, 2, 1],
                optimizer=TorchSGD(0.1),
                mixed_precision="mixed_bfloat16",
            )

    def test_mixed_float16_wraps_loss_scale_optimizer(self):
        with mixed_precision_scope("mixed_float16"):
            model = _tiny_balpoe_model()
        self.assertEqual(keras.config.dtype_policy().name, "float32")
        compile_balpoe(
            model,
            class_counts=[4, 3, 2, 1],
            optimizer=TorchSGD(0.1),
            mixed_precision="mixed_float16",
        )
        self.assertIsInstance(
            model.optimizer, keras.optimizers.LossScaleOptimizer
        )

    def test_unknown_policy(self):
        with self.assertRaisesRegex(ValueError, "mixed_bfloat16"):
            with mixed_precision_scope("float16"):
                pass


class MixedPrecisionAutoTest(TestCase):
    def test_cpu_flags_decide(self):
        from unittest import mock

        from balpoe_keras.training import compiling

        tmp = self.get_temp_dir()
        paths = {}
        for name, flags in (("bf16", "fpu avx2 avx512f avx512_bf16"),
                            ("amx", "avx2 amx_bf16 amx_tile"),
                            ("avx2", "fpu avx2 fma")):
            paths[name] = f"{tmp}/{name}"
            with open(paths[name], "w") as f:
                f.write(f"processor : 0\nflags : {flags}\n")
        self.assertTrue(compiling.cpu_has_bfloat16(paths["bf16"]))
        self.assertTrue(compiling.cpu_has_bfloat16(paths["amx"]))
        self.assertFalse(compiling.cpu_has_bfloat16(paths["avx2"]))
        self.assertFalse(compiling.cpu_has_bfloat16(f"{tmp}/missing"))
        self.assertEqual(compiling.resolve_mixed_precision("float32"),
                         "float32")
        with self.assertRaisesRegex(ValueError, "Unknown mixed precision"):
            compiling.resolve_mixed_precision("bf16")
        for has, want in ((True, "mixed_bfloat16"), (False, "float32")):
            with mock.patch.object(compiling, "cpu_has_bfloat16",
                                   lambda: has):
                got = compiling.resolve_mixed_precision("auto")
            expected = want if keras.backend.backend() in (
                "tensorflow", "torch") else "float32"
            self.assertEqual(got, expected)
