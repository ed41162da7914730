"""The runner end to end on synthetic stand-ins for the real datasets."""

import contextlib
import csv
import dataclasses
import glob
import io
import json
import os
import subprocess
import sys

import keras
import numpy as np
import pytest

from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import workdir as workdir_lib
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.experiments.flags_util import parse
from tests.experiments.flags_util import setting_flagfiles
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
    from balpoe_keras.data.source import ImageSource

    classes, train, test, side, channels = FAKE_DATA[name]
    per_class = train if split == "train" else test
    labels = np.repeat(np.arange(classes), per_class)
    rng = np.random.RandomState(0 if split == "train" else 1)
    images = rng.randint(0, 256, (len(labels), side, side, channels),
                         dtype=np.uint8)
    return ImageSource(labels=labels, images=images, name=name,
                            split=split,
                            class_names=tuple(f"c{i}" for i in range(classes)))


@contextlib.contextmanager
def fake_data():
    """Synthetic sources for the runner (`balpoe_keras.data.get_source`)."""
    from balpoe_keras.data import sources

    real = sources.get_source
    sources.get_source = fake_get_source
    try:
        yield
    finally:
        sources.get_source = real


def short_run_config(workdir, *overrides):
    """The quickstart flagfile cut to a few tiny steps of the small
    ResNet-8 on fake data (the runner's behaviour does not depend on the
    backbone; DryRunTest builds every flagfile's)."""
    return parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                 f"--workdir={workdir}", "--warmup_epochs=1",
                 "--lr_step_epochs=1", "--imbalance_ratio=10",
                 "--architecture=resnet8", *overrides)


def assert_scores_match_evaluate(case, model_path, test, summary,
                                 batch_size):
    """The report's balanced accuracy, accuracy and ECE are what the saved
    model's own evaluate() gives on `test` (one unit, one path)."""
    model = keras.saving.load_model(model_path)
    scores = model.evaluate(test.images.astype("float32") / 255.0,
                            test.labels, batch_size=batch_size, verbose=0,
                            return_dict=True)
    for key in ("balanced_accuracy", "accuracy", "ece"):
        case.assertAlmostEqual(scores[key], summary[f"test/{key}"], 5, key)
    return model


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
        for path in setting_flagfiles():
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
            # Mixup (or CutMix) gives soft labels, otherwise class ids.
            mixing = config.mixup_alpha > 0 or config.cutmix_alpha > 0
            batch, classes = config.global_batch_size, config.spec.num_classes
            labels = (f"labels ({batch}, {classes}) <dtype: 'float32'>"
                      if mixing else f"labels ({batch},) <dtype: 'int32'>")
            self.assertIn(labels, out, path)
        self.assertGreaterEqual(len(seen), 12)

    def test_console_names_the_settings_file_instead_of_printing_it(self):
        workdir = self.get_temp_dir()
        config = short_run_config(workdir)
        _, out = run(config, dry_run=True)
        settings = os.path.join(workdir, "config.json")
        self.assertIn(f"Settings: {settings}", out)
        self.assertTrue(os.path.exists(settings))
        self.assertNotIn('"weight_decay"', out)
        _, out = run(config, dry_run=True, show_config=True)
        self.assertIn('"weight_decay": 0.0005', out)

    def test_missing_data_names_the_places_searched(self):
        workdir = self.get_temp_dir()
        missing = os.path.join(workdir, "no_such_dir")
        config = parse(f"--flagfile={FLAGFILE_DIR}/imagenet_lt_resnet50.flags",
                       f"--workdir={workdir}", f"--data_dir={missing}")
        from balpoe_keras.experiments import runner

        with self.assertRaisesRegex(FileNotFoundError,
                                    "--data_dir=.*no_such_dir"):
            runner.run_experiment(config)


class TestDistributionsTest(TestCase):
    def test_each_dataset_gets_its_reference_test_sets(self):
        # iNaturalist has 3 validation images per class: its reference
        # lists are forward3/2, uniform, backward2/3 (sizes 11,147 /
        # 12,906 / 24,426 / 12,906 / 11,137; the generator keeps every
        # class: 11,148 in forward3 and backward3). CIFAR's go to 50: the
        # fake CIFAR-100 test set's 50 images per class give
        # sum_c int(50 * (1 / rho)^(c / 99)) images.
        pytest.importorskip("tensorflow")  # The benchmark loaders need it.
        from balpoe_keras.experiments import inputs

        for dataset, expected in (
                ("inaturalist2018", {"forward3": 11148, "forward2": 12906,
                                     "uniform": 24426, "backward2": 12906,
                                     "backward3": 11148}),
                ("cifar100_lt", {"forward50": 1219, "forward25": 1453,
                                 "forward10": 1911, "forward5": 2442,
                                 "forward2": 3558, "uniform": 5000,
                                 "backward2": 3558, "backward5": 2442,
                                 "backward10": 1911, "backward25": 1453,
                                 "backward50": 1219})):
            config = parse(f"--dataset={dataset}", "--workdir=unused")
            with fake_data():
                data = inputs.load_data(config)
            sizes = {k: len(v) for k, v in data.test_distributions.items()}
            self.assertEqual(list(sizes), list(expected), dataset)
            self.assertEqual(sizes, expected, dataset)


    def test_shifted_sets_follow_training_frequency_not_class_ids(self):
        # ImageNet-LT's ids rank nothing: its forward lists put the most
        # frequent training classes at the head. A fake long-tailed train
        # list whose counts do not follow the ids: the class with the
        # most training images keeps all 50 test images in forward50 and
        # int(50 / 50) = 1 in backward50, the rarest the reverse.
        pytest.importorskip("tensorflow")
        from balpoe_keras.data import sources
        from balpoe_keras.data.source import ImageSource
        from balpoe_keras.experiments import inputs

        counts = 1 + (np.arange(1000) * 397) % 1000  # a permutation of 1..1000

        def fake(name, split="train", data_dir=None, **kwargs):
            per_class = counts if split == "train" else np.full(1000, 50)
            labels = np.repeat(np.arange(1000), per_class)
            return ImageSource(labels, [f"c{i}" for i in range(1000)],
                               images=np.zeros((len(labels), 1, 1, 3),
                                               np.uint8), split=split)

        real, sources.get_source = sources.get_source, fake
        try:
            data = inputs.load_data(parse("--dataset=imagenet_lt",
                                          "--workdir=unused"))
        finally:
            sources.get_source = real
        labels = data.test.labels
        head, tail = int(np.argmax(counts)), int(np.argmin(counts))
        forward = np.bincount(labels[data.test_distributions["forward50"]],
                              minlength=1000)
        backward = np.bincount(
            labels[data.test_distributions["backward50"]], minlength=1000)
        self.assertEqual((forward[head], forward[tail]), (50, 1))
        self.assertEqual((backward[head], backward[tail]), (1, 50))
        # Per class, forward counts never rise as training counts fall.
        by_frequency = forward[np.argsort(-counts, kind="stable")]
        self.assertTrue(np.all(np.diff(by_frequency) <= 0))
        self.assertEqual(forward.sum(), 12058)  # The list's size.


@pytest.mark.large
class EndToEndTest(TestCase):
    """A short run on this backend: report, exports, resume rules."""

    def test_short_run_then_rerun_extend_and_refuse(self):
        workdir = self.get_temp_dir()
        config = short_run_config(
            workdir, "--epochs=1", "--max_train_steps_per_epoch=2",
            "--batch_size=32", "--eval_batch_size=128", "--eval_every=1",
        )
        results, out = run(config)
        summary = results["summary"]
        # One unit, one path: the report's fractions are what a user's
        # evaluate() of the saved model reports on the same test set.
        from balpoe_keras.experiments import inputs

        with fake_data():
            test = inputs.load_data(config).test
        model = assert_scores_match_evaluate(
            self, os.path.join(workdir, "model.keras"), test, summary, 128)
        # Counts 500..50 at ratio 10: the few-shot group is empty -> null.
        self.assertIsNone(summary["test/acc_few"])
        names = ["config.json", "model.keras", "train_log.csv",
                 "report/report.json", "report/report.md",
                 "report/reliability.png", "export/1/saved_model.pb"]
        for name in names:
            self.assertTrue(os.path.exists(os.path.join(workdir, name)), name)
        self._assert_every_model_reloads_after_import_balpoe_keras(workdir)
        with open(os.path.join(workdir, "report", "report.json")) as f:
            report = json.load(f)
        self._assert_served_as_predicted(workdir, model, test, report)
        self.assertEqual(report["config"]["lambdas"], [1.0, 0.0, -1.0])
        from balpoe_keras.experiments import runner

        self.assertEqual(report["dtype_policy"],
                         runner.resolve_precision(config))
        self.assertIn("forward50", report["test_agnostic"])
        self.assertIn("Epoch 1/1: loss", out)  # one line, no \r updates
        self.assertNotIn("\r", out)

        # The seed fixes the run, initial weights included: the same
        # settings in another folder, in this process whose global RNG the
        # first run has moved on, train the same weights (bit for bit
        # here; the tolerance only allows for multi-threaded float sums,
        # far below what other initial weights give).
        twin_dir = self.get_temp_dir()
        run(dataclasses.replace(config, workdir=twin_dir, export=False,
                                test_distributions=False))
        twin_model = keras.saving.load_model(
            os.path.join(twin_dir, "model.keras"))
        for got, want in zip(twin_model.get_weights(), model.get_weights()):
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)

        again, out = run(config)
        self.assertIn("already finished all 1 epochs", out)
        self.assertEqual(again["summary"], json.loads(json.dumps(summary)))

        # Different settings: refused, naming the flags; the record stays.
        # (Output-only flags may change: no export or shifted test sets
        # in the calls below, which the first call tested.)
        other = short_run_config(
            workdir, "--epochs=1", "--max_train_steps_per_epoch=2",
            "--batch_size=32", "--mixup_alpha=0.2", "--lambdas=2,0,-2",
            "--noexport", "--notest_distributions")
        with self.assertRaisesRegex(
                workdir_lib.WorkdirError, r"--mixup_alpha=0.2 \(the run used "
                r"0.8\), --lambdas=2,0,-2 \(the run used 1,0,-1\).*"
                "--overwrite"):
            run(other)
        recorded = config_lib.ExperimentConfig.from_json(
            os.path.join(workdir, "config.json"))
        self.assertEqual(recorded.mixup_alpha, 0.8)

        # More epochs extend the run: one more CSV row, test columns kept.
        extended = short_run_config(
            workdir, "--epochs=2", "--max_train_steps_per_epoch=2",
            "--batch_size=32", "--eval_batch_size=128", "--eval_every=1",
            "--noexport", "--notest_distributions")
        results, out = run(extended)
        self.assertIn("Resuming from ckpt-0001.keras: 1/2 epochs", out)
        # images/s counts only this invocation's epoch (not all 2).
        timing = results["timing"]
        self.assertEqual((timing["epochs_this_invocation"],
                          timing["resumed_from_epoch"]), (1, 1))
        # Both figures are rounded to 0.1: the rate must lie within what
        # the rounded seconds allow (counting both epochs would double it).
        seconds = timing["train_seconds_this_invocation"]
        self.assertGreaterEqual(timing["images_per_sec_this_invocation"],
                                2 * 32 / (seconds + 0.05) - 0.05)
        self.assertLessEqual(timing["images_per_sec_this_invocation"],
                             2 * 32 / max(seconds - 0.05, 1e-3) + 0.05)
        with open(os.path.join(workdir, "train_log.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([r["epoch"] for r in rows], ["0", "1"])
        self.assertFalse([k for k in rows[0] if k.startswith("val_")])
        self.assertTrue(all(float(r["test/balanced_accuracy"]) >= 0
                            for r in rows))
        if keras.backend.backend() == "tensorflow":
            events = os.listdir(os.path.join(workdir, "tensorboard",
                                             "train"))
            self.assertEqual(len(events), 2)  # one per invocation

        # --overwrite starts over.
        _, out = run(other, overwrite=True)
        self.assertNotIn("Resuming", out)

    def _assert_served_as_predicted(self, workdir, model, test, report):
        """The run's SavedModel, loaded by TensorFlow in a process of its
        own (as a server would; on JAX and PyTorch the runner exported it
        from model.keras in a TensorFlow subprocess), serves the trained
        model's probabilities and describes its classes and lambdas."""
        images = test.images[:16].astype("float32") / 255.0
        inputs = os.path.join(self.get_temp_dir(), "images.npy")
        served = os.path.join(self.get_temp_dir(), "served.npy")
        np.save(inputs, images)
        export = os.path.join(workdir, "export", "1")
        script = (
            "import sys, numpy as np, tensorflow as tf\n"
            "serve = tf.saved_model.load(sys.argv[1]).signatures"
            "['serving_default']\n"
            "out = serve(images=tf.constant(np.load(sys.argv[2])))\n"
            "np.save(sys.argv[3], out['probabilities'].numpy())\n")
        result = subprocess.run(
            [sys.executable, "-c", script, export, inputs, served],
            capture_output=True, text=True, timeout=300,
            # A server runs no Keras backend; TensorFlow imports Keras, whose
            # torch backend would load PyTorch after TensorFlow (a crash).
            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2",
                 "KERAS_BACKEND": "tensorflow"})
        self.assertEqual(result.returncode, 0, result.stderr[-3000:])
        # TensorFlow's float sums against this backend's: the logits carry
        # the scale 30, so allow 1e-4 (other weights differ by ~1e-1).
        np.testing.assert_allclose(
            np.load(served), model.predict_proba(images, verbose=0),
            atol=1e-4)
        with open(os.path.join(export, "assets.extra",
                               "export_metadata.json")) as f:
            metadata = json.load(f)
        self.assertEqual(metadata["class_counts"], report["class_counts"])
        self.assertEqual(metadata["lambdas"], [1.0, 0.0, -1.0])
        self.assertEqual(metadata["class_names"], report["class_names"])

    def _assert_every_model_reloads_after_import_balpoe_keras(self, workdir):
        paths = sorted(glob.glob(os.path.join(workdir, "**", "*.keras"),
                                 recursive=True))
        # model.keras, the checkpoint and export/1/model.keras.
        self.assertGreaterEqual(len(paths), 3, paths)
        # Training files hold the compiled model (optimizer, schedule,
        # losses); the export's copy is the bare model.
        code = ("import os, sys, keras, balpoe_keras\n"
                "for p in sys.argv[1:]:\n"
                "    m = keras.saving.load_model(p)\n"
                "    exported = os.sep + 'export' + os.sep in p\n"
                "    assert exported or m.optimizer is not None, p\n"
                "print('loaded', len(sys.argv) - 1)")
        env = dict(os.environ, KERAS_BACKEND=keras.backend.backend())
        done = subprocess.run([sys.executable, "-c", code, *paths],
                              capture_output=True, text=True, env=env,
                              timeout=300)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn(f"loaded {len(paths)}", done.stdout)

    def test_arrays_input_pipeline_trains(self):
        workdir = self.get_temp_dir()
        config = short_run_config(
            workdir, "--epochs=1", "--max_train_steps_per_epoch=1",
            "--batch_size=16", "--eval_batch_size=100", "--noexport",
            "--notest_distributions", "--input_pipeline=arrays")
        results, out = run(config)
        self.assertIn("input arrays", out)
        self.assertEqual(results["num_experts"], 3)


class EvaluateCliTest(TestCase):
    @pytest.mark.large
    def test_evaluate_a_run_directory(self):
        from balpoe_keras.experiments import evaluate
        from balpoe_keras.experiments import inputs
        from balpoe_keras.experiments import runner

        workdir = self.get_temp_dir()
        config = parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                       f"--workdir={workdir}", "--imbalance_ratio=10",
                       "--notest_distributions")
        with fake_data():
            experiment_data = inputs.load_data(config)
            model = runner.build_model(config, experiment_data.class_counts, 1)
        model.optimizer.build(model.trainable_variables)  # As if trained.
        model.save(os.path.join(workdir, "model.keras"))
        workdir_lib.record_config(config)
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
        self.assertEqual(report["class_names"][:2], ["c0", "c1"])
        # The numbers: the saved model's own evaluate() on the test set.
        assert_scores_match_evaluate(
            self, os.path.join(workdir, "model.keras"), experiment_data.test,
            report["summary"], 128)

        # A .keras file with flags for the data: class counts, lambdas and
        # names come from the model, whatever the flags say.
        other_dir = os.path.join(workdir, "other")
        values.unparse_flags()
        from balpoe_keras.experiments import run as run_cli

        values(run_cli.expand_flagfiles([
            "evaluate.py", f"--model={workdir}/model.keras",
            f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
            "--imbalance_ratio=100", "--lambdas=2,0,-2",
            "--notest_distributions", f"--report_dir={other_dir}"]))
        with fake_data(), contextlib.redirect_stdout(io.StringIO()) as out:
            evaluate.main(["evaluate.py"])
        self.assertIn("the report uses the model's", out.getvalue())
        with open(os.path.join(other_dir, "report.json")) as f:
            other = json.load(f)
        self.assertEqual(other["class_counts"], report["class_counts"])
        self.assertEqual(other["lambdas"], [1.0, 0.0, -1.0])
        self.assertEqual(other["summary"], report["summary"])
        values.unparse_flags()

    @pytest.mark.large
    @pytest.mark.tf_only  # A refusal, the same on every backend: once.
    def test_a_model_saved_before_the_classifier_is_refused(self):
        # Plain functional models with `{"logits", "expert_logits"}`
        # outputs (run directories from before BalPoEClassifier): a clear
        # error naming the fix.
        from balpoe_keras.experiments import inputs
        from balpoe_keras.experiments import runner

        config = parse(f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                       f"--workdir={self.get_temp_dir()}",
                       "--imbalance_ratio=10", "--notest_distributions",
                       "--lambdas=0.5,0,-0.5")
        images = keras.Input((32, 32, 3))
        pooled = keras.layers.GlobalAveragePooling2D()(images)
        expert_logits = keras.layers.Reshape((3, 10))(
            keras.layers.Dense(30)(pooled))
        plain = keras.Model(images, {
            "logits": keras.ops.mean(expert_logits, axis=1),
            "expert_logits": expert_logits})
        with fake_data():
            experiment_data = inputs.load_data(config)
        with self.assertRaisesRegex(ValueError, "Expected a BalPoEClassifier"
                                    "(.|\n)*train it again"):
            runner.evaluate(config, experiment_data, plain)

    def test_bad_model_path(self):
        from balpoe_keras.experiments import evaluate

        with self.assertRaisesRegex(config_lib.ConfigError, "does not exist"):
            evaluate.resolve_inputs("/no/such/model.keras", None)
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    "without model.keras"):
            evaluate.resolve_inputs(self.get_temp_dir(), None)


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="the real CLI, once (in the TF pass)")
class CommandLineFaultTest(TestCase):
    """The real CLI on a synthetic archive: a second run on the workdir is
    refused, SIGTERM saves and exits 143, the rerun resumes and finishes."""

    @pytest.mark.large
    def test_lock_sigterm_and_resume(self):
        import signal
        import time

        from tests.cifar_archive import write_cifar_archive

        tmp = self.get_temp_dir()
        write_cifar_archive(tmp, 40, 4)
        workdir = os.path.join(tmp, "run")
        args = [sys.executable, "-m", "balpoe_keras.experiments.run",
                f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                f"--data_dir={tmp}", f"--workdir={workdir}",
                "--imbalance_ratio=10", "--epochs=1000", "--batch_size=16",
                "--eval_batch_size=40", "--notest_distributions",
                "--noexport", "--architecture=resnet8"]
        env = dict(os.environ, BALPOE_KERAS_CACHE=os.path.join(tmp, "c"))
        first = subprocess.Popen(args, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True,
                                 env=env)
        state = os.path.join(workdir, "checkpoints", "state.json")
        deadline = time.time() + 240
        while not os.path.exists(state) and time.time() < deadline:
            time.sleep(0.5)
        self.assertTrue(os.path.exists(state), "no checkpoint in time")
        second = subprocess.run(args, capture_output=True, text=True,
                                env=env, timeout=120)
        self.assertEqual(second.returncode, 2, second.stderr)
        self.assertIn(f"is in use by process {first.pid}", second.stderr)
        first.send_signal(signal.SIGTERM)
        out, _ = first.communicate(timeout=240)
        self.assertEqual(first.returncode, 143, out)
        self.assertIn("Stopped by SIGTERM", out)
        self.assertIn("Rerun the same command to resume", out)
        with open(state) as f:
            done = json.load(f)["epoch"]
        # The same command, with the run shortened to one more epoch.
        resumed = subprocess.run(args + [f"--epochs={done + 1}"],
                                 capture_output=True, text=True, env=env,
                                 timeout=600)
        self.assertIn("Resuming from ckpt-", resumed.stdout)
        self.assertEqual(resumed.returncode, 0, resumed.stderr[-2000:])


@pytest.mark.skipif(keras.backend.backend() != "torch",
                    reason="the real CLI on PyTorch (in the PyTorch pass)")
class TorchCommandLineTest(TestCase):
    @pytest.mark.large
    def test_the_cli_trains_and_reports_on_pytorch(self):
        # `python -m balpoe_keras.experiments.run` with KERAS_BACKEND=torch
        # on an archive: its report's scores are what the saved model's
        # evaluate() gives on the run's test set.
        from tests.cifar_archive import write_cifar_archive

        tmp = self.get_temp_dir()
        write_cifar_archive(tmp, 40, 4)
        workdir = os.path.join(tmp, "run")
        flags = [f"--flagfile={FLAGFILE_DIR}/quickstart.flags",
                 f"--data_dir={tmp}", f"--workdir={workdir}",
                 "--imbalance_ratio=10", "--epochs=1", "--warmup_epochs=1",
                 "--lr_step_epochs=", "--max_train_steps_per_epoch=2",
                 "--batch_size=16", "--eval_batch_size=40",
                 "--notest_distributions", "--noexport",
                 "--architecture=resnet8"]
        done = subprocess.run(
            [sys.executable, "-m", "balpoe_keras.experiments.run", *flags],
            capture_output=True, text=True, timeout=600,
            env=dict(os.environ, KERAS_BACKEND="torch",
                     BALPOE_KERAS_CACHE=os.path.join(tmp, "c")))
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn("backend torch", done.stdout)
        with open(os.path.join(workdir, "report", "report.json")) as f:
            summary = json.load(f)["summary"]
        from balpoe_keras.experiments import inputs

        test = inputs.load_data(parse(*flags)).test
        assert_scores_match_evaluate(
            self, os.path.join(workdir, "model.keras"), test, summary, 40)


class MultiSeedRunTest(TestCase):
    @pytest.mark.large
    @pytest.mark.skipif(keras.backend.backend() != "jax",
                        reason="--seeds trains in one JAX program")
    def test_two_seeds_give_two_reports_and_the_aggregate(self):
        workdir = self.get_temp_dir()
        config = short_run_config(
            workdir, "--epochs=1", "--max_train_steps_per_epoch=1",
            "--batch_size=16", "--eval_batch_size=100", "--noexport",
            "--notest_distributions", "--seeds=4,5")
        from balpoe_keras.experiments import multi_seed

        with fake_data(), contextlib.redirect_stdout(io.StringIO()):
            aggregated = multi_seed.run_multi_seed(config)
        self.assertEqual(aggregated["num_runs"], 2)
        self.assertEqual(aggregated["seeds"], [4, 5])  # Were [None, None].
        reports = []
        for seed in (4, 5):
            path = os.path.join(workdir, f"seed_{seed}", "report",
                                "report.json")
            with open(path) as f:
                reports.append(json.load(f))
            self.assertEqual(reports[-1]["config"]["seed"], seed)
        # Two seeds, two models; the aggregate collects each one's value.
        nll = [r["balanced"]["ensemble"]["nll"] for r in reports]
        self.assertNotEqual(nll[0], nll[1])
        self.assertAllClose(aggregated["ensemble"]["nll"], nll)
        with open(os.path.join(workdir, "report", "aggregate.md")) as f:
            text = f.read()
        self.assertIn("mean ± std over 2 run(s)", text)
        self.assertIn(f"| NLL (nats) | {np.mean(nll):.2f} ± "
                      f"{np.std(nll, ddof=1):.2f} |", text)

    def test_seeds_need_jax(self):
        if keras.backend.backend() == "jax":
            self.skipTest("the JAX backend runs them")
        from balpoe_keras.experiments import multi_seed

        config = short_run_config(self.get_temp_dir(), "--seeds=1,2")
        with self.assertRaisesRegex(config_lib.ConfigError,
                                    "KERAS_BACKEND=jax"):
            multi_seed.run_multi_seed(config)
