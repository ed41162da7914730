"""Tests of `build_balpoe_resnet` / `build_balpoe_backbone`, the
builders chosen by name."""

from balpoe_keras.architectures import ARCHITECTURES as SPECS
from balpoe_keras.models import ARCHITECTURES
from balpoe_keras.models import BACKBONES
from balpoe_keras.models import build_balpoe_backbone
from balpoe_keras.models import build_balpoe_resnet
from balpoe_keras.models import build_balpoe_resnet32
from balpoe_keras.models import build_balpoe_resnet50
from balpoe_keras.models import build_balpoe_resnext50
from balpoe_keras.models import build_resnet32_backbone
from balpoe_keras.models import build_resnet50_backbone
from balpoe_keras.models import build_resnext50_backbone
from tests.models.helpers import count_params
from tests.test_case import TestCase


class BuildBalPoEResNetTest(TestCase):
    def test_dispatches_with_kwargs(self):
        model = build_balpoe_resnet(
            "resnet32", 4, num_experts=2, blocks_per_stage=1
        )
        self.assertEqual(model.name, "balpoe_resnet8")
        # One block per stage: 464 + 4,672 + 2 * (13,952 + 55,552 + 64 * 4)
        # = 144,656.
        self.assertEqual(count_params(model.trainable_weights), 144_656)
        self.assertEqual(model.output["expert_logits"].shape[1:], (2, 4))

    def test_registry(self):
        # The ImageNet builders are tested (and built) in
        # resnet_imagenet_test.py; here only the name -> builder mapping,
        # one name per balpoe_keras.architectures entry.
        self.assertEqual(sorted(ARCHITECTURES), sorted(SPECS))
        self.assertEqual(
            {k: v for k, v in ARCHITECTURES.items() if k != "resnet8"},
            {"resnet32": build_balpoe_resnet32,
             "resnet50": build_balpoe_resnet50,
             "resnext50": build_balpoe_resnext50},
        )
        resnet8 = ARCHITECTURES["resnet8"]
        self.assertIs(resnet8.func, build_balpoe_resnet32)
        self.assertEqual(resnet8.keywords, {"blocks_per_stage": 1})
        self.assertEqual(build_balpoe_resnet("resnet8", 4).name,
                         "balpoe_resnet8")

    def test_unknown_architecture_raises(self):
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'vit'"):
            build_balpoe_resnet("vit", 10)
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'vit'"):
            build_balpoe_backbone("vit")


class BuildBalPoEBackboneTest(TestCase):
    def test_dispatches_with_kwargs(self):
        backbone = build_balpoe_backbone(
            "resnet32", num_experts=2, blocks_per_stage=1)
        self.assertEqual(backbone.name, "resnet8")
        self.assertLen(backbone.outputs, 2)
        # The flat model of test_dispatches_with_kwargs minus 2 heads of
        # 64 * 4: 144,656 - 512.
        self.assertEqual(count_params(backbone.trainable_weights), 144_144)

    def test_registry(self):
        self.assertEqual(
            {k: v for k, v in BACKBONES.items() if k != "resnet8"},
            {"resnet32": build_resnet32_backbone,
             "resnet50": build_resnet50_backbone,
             "resnext50": build_resnext50_backbone},
        )
        self.assertIs(BACKBONES["resnet8"].func, build_resnet32_backbone)
