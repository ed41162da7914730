"""Tests for `BalPoEClassifier.compile()`'s logs and
`mixed_precision_scope`."""

import keras
import numpy as np

from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.training.compiling import mixed_precision_scope
from tests.test_case import TestCase

_COUNTS = [4, 3, 2, 1]
_LAMBDAS = [1.0, 0.0, -1.0]


def _tiny_balpoe_model():
    inputs = keras.Input((5,), name="images")
    features = keras.layers.Dense(6, activation="relu")(inputs)
    backbone = keras.Model(inputs, features, name="tiny")
    return add_balpoe_heads(backbone, _COUNTS, _LAMBDAS)


class CompileBalPoETest(TestCase):
    def test_logs_expert_losses_and_mean_equals_loss(self):
        model = _tiny_balpoe_model()
        model.compile(optimizer=TorchSGD(0.1))
        x = np.random.RandomState(0).rand(6, 5).astype("float32")
        y = np.array([0, 1, 2, 3, 0, 1])
        keys = [f"expert_{i}_loss" for i in range(3)]
        # fit reports them as well (plain integer labels).
        history = model.fit(x, y, batch_size=6, epochs=1, verbose=0).history
        self.assertContainsSubset(keys + ["accuracy", "loss"], history)
        logs = model.evaluate(x, y, batch_size=6, verbose=0,
                              return_dict=True)
        self.assertContainsSubset(keys + ["accuracy", "loss"], logs)
        # BalPoELoss is the plain mean of the expert gLA losses.
        self.assertAllClose(
            np.mean([logs[k] for k in keys]), logs["loss"], atol=1e-5
        )

    def test_the_scope_sets_the_policy_of_the_model_built_in_it(self):
        with mixed_precision_scope("mixed_bfloat16"):
            model = _tiny_balpoe_model()
        self.assertEqual(model.dtype_policy.name, "mixed_bfloat16")
        self.assertEqual(keras.config.dtype_policy().name, "float32")
        self.assertEqual(_tiny_balpoe_model().dtype_policy.name, "float32")

    def test_mixed_float16_wraps_loss_scale_optimizer(self):
        with mixed_precision_scope("mixed_float16"):
            model = _tiny_balpoe_model()
        self.assertEqual(keras.config.dtype_policy().name, "float32")
        model.compile(optimizer=TorchSGD(0.1))
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
