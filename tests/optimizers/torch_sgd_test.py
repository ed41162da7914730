"""Tests for `TorchSGD` against hand-computed and torch.optim.SGD steps."""

import os
from unittest import mock

import keras
import numpy as np
import torch

from balpoe_keras.layers import fast_path
from balpoe_keras.optimizers import TorchSGD
from balpoe_keras.optimizers import WarmupStepSchedule
from tests.test_case import TestCase

_W0 = np.array([1.0, -2.0], np.float32)
_G1 = np.array([0.5, 0.25], np.float32)
_G2 = np.array([-1.0, 2.0], np.float32)


def _keras_steps(optimizer, steps):
    """Applies `[(gradient, lr), ...]` to a variable initialised to `_W0`."""
    variable = keras.Variable(_W0)
    for gradient, lr in steps:
        optimizer.learning_rate = lr
        optimizer.apply([keras.ops.convert_to_tensor(gradient)], [variable])
    return keras.ops.convert_to_numpy(variable)


def _torch_steps(steps, **kwargs):
    """The same steps with `torch.optim.SGD` (independent of the backend)."""
    param = torch.nn.Parameter(torch.tensor(_W0))
    optimizer = torch.optim.SGD([param], lr=steps[0][1], **kwargs)
    for gradient, lr in steps:
        for group in optimizer.param_groups:
            group["lr"] = lr
        param.grad = torch.tensor(gradient)
        optimizer.step()
    return param.detach().numpy()


class TorchSGDTest(TestCase):
    def test_one_step_hand_computed(self):
        # wd 0.01: g = [0.5 + 0.01, 0.25 - 0.02] = [0.51, 0.23]; buf = g;
        # nesterov step g + 0.9 buf = 1.9 g = [0.969, 0.437];
        # w = [1, -2] - 0.1 * step = [0.9031, -2.0437].
        optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=0.01)
        w = _keras_steps(optimizer, [(_G1, 0.1)])
        self.assertAllClose(w, [0.9031, -2.0437])

    def test_two_steps_with_lr_change_hand_computed(self):
        # After step 1 (above): w = [0.9031, -2.0437], buf = [0.51, 0.23].
        # Step 2 at lr 0.05: g = [-1 + 0.009031, 2 - 0.020437]
        #   = [-0.990969, 1.979563]; buf = 0.9 buf + g
        #   = [0.459 - 0.990969, 0.207 + 1.979563] = [-0.531969, 2.186563];
        # step = g + 0.9 buf = [-1.4697411, 3.9474697];
        # w = w - 0.05 step = [0.97658706, -2.24107348]. The buffer is not
        # rescaled by the lr change (PyTorch); Keras' SGD would differ.
        optimizer = TorchSGD(0.1, momentum=0.9, weight_decay=0.01)
        w = _keras_steps(optimizer, [(_G1, 0.1), (_G2, 0.05)])
        self.assertAllClose(w, [0.97658706, -2.24107348])
        keras_sgd = keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True)
        w_keras = _keras_steps(keras_sgd, [(_G1, 0.1), (_G2, 0.05)])
        self.assertGreater(np.max(np.abs(w_keras - w)), 1e-3)

    def test_matches_torch_sgd(self):
        steps = [(_G1, 0.1), (_G2, 0.05)]
        for kwargs in [
            dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
            dict(momentum=0.9, nesterov=False, weight_decay=0.01),
            dict(momentum=0.0, nesterov=False, weight_decay=0.1),
        ]:
            expected = _torch_steps(steps, **kwargs)
            actual = _keras_steps(TorchSGD(0.1, **kwargs), steps)
            self.assertAllClose(actual, expected, atol=1e-6)

    def test_fast_path_equals_the_public_update_step(self):
        # On PyTorch the step is `optimizers.torch_fast_path.sgd_update`
        # (torch._foreach_*); elsewhere, and with it off, Keras calls the
        # public `update_step` per variable. Both give PyTorch's step.
        found = fast_path.find("balpoe_keras.optimizers", "sgd_update")
        self.assertEqual(found is not None,
                         keras.backend.backend() == "torch")
        steps = [(_G1, 0.1), (_G2, 0.05)]
        for kwargs in [dict(momentum=0.9, nesterov=True, weight_decay=5e-4),
                       dict(momentum=0.0, nesterov=False, weight_decay=0.1)]:
            fast = _keras_steps(TorchSGD(0.1, **kwargs), steps)
            with mock.patch.object(fast_path, "run", return_value=None):
                generic = _keras_steps(TorchSGD(0.1, **kwargs), steps)
            self.assertAllClose(fast, generic, atol=1e-7, rtol=1e-7)

    def test_loss_scale_optimizer_wraps_it(self):
        # LossScaleOptimizer (mixed_float16) scales the loss by 2**15 and
        # divides the gradients by it before the inner step: powers of 2 are
        # exact in float32, so one fit step equals the unwrapped one.
        x = np.random.RandomState(0).rand(4, 3).astype("float32")
        y = np.random.RandomState(1).rand(4, 2).astype("float32")
        weights = []
        for wrap in (False, True):
            keras.utils.set_random_seed(0)
            inputs = keras.Input((3,))
            model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
            optimizer = TorchSGD(0.1, weight_decay=0.01)
            if wrap:
                optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
            model.compile(optimizer=optimizer, loss="mse")
            model.fit(x, y, batch_size=4, epochs=2, verbose=0)
            weights.append(keras.ops.convert_to_numpy(model.weights[0]))
        self.assertAllClose(weights[1], weights[0], atol=1e-7)
        self.assertEqual(int(model.optimizer.iterations), 2)

    def test_serialization(self):
        optimizer = TorchSGD(
            WarmupStepSchedule(0.1, 10), momentum=0.8, weight_decay=2e-4
        )
        config = optimizer.get_config()
        self.assertEqual(config["weight_decay"], 2e-4)
        clone = TorchSGD.from_config(config)
        # A live schedule: step 0 is warm-up epoch 1, lr = 0.1 / 5.
        self.assertAllClose(float(clone.learning_rate), 0.02)
        self.assertEqual(clone.l2_weight_decay, 2e-4)
        self.assertIsNone(clone.weight_decay)  # Keras' decoupled decay off.
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(optimizer)
        )
        self.assertEqual(revived.momentum, 0.8)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "momentum"):
            TorchSGD(0.1, momentum=1.0)
        with self.assertRaisesRegex(ValueError, "nesterov=False"):
            TorchSGD(0.1, momentum=0.0, nesterov=True)
        with self.assertRaisesRegex(ValueError, "weight_decay"):
            TorchSGD(0.1, weight_decay=-1.0)

    def test_compiled_model_save_load_continues_identically(self):
        keras.utils.set_random_seed(0)
        x = np.random.RandomState(0).rand(8, 3).astype("float32")
        y = np.random.RandomState(1).rand(8, 2).astype("float32")
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        schedule = WarmupStepSchedule(0.1, 2, warmup_epochs=2, step_epochs=(3,))
        model.compile(optimizer=TorchSGD(schedule), loss="mse")
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertEqual(int(reloaded.optimizer.iterations), 2)
        for m in (model, reloaded):
            m.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        self.assertEqual(int(reloaded.optimizer.iterations), 6)
        for a, b in zip(model.weights, reloaded.weights):
            self.assertAllClose(a, b, atol=0, rtol=0)
