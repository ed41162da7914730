"""The NumPy core's recipe records and Mixup/CutMix settings."""

import numpy as np

from balpoe_keras.data import batching
from balpoe_keras.data import mixing
from balpoe_keras.data import recipes
from tests.test_case import TestCase


class RecipesTest(TestCase):
    def test_records_say_what_each_recipe_does(self):
        standard = recipes.get_recipe("cifar_standard")
        self.assertEqual((standard.crop_padding, standard.max_degrees),
                         (4, 15.0))
        self.assertEqual(recipes.get_recipe("cifar_crop_flip").max_degrees,
                         0.0)
        cutout = recipes.get_recipe("cifar_autoaugment_cutout")
        self.assertTrue(cutout.autoaugment)
        self.assertEqual(cutout.cutout, 16)
        self.assertIsNone(recipes.get_recipe("imagenet_standard")
                          .crop_padding)
        # The in-memory executor: crop, flip and rotation only.
        self.assertEqual(recipes.IN_MEMORY_RECIPES,
                         ("none", "cifar_crop_flip", "cifar_standard"))
        with self.assertRaisesRegex(ValueError, "Unknown recipe 'cifar'.*"
                                    "cifar_standard"):
            recipes.get_recipe("cifar")


class MixingTest(TestCase):
    def test_mode_follows_the_alphas(self):
        self.assertIsNone(mixing.mix_mode(0.0, 0.0))
        self.assertEqual(mixing.mix_mode(0.4), "mixup")
        self.assertEqual(mixing.mix_mode(0.0, 1.0), "cutmix")
        self.assertEqual(mixing.mix_mode(0.4, 1.0), "mixup_cutmix")
        self.assertEqual(mixing.validate_mixing(np.float32(0.8)),
                         (0.8000000119209290, 0.0, "mixup"))

    def test_bad_settings_name_the_argument(self):
        with self.assertRaisesRegex(ValueError, "mixup_alpha.*>= 0.*"
                                    "Received: mixup_alpha=-0.1"):
            mixing.validate_mixing(-0.1)
        with self.assertRaisesRegex(ValueError, "cutmix_alpha=nan"):
            mixing.validate_mixing(0.4, float("nan"))
        with self.assertRaisesRegex(ValueError, "Unknown mix mode"):
            mixing.validate_mixing(0.4, 0.0, "blend")
        with self.assertRaisesRegex(ValueError, "cutmix_alpha > 0"):
            mixing.validate_mixing(0.4, 0.0, "cutmix")
        with self.assertRaisesRegex(ValueError, "num_classes=None"):
            mixing.validate_mixing(0.4, num_classes=None)
        # No mixing: the number of classes is not needed.
        self.assertEqual(mixing.validate_mixing(0.0, num_classes=None),
                         (0.0, 0.0, None))


class BatchingTest(TestCase):
    def test_steps_keep_or_drop_the_partial_batch(self):
        # 12,406 CIFAR-10-LT images at batch 128: 96 full batches + 118.
        self.assertEqual(batching.compute_steps_per_epoch(12406, 128), 97)
        self.assertEqual(batching.compute_steps_per_epoch(12406, 128, True),
                         96)
        self.assertEqual(batching.compute_steps_per_epoch(256, 128, True), 2)
