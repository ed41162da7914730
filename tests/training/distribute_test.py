"""Tests for data parallelism helpers (TF MirroredStrategy, JAX DataParallel).

The multi-device tests run this module as a child process
(`python -m tests.training.distribute_test <backend>`), because logical CPU
devices (TF) and host device counts (JAX) must be set before the framework
initialises its devices.
"""

import contextlib
import json
import os
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest

from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.training import distribute
from tests.test_case import TestCase

_REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


class ValidateGlobalBatchSizeTest(TestCase):
    def test_per_replica_size(self):
        self.assertEqual(distribute.validate_global_batch_size(128, 2), 64)
        self.assertEqual(distribute.validate_global_batch_size(512, 4), 128)

    def test_not_divisible(self):
        with self.assertRaisesRegex(ValueError, "multiple of 4.*128 or 132"):
            distribute.validate_global_batch_size(130, 4)
        with self.assertRaisesRegex(ValueError, "integer >= 1"):
            distribute.validate_global_batch_size(0, 1)


class StrategyTest(TestCase):
    def test_refuses_multi_worker_strategy(self):
        fake = type("MultiWorkerMirroredStrategy", (), {})()
        with self.assertRaisesRegex(ValueError, "keras-team/keras#20585"):
            distribute.validate_strategy(fake)

    @pytest.mark.tf_only
    def test_refuses_multi_worker_tf_config(self):
        tf_config = {"cluster": {"worker": ["a:1", "b:2"]}, "task": {}}
        with mock.patch.dict(os.environ, {"TF_CONFIG": json.dumps(tf_config)}):
            with self.assertRaisesRegex(ValueError, "MultiWorker"):
                distribute.get_strategy()

    @pytest.mark.tf_only
    def test_single_cpu_gets_default_strategy(self):
        strategy = distribute.get_strategy(devices=["/cpu:0"])
        self.assertEqual(strategy.num_replicas_in_sync, 1)

    def test_backend_specific_functions_check_the_backend(self):
        if keras.backend.backend() != "tensorflow":
            with self.assertRaisesRegex(ValueError, "KERAS_BACKEND=tensorflow"):
                distribute.get_strategy()
        if keras.backend.backend() != "jax":
            with self.assertRaisesRegex(ValueError, "KERAS_BACKEND=jax"):
                distribute.get_data_parallel()

    def test_scope_on_current_backend(self):
        # The exact device count, and the scope's state gone after it.
        backend = keras.backend.backend()
        if backend == "jax":
            import jax

            expected = jax.device_count()
        elif backend == "tensorflow":
            import tensorflow as tf

            expected = max(1, len(tf.config.list_logical_devices("GPU")))
        else:
            import torch

            expected = max(1, torch.cuda.device_count())
        before = keras.distribution.distribution()
        with distribute.data_parallel_scope() as num_replicas:
            self.assertEqual(num_replicas, expected)
            if backend == "jax":
                self.assertIsInstance(keras.distribution.distribution(),
                                      keras.distribution.DataParallel)
            if backend == "tensorflow":
                import tensorflow as tf

                self.assertEqual(
                    tf.distribute.get_strategy().num_replicas_in_sync,
                    expected)
        self.assertIs(keras.distribution.distribution(), before)


def _run_child(backend, extra_env=None):
    env = dict(os.environ, KERAS_BACKEND=backend, PYTHONPATH=_REPO_ROOT)
    env.update(extra_env or {})
    result = subprocess.run(
        [sys.executable, "-m", "tests.training.distribute_test", backend],
        cwd=_REPO_ROOT, env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    if result.returncode != 0:
        raise AssertionError(f"child failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


class MultiDeviceTest(TestCase):
    def _check_same_training(self, results):
        one, two = results["1"], results["2"]
        # The same 8 examples: one device sees the batch of 8, two replicas
        # 4 each; the mean-reduced gradients and metrics must agree.
        self.assertAllClose(two["loss"], one["loss"], atol=1e-5)
        self.assertAllClose(two["mae"], one["mae"], atol=1e-5)
        self.assertAllClose(two["eval"], one["eval"], atol=1e-5)
        self.assertAllClose(two["kernel"], one["kernel"], atol=1e-5)
        # BalPoE loss + streaming ECE/MCE/balanced/group accuracy: the
        # per-replica metric states are summed, so the values agree.
        # The loss, the 5 metrics and the 3 expert losses.
        self.assertEqual(
            sorted(one["balpoe"]),
            ["acc_few", "acc_many", "balanced_accuracy", "ece",
             "expert_0_loss", "expert_1_loss", "expert_2_loss", "loss",
             "mce"])
        self.assertEqual(sorted(two["balpoe"]), sorted(one["balpoe"]))
        for key, value in one["balpoe"].items():
            self.assertAllClose(two["balpoe"][key], value, atol=1e-5)

    @pytest.mark.large
    @pytest.mark.tf_only
    def test_mirrored_strategy_two_logical_cpus(self):
        self._check_same_training(_run_child("tensorflow"))

    @pytest.mark.large
    @pytest.mark.skipif(
        keras.backend.backend() != "jax", reason="runs once, in the jax suite"
    )
    def test_jax_data_parallel_two_host_devices(self):
        flags = "--xla_force_host_platform_device_count=2"
        self._check_same_training(_run_child("jax", {"XLA_FLAGS": flags}))


def _train_once(num_replicas_scope):
    """Builds, fits and evaluates a tiny BN-free model inside the scope."""
    x = np.random.RandomState(0).rand(8, 3).astype("float32")
    y = np.random.RandomState(1).rand(8, 2).astype("float32")
    with num_replicas_scope as num_replicas:
        keras.utils.set_random_seed(0)
        inputs = keras.Input((3,))
        hidden = keras.layers.Dense(4, activation="relu")(inputs)
        model = keras.Model(inputs, keras.layers.Dense(2)(hidden))
        model.compile(optimizer=TorchSGD(0.1), loss="mse", metrics=["mae"])
        history = model.fit(x, y, batch_size=8, epochs=3, verbose=0)
        evaluation = model.evaluate(x, y, batch_size=8, verbose=0)
        kernel = keras.ops.convert_to_numpy(model.weights[0])
        balpoe = _evaluate_balpoe_metrics()
    return str(num_replicas), {
        "balpoe": balpoe,
        "loss": history.history["loss"],
        "mae": history.history["mae"],
        "eval": [float(v) for v in evaluation],
        "kernel": kernel.tolist(),
    }


def _evaluate_balpoe_metrics():
    """Evaluates BalPoELoss and our metrics on 16 examples, batch 8."""
    from balpoe_keras import metrics
    from balpoe_keras.models import add_balpoe_heads

    rng = np.random.RandomState(2)
    x = rng.randn(16, 5).astype("float32")
    y = rng.randint(0, 3, 16)
    counts = [150, 50, 10]
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    backbone = keras.Model(inputs, keras.layers.Identity()(inputs))
    model = add_balpoe_heads(backbone, counts, scale=5.0)
    model.compile(metrics=[
        metrics.BalancedAccuracy(3), metrics.GroupAccuracy(counts, "few"),
        metrics.ExpectedCalibrationError(num_bins=5, from_logits=True),
        metrics.MaximumCalibrationError(num_bins=5, from_logits=True),
        metrics.GroupAccuracy(counts, "many")])
    values = model.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
    return {key: float(value) for key, value in values.items()}


def _child_main(backend):
    if backend == "tensorflow":
        import tensorflow as tf

        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * 2
        )
        scopes = [
            distribute.data_parallel_scope(["/cpu:0"]),
            distribute.data_parallel_scope(["/cpu:0", "/cpu:1"]),
        ]
    else:
        assert len(keras.distribution.list_devices()) == 2
        scopes = [contextlib.nullcontext(1), distribute.data_parallel_scope()]
    results = dict(_train_once(scope) for scope in scopes)
    print(json.dumps(results))


if __name__ == "__main__":
    _child_main(sys.argv[1])
