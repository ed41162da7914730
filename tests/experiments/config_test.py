"""Flag validation and every shipped flagfile (no TensorFlow needed)."""

import glob
import os

from absl import app

from balpoe_keras.experiments import config as config_lib
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.experiments.flags_util import parse
from tests.test_case import TestCase


class FlagfileTest(TestCase):
    def test_every_flagfile_parses_into_a_valid_config(self):
        paths = sorted(glob.glob(os.path.join(FLAGFILE_DIR, "*.flags")))
        self.assertGreaterEqual(len(paths), 25)
        for path in paths:
            config = parse(f"--flagfile={path}")
            self.assertEqual(len(config.lambdas), config.num_experts, path)
            with open(path) as f:
                header = f.read()
            self.assertIn("Command", header, path)
            self.assertIn("runtime", header.lower(), path)

    def test_paper_settings(self):
        c100 = parse(f"--flagfile={FLAGFILE_DIR}/cifar100.flags")
        self.assertEqual(c100.lambdas, (1.0, 0.0, -1.0))
        self.assertEqual(c100.taus, [0.0, 1.0, 2.0])
        self.assertEqual((c100.epochs, c100.mixup_alpha), (200, 0.4))
        self.assertEqual(c100.lr_step_epochs, (160, 180))
        imnet = parse(f"--flagfile={FLAGFILE_DIR}/imagenet_lt_resnext50.flags")
        self.assertEqual(imnet.lambdas, (1.0, -0.25, -1.5))
        self.assertEqual((imnet.global_batch_size, imnet.schedule),
                         (64, "cosine"))
        seven = parse(
            f"--flagfile={FLAGFILE_DIR}/cifar100_ir100_7experts_long.flags")
        self.assertAllClose(seven.lambdas, [1, 2 / 3, 1 / 3, 0, -1 / 3,
                                            -2 / 3, -1], atol=1e-9)
        ce = parse(f"--flagfile={FLAGFILE_DIR}/cifar10_ir100_ce.flags")
        self.assertEqual((ce.num_experts, ce.lambdas), (1, (1.0,)))

    def test_recipes_match_the_data_package(self):
        recipes_path = os.path.join(FLAGFILE_DIR, "..", "balpoe_keras",
                                    "data", "recipes.py")
        with open(recipes_path) as f:
            source = f.read()
        for recipe in config_lib.RECIPES:
            self.assertIn(f'"{recipe}"', source)


class ValidationTest(TestCase):
    base = ("--workdir=/tmp/x",)

    def assertUsageError(self, regex, *args):
        with self.assertRaisesRegex(app.UsageError, regex):
            parse(*self.base, *args)

    def test_unbalanced_lambdas_need_the_explicit_override(self):
        self.assertUsageError("average to 0.333", "--lambdas=1,0,0")
        config = parse(*self.base, "--lambdas=1,0,0",
                       "--allow_unbalanced_lambdas")
        self.assertEqual(config.lambdas, (1.0, 0.0, 0.0))

    def test_lambda_count_must_match_experts(self):
        self.assertUsageError("--lambdas has 2 values but --num_experts=3",
                              "--lambdas=1,-1")
        config = parse(*self.base, "--num_experts=5")
        self.assertEqual(config.lambdas, (1.0, 0.5, 0.0, -0.5, -1.0))

    def test_bad_values_name_the_flag(self):
        self.assertUsageError("--imbalance_ratio", "--imbalance_ratio=0.01")
        self.assertUsageError("--recipe", "--recipe=autoaug")
        self.assertUsageError("--warmup_epochs", "--epochs=3",
                              "--warmup_epochs=5")
        self.assertUsageError("--lr_step_epochs", "--lr_step_epochs=180,160")
        self.assertUsageError("--imbalance_ratio",
                              "--dataset=imagenet_lt")
        self.assertUsageError("resnext50 needs 224",
                              "--architecture=resnext50")
        self.assertUsageError("--batch_size", "--batch_size=0")

    def test_config_json_round_trip(self):
        config = parse(*self.base)
        self.assertIn('"lambdas": [', config.to_json())
