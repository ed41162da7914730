"""Tests of `BalPoEClassifier`, the BalPoE task model."""

import json
import math
import os
import subprocess
import sys
import zipfile

import keras
import numpy as np
import pytest

from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import ExpertLoss
from balpoe_keras.models import BalPoEClassifier
from balpoe_keras.models import add_balpoe_heads
from balpoe_keras.models import build_balpoe_backbone
from balpoe_keras.models import build_balpoe_classifier
from tests.models.helpers import assert_experts_wired
from tests.models.helpers import count_params
from tests.models.helpers import run_model
from tests.test_case import TestCase

_COUNTS = [8, 4, 2, 1]  # prior 8/15, 4/15, 2/15, 1/15
_NAMES = ["a", "b", "c", "d"]


def _conv_backbone():
    """(8, 8, 3) -> (6, 6, 4) features; 3*3*3*4 + 4 = 112 parameters."""
    inputs = keras.Input((8, 8, 3), name="pixels")
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    return keras.Model(inputs, x, name="tiny")


def _per_expert_backbone(num_experts):
    """(8, 8, 3) -> `num_experts` pooled (B, 5) features; 112 shared
    parameters, then a 1x1 conv of 4 * 5 + 5 = 25 per expert."""
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3, name="conv")(inputs)
    features = [
        keras.layers.GlobalAveragePooling2D(name=f"pool{i}")(
            keras.layers.Conv2D(5, 1, name=f"branch{i}")(x))
        for i in range(num_experts)
    ]
    return keras.Model(inputs, features, name="branches")


def _as_json(config):
    return json.loads(json.dumps(config))


def _images(n=3, seed=0):
    return np.random.default_rng(seed).random((n, 8, 8, 3)).astype("float32")


class BalPoEClassifierTest(TestCase):
    def test_outputs_and_what_the_model_is(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS,
                                 class_names=_NAMES)
        self.assertEqual(model.name, "balpoe_tiny")
        self.assertEqual(model.class_counts, _COUNTS)
        self.assertEqual(model.lambdas, [1.0, 0.0, -1.0])
        self.assertEqual(model.class_names, _NAMES)
        self.assertEqual((model.num_classes, model.num_experts), (4, 3))
        # log(8/15) = -0.628609, log(1/15) = -2.708050 (+1e-9: negligible).
        self.assertAllClose(
            model.log_prior,
            [math.log(8 / 15), math.log(4 / 15), math.log(2 / 15),
             math.log(1 / 15)], atol=1e-6)
        self.assertIs(model.get_layer("tiny"), model.backbone)
        # Expert m: the pooled features through its own head (the three
        # differ); the ensemble is their mean.
        out = assert_experts_wired(self, model, _images(), atol=1e-6)
        self.assertEqual(set(out), {"logits", "expert_logits"})
        self.assertEqual(out["logits"].shape, (3, 4))
        self.assertEqual(out["expert_logits"].shape, (3, 3, 4))
        self.assertLessEqual(np.abs(out["expert_logits"]).max(), 30 + 1e-4)
        # Backbone 112 + per expert a (6, 6, 4) pool and a 4 x 4 head.
        self.assertEqual(count_params(model.trainable_weights), 112 + 3 * 16)
        self.assertEqual(
            [h.name for h in model.expert_heads],
            ["expert_0_head", "expert_1_head", "expert_2_head"])

    def test_per_expert_features_each_feed_one_head(self):
        backbone = _per_expert_backbone(2)
        model = BalPoEClassifier(backbone, _COUNTS, lambdas=(0.5, -0.5),
                                 head="linear")
        # 112 + 2 * 25 branches + 2 linear heads of 5 * 4 + 4 = 210.
        self.assertEqual(count_params(model.trainable_weights), 210)
        x = _images()
        features = run_model(backbone, x)
        out = run_model(model, x)
        for m in range(2):
            head = model.get_layer(f"expert_{m}_head")
            kernel, bias = (keras.ops.convert_to_numpy(w)
                            for w in head.weights)
            self.assertAllClose(out["expert_logits"][:, m],
                                features[m] @ kernel + bias, atol=1e-5)

    def test_shared_tensor_with_dense_layers_matches_add_balpoe_heads(self):
        # add_balpoe_heads is this model: same layers built in the same
        # order, so the same initial weights.
        keras.utils.set_random_seed(7)
        ours = BalPoEClassifier(_conv_backbone(), _COUNTS, lambdas=(1, -1),
                                expert_layers=[6], scale=16.0)
        keras.utils.set_random_seed(7)
        theirs = add_balpoe_heads(_conv_backbone(), _COUNTS, (1, -1),
                                  expert_layers=[6], scale=16.0)
        self.assertIsInstance(theirs, BalPoEClassifier)
        self.assertEqual(theirs.get_config(), ours.get_config())
        self.assertEqual([w.path for w in ours.weights],
                         [w.path for w in theirs.weights])
        for a, b in zip(ours.weights, theirs.weights):
            self.assertAllClose(a, b, atol=0)
        # 112 + 2 * (Dense 4 * 6 + 6 + head 6 * 4).
        self.assertEqual(count_params(ours.trainable_weights), 112 + 2 * 54)
        self.assertIsNotNone(ours.get_layer("expert_1_dense0"))
        self.assertEqual(
            [[layer.name for layer in block] for block in ours.expert_blocks],
            [["expert_0_pool", "expert_0_dense0"],
             ["expert_1_pool", "expert_1_dense0"]])
        x = _images()
        self.assertAllClose(run_model(ours, x)["logits"],
                            run_model(theirs, x)["logits"], atol=1e-6)

    def test_predict_returns_the_ensemble_logits(self):
        model = BalPoEClassifier(_per_expert_backbone(3), _COUNTS)
        x = _images(5)
        outputs = model.predict_outputs(x, batch_size=2)
        self.assertEqual(set(outputs), {"logits", "expert_logits"})
        self.assertEqual(outputs["expert_logits"].shape, (5, 3, 4))
        logits = model.predict(x, batch_size=2, verbose=0)
        self.assertIsInstance(logits, np.ndarray)
        self.assertEqual(logits.shape, (5, 4))
        self.assertAllClose(logits, outputs["logits"], atol=1e-6)
        self.assertAllClose(logits, outputs["expert_logits"].mean(1),
                            atol=1e-5)
        batch = model.predict_on_batch(x[:2])
        self.assertEqual(tuple(batch.shape), (2, 4))
        self.assertAllClose(batch, logits[:2], atol=1e-5)
        self.assertEqual(model.input_shape, (None, 8, 8, 3))

    def test_predict_proba_is_the_softmax_of_the_ensemble_logits(self):
        # Identity backbone; linear heads W0 = [[1, 0, 0], [0, 1, 0]],
        # W1 = [[0, 0, 2], [0, 1, 0]], no bias.
        # x = [1, 0]: z0 = [1, 0, 0], z1 = [0, 0, 2], mean [.5, 0, 1]:
        #   e^.5 = 1.648721, e^0 = 1, e^1 = 2.718282, sum 5.367003
        #   -> [0.307195, 0.186324, 0.506481].
        # x = [0, 2]: z0 = z1 = [0, 2, 0]; e^2 = 7.389056, sum 9.389056
        #   -> [0.106507, 0.786986, 0.106507].
        inputs = keras.Input((2,))
        dense = keras.layers.Dense(2, use_bias=False, name="identity")
        backbone = keras.Model(inputs, dense(inputs), name="flat")
        model = BalPoEClassifier(backbone, [3, 2, 1], lambdas=(1.0, -1.0),
                                 head="linear")
        dense.set_weights([np.eye(2, dtype="float32")])
        kernels = [np.array([[1, 0, 0], [0, 1, 0]], "float32"),
                   np.array([[0, 0, 2], [0, 1, 0]], "float32")]
        for head, kernel in zip(model.expert_heads, kernels):
            head.set_weights([kernel, np.zeros(3, "float32")])
        x = np.array([[1.0, 0.0], [0.0, 2.0]], "float32")
        probs = model.predict_proba(x, batch_size=1)
        self.assertEqual(probs.dtype, np.float32)
        self.assertAllClose(probs, [[0.307195, 0.186324, 0.506481],
                                    [0.106507, 0.786986, 0.106507]],
                            atol=1e-6)

    def test_config_holds_every_argument(self):
        model = BalPoEClassifier(
            _conv_backbone(), _COUNTS, lambdas=(1.0, -0.25, -1.5),
            allow_unbalanced=True, scale=16.0, head="linear",
            linear_head_initializer=keras.initializers.HeNormal(),
            expert_layers=[6, 5], class_names=_NAMES, name="mine")
        config = model.get_config()
        self.assertEqual(config["backbone"]["class_name"], "Functional")
        self.assertEqual(config["backbone"]["config"]["name"], "tiny")
        expected = dict(
            name="mine", trainable=True, class_counts=_COUNTS,
            lambdas=[1.0, -0.25, -1.5], allow_unbalanced=True, scale=16.0,
            head="linear", expert_layers=[6, 5], class_names=_NAMES)
        self.assertEqual({k: config[k] for k in expected}, expected)
        self.assertEqual(config["linear_head_initializer"]["class_name"],
                         "HeNormal")
        self.assertEqual(set(config), set(expected) | {
            "backbone", "linear_head_initializer"})
        json.dumps(config)  # JSON-ready.
        clone = BalPoEClassifier.from_config(config)
        self.assertEqual(clone.get_config(), config)
        self.assertEqual([w.path for w in clone.weights],
                         [w.path for w in model.weights])

    def test_keras_round_trip(self):
        model = BalPoEClassifier(_per_expert_backbone(3), _COUNTS,
                                 class_names=_NAMES)
        x = _images()
        reloaded = self.run_keras_save_load_test(model, x)
        self.assertIsInstance(reloaded, BalPoEClassifier)
        self.assertAllClose(reloaded.predict_outputs(x)["expert_logits"],
                            model.predict_outputs(x)["expert_logits"],
                            atol=1e-5)
        # Tuples in the in-memory config are lists after JSON.
        self.assertEqual(_as_json(reloaded.get_config()),
                         _as_json(model.get_config()))

    def test_mixed_bfloat16_backbone_keeps_float32_heads(self):
        from balpoe_keras.training import mixed_precision_scope

        with mixed_precision_scope("mixed_bfloat16"):
            model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        self.assertEqual(model.backbone.compute_dtype, "bfloat16")
        for layer in model.expert_heads + [model.expert_average]:
            self.assertEqual(layer.compute_dtype, "float32", layer.name)


class CompileTest(TestCase):
    def test_auto_loss_metrics_and_optimizer(self):
        from balpoe_keras.training import TorchSGD

        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        model.compile(jit_compile=False)
        self.assertIsInstance(model.optimizer, TorchSGD)
        x = _images(6)
        y = np.array([0, 1, 2, 3, 0, 1])
        logs = model.evaluate(x, y, batch_size=6, verbose=0,
                              return_dict=True)
        # Counts 8..1: no many-shot (> 100) or medium (>= 20) class.
        self.assertEqual(set(logs), {
            "loss", "accuracy", "balanced_accuracy", "acc_few", "ece",
            "expert_0_loss", "expert_1_loss", "expert_2_loss"})
        # The loss is BalPoELoss of the model's expert logits.
        out = run_model(model, x)
        expected = BalPoELoss(_COUNTS, [1.0, 0.0, -1.0])(
            y, out["expert_logits"])
        self.assertAllClose(logs["loss"], expected, atol=1e-5)
        experts = [logs[f"expert_{i}_loss"] for i in range(3)]
        self.assertAllClose(np.mean(experts), logs["loss"], atol=1e-5)
        # The metrics see the ensemble logits; every class is few-shot, so
        # the few-shot accuracy is the balanced one (mean class recall).
        hits = out["logits"].argmax(-1) == y
        recall = np.mean([hits[y == c].mean() for c in range(4)])
        self.assertAllClose(logs["accuracy"], hits.mean(), atol=1e-6)
        self.assertAllClose(logs["balanced_accuracy"], recall, atol=1e-6)
        self.assertAllClose(logs["acc_few"], recall, atol=1e-6)

    def test_one_expert_loss_per_expert(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS,
                                 lambdas=(1.0, 0.5, -0.5, -1.0))
        self.assertEqual([type(m) for m in model.expert_losses],
                         [ExpertLoss] * 4)
        self.assertEqual([m.expert_index for m in model.expert_losses],
                         [0, 1, 2, 3])
        self.assertEqual([m.name for m in model.expert_losses],
                         [f"expert_{i}_loss" for i in range(4)])

    def test_plain_int_one_hot_and_soft_labels(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        model.compile(jit_compile=False)
        x = _images(4)
        y = np.array([0, 1, 2, 3])
        one_hot = np.eye(4, dtype="float32")[y]
        by_id, by_one_hot = (
            model.evaluate(x, labels, batch_size=4, verbose=0,
                           return_dict=True)
            for labels in (y, one_hot))
        for key, value in by_id.items():
            self.assertAllClose(by_one_hot[key], value, atol=1e-5)
        # Mixup labels: the loss takes them as they are, the metrics their
        # argmax (here y again).
        soft = 0.7 * one_hot + 0.3 * one_hot[::-1]
        logs = model.evaluate(x, soft, batch_size=4, verbose=0,
                              return_dict=True)
        out = run_model(model, x)
        expected = BalPoELoss(_COUNTS, [1.0, 0.0, -1.0])(
            soft, out["expert_logits"])
        self.assertAllClose(logs["loss"], expected, atol=1e-5)
        self.assertGreater(abs(logs["loss"] - by_id["loss"]), 1e-3)
        for key in ("accuracy", "balanced_accuracy", "acc_few", "ece"):
            self.assertAllClose(logs[key], by_id[key], atol=1e-6)

    def test_explicit_values_override_auto(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        optimizer = keras.optimizers.SGD(0.01)
        loss = BalPoELoss(_COUNTS, [2.0, 0.0, -2.0])
        model.compile(optimizer=optimizer, loss=loss, metrics=["accuracy"],
                      jit_compile=False)
        self.assertIs(model.optimizer, optimizer)
        x, y = _images(2), np.array([0, 1])
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        # Each expert's loss is reported whatever the metrics.
        self.assertEqual(set(logs), {"loss", "accuracy", "expert_0_loss",
                                     "expert_1_loss", "expert_2_loss"})
        expected = loss(y, run_model(model, x)["expert_logits"])
        self.assertAllClose(logs["loss"], expected, atol=1e-5)

    def test_per_output_dicts_are_refused(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        loss = BalPoELoss(_COUNTS, [1.0, 0.0, -1.0])
        with self.assertRaisesRegex(ValueError, "one loss, not a dict"):
            model.compile(loss={"logits": None, "expert_logits": loss})
        with self.assertRaisesRegex(ValueError, "one metrics, not a dict"):
            model.compile(metrics={"logits": ["accuracy"]})
        with self.assertRaisesRegex(ValueError, "one loss_weights, not a"):
            model.compile(loss_weights={"expert_logits": 1.0})

    def _with_compile_config(self, model, edit):
        """`model` saved, with `edit(compile_config)` applied to its
        config.json (a file an older balpoe_keras wrote); its path."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        old = os.path.join(self.get_temp_dir(), "old.keras")
        with zipfile.ZipFile(path) as src, zipfile.ZipFile(old, "w") as dst:
            for item in src.infolist():
                data = src.read(item.filename)
                if item.filename == "config.json":
                    config = json.loads(data)
                    edit(config["compile_config"])
                    data = json.dumps(config)
                dst.writestr(item, data)
        return old

    def test_old_per_output_compile_config_is_refused_on_load(self):
        # A .keras file of an older balpoe_keras: loss and metrics per
        # output. It loads with compile=False, then compile() anew.
        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        model.compile(jit_compile=False)

        def per_output(compile_config):
            compile_config["loss"] = {
                "logits": None, "expert_logits": compile_config["loss"]}

        old = self._with_compile_config(model, per_output)
        with self.assertRaisesRegex(ValueError, "per-output losses.*older"):
            keras.saving.load_model(old)
        # Metrics compile() now refuses: the same way out.
        one_hot = self._with_compile_config(
            model, lambda c: c.update(metrics=["categorical_accuracy"]))
        with self.assertRaisesRegex(
                ValueError, "now refuses: .*CategoricalAccuracy.*"
                r"load_model\(path, compile=False\)"):
            keras.saving.load_model(one_hot)
        keras.saving.load_model(one_hot, compile=False)
        reloaded = keras.saving.load_model(old, compile=False)
        reloaded.compile(jit_compile=False)
        x = _images()
        self.assertAllClose(reloaded.predict(x, verbose=0),
                            model.predict(x, verbose=0), atol=1e-5)

    def test_unbalanced_lambdas_reach_the_loss(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS,
                                 lambdas=(1.0, -0.25, -1.5),
                                 allow_unbalanced=True)
        model.compile(jit_compile=False)
        loss = model.get_compile_config()["loss"]
        self.assertEqual(loss["class_name"], "BalPoELoss")
        self.assertEqual(loss["config"]["lambdas"], [1.0, -0.25, -1.5])
        self.assertTrue(loss["config"]["allow_unbalanced"])

    def test_fit_refuses_class_weight(self):
        model = BalPoEClassifier(_conv_backbone(), _COUNTS)
        model.compile(jit_compile=False)
        with self.assertRaisesRegex(ValueError, "no class_weight"):
            model.fit(_images(4), np.array([0, 1, 2, 3]),
                      class_weight={0: 1.0, 1: 2.0, 2: 4.0, 3: 8.0},
                      verbose=0)


class ValidationTest(TestCase):
    def test_expert_count_must_match_the_lambdas(self):
        with self.assertRaisesRegex(
                ValueError, r"returns 3 expert features but there are 2 "
                r"lambdas.*num_experts=2"):
            BalPoEClassifier(_per_expert_backbone(3), _COUNTS,
                             lambdas=(1.0, -1.0))

    def test_bad_backbone_outputs(self):
        inputs = keras.Input((4, 4, 2, 3))
        rank5 = keras.Model(inputs, keras.layers.Dense(2)(inputs))
        with self.assertRaisesRegex(ValueError, "rank 2, 3 or 4"):
            BalPoEClassifier(rank5, _COUNTS)
        inputs = keras.Input((8, 8, 3))
        unpooled = keras.Model(inputs, [keras.layers.Conv2D(2, 1)(inputs)
                                        for _ in range(3)])
        with self.assertRaisesRegex(ValueError, "pooled .batch, D."):
            BalPoEClassifier(unpooled, _COUNTS)
        as_dict = keras.Model(inputs, {"f": keras.layers.Conv2D(2, 1)(inputs)})
        with self.assertRaisesRegex(ValueError, "not a dict"):
            BalPoEClassifier(as_dict, _COUNTS)
        with self.assertRaisesRegex(ValueError, "keras.Model backbone"):
            BalPoEClassifier(keras.layers.Dense(3), _COUNTS)

    def test_bad_arguments_echo_the_value(self):
        backbone = _conv_backbone()
        with self.assertRaisesRegex(ValueError, "average to 0.5"):
            BalPoEClassifier(backbone, _COUNTS, lambdas=(1.0, 0.0))
        with self.assertRaisesRegex(ValueError, "counts \\[0\\]"):
            BalPoEClassifier(backbone, [3, 0])
        with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
            BalPoEClassifier(backbone, [3])
        with self.assertRaisesRegex(ValueError, "head='mlp'"):
            BalPoEClassifier(backbone, _COUNTS, head="mlp")
        with self.assertRaisesRegex(ValueError, "scale=0"):
            BalPoEClassifier(backbone, _COUNTS, scale=0)
        with self.assertRaisesRegex(ValueError, "3 class_names for 4"):
            BalPoEClassifier(backbone, _COUNTS, class_names=_NAMES[:3])
        with self.assertRaisesRegex(ValueError, "list of ints.*Received"):
            BalPoEClassifier(backbone, _COUNTS,
                             expert_layers=lambda x, i: x)
        with self.assertRaisesRegex(ValueError, "ints >= 1"):
            BalPoEClassifier(backbone, _COUNTS, expert_layers=[0])
        with self.assertRaisesRegex(ValueError, "already returns one"):
            BalPoEClassifier(_per_expert_backbone(3), _COUNTS,
                             expert_layers=[4])


class BuildBalPoEClassifierTest(TestCase):
    def test_resnet32(self):
        model = build_balpoe_classifier(
            "resnet32", _COUNTS, (1.0, 0.0, -1.0), blocks_per_stage=1,
            input_shape=(16, 16, 3), head="linear", class_names=_NAMES)
        self.assertIsInstance(model, BalPoEClassifier)
        self.assertEqual(model.name, "balpoe_resnet8")
        self.assertLen(model.backbone.outputs, 3)
        # The reference's Kaiming-normal (fan_in) linear-head kernel.
        init = model.linear_head_initializer.get_config()
        self.assertEqual((init["scale"], init["mode"], init["distribution"]),
                         (2.0, "fan_in", "untruncated_normal"))
        out = run_model(model, np.zeros((1, 16, 16, 3), "float32"))
        self.assertEqual(out["expert_logits"].shape, (1, 3, 4))

    def test_arguments_go_to_the_classifier_or_the_backbone(self):
        model = build_balpoe_classifier(
            "resnet32", _COUNTS, (1.0, -1.0), scale=16.0, name="mine",
            shared_stages=2, blocks_per_stage=1, input_shape=(8, 8, 3))
        self.assertEqual((model.name, model.scale), ("mine", 16.0))
        # Stage 2 shared: no expert copy of it in the trunk.
        names = {layer.name for layer in model.backbone.layers}
        self.assertIn("stage2_block0_conv1", names)
        self.assertNotIn("expert_0_stage2_block0_conv1", names)
        self.assertIn("expert_1_stage3_block0_conv1", names)

    def test_unknown_architecture_and_early_checks(self):
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'vit'"):
            build_balpoe_classifier("vit", _COUNTS)
        with self.assertRaisesRegex(ValueError, "average to"):
            build_balpoe_classifier("resnet32", _COUNTS, (1.0, 1.0))

    def test_backbone_by_name_takes_the_trunk_arguments(self):
        backbone = build_balpoe_backbone(
            "resnet32", num_experts=2, shared_stages=3, blocks_per_stage=1,
            input_shape=(8, 8, 1), pixel_mean=(0.5,), pixel_std=(0.5,))
        model = BalPoEClassifier(backbone, _COUNTS, lambdas=(1.0, -1.0))
        # One shared pooled feature (layer `pool`) feeds both heads.
        self.assertEqual(tuple(backbone.output.shape), (None, 64))
        self.assertEqual(model.num_experts, 2)


@pytest.mark.large
class FreshProcessLoadTest(TestCase):
    def test_compiled_model_loads_after_import_balpoe_keras_alone(self):
        # Trained one step with the reference optimizer and a warm-up
        # schedule: the file holds the classifier, TorchSGD (with its
        # momentum) and the schedule, all balpoe_keras classes.
        from balpoe_keras.training import TorchSGD
        from balpoe_keras.training import WarmupStepSchedule

        model = BalPoEClassifier(_per_expert_backbone(3), _COUNTS,
                                 class_names=_NAMES)
        model.compile(optimizer=TorchSGD(WarmupStepSchedule(
            0.1, 2, warmup_epochs=1, step_epochs=(2,))), jit_compile=False)
        x = _images(4)
        model.fit(x, np.array([0, 1, 2, 3]), batch_size=4, epochs=1,
                  verbose=0)
        tmp = self.get_temp_dir()
        path = os.path.join(tmp, "model.keras")
        model.save(path)
        np.save(os.path.join(tmp, "x.npy"), x)
        np.save(os.path.join(tmp, "logits.npy"), model.predict(x, verbose=0))
        code = (
            "import sys, keras, numpy as np\n"
            "import balpoe_keras\n"
            "tmp = sys.argv[1]\n"
            "m = keras.saving.load_model(tmp + '/model.keras')\n"
            "out = m.predict(np.load(tmp + '/x.npy'), verbose=0)\n"
            "err = float(np.abs(out - np.load(tmp + '/logits.npy')).max())\n"
            "print(type(m).__name__, m.class_counts, m.lambdas,\n"
            "      m.class_names, type(m.optimizer).__name__,\n"
            "      type(m.optimizer._learning_rate).__name__,\n"
            "      int(m.optimizer.iterations), err < 1e-5)\n")
        env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
        done = subprocess.run([sys.executable, "-c", code, tmp],
                              capture_output=True, text=True, env=env,
                              timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertEqual(
            done.stdout.strip().splitlines()[-1],
            "BalPoEClassifier [8, 4, 2, 1] [1.0, 0.0, -1.0] "
            "['a', 'b', 'c', 'd'] TorchSGD WarmupStepSchedule 1 True")


class BackbonePixelRangeTest(TestCase):
    """A backbone that rescales 0-255 pixels itself is refused: the model
    feeds it [0, 1] pixels."""

    def _tiny(self, *preprocessing):
        inputs = keras.Input((8, 8, 3))
        x = inputs
        for layer in preprocessing:
            x = layer(x)
        x = keras.layers.Conv2D(4, 3)(x)
        return keras.Model(inputs, x, name="tiny")

    def test_rescaling_and_0_255_normalization_are_refused(self):
        cases = {
            "rescale_255": [keras.layers.Rescaling(1 / 255)],
            "rescale_127": [keras.layers.Rescaling(1 / 127.5, offset=-1)],
            "imagenet_mean_255": [keras.layers.Normalization(
                mean=[123.675, 116.28, 103.53],
                variance=[58.4**2, 57.1**2, 57.4**2])],
        }
        for name, preprocessing in cases.items():
            with self.subTest(name):
                with self.assertRaisesRegex(
                        ValueError, "expects 0-255 pixels.*pixels in "
                        r"\[0, 1\].*include_preprocessing=False.*"
                        r"Rescaling\(255.0\)"):
                    BalPoEClassifier(self._tiny(*preprocessing), _COUNTS)

    @pytest.mark.tf_only  # Layer inspection alone; MobileNet builds in
    # 0.6 s on TensorFlow, 12 s on JAX.
    def test_nested_keras_applications_preprocessing_is_found(self):
        # The check itself, on keras.applications' own layout (the
        # classifier runs it before it builds anything on the backbone).
        from balpoe_keras.models import components

        inner = keras.applications.MobileNetV3Small(
            include_top=False, weights=None, input_shape=(32, 32, 3),
            minimalistic=True)
        inputs = keras.Input((32, 32, 3))
        outer = keras.Model(inputs, inner(inputs), name="outer")
        with self.assertRaisesRegex(
                ValueError, r"layer 'rescaling(_\d+)?' \(Rescaling, scale "
                "0.007843"):
            components.check_backbone_pixel_range(outer)
        components.check_backbone_pixel_range(keras.applications.MobileNetV3Small(
            include_top=False, weights=None, input_shape=(32, 32, 3),
            minimalistic=True, include_preprocessing=False))

    def test_per_channel_scales_and_the_culprit_named(self):
        # keras.applications.EfficientNet's ImageNet layout: Rescaling(1 /
        # 255), then a per-channel Rescaling(1 / sqrt(std)).
        per_channel = [1 / 0.229**0.5, 1 / 0.224**0.5, 1 / 0.225**0.5]
        with self.assertRaisesRegex(ValueError, "'first' .*scale 0.003922"):
            BalPoEClassifier(self._tiny(
                keras.layers.Rescaling(1 / 255, name="first"),
                keras.layers.Rescaling(per_channel)), _COUNTS)
        BalPoEClassifier(self._tiny(keras.layers.Rescaling(255.0),
                                    keras.layers.Rescaling(1 / 255),
                                    keras.layers.Rescaling(per_channel)),
                         _COUNTS)
        # Twice 1/255 after one 255: a divided layer is named, not the 255.
        with self.assertRaisesRegex(ValueError, "'down_a'"):
            BalPoEClassifier(self._tiny(
                keras.layers.Rescaling(255.0, name="up"),
                keras.layers.Rescaling(1 / 255, name="down_a"),
                keras.layers.Rescaling(1 / 255, name="down_b")), _COUNTS)

    def test_rescaling_to_0_255_first_and_unit_range_layers_pass(self):
        BalPoEClassifier(self._tiny(keras.layers.Rescaling(255.0),
                                    keras.layers.Rescaling(1 / 255)),
                         _COUNTS)
        BalPoEClassifier(self._tiny(keras.layers.Rescaling(255.0),
                                    keras.layers.Normalization(
                                        mean=[123.7, 116.3, 103.5],
                                        variance=[3400.0] * 3)), _COUNTS)
        BalPoEClassifier(self._tiny(keras.layers.Rescaling(2.0, offset=-1),
                                    keras.layers.Normalization(
                                        mean=[0.485, 0.456, 0.406],
                                        variance=[0.05] * 3)), _COUNTS)
