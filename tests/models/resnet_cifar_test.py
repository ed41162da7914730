"""Tests of the multi-expert CIFAR ResNet-32 (docs/reference.md §1.1, 1.5)."""

import os

import keras
import numpy as np
import pytest

from balpoe_keras.losses import BalPoELoss
from balpoe_keras.models import BalPoEClassifier
from balpoe_keras.models import build_balpoe_backbone
from balpoe_keras.models import build_balpoe_classifier
from balpoe_keras.models import build_resnet32_backbone
from tests.models.helpers import SKIP_ON_JAX
from tests.models.helpers import assert_experts_wired
from tests.models.helpers import classifier
from tests.models.helpers import count_layer_params
from tests.models.helpers import count_params
from tests.models.helpers import run_model
from tests.test_case import TestCase

# Closed form (docs/reference.md §1.5):
# P(M, C) = 23,824 + M * (439,680 + 64 * C).
# Shared: stem conv 3*3*3*16 = 432, BN 32, stage 1 23,360 (5 blocks of
# 2 * (3*3*16*16 + 32) = 4,672). Per expert: stage 2 88,192, stage 3 351,488,
# cosine head 64 * C. BN moving stats: 2 per BN channel.
# `classifier(arch, C, M)`: `build_balpoe_classifier` with C classes and M
# experts (tests/models/helpers.py).
TINY = dict(num_classes=4, num_experts=3, blocks_per_stage=1)


class ResNet32CountTest(TestCase):
    def assertCounts(self, model, trainable, non_trainable):
        self.assertEqual(count_params(model.trainable_weights), trainable)
        self.assertEqual(
            count_params(model.non_trainable_weights), non_trainable
        )

    def test_reference_counts_m3_with_breakdown(self):
        # 23,824 + 3 * 446,080 = 1,362,064; BN stats 352 + 3 * 1,920 = 6,112.
        model = classifier("resnet32", 100, 3)
        self.assertCounts(model, 1_362_064, 6_112)
        # The heads sit on the classifier, the rest in its backbone.
        self.assertCounts(model.backbone, 1_362_064 - 3 * 6_400, 6_112)
        self.assertEqual(count_layer_params(model, "stem_"), 432 + 32)
        self.assertEqual(count_layer_params(model, "stage1_"), 23_360)
        for index in range(3):
            prefix = f"expert_{index}_"
            self.assertEqual(
                count_layer_params(model, prefix + "stage2_"), 88_192
            )
            self.assertEqual(
                count_layer_params(model, prefix + "stage3_"), 351_488
            )
            self.assertEqual(count_layer_params(model, prefix + "head"), 6_400)

    def test_sharing_options_tiny(self):
        # One block per stage. Stem 432 + 32 = 464; stage 1: 2 * (2,304 + 32)
        # = 4,672; stage 2: 3*3*16*32 + 64 + 3*3*32*32 + 64 = 13,952;
        # stage 3: 3*3*32*64 + 128 + 3*3*64*64 + 128 = 55,552; head 64 * 4.
        stem, s1, s2, s3, head = 464, 4_672, 13_952, 55_552, 256
        expected = {
            0: 3 * (stem + s1 + s2 + s3 + head),  # 224,688
            1: stem + s1 + 3 * (s2 + s3 + head),  # 214,416
            2: stem + s1 + s2 + 3 * (s3 + head),  # 186,512
            3: stem + s1 + s2 + s3 + 3 * head,  # 75,408
        }
        for shared_stages, count in expected.items():
            model = classifier(
                "resnet32", **TINY, shared_stages=shared_stages)
            self.assertEqual(count_params(model.trainable_weights), count)

    @pytest.mark.large
    def test_reference_counts_m1_and_ten_classes(self):
        # 23,824 + 439,680 + 6,400 = 469,904; BN stats: 2 * (16 + 10*16 +
        # 10*32 + 10*64) = 2,272.
        self.assertCounts(
            classifier("resnet32", 100, 1), 469_904, 2_272)
        # 23,824 + 440,320 = 464,144 ; 23,824 + 3 * 440,320 = 1,344,784.
        self.assertCounts(
            classifier("resnet32", 10, 1), 464_144, 2_272)
        self.assertCounts(
            classifier("resnet32", 10, 3), 1_344_784, 6_112)

    @pytest.mark.large
    def test_reference_counts_m7(self):
        # 23,824 + 7 * 446,080 = 3,146,384 ; 23,824 + 7 * 440,320 = 3,106,064;
        # BN stats 352 + 7 * 1,920 = 13,792.
        self.assertCounts(
            classifier("resnet32", 100, 7), 3_146_384, 13_792)
        self.assertCounts(
            classifier("resnet32", 10, 7), 3_106_064, 13_792)

    @pytest.mark.large
    def test_reference_sharing_options(self):
        # share_layer2: 23,824 + 88,192 + 3 * (351,488 + 6,400) = 1,185,680.
        model = classifier("resnet32", 100, 3, shared_stages=2)
        self.assertEqual(count_params(model.trainable_weights), 1_185_680)
        # Linear experts: 469,904 - 6,400 + 3 * 6,400 = 482,704.
        model = classifier("resnet32", 100, 3, shared_stages=3)
        self.assertEqual(count_params(model.trainable_weights), 482_704)
        # Independent networks: 3 * 469,904 = 1,409,712.
        model = classifier("resnet32", 100, 3, shared_stages=0)
        self.assertEqual(count_params(model.trainable_weights), 1_409_712)

    @pytest.mark.large
    @SKIP_ON_JAX
    def test_reduce_dimension_and_linear_head(self):
        # Widths 24/48: 23,824 + 3 * (50,592 + 197,952 + 48 * 100) = 783,856.
        model = classifier("resnet32", 100, 3, reduce_dimension=True)
        self.assertEqual(count_params(model.trainable_weights), 783_856)
        # nn.Linear(64, 100) with bias: 469,904 + 100 = 470,004.
        model = classifier("resnet32", 100, 1, head="linear")
        self.assertEqual(count_params(model.trainable_weights), 470_004)


class ResNet32StructureTest(TestCase):
    def test_outputs_and_expert_wiring(self):
        model = classifier("resnet32", **TINY)
        # Expert m's logits are its own branch's feature through its own
        # head (the experts differ); the ensemble is their mean.
        out = assert_experts_wired(
            self, model, np.random.rand(2, 32, 32, 3).astype("float32"))
        self.assertEqual(set(out), {"logits", "expert_logits"})
        self.assertEqual(tuple(out["logits"].shape), (2, 4))
        self.assertEqual(tuple(out["expert_logits"].shape), (2, 3, 4))
        # Cosine logits lie in [-30, 30].
        self.assertLessEqual(np.abs(out["expert_logits"]).max(), 30.0 + 1e-4)

    def test_single_expert_keeps_both_outputs(self):
        model = classifier("resnet32", 4, 1, blocks_per_stage=1)
        out = run_model(model, np.zeros((1, 32, 32, 3), "float32"))
        self.assertEqual(tuple(out["expert_logits"].shape), (1, 1, 4))

    def test_grayscale_28x28_input(self):
        model = classifier(
            "resnet32", 10, 2, blocks_per_stage=1, input_shape=(28, 28, 1),
            pixel_mean=(0.2860,), pixel_std=(0.3530,),
        )
        self.assertEqual(model.input_shape, (None, 28, 28, 1))
        out = run_model(model, np.random.rand(2, 28, 28, 1).astype("float32"))
        self.assertEqual(tuple(out["expert_logits"].shape), (2, 2, 10))
        # 28 -> 14 -> 7 spatially.
        self.assertEqual(
            model.backbone.get_layer(
                "expert_1_stage3_block0_out").output.shape[1:3],
            (7, 7),
        )

    def test_layer_names_and_shortcut_placement(self):
        model = classifier("resnet32", **TINY)
        # The trunk is the backbone; the heads and their average are the
        # classifier's own layers.
        self.assertEqual(
            [layer.name for layer in model.layers],
            ["resnet8", "expert_0_head", "expert_1_head", "expert_2_head",
             "expert_average"])
        names = {layer.name for layer in model.backbone.layers}
        for name in ("normalize", "stem_conv", "stage1_block0_conv1",
                     "expert_2_stage3_block0_bn2",
                     "expert_1_stage2_block0_shortcut",
                     "expert_1_stage2_block0_conv1_pad"):
            self.assertIn(name, names)
        # Option A only where the shape changes: first block of stages 2, 3.
        shortcuts = sorted(n for n in names if n.endswith("_shortcut"))
        self.assertEqual(len(shortcuts), 2 * 3)
        self.assertNotIn("stage1_block0_shortcut", names)
        self.assertFalse(any("lambda" in n for n in names))

    def test_bn_and_init_match_pytorch(self):
        model = classifier("resnet32", **TINY)
        bn = model.backbone.get_layer("stem_bn")
        self.assertEqual((bn.epsilon, bn.momentum), (1e-5, 0.9))
        conv = model.backbone.get_layer("expert_0_stage3_block0_conv2")
        self.assertFalse(conv.use_bias)
        # 3x3 conv 64 -> 64: fan_in 576, std sqrt(2 / 576) = 0.0589; 36,864
        # untruncated draws put ~4.55% beyond 2 std (truncated: none).
        kernel = keras.ops.convert_to_numpy(conv.kernel)
        std = np.sqrt(2.0 / 576.0)
        self.assertAllClose(kernel.std(), std, rtol=0.03)
        self.assertGreater(np.mean(np.abs(kernel) > 2 * std), 0.03)
        # Stem: fan_in 3*3*3 = 27, std 0.272 (432 draws: loose tolerance).
        stem = keras.ops.convert_to_numpy(
            model.backbone.get_layer("stem_conv").kernel)
        self.assertAllClose(stem.std(), np.sqrt(2.0 / 27.0), rtol=0.15)

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, "num_experts >= 1"):
            build_balpoe_backbone("resnet32", num_experts=0)
        with self.assertRaisesRegex(ValueError, "non-empty list of .*lambdas"):
            build_balpoe_classifier("resnet32", [3, 2], ())
        with self.assertRaisesRegex(ValueError, r"shared_stages in \[0, 3\]"):
            classifier("resnet32", 10, 3, shared_stages=4)
        with self.assertRaisesRegex(ValueError, "num_classes >= 2"):
            classifier("resnet32", 1, 3, blocks_per_stage=1)
        with self.assertRaisesRegex(ValueError, "blocks_per_stage >= 1"):
            classifier("resnet32", 10, 3, blocks_per_stage=0)
        with self.assertRaisesRegex(ValueError, "head in"):
            classifier("resnet32", 10, 3, blocks_per_stage=1, head="mlp")


class ResNet32BackboneTest(TestCase):
    def test_one_pooled_feature_per_expert(self):
        backbone = build_resnet32_backbone(num_experts=3, blocks_per_stage=1)
        self.assertEqual(backbone.name, "resnet8")
        self.assertLen(backbone.outputs, 3)
        for output in backbone.outputs:
            self.assertEqual(tuple(output.shape), (None, 64))
        # The TINY classifier minus its 3 cosine heads of 64 * 4: 214,416 -
        # 768.
        self.assertEqual(count_params(backbone.trainable_weights), 213_648)
        features = run_model(backbone, np.zeros((2, 32, 32, 3), "float32"))
        self.assertEqual([f.shape for f in features], [(2, 64)] * 3)

    def test_all_stages_shared_gives_one_feature(self):
        backbone = build_resnet32_backbone(
            num_experts=3, shared_stages=3, blocks_per_stage=1,
            reduce_dimension=True)
        self.assertEqual(tuple(backbone.output.shape), (None, 48))
        self.assertEqual(backbone.output_names, ["pool"])

    def test_arguments_after_the_lambdas_are_keyword_only(self):
        with self.assertRaisesRegex(TypeError, "positional"):
            build_balpoe_classifier("resnet32", [3, 2], (1.0, -1.0), 3)
        with self.assertRaisesRegex(TypeError, "positional"):
            build_balpoe_backbone("resnet32", 3)
        with self.assertRaisesRegex(TypeError, "positional"):
            build_resnet32_backbone(3)


class ResNet32SaveLoadTest(TestCase):
    def test_keras_round_trip(self):
        # Eager calls instead of predict(): same check, no graph tracing.
        model = classifier("resnet32", **TINY, shared_stages=2)
        x = np.random.rand(2, 32, 32, 3).astype("float32")
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertIsInstance(reloaded, BalPoEClassifier)
        expected, actual = run_model(model, x), run_model(reloaded, x)
        for key in ("logits", "expert_logits"):
            self.assertAllClose(actual[key], expected[key], atol=1e-5)
        self.assertEqual(
            [w.path for w in reloaded.weights], [w.path for w in model.weights]
        )

    @pytest.mark.large
    def test_compiled_round_trip_keeps_training(self):
        # After one SGD step, save + load, then one more step on both: the
        # reloaded model (weights, BN stats, momentum) must match.
        model = build_balpoe_classifier(
            "resnet32", [8, 4, 2, 1], (1.0, -1.0), blocks_per_stage=1,
            shared_stages=2, input_shape=(8, 8, 3),
        )
        model.compile(
            optimizer=keras.optimizers.SGD(0.1, momentum=0.9),
            loss=BalPoELoss([8, 4, 2, 1], (1.0, -1.0)),
            jit_compile=False,
        )
        x = np.random.rand(4, 8, 8, 3).astype("float32")
        y = np.array([0, 1, 2, 3])
        model.fit(x, y, batch_size=4, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        self.assertEqual(int(reloaded.optimizer.iterations), 1)
        before = keras.ops.convert_to_numpy(
            reloaded.get_layer("expert_0_head").kernel
        )
        losses = [
            m.fit(x, y, batch_size=4, epochs=1, verbose=0).history["loss"][0]
            for m in (model, reloaded)
        ]
        self.assertAllClose(losses[1], losses[0], atol=1e-5)
        after = keras.ops.convert_to_numpy(
            reloaded.get_layer("expert_0_head").kernel
        )
        self.assertGreater(np.abs(after - before).max(), 1e-4)
        for a, b in zip(reloaded.weights, model.weights):
            self.assertAllClose(a, b, atol=1e-5)
