"""Tests of `build_balpoe_classifier` / `build_balpoe_backbone`, the
builders chosen by name."""

import numpy as np

from balpoe_keras.architectures import ARCHITECTURES as SPECS
from balpoe_keras.models import BACKBONES
from balpoe_keras.models import BalPoEClassifier
from balpoe_keras.models import build_balpoe_backbone
from balpoe_keras.models import build_balpoe_classifier
from balpoe_keras.models import build_resnet32_backbone
from balpoe_keras.models import build_resnet50_backbone
from balpoe_keras.models import build_resnext50_backbone
from tests.models.helpers import count_params
from tests.models.helpers import run_model
from tests.test_case import TestCase

_COUNTS = [8, 4, 2, 1]


class BuildBalPoEClassifierByNameTest(TestCase):
    def test_dispatches_with_kwargs(self):
        model = build_balpoe_classifier(
            "resnet32", _COUNTS, (1.0, -1.0), blocks_per_stage=1,
            input_shape=(8, 8, 3))
        self.assertIsInstance(model, BalPoEClassifier)
        self.assertEqual(model.name, "balpoe_resnet8")
        # One block per stage: 464 + 4,672 + 2 * (13,952 + 55,552 + 64 * 4)
        # = 144,656.
        self.assertEqual(count_params(model.trainable_weights), 144_656)
        out = run_model(model, np.zeros((1, 8, 8, 3), "float32"))
        self.assertEqual(out["expert_logits"].shape[1:], (2, 4))

    def test_resnet8_is_resnet32_with_one_block_per_stage(self):
        model = build_balpoe_classifier("resnet8", _COUNTS,
                                        input_shape=(8, 8, 3))
        self.assertEqual(model.name, "balpoe_resnet8")
        self.assertEqual(model.backbone.name, "resnet8")
        # The same weights, in the same order, as the explicit build: one
        # block per stage, not the 5 of ResNet-32.
        explicit = build_balpoe_classifier(
            "resnet32", _COUNTS, blocks_per_stage=1, input_shape=(8, 8, 3))
        self.assertEqual(
            [(w.path, tuple(w.shape)) for w in model.weights],
            [(w.path, tuple(w.shape)) for w in explicit.weights])
        names = {layer.name for layer in model.backbone.layers}
        self.assertIn("stage1_block0_conv1", names)
        self.assertNotIn("stage1_block1_conv1", names)

    def test_unknown_architecture_raises(self):
        with self.assertRaisesRegex(
                ValueError, "Unknown architecture 'vit'.*add_balpoe_heads"):
            build_balpoe_classifier("vit", _COUNTS)
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'vit'"):
            build_balpoe_backbone("vit")


class BuildBalPoEBackboneTest(TestCase):
    def test_dispatches_with_kwargs(self):
        backbone = build_balpoe_backbone(
            "resnet32", num_experts=2, blocks_per_stage=1)
        self.assertEqual(backbone.name, "resnet8")
        self.assertLen(backbone.outputs, 2)
        # The classifier of BuildBalPoEClassifierByNameTest minus its 2
        # heads of 64 * 4: 144,656 - 512.
        self.assertEqual(count_params(backbone.trainable_weights), 144_144)

    def test_registry(self):
        # The ImageNet trunks are tested (and built) in
        # resnet_imagenet_test.py; here only the name -> builder mapping,
        # one name per balpoe_keras.architectures entry.
        self.assertEqual(sorted(BACKBONES), sorted(SPECS))
        self.assertEqual(
            {k: v for k, v in BACKBONES.items() if k != "resnet8"},
            {"resnet32": build_resnet32_backbone,
             "resnet50": build_resnet50_backbone,
             "resnext50": build_resnext50_backbone},
        )
        self.assertIs(BACKBONES["resnet8"].func, build_resnet32_backbone)
        self.assertEqual(BACKBONES["resnet8"].keywords,
                         {"blocks_per_stage": 1})
