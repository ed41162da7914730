"""Multi-expert ResNet-50 / ResNeXt-50 (docs/reference.md §1.3-1.5)."""

import keras
import numpy as np
import pytest

from tests.models.helpers import SKIP_ON_JAX
from tests.models.helpers import assert_experts_wired
from tests.models.helpers import classifier
from tests.models.helpers import count_layer_params
from tests.models.helpers import count_params
from tests.test_case import TestCase

ONE_BLOCK = (1, 1, 1, 1)
ANY_SIZE = (None, None, 3)


def _bottleneck(c_in, width, c_out, groups=1):
    """Params of a bottleneck with projection: convs, BNs (2 per channel)."""
    convs = c_in * width + 9 * width * width // groups + width * c_out
    return convs + 2 * (2 * width + c_out) + c_in * c_out + 2 * c_out


def _single_expert_params(model):
    """Trainable params of the shared trunk and expert 0 only (M = 1)."""
    return count_params(model.trainable_weights) - sum(
        count_layer_params(model, f"expert_{i}_") for i in (1, 2)
    )


class ResNet50Test(TestCase):
    @SKIP_ON_JAX
    def test_one_block_per_stage_counts(self):
        # Stem 7*7*3*64 + 128 = 9,536. Bottlenecks (in, width, out):
        # (64, 64, 256) 75,008; (256, 128, 512) 379,392; (512, 256, 1024)
        # 1,512,448; (1024, 512, 2048) 6,039,552. M = 2, C = 4:
        # 9,536 + 75,008 + 379,392 + 2 * (1,512,448 + 6,039,552 + 2048 * 4)
        # = 15,584,320.
        self.assertEqual(_bottleneck(64, 64, 256), 75_008)
        self.assertEqual(_bottleneck(1024, 512, 2048), 6_039_552)
        model = classifier(
            "resnet50", 4, 2, blocks_per_stage=ONE_BLOCK, input_shape=ANY_SIZE
        )
        self.assertEqual(model.input_shape, (None, None, None, 3))
        self.assertEqual(count_params(model.trainable_weights), 15_584_320)
        self.assertEqual(
            count_layer_params(model, "expert_1_stage4_"), 6_039_552
        )
        self.assertEqual(count_layer_params(model, "stage2_"), 379_392)
        # The stem's init (same build): fan_out = 7 * 7 * 64 = 3,136, std
        # sqrt(2 / 3136) = 0.02525, untruncated (a truncated normal has
        # nothing beyond 2 std; a normal 4.55%).
        kernel = keras.ops.convert_to_numpy(
            model.backbone.get_layer("stem_conv").kernel)
        std = np.sqrt(2.0 / 3136.0)
        self.assertAllClose(kernel.std(), std, rtol=0.05)
        self.assertGreater(np.mean(np.abs(kernel) > 2 * std), 0.03)

    @SKIP_ON_JAX
    def test_outputs_and_stem(self):
        model = classifier(
            "resnet50", 4, 2, blocks_per_stage=ONE_BLOCK,
            input_shape=(32, 32, 3),
        )
        # Expert m: its own stage 3-4 branch and head (the experts differ).
        out = assert_experts_wired(
            self, model, np.random.rand(2, 32, 32, 3).astype("float32"))
        self.assertEqual(tuple(out["logits"].shape), (2, 4))
        self.assertEqual(tuple(out["expert_logits"].shape), (2, 2, 4))
        # 32 -> conv/2 -> 16 -> pool/2 -> 8 (PyTorch: floor((16+2-3)/2)+1).
        trunk = model.backbone
        self.assertEqual(trunk.get_layer("stem_pool").output.shape[1:3], (8, 8))
        # Stride on the 3x3 conv (v1.5), 1x1 projection with the same stride.
        conv1 = trunk.get_layer("expert_0_stage3_block0_conv1")
        conv2 = trunk.get_layer("expert_0_stage3_block0_conv2")
        proj = trunk.get_layer("expert_0_stage3_block0_downsample_conv")
        self.assertEqual(
            (conv1.strides, conv2.strides, proj.strides),
            ((1, 1), (2, 2), (2, 2)),
        )

    def test_bad_arguments_raise(self):
        with self.assertRaisesRegex(ValueError, r"shared_stages in \[0, 4\]"):
            classifier("resnet50", 10, 3, shared_stages=5)
        with self.assertRaisesRegex(ValueError, "4 ints >= 1"):
            classifier("resnet50", 10, 3, blocks_per_stage=(1, 1, 1))

    @pytest.mark.large
    @SKIP_ON_JAX
    def test_reference_counts(self):
        # One build (~10 s); M = 1 follows from the per-expert breakdown.
        # docs/reference.md §1.5: conv1 9,408 + bn1 128 + layer1 215,808 +
        # layer2 1,219,584 + 3 * (7,098,368 + 14,964,736 + 2048 * 1000)
        # = 73,778,240.
        model = classifier("resnet50", 1000, 3, input_shape=ANY_SIZE)
        self.assertEqual(count_params(model.trainable_weights), 73_778_240)
        self.assertEqual(count_params(model.non_trainable_weights), 139_136)
        self.assertEqual(count_layer_params(model, "stage1_"), 215_808)
        self.assertEqual(count_layer_params(model, "stage2_"), 1_219_584)
        self.assertEqual(
            count_layer_params(model, "expert_2_stage3_"), 7_098_368
        )
        self.assertEqual(
            count_layer_params(model, "expert_0_stage4_"), 14_964_736
        )
        # M = 1 is the shared trunk plus one expert's stages and head.
        self.assertEqual(_single_expert_params(model), 25_556_032)


class ResNeXt50Test(TestCase):
    def test_one_block_per_stage_counts_and_forward(self):
        # Width int(planes * 4 / 64) * 32 = 2 * planes, 3x3 convs in 32
        # groups: (64, 128, 256) 63,488; (256, 256, 512) 349,184;
        # (512, 512, 1024) 1,390,592; (1024, 1024, 2048) 5,550,080.
        # M = 2, C = 4: 9,536 + 63,488 + 349,184
        # + 2 * (1,390,592 + 5,550,080 + 8,192) = 14,319,936.
        self.assertEqual(_bottleneck(64, 128, 256, groups=32), 63_488)
        model = classifier(
            "resnext50", 4, 2, blocks_per_stage=ONE_BLOCK,
            input_shape=(32, 32, 3),
        )
        self.assertEqual(count_params(model.trainable_weights), 14_319_936)
        self.assertEqual(
            model.backbone.get_layer("expert_0_stage4_block0_conv2").groups,
            32
        )
        out = assert_experts_wired(
            self, model, np.random.rand(1, 32, 32, 3).astype("float32"))
        self.assertEqual(tuple(out["expert_logits"].shape), (1, 2, 4))

    @pytest.mark.large
    @SKIP_ON_JAX
    def test_reference_counts(self):
        # docs/reference.md §1.5: 72,258,880 trainable (layer1 205,824, layer2
        # 1,197,056, layer3s 21,067,776 = 3 * 7,022,592), 178,816 BN stats.
        model = classifier("resnext50", 1000, 3, input_shape=ANY_SIZE)
        self.assertEqual(count_params(model.trainable_weights), 72_258_880)
        self.assertEqual(count_params(model.non_trainable_weights), 178_816)
        self.assertEqual(count_layer_params(model, "stage1_"), 205_824)
        self.assertEqual(count_layer_params(model, "stage2_"), 1_197_056)
        self.assertEqual(
            count_layer_params(model, "expert_1_stage3_"), 7_022_592
        )
        self.assertEqual(_single_expert_params(model), 25_027_904)
