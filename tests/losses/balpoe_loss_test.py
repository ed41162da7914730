"""BalPoELoss / LogitAdjustedLoss against hand-computed values.

Shared setup: class_counts [3, 1] -> prior [0.75, 0.25],
log_prior = [log .75, log .25] = [-0.287682, -1.386294].
With all-zero logits the adjusted logits are tau * log_prior, so
softmax = prior^tau / sum(prior^tau):
  lambda = 1  (tau 0): p = [.5, .5]            -> -log p = [.693147, .693147]
  lambda = 0  (tau 1): p = [.75, .25]          -> [.287682, 1.386294]
  lambda = -1 (tau 2): p = [.5625, .0625]/.625 = [.9, .1]
                                               -> [.105361, 2.302585]
"""

from unittest import mock

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras import losses
from balpoe_keras import metrics
from balpoe_keras.models import add_balpoe_heads
from tests.test_case import TestCase

COUNTS = [3, 1]
LOSS_LABEL0 = {1.0: 0.693147, 0.0: 0.287682, -1.0: 0.105361}
LOSS_LABEL1 = {1.0: 0.693147, 0.0: 1.386294, -1.0: 2.302585}


class LogitAdjustedLossTest(TestCase):
    def test_zero_logits_follow_the_tau_tilted_prior(self):
        for lam in (1.0, 0.0, -1.0):
            loss = losses.LogitAdjustedLoss(COUNTS, lam=lam, reduction=None)
            values = loss(np.array([0, 1]), np.zeros((2, 2), "float32"))
            self.assertAllClose(
                values, [LOSS_LABEL0[lam], LOSS_LABEL1[lam]], atol=1e-5
            )

    def test_nonzero_logits(self):
        # z = [2, 0], lambda 0, label 1: adjusted = [1.712318, -1.386294];
        # logsumexp = 1.712318 + log(1 + e^-3.098612) = 1.712318 + .044124;
        # loss = 1.756442 + 1.386294 = 3.142736.
        loss = losses.LogitAdjustedLoss(COUNTS, lam=0.0)
        self.assertAllClose(loss(np.array([1]), np.array([[2.0, 0.0]])),
                            3.142736, atol=1e-5)

    def test_extreme_logits_stay_finite(self):
        # CE of [1e4, -1e4] for label 1 is exactly 2e4 (no overflow).
        loss = losses.LogitAdjustedLoss(COUNTS, lam=1.0)
        value = loss(np.array([1]), np.array([[1e4, -1e4]], "float32"))
        self.assertAllClose(value, 2e4, rtol=1e-6)

    def test_config_round_trip(self):
        self.run_serialization_test(losses.LogitAdjustedLoss(COUNTS, lam=0.5))


class BalPoELossTest(TestCase):
    def test_mean_over_experts_hand_computed(self):
        # label 1: mean(.693147, 1.386294, 2.302585) = 1.460675
        # label 0: mean(.693147, .287682, .105361) = 0.362063
        # batch mean = (1.460675 + 0.362063) / 2 = 0.911369
        loss = losses.BalPoELoss(COUNTS, lambdas=[1.0, 0.0, -1.0])
        value = loss(np.array([1, 0]), np.zeros((2, 3, 2), "float32"))
        self.assertAllClose(value, 0.911369, atol=1e-5)

    def test_soft_labels_are_linear_in_the_target(self):
        # y = .3 * onehot(0) + .7 * onehot(1):
        # .3 * 0.362063 + .7 * 1.460675 = 1.131092
        loss = losses.BalPoELoss(COUNTS)
        value = loss(np.array([[0.3, 0.7]]), np.zeros((1, 3, 2), "float32"))
        self.assertAllClose(value, 1.131092, atol=1e-5)

    def test_int_and_one_hot_labels_agree(self):
        loss = losses.BalPoELoss([5, 3, 2])
        logits = np.random.RandomState(0).randn(4, 3, 3).astype("float32")
        labels = np.array([0, 2, 1, 2])
        self.assertAllClose(
            loss(labels, logits),
            loss(np.eye(3, dtype="float32")[labels], logits),
            atol=1e-6,
        )
        self.assertAllClose(
            loss(labels[:, None], logits), loss(labels, logits), atol=1e-6
        )

    def test_extreme_logits_give_finite_loss_gradient_and_metrics(self):
        # Expert logits +-1e4 with Mixup soft labels: the loss, its gradient
        # and the calibration metric stay finite (log-softmax, no exp of
        # the raw logits).
        logits = np.array([[[1e4, -1e4], [-1e4, 1e4], [3e4, 0.0]]],
                          "float32")
        soft = np.array([[0.3, 0.7]], "float32")
        loss = losses.BalPoELoss(COUNTS, lambdas=[1.0, 0.0, -1.0])
        x = keras.Variable(logits)
        if keras.backend.backend() == "tensorflow":
            import tensorflow as tf

            with tf.GradientTape() as tape:
                value = loss(soft, x)
            grad = tape.gradient(value, x)
            self.assertTrue(np.all(np.isfinite(grad.numpy())))
        value = keras.ops.convert_to_numpy(loss(soft, logits))
        self.assertTrue(np.isfinite(value))
        self.assertGreater(float(value), 1e3)
        ece = metrics.ExpectedCalibrationError(from_logits=True)
        ece.update_state(np.array([1]), logits[:, 0])
        self.assertTrue(np.isfinite(keras.ops.convert_to_numpy(ece.result())))

    def test_expert_losses_per_expert(self):
        loss = losses.BalPoELoss(COUNTS)
        per_expert = loss.expert_losses(np.array([1]), np.zeros((1, 3, 2)))
        self.assertAllClose(per_expert, [[0.693147, 1.386294, 2.302585]],
                            atol=1e-5)

    def test_extreme_logits_stay_finite(self):
        logits = np.array([[[3e4, -3e4]] * 3], "float32")
        value = losses.BalPoELoss(COUNTS)(np.array([1]), logits)
        self.assertTrue(np.isfinite(keras.ops.convert_to_numpy(value)))
        # Each expert: 6e4 - tau * (log .25 - log .75) ~= 6e4 (+ <= 2.2).
        self.assertAllClose(value, 6e4, rtol=1e-4)

    def test_lambdas_must_average_to_zero(self):
        with self.assertRaisesRegex(ValueError, "average to -0.25"):
            losses.BalPoELoss([5, 3], lambdas=[1.0, -0.25, -1.5])
        loss = losses.BalPoELoss(
            [5, 3], lambdas=[1.0, -0.25, -1.5], allow_unbalanced=True
        )
        self.assertEqual(loss.lambdas, [1.0, -0.25, -1.5])

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "at least one training"):
            losses.BalPoELoss([5, 0, 2])
        loss = losses.BalPoELoss([5, 3, 2])
        with self.assertRaisesRegex(ValueError, "one slice per lambda"):
            loss(np.array([0]), np.zeros((1, 2, 3)))
        with self.assertRaisesRegex(ValueError, "same number of classes"):
            loss(np.array([0]), np.zeros((1, 3, 4)))
        with self.assertRaisesRegex(ValueError, r"class ids in \[0, 3\)"):
            loss(np.array([3]), np.zeros((1, 3, 3)))

    def test_labels_off_the_host_are_not_read(self):
        # Keras' PyTorch backend runs the step eagerly: reading GPU labels
        # for the range check would wait for the device every step.
        if keras.backend.backend() != "torch":
            self.skipTest("PyTorch tensors only")
        import torch

        from balpoe_keras import labels

        with mock.patch.object(labels.ops, "convert_to_numpy",
                               wraps=keras.ops.convert_to_numpy) as read:
            labels.count_out_of_range(
                torch.zeros(4, dtype=torch.int64, device="meta"), 3)
            read.assert_not_called()
            with self.assertRaisesRegex(ValueError, r"class ids in \[0, 3\)"):
                labels.count_out_of_range(torch.tensor([0, 3]), 3)
            read.assert_called_once()

    def test_config_round_trip(self):
        loss = losses.BalPoELoss([5, 3], lambdas=[0.5, -0.5])
        clone = self.run_serialization_test(loss)
        self.assertEqual(clone.lambdas, [0.5, -0.5])
        # The dtype survives (Keras' Loss.get_config leaves it out).
        for cls, kwargs in ((losses.BalPoELoss, dict(lambdas=[0.5, -0.5])),
                            (losses.LogitAdjustedLoss, dict(lam=0.5))):
            loss = cls([5, 3], dtype="bfloat16", **kwargs)
            clone = cls.from_config(loss.get_config())
            self.assertEqual(clone.dtype, "bfloat16")

    def test_softmax_outputs_are_refused_eagerly(self):
        rng = np.random.default_rng(0)
        logits = rng.normal(size=(4, 3)).astype("float32")
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        y = np.array([0, 1, 2, 0])
        for loss, pred, ok in (
                (losses.LogitAdjustedLoss([5, 3, 1]), probs, logits),
                (losses.BalPoELoss([5, 3, 1], [1.0, -1.0]),
                 np.stack([probs, probs], 1), np.stack([logits, logits], 1))):
            with self.subTest(loss=loss.name):
                with self.assertRaisesRegex(
                        ValueError, "probability distribution.*takes logits"
                        ".*Remove the model's final softmax"):
                    loss(y, pred)
                self.assertTrue(np.isfinite(float(loss(y, ok))))

    def test_half_precision_losses_keep_class_ids_above_256(self):
        # Keras casts the labels to the loss dtype: in bfloat16 the id 257
        # became 256 (another class), in float16 2049 became 2048.
        rng = np.random.default_rng(0)
        for dtype, num_classes, label in (("bfloat16", 300, 257),
                                          ("float16", 2100, 2049)):
            counts = list(range(num_classes, 0, -1))
            logits = rng.normal(size=(2, num_classes)).astype("float32")
            logits[:, label] += 4.0  # The true class stands out,
            logits[:, label - 1] -= 4.0  # its rounded neighbour does not.
            y = np.array([label, 3])
            cases = (
                (losses.LogitAdjustedLoss, dict(lam=0.0), logits),
                (losses.BalPoELoss, dict(lambdas=[1.0, -1.0]),
                 np.stack([logits, logits], 1)))
            for cls, kwargs, pred in cases:
                with self.subTest(dtype=dtype, loss=cls.__name__):
                    exact = cls(counts, **kwargs)(y, pred)
                    half = cls(counts, dtype=dtype, **kwargs)(y, pred)
                    self.assertAllClose(
                        float(keras.ops.convert_to_numpy(
                            keras.ops.cast(half, "float32"))),
                        float(keras.ops.convert_to_numpy(exact)),
                        rtol=0.02)

    def test_compiled_model_save_load_keeps_training(self):
        model = _tiny_balpoe_model([6, 3, 1])
        model.compile(
            optimizer=keras.optimizers.SGD(0.1),
            loss=losses.BalPoELoss([6, 3, 1]),
            metrics=[metrics.BalancedAccuracy(3),
                     metrics.ExpectedCalibrationError(from_logits=True)],
        )
        x = np.random.RandomState(0).rand(8, 5).astype("float32")
        y = np.array([0, 1, 2, 0, 1, 2, 0, 0])
        model.fit(x, y, epochs=1, verbose=0)
        reloaded = self.run_keras_save_load_test(model, x)
        # Both continue identically: weights, optimizer state and the loss
        # survived the round trip.
        history = reloaded.fit(
            x, y, epochs=2, shuffle=False, verbose=0
        ).history
        model.fit(x, y, epochs=2, shuffle=False, verbose=0)
        self.assertIn("balanced_accuracy", history)
        for a, b in zip(model.weights, reloaded.weights):
            self.assertAllClose(a, b, atol=1e-5)
        self.assertIsInstance(reloaded.loss, losses.BalPoELoss)


def _tiny_balpoe_model(class_counts):
    inputs = keras.Input((5,))
    hidden = keras.layers.Dense(4, activation="relu")(inputs)
    return add_balpoe_heads(keras.Model(inputs, hidden), class_counts)


class ClassPriorTest(TestCase):
    def test_log_prior_and_lambda_helpers(self):
        self.assertAllClose(class_prior.compute_log_prior(COUNTS),
                            [-0.287682, -1.386294], atol=1e-6)
        self.assertEqual(class_prior.spread_lambdas(3), [1.0, 0.0, -1.0])
        # M = 7 gives lambda = 1, 2/3, ..., -1 (docs/reference.md §2).
        self.assertAllClose(class_prior.spread_lambdas(7),
                            np.linspace(1, -1, 7))
        self.assertEqual(class_prior.spread_lambdas(1), [0.0])
        self.assertEqual(class_prior.lambdas_to_taus([1.0, 0.0, -1.0]),
                         [0.0, 1.0, 2.0])

    def test_shot_groups_use_reference_thresholds(self):
        groups = class_prior.compute_shot_groups([101, 100, 20, 19])
        self.assertEqual(groups["many"].tolist(), [True, False, False, False])
        self.assertEqual(groups["medium"].tolist(), [False, True, True, False])
        self.assertEqual(groups["few"].tolist(), [False, False, False, True])

    def test_test_prior_bias(self):
        bias = class_prior.compute_test_prior_bias([1, 3, 0])
        self.assertAllClose(bias[:2], np.log([0.25, 0.75]))
        self.assertEqual(bias[2], -np.inf)
        # NaN/inf would make every probability NaN (the export, predict).
        for bad in ([1, np.nan, 2], [1, np.inf, 2], [1, -1, 2]):
            with self.assertRaisesRegex(ValueError, "finite, non-negative"):
                class_prior.compute_test_prior_bias(bad)

    def test_deployment_prior_bias(self):
        # Balanced lambdas: log p_t; lambda_bar = -0.25 on pi = (.75, .25):
        # log p_t + 0.25 log pi; -inf stays for an absent class.
        balanced = class_prior.deployment_prior_bias([1, 1, 0], [30, 10, 5],
                                                     [1.0, 0.0, -1.0])
        self.assertAllClose(balanced[:2], np.log([0.5, 0.5]))
        self.assertEqual(balanced[2], -np.inf)
        tilted = class_prior.deployment_prior_bias([1, 1], [3, 1],
                                                   [1.0, -0.25, -1.5])
        self.assertAllClose(tilted, np.log([0.5, 0.5])
                            + 0.25 * np.log([0.75, 0.25]), atol=1e-6)
        with self.assertRaisesRegex(ValueError, "one per class"):
            class_prior.deployment_prior_bias([1, 1], [3, 1, 1], [0.0])

    def test_bad_counts(self):
        with self.assertRaisesRegex(ValueError, "non-empty 1-D"):
            class_prior.validate_class_counts([])
        with self.assertRaisesRegex(ValueError, "num_classes=3"):
            class_prior.validate_class_counts([4, 2], num_classes=3)
        with self.assertRaisesRegex(ValueError, "integral"):
            class_prior.validate_class_counts([4.5, 2])
        with self.assertRaisesRegex(ValueError, "one lambda per expert"):
            class_prior.validate_lambdas([1.0, -1.0], num_experts=3)
