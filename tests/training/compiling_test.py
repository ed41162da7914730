"""Tests for `compile_balpoe` and `mixed_precision_scope`."""

import keras
import numpy as np

from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.models import balpoe_targets
from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.training.compiling import compile_balpoe
from balpoe_keras.training.compiling import mixed_precision_scope
from tests.test_case import TestCase

_LAMBDAS = [1.0, 0.0, -1.0]


def _tiny_balpoe_model(num_classes=4, num_experts=3):
    inputs = keras.Input((5,), name="images")
    features = keras.layers.Dense(6, activation="relu")(inputs)
    backbone = keras.Model(inputs, features, name="tiny")
    return add_balpoe_heads(backbone, num_classes, num_experts=num_experts)


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
