"""Tests of `build_balpoe_resnet`, the builder chosen by name."""

from balpoe_keras.models import ARCHITECTURES
from balpoe_keras.models import build_balpoe_resnet
from balpoe_keras.models import build_balpoe_resnet32
from balpoe_keras.models import build_balpoe_resnet50
from balpoe_keras.models import build_balpoe_resnext50
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
        # resnet_imagenet_test.py; here only the name -> builder mapping.
        self.assertEqual(
            ARCHITECTURES,
            {"resnet32": build_balpoe_resnet32,
             "resnet50": build_balpoe_resnet50,
             "resnext50": build_balpoe_resnext50},
        )

    def test_unknown_architecture_raises(self):
        with self.assertRaisesRegex(ValueError, "Unknown architecture 'vit'"):
            build_balpoe_resnet("vit", 10)
