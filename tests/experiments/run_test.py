"""The runner end to end on synthetic stand-ins for the real datasets."""

import contextlib
import glob
import io
import json
import os

import keras
import numpy as np
import pytest
from absl import app

from balpoe_keras.experiments import config as config_lib
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.experiments.flags_util import parse
from tests.test_case import TestCase

# The data package (tf.data) needs TensorFlow installed; the runner then
# trains on any Keras backend.
# (classes, train images per class, test images per class, side, channels)
FAKE_DATA = {
    "cifar10": (10, 500, 50, 32, 3),
    "cifar10_folder": (10, 500, 50, 32, 3),
    "cifar100": (100, 100, 50, 32, 3),
    "fashion_mnist": (10, 500, 50, 28, 1),
    "imagenet_lt": (1000, 2, 50, 48, 3),
    "inaturalist2018": (8142, 1, 3, 16, 3),
}


def fake_get_source(name, split="train", data_dir=None, **kwargs):
    """A balanced synthetic `ImageSource` shaped like dataset `name`."""
    from balpoe_keras import data

    classes, train, test, side, channels = FAKE_DATA[name]
    per_class = train if split == "train" else test
    labels = np.repeat(np.arange(classes), per_class)
    rng = np.random.RandomState(0 if split == "train" else 1)
    images = rng.randint(0, 256, (len(labels), side, side, channels),
                         dtype=np.uint8)
    return data.ImageSource(labels=labels, images=images, name=name,
                            split=split,
                            class_names=tuple(f"c{i}" for i in range(classes)))


@contextlib.contextmanager
def fake_data():
    from balpoe_keras import data

    real = data.get_source
    data.get_source = fake_get_source
    try:
        yield
    finally:
        data.get_source = real


def short_run_config(workdir, *overrides):
    """The quickstart flagfile cut to a few tiny steps on fake data."""
    return parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                 f"--workdir={workdir}", "--warmup_epochs=1",
                 "--lr_step_epochs=1", "--imbalance_ratio=10", *overrides)


def run(config, **kwargs):
    from balpoe_keras.experiments import runner

    stdout = io.StringIO()
    with fake_data(), contextlib.redirect_stdout(stdout):
        result = runner.run_experiment(config, **kwargs)
    return result, stdout.getvalue()


@pytest.mark.tf_only
class DryRunTest(TestCase):
    @pytest.mark.large
    def test_every_flagfile_builds_its_model_and_pipeline(self):
        # Flagfiles that differ only in numbers (imbalance ratio, epochs,
        # alpha) build the same graph and pipeline: dry-run one of each
        # kind; test_every_flagfile_parses_into_a_valid_config covers all.
        seen = set()
        paths = sorted(glob.glob(os.path.join(FLAGFILE_DIR, "*.flags")))
        for path in paths:
            config = parse(f"--flagfile={path}",
                           f"--workdir={self.get_temp_dir()}")
            kind = (config.dataset, config.architecture, config.recipe,
                    config.num_experts, config.mixup_alpha > 0)
            if kind in seen:
                continue
            seen.add(kind)
            _, out = run(config, dry_run=True)
            self.assertIn("Dry run: first batch", out, path)
            side = config.spec.image_size
            self.assertIn(f"({config.global_batch_size}, {side}, {side}, "
                          f"{config.spec.channels}) <dtype: 'float32'>", out,
                          path)
        self.assertGreaterEqual(len(seen), 12)

    def test_missing_data_names_the_places_searched(self):
        from balpoe_keras.experiments import run as run_module

        workdir = self.get_temp_dir()
        missing = os.path.join(workdir, "no_such_dir")
        config = parse(f"--flagfile={FLAGFILE_DIR}/imagenet_lt_resnet50.flags",
                       f"--workdir={workdir}", f"--data_dir={missing}")
        with self.assertRaisesRegex(SystemExit, "Data not found.*no_such_dir"):
            run_module.FLAGS.unparse_flags()
            run_module.FLAGS(["run.py",
                              f"--flagfile={FLAGFILE_DIR}/"
                              "imagenet_lt_resnet50.flags",
                              f"--workdir={workdir}", f"--data_dir={missing}"])
            run_module.main(["run.py"])
        self.assertEqual(config.dataset, "imagenet_lt")


@pytest.mark.tf_only
class EndToEndTest(TestCase):
    @pytest.mark.large
    def test_short_run_writes_report_and_exports_then_rerun_is_a_no_op(self):
        workdir = self.get_temp_dir()
        config = short_run_config(
            workdir, "--epochs=2", "--max_train_steps_per_epoch=2",
            "--batch_size=32", "--eval_batch_size=128",
        )
        results, out = run(config)
        summary = results["summary"]
        self.assertTrue(0.0 <= summary["test/balanced_accuracy"] <= 100.0)
        # Counts 500..50 at ratio 10: the few-shot group is empty -> null.
        self.assertIsNone(summary["test/acc_few"])
        for name in ("config.json", "model.keras", "train_log.csv",
                     "report/report.json", "report/report.md",
                     "report/reliability.png", "export/1/saved_model.pb"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        with open(os.path.join(workdir, "train_log.csv")) as f:
            self.assertEqual(len(f.read().strip().splitlines()), 3)
        with open(os.path.join(workdir, "report", "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["config"]["lambdas"], [1.0, 0.0, -1.0])
        self.assertIn("forward50", report["test_agnostic"])
        again, out = run(config)
        self.assertIn("already finished all 2 epochs", out)
        self.assertEqual(again["summary"], json.loads(json.dumps(summary)))

    def test_batch_size_must_be_positive(self):
        config = parse(f"--workdir={self.get_temp_dir()}")
        self.assertIsInstance(config, config_lib.ExperimentConfig)
        with self.assertRaisesRegex(app.UsageError, "--batch_size"):
            parse(f"--workdir={self.get_temp_dir()}", "--batch_size=-4")


class OtherBackendsTest(TestCase):
    @pytest.mark.large
    @pytest.mark.skipif(keras.backend.backend() == "tensorflow",
                        reason="EndToEndTest covers TensorFlow")
    def test_short_run_trains_and_reports_on_this_backend(self):
        workdir = self.get_temp_dir()
        config = short_run_config(
            workdir, "--epochs=1", "--max_train_steps_per_epoch=1",
            "--batch_size=16", "--eval_batch_size=100",
        )
        results, out = run(config)
        self.assertIn("SavedModel export skipped", out)
        self.assertEqual(results["num_experts"], 3)
        for name in ("model.keras", "report/report.json", "train_log.csv"):
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)


@pytest.mark.tf_only
class EvaluateCliTest(TestCase):
    @pytest.mark.large
    def test_evaluate_a_run_directory(self):
        from balpoe_keras.experiments import evaluate
        from balpoe_keras.experiments import runner

        workdir = self.get_temp_dir()
        config = parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                       f"--workdir={workdir}", "--imbalance_ratio=10",
                       "--notest_distributions")
        with fake_data():
            experiment_data = runner.load_data(config)
            model = runner.build_model(config, experiment_data.class_counts, 1)
        model.save(os.path.join(workdir, "model.keras"))
        runner._write_config(config)
        report_dir = os.path.join(workdir, "evaluated")
        values = evaluate.FLAGS
        values.unparse_flags()
        values(["evaluate.py", f"--model={workdir}",
                f"--report_dir={report_dir}"])
        with fake_data(), contextlib.redirect_stdout(io.StringIO()) as out:
            evaluate.main(["evaluate.py"])
        self.assertIn("test/ece=", out.getvalue())
        with open(os.path.join(report_dir, "report.json")) as f:
            report = json.load(f)
        self.assertEqual(report["class_counts"][0], 500)
        self.assertEqual(report["config"]["dataset"], "cifar10_lt_folder")

    def test_bad_model_path(self):
        from balpoe_keras.experiments import evaluate

        with self.assertRaisesRegex(app.UsageError, "does not exist"):
            evaluate.resolve_inputs("/no/such/model.keras", None)
        with self.assertRaisesRegex(app.UsageError, "without model.keras"):
            evaluate.resolve_inputs(self.get_temp_dir(), None)
