"""reproduction/long_run_record.py on tiny real runs of both trainers."""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import pytest

from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import ROOT
from tests.benchmark_modules import load_script
from tests.cifar_archive import write_cifar_archive
from tests.test_case import TestCase

record = load_script(REPRODUCTION_DIR, "long_run_record")


def _run(args, **env):
    done = subprocess.run([sys.executable, *args], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=ROOT, **env),
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


@pytest.mark.large
@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="two tiny trainings, once (TensorFlow pass)")
class LongRunRecordTest(TestCase):
    def test_record_and_plot_from_both_run_folders(self):
        tmp = self.get_temp_dir()
        write_cifar_archive(tmp, train_per_class=40, test_per_class=4)
        ours, replica = os.path.join(tmp, "ours"), os.path.join(tmp, "rep")
        _run(["-m", "balpoe_keras.experiments.run",
              "--flagfile=experiments/quickstart.flags", f"--data_dir={tmp}",
              f"--workdir={ours}", "--architecture=resnet8", "--epochs=2",
              "--warmup_epochs=1", "--lr_step_epochs=1",
              "--max_train_steps_per_epoch=2", "--imbalance_ratio=10",
              "--batch_size=16", "--eval_every=1", "--export=false",
              "--test_distributions=false"], KERAS_BACKEND="tensorflow")
        _run([os.path.join(REPRODUCTION_DIR, "reference_train.py"),
              f"--data={tmp}", f"--out={replica}", "--epochs=2",
              "--warmup_epochs=1", "--lr_step_epochs=1",
              "--blocks_per_stage=1", "--batch_size=32", "--threads=1",
              "--imbalance_ratio=10", "--eval_every=1"])
        # A folder holding only a report (as a run copied off a GPU
        # machine whose log has no test columns).
        report_only = os.path.join(tmp, "report_only")
        os.makedirs(report_only)
        shutil.copy(os.path.join(ours, "report", "report.json"),
                    report_only)
        shutil.copy(os.path.join(ours, "train_log.csv"),
                    os.path.join(report_only, "train_log_epochs_1-2.csv"))
        # An unfinished run: its log, no report yet.
        unfinished = os.path.join(tmp, "unfinished")
        shutil.copytree(ours, unfinished)
        shutil.rmtree(os.path.join(unfinished, "report"))

        # A run written before scores became fractions: percent values.
        legacy = os.path.join(tmp, "legacy")
        shutil.copytree(ours, legacy)
        _to_percent(legacy)

        out = os.path.join(tmp, "record.json")
        plot = os.path.join(tmp, "curves.png")
        record.main([
            f"--run=balpoe_keras,tensorflow,fff0000,{legacy}",
            f"--percent_run={legacy}",
            f"--run=balpoe_keras,tensorflow,abc1234,{ours}",
            f"--run=replica,torch,abc1234,{replica}",
            f"--run=balpoe_keras,jax,def5678,{unfinished},,a note, with comma",
            f"--run=balpoe_keras,jax,0123456,{report_only}",
            f"--out={out}", f"--plot={plot}"])
        with open(out) as f:
            entries = json.load(f)
        self.assertTrue(os.path.getsize(plot) > 10_000)
        old, mine, theirs, running, copied = entries
        for key in ("balanced_accuracy", "ece", "mce", "nll"):
            self.assertAlmostEqual(old[key], mine[key], 5, key)  # % / 100.
        self.assertEqual(len(old["curve"]), len(mine["curve"]))
        for a, b in zip(old["curve"], mine["curve"]):
            self.assertEqual(a["epoch"], b["epoch"])
            self.assertAlmostEqual(a["ece"], b["ece"], 9)
        self.assertTrue(0 <= mine["balanced_accuracy"] <= 1)
        self.assertTrue(0 <= theirs["balanced_accuracy"] <= 1)
        with open(os.path.join(ours, "report", "report.json")) as f:
            summary = json.load(f)["summary"]
        self.assertEqual(
            {k: mine[k] for k in ("implementation", "backend", "seed",
                                  "epochs", "finished", "commit")},
            {"implementation": "balpoe_keras", "backend": "tensorflow",
             "seed": 1, "epochs": 2, "finished": True, "commit": "abc1234"})
        self.assertAlmostEqual(mine["balanced_accuracy"],
                               summary["test/balanced_accuracy"], places=3)
        self.assertAlmostEqual(mine["ece"], summary["test/ece"], places=3)
        self.assertAlmostEqual(mine["nll"], summary["test/nll"], places=3)
        self.assertIsNone(mine["many"])  # No class has > 100 images here.
        # The curve is the --eval_every columns of train_log.csv; its last
        # point is the final evaluation of the same weights.
        self.assertEqual([p["epoch"] for p in mine["curve"]], [1, 2])
        self.assertAlmostEqual(mine["curve"][-1]["balanced_accuracy"],
                               mine["balanced_accuracy"], places=3)
        # The replica: eval_log.csv (0-based epochs) and report.json.
        with open(os.path.join(replica, "eval_log.csv")) as f:
            rows = list(csv.DictReader(f))
        self.assertEqual([p["epoch"] for p in theirs["curve"]], [1, 2])
        self.assertAlmostEqual(theirs["curve"][0]["ece"],
                               float(rows[0]["ece"]), places=6)
        self.assertEqual((theirs["seed"], theirs["epochs"]), (1, 2))
        self.assertAlmostEqual(theirs["curve"][-1]["balanced_accuracy"],
                               theirs["balanced_accuracy"], places=3)
        self.assertEqual((running["finished"], running["epochs"],
                          running["balanced_accuracy"],
                          running["note"]),
                         (False, 2, None, "a note, with comma"))
        self.assertEqual(len(running["curve"]), 2)
        self.assertEqual((copied["finished"], copied["epochs"]), (True, 2))
        table = record.format_table(entries)
        self.assertIn("| replica | torch | 1 | 2 | ", table)
        self.assertIn("| balpoe_keras | jax | 1 | 2 (running) | "
                      f"{100 * running['curve'][-1]['balanced_accuracy']:.2f} "
                      "(epoch 2) | – |", table)

    def test_bad_run_argument(self):
        with self.assertRaisesRegex(SystemExit, "--percent_run names no"):
            record.main([f"--run=replica,torch,abc,{self.get_temp_dir()}",
                         "--percent_run=/elsewhere", "--out=/dev/null"])
        with self.assertRaisesRegex(ValueError, "IMPLEMENTATION,BACKEND"):
            record.parse_run("ours,tf")
        with self.assertRaisesRegex(FileNotFoundError, "no folder"):
            record.parse_run("replica,torch,abc,/no/such/folder")


def _to_percent(folder):
    """Rewrites a run folder's scores as percent (as logged before)."""
    keys = ("accuracy", "balanced_accuracy", "acc_many", "acc_medium",
            "acc_few", "ece", "mce")
    path = os.path.join(folder, "report", "report.json")
    with open(path) as f:
        report = json.load(f)
    for key in keys:
        value = report["summary"].get(f"test/{key}")
        if value is not None:
            report["summary"][f"test/{key}"] = 100 * value
    with open(path, "w") as f:
        json.dump(report, f)
    path = os.path.join(folder, "train_log.csv")
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header, rows = reader.fieldnames, list(reader)
    for row in rows:
        for key in keys:
            if row.get(f"test/{key}") not in (None, "NA", ""):
                row[f"test/{key}"] = repr(100 * float(row[f"test/{key}"]))
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, header)
        writer.writeheader()
        writer.writerows(rows)

