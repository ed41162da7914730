"""Settings: flags from the config fields, flagfiles, resolution, checks."""

import dataclasses
import os
import subprocess
import sys

import keras
import pytest

from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import run
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.experiments.flags_util import parse
from tests.experiments.flags_util import setting_flagfiles
from tests.test_case import TestCase

ConfigError = config_lib.ConfigError


class FlagsFromFieldsTest(TestCase):
    def test_every_field_has_its_flag_with_default_and_help(self):
        for field in dataclasses.fields(config_lib.ExperimentConfig):
            name = config_lib.flag_name(field)
            flag = run.FLAGS[name]
            self.assertIn(field.metadata["help"], flag.help, name)
            default = field.default
            if field.metadata["item"] is not None and default is not None:
                default = [str(v) for v in default]
            self.assertEqual(flag.default, default, name)
        self.assertEqual(config_lib.flag_name(next(
            f for f in dataclasses.fields(config_lib.ExperimentConfig)
            if f.name == "global_batch_size")), "batch_size")

    def test_enum_flags_list_the_registry(self):
        self.assertEqual(sorted(run.FLAGS["dataset"].parser.enum_values),
                         sorted(config_lib.DATASET_NAMES))
        self.assertEqual(
            sorted(run.FLAGS["architecture"].parser.enum_values),
            sorted(config_lib.ARCHITECTURES))


class FlagfileTest(TestCase):
    def test_every_setting_reads_a_base_and_parses(self):
        paths = setting_flagfiles()
        self.assertGreaterEqual(len(paths), 25)
        for path in paths:
            config = parse(f"--flagfile={path}")
            self.assertEqual(len(config.lambdas), config.num_experts, path)
            with open(path) as f:
                text = f.read()
            self.assertIn("Command", text, path)
            self.assertIn("runtime", text.lower(), path)
            self.assertIn("--flagfile=", text, path)  # its base

    def test_nested_flagfiles_resolve_from_any_working_directory(self):
        here = os.getcwd()
        try:
            os.chdir(FLAGFILE_DIR)
            inside = parse("--flagfile=cifar100.flags")
        finally:
            os.chdir(here)
        outside = parse(f"--flagfile={FLAGFILE_DIR}/cifar100.flags")
        self.assertEqual(inside, outside)
        self.assertEqual(inside.lr_step_epochs, (160, 180))  # from the base

    def test_expand_flagfiles_skips_comments_and_refuses_cycles(self):
        tmp = self.get_temp_dir()
        os.makedirs(os.path.join(tmp, "sub"))
        with open(os.path.join(tmp, "sub", "base.flags"), "w") as f:
            f.write("# comment\n// another\n\n--epochs=7\n")
        with open(os.path.join(tmp, "top.flags"), "w") as f:
            f.write("--flagfile=sub/base.flags\n--seed=3\n")
        argv = run.expand_flagfiles(
            ["x", f"--flagfile={tmp}/top.flags", "--seed=4"])
        self.assertEqual(argv, ["x", "--epochs=7", "--seed=3", "--seed=4"])
        with open(os.path.join(tmp, "loop.flags"), "w") as f:
            f.write("--flagfile=loop.flags\n")
        with self.assertRaisesRegex(run.flags.Error, "includes itself"):
            run.expand_flagfiles([f"--flagfile={tmp}/loop.flags"])

    def test_paper_settings(self):
        c100 = parse(f"--flagfile={FLAGFILE_DIR}/cifar100.flags")
        self.assertEqual(c100.lambdas, (1.0, 0.0, -1.0))
        self.assertEqual(c100.taus, [0.0, 1.0, 2.0])
        self.assertEqual((c100.epochs, c100.mixup_alpha), (200, 0.4))
        imnet = parse(f"--flagfile={FLAGFILE_DIR}/imagenet_lt_resnext50.flags")
        self.assertEqual(imnet.lambdas, (1.0, -0.25, -1.5))
        self.assertEqual((imnet.global_batch_size, imnet.schedule,
                          imnet.shared_stages), (64, "cosine", 2))
        seven = parse(
            f"--flagfile={FLAGFILE_DIR}/cifar100_ir100_7experts_long.flags")
        self.assertAllClose(seven.lambdas, [1, 2 / 3, 1 / 3, 0, -1 / 3,
                                            -2 / 3, -1], atol=1e-9)
        self.assertEqual((seven.epochs, seven.recipe),
                         (400, "cifar_autoaugment"))
        ce = parse(f"--flagfile={FLAGFILE_DIR}/cifar10_ir100_ce.flags")
        self.assertEqual((ce.num_experts, ce.lambdas), (1, (1.0,)))
        long10 = parse(f"--flagfile={FLAGFILE_DIR}/cifar10_ir100_long.flags")
        self.assertEqual((long10.recipe, long10.lr_step_epochs),
                         ("cifar_crop_flip", (320, 360)))


class ResolutionTest(TestCase):
    base = ("--workdir=/tmp/x",)

    def test_dataset_defaults_fill_unset_flags(self):
        imnet = parse(*self.base, "--dataset=imagenet_lt",
                      "--allow_unbalanced_lambdas")
        self.assertEqual((imnet.imbalance_ratio, imnet.architecture,
                          imnet.recipe, imnet.shared_stages),
                         (0.0, "resnet50", "imagenet_standard", 2))
        cifar = parse(*self.base)
        self.assertEqual((cifar.imbalance_ratio, cifar.shared_stages),
                         (100.0, 1))

    def test_a_dataset_alone_trains_with_its_reference_settings(self):
        # --dataset without a flagfile: the training settings of that
        # dataset's reference flagfile, not CIFAR-100's.
        names = ["lambdas", *config_lib.TRAINING_DEFAULTS]
        for dataset, flagfile in (
                ("cifar10_lt", "cifar10_ir100_standard.flags"),
                ("cifar10_lt_folder", "cifar10_folder_ir100_standard.flags"),
                ("cifar100_lt", "cifar100_ir100_standard.flags"),
                ("imagenet_lt", "imagenet_lt_resnet50.flags"),
                ("inaturalist2018", "inat2018_resnet50.flags")):
            alone = parse(*self.base, f"--dataset={dataset}")
            reference = parse(f"--flagfile={FLAGFILE_DIR}/{flagfile}")
            self.assertEqual(reference.dataset, dataset)
            for name in names:
                with self.subTest(dataset=dataset, setting=name):
                    self.assertEqual(getattr(alone, name),
                                     getattr(reference, name))
        self.assertEqual(parse(*self.base, "--dataset=cifar10_lt")
                         .mixup_alpha, 0.8)
        imnet = parse(*self.base, "--dataset=imagenet_lt")
        self.assertEqual((imnet.lambdas, imnet.schedule, imnet.epochs),
                         ((1.0, -0.25, -1.5), "cosine", 180))

    def test_given_settings_win_over_the_dataset_defaults(self):
        config = parse(*self.base, "--dataset=imagenet_lt", "--mixup_alpha=0",
                       "--batch_size=32", "--schedule=step",
                       "--num_experts=5")
        self.assertEqual((config.mixup_alpha, config.global_batch_size,
                          config.schedule, config.warmup_epochs),
                         (0.0, 32, "step", 0))
        self.assertEqual(config.lambdas, (1.0, 0.375, -0.25, -0.875, -1.5))
        with self.assertRaisesRegex(ConfigError, "average to -0.25"):
            parse(*self.base, "--dataset=imagenet_lt",
                  "--noallow_unbalanced_lambdas")

    def test_float32_unless_bfloat16_is_asked_for(self):
        # bfloat16 is opt-in (its ECE was not within float32's seed spread).
        for flagfile in ("quickstart.flags", "cifar10_ir100_standard.flags"):
            config = parse(*self.base, f"--flagfile={FLAGFILE_DIR}/{flagfile}")
            self.assertEqual(config.mixed_precision, "float32", flagfile)
        self.assertEqual(parse(*self.base, "--mixed_precision=auto")
                         .mixed_precision, "auto")

    def test_explicit_shared_stages_is_kept_for_every_architecture(self):
        # Once silently rebuilt with 2 shared stages.
        config = parse(*self.base, "--dataset=imagenet_lt",
                       "--shared_stages=1")
        self.assertEqual(config.shared_stages, 1)
        with self.assertRaisesRegex(ConfigError, "--shared_stages.*0..3"):
            parse(*self.base, "--shared_stages=4")

    def test_mix_mode(self):
        self.assertEqual(parse(*self.base).mix_mode, "mixup")
        self.assertIsNone(parse(*self.base, "--mixup_alpha=0").mix_mode)
        self.assertEqual(parse(*self.base, "--mixup_alpha=0",
                               "--cutmix_alpha=1").mix_mode, "cutmix")
        # Both > 0 once ran CutMix only; now the reference's mixup_cutmix.
        self.assertEqual(parse(*self.base, "--cutmix_alpha=1").mix_mode,
                         "mixup_cutmix")

    def test_differences_ignore_output_settings(self):
        a = parse(*self.base)
        b = parse(*self.base, "--epochs=300", "--eval_every=5",
                  "--noexport", "--workdir=/tmp/y")
        self.assertEqual(a.differences(b), [])
        c = parse(*self.base, "--mixup_alpha=0.2", "--lambdas=1,0,-1",
                  "--batch_size=64")
        self.assertEqual(
            [name for name, _, _ in a.differences(c)],
            ["mixup_alpha", "batch_size"])

    def test_linear_learning_rate_scaling(self):
        self.assertEqual(parse(*self.base).scaled_learning_rate, 0.1)
        big = parse(*self.base, "--batch_size=512",
                    "--learning_rate_batch_size=128")
        self.assertAllClose(big.scaled_learning_rate, 0.4)
        self.assertEqual(big.warmup_epochs, 5)

    def test_config_json_round_trip(self):
        config = parse(*self.base, "--lr_step_epochs=")
        path = os.path.join(self.get_temp_dir(), "config.json")
        with open(path, "w") as f:
            f.write(config.to_json())
        self.assertEqual(config_lib.ExperimentConfig.from_json(path), config)

    def test_scale_step_schedule(self):
        scale = config_lib.scale_step_schedule
        self.assertEqual(scale(200), (5, (160, 180)))
        self.assertEqual(scale(20), (1, (16, 18)))
        self.assertEqual(scale(10), (1, (8, 9)))
        self.assertEqual(scale(1), (1, (1, 2)))
        self.assertEqual(scale(400, 400, 10, (320, 360)), (10, (320, 360)))
        with self.assertRaisesRegex(ValueError, "epochs >= 1"):
            scale(0)


class ValidationTest(TestCase):
    base = ("--workdir=/tmp/x",)

    def assertConfigError(self, regex, *args):
        with self.assertRaisesRegex(ConfigError, regex):
            parse(*self.base, *args)

    def test_unbalanced_lambdas_need_the_explicit_override(self):
        self.assertConfigError("average to 0.333", "--lambdas=1,0,0")
        config = parse(*self.base, "--lambdas=1,0,0",
                       "--allow_unbalanced_lambdas")
        self.assertEqual(config.lambdas, (1.0, 0.0, 0.0))

    def test_lambda_count_must_match_experts(self):
        self.assertConfigError("--lambdas has 2 values but --num_experts=3",
                               "--lambdas=1,-1")
        config = parse(*self.base, "--num_experts=5")
        self.assertEqual(config.lambdas, (1.0, 0.5, 0.0, -0.5, -1.0))

    def test_bad_values_name_the_flag(self):
        self.assertConfigError("--imbalance_ratio", "--imbalance_ratio=0.01")
        self.assertConfigError("--warmup_epochs", "--epochs=3",
                               "--warmup_epochs=5")
        self.assertConfigError("--lr_step_epochs", "--lr_step_epochs=180,160")
        self.assertConfigError("--imbalance_ratio", "--dataset=imagenet_lt",
                               "--imbalance_ratio=100")
        self.assertConfigError("resnext50 needs 224",
                               "--architecture=resnext50")
        self.assertConfigError("--batch_size", "--batch_size=0")
        self.assertConfigError("--epochs", "--epochs=-3")
        self.assertConfigError("--eval_every", "--eval_every=-1")
        self.assertConfigError("--recipe.*tfdata", "--input_pipeline=arrays",
                               "--recipe=cifar_autoaugment")
        self.assertConfigError("--cutmix_alpha.*Mixup only",
                               "--input_pipeline=arrays", "--cutmix_alpha=1")
        self.assertConfigError("--num_experts", "--num_experts=0")


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the CLI's errors, checked once (in the TF pass)")
class CommandLineTest(TestCase):
    def _run(self, *args, cwd=None):
        # As a user runs it: no TF_CPP_MIN_LOG_LEVEL (conftest sets one).
        env = {k: v for k, v in os.environ.items()
               if k != "TF_CPP_MIN_LOG_LEVEL"}
        return subprocess.run(
            [sys.executable, "-m", "balpoe_keras.experiments.run", *args],
            capture_output=True, text=True, cwd=cwd, timeout=120, env=env)

    def test_bad_flags_give_one_line_errors_without_usage_or_tf_logs(self):
        workdir = os.path.join(self.get_temp_dir(), "w")
        for args, needle in [
                (["--epochs=-3"], "--epochs: must be >= 1"),
                (["--lambdas=1,-1"], "--lambdas has 2 values"),
                (["--epochs=abc"], "--epochs=abc"),
                (["--flagfile=/no/such.flags"], "cannot read flagfile"),
                (["--dataset=cifar10_lt_folder", "--data_dir=/nonexistent"],
                 "--data_dir=/nonexistent does not exist")]:
            done = self._run(f"--workdir={workdir}", *args)
            self.assertEqual(done.returncode, 2, args)
            lines = done.stderr.strip().splitlines()
            self.assertEqual(len(lines), 1, done.stderr)
            self.assertIn(needle, lines[0])
            self.assertTrue(lines[0].startswith("error: "), lines[0])
            self.assertEqual(done.stdout, "")
        self.assertFalse(os.path.exists(workdir))


class CosineExtensionTest(TestCase):
    def test_more_epochs_refused_under_a_cosine_schedule_only(self):
        # A cosine run "extended" from 180 to 400 epochs restarted at lr
        # 0.0145 (cosine over 400) instead of ~2e-6, with only a note.
        from balpoe_keras.experiments import workdir as workdir_lib

        for schedule, refused in (("cosine", True), ("step", False)):
            workdir = self.get_temp_dir()
            first = parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                          f"--workdir={workdir}", f"--schedule={schedule}",
                          "--epochs=4", "--lr_step_epochs=2")
            workdir_lib.record_config(first)
            os.makedirs(os.path.join(workdir, "checkpoints"))
            open(os.path.join(workdir, "checkpoints", "ckpt-0001.keras"),
                 "w").close()
            workdir_lib.check_workdir(first)  # The same run resumes.
            longer = dataclasses.replace(first, epochs=8)
            if refused:
                with self.assertRaisesRegex(
                        workdir_lib.WorkdirError,
                        r"--schedule=cosine over 4 epochs.*--epochs=8.*"
                        r"Keep --epochs=4"):
                    workdir_lib.check_workdir(longer)
            else:
                workdir_lib.check_workdir(longer)


class LateDropNoteTest(TestCase):
    def test_drops_past_the_run_are_said_with_the_scaled_ones(self):
        from balpoe_keras.experiments.runner import late_drop_note

        def note(*flags):
            return late_drop_note(parse(
                f"--flagfile={FLAGFILE_DIR}/cifar100_ir100_standard.flags",
                "--workdir=w", *flags))

        self.assertEqual(
            note("--epochs=100"),
            "Note: the learning-rate drop(s) after epoch(s) 160,180 "
            "(--lr_step_epochs) are not reached in --epochs=100: the "
            "learning rate never drops in this run. For the reference "
            "schedule scaled to this length pass --lr_step_epochs=80,90.")
        self.assertIn("180 (--lr_step_epochs) are not reached in "
                      "--epochs=170: the learning rate drops fewer times",
                      note("--epochs=170"))
        self.assertIsNone(note())
        self.assertIsNone(note("--epochs=100", "--schedule=cosine"))


class SeedsSettingsTest(TestCase):
    def test_settings_seeds_cannot_honour_are_refused(self):
        # --seeds ignored --eval_every and --checkpoint_every silently.
        base = (f"--flagfile={FLAGFILE_DIR}/quickstart.flags", "--workdir=w",
                "--seeds=1,2")
        for flag in ("--eval_every=5", "--checkpoint_every=2"):
            with self.assertRaisesRegex(config_lib.ConfigError,
                                        f"{flag.split('=')[0]}: --seeds"):
                parse(*base, flag)
        parse(*base)
