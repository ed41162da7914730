"""reproduction/long_run_record.py on tiny real runs of both trainers."""

import csv
import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
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
        results_md = os.path.join(tmp, "RESULTS.md")
        with open(results_md, "w") as f:
            f.write("before\n" + "\n".join(record.MARKERS) + "\nafter\n")
        record.main([
            f"--results_md={results_md}", "--lr_step_epochs=1",
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
        with open(os.path.join(ours, "train_log.csv")) as f:
            rates = sorted(float(r["images_per_sec"])
                           for r in csv.DictReader(f))
        self.assertAlmostEqual(mine["median_images_per_sec"],
                               (rates[0] + rates[1]) / 2)  # Two epochs.
        self.assertGreater(theirs["median_images_per_sec"], 0)
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
        with open(results_md) as f:
            written = f.read()
        self.assertIn(record.format_table(entries), written)
        # The first balpoe_keras run (legacy, seed 1) against the replica,
        # at both epochs; one phase on each side of the drop at epoch 1.
        self.assertIn("Test marks of seed 1: balpoe_keras (tensorflow, 2 "
                      "epochs, finished) and the replica (torch, 2 epochs, "
                      "finished)", written)
        delta = 100 * (old["curve"][1]["balanced_accuracy"]
                       - theirs["curve"][1]["balanced_accuracy"])
        self.assertIn(f"epoch 2: balanced accuracy {delta:+.2f} ± 0.00",
                      written)
        self.assertTrue(written.startswith("before\n")
                        and written.endswith("after\n"))
        table = record.format_table(entries)
        self.assertIn("| replica | torch | 1 | 2 | ", table)
        self.assertIn("| balpoe_keras | jax | 1 | 2 (running) | "
                      f"{100 * running['curve'][-1]['balanced_accuracy']:.2f} "
                      "(epoch 2) | – |", table)

        # per_class.py scores both final models again with the replica's
        # scoring function: the balanced accuracies and ECEs each run
        # reported, and the per-class accuracies whose mean they are.
        scored = os.path.join(tmp, "per_class.json")
        _run([os.path.join(REPRODUCTION_DIR, "per_class.py"),
              f"--data={tmp}", f"--ours={ours}", f"--replica={replica}",
              f"--json={scored}"], KERAS_BACKEND="tensorflow")
        with open(scored) as f:
            scored = json.load(f)
        self.assertEqual(scored["class_names"][:2], ["airplane",
                                                     "automobile"])
        for key, entry in (("balpoe_keras", mine), ("replica", theirs)):
            got = scored[key]
            self.assertAlmostEqual(got["balanced_accuracy"],
                                   entry["balanced_accuracy"], 5, key)
            self.assertAlmostEqual(got["ece"], entry["ece"], 5, key)
            self.assertAlmostEqual(float(np.mean(got["per_class_accuracy"])),
                                   entry["balanced_accuracy"], 5, key)

    def test_bad_run_argument(self):
        with self.assertRaisesRegex(SystemExit, "--percent_run names no"):
            record.main([f"--run=replica,torch,abc,{self.get_temp_dir()}",
                         "--percent_run=/elsewhere", "--out=/dev/null"])
        with self.assertRaisesRegex(ValueError, "IMPLEMENTATION,BACKEND"):
            record.parse_run("ours,tf")
        with self.assertRaisesRegex(FileNotFoundError, "no folder"):
            record.parse_run("replica,torch,abc,/no/such/folder")


class PartialRowTest(TestCase):
    def test_a_row_still_being_written_is_left_out(self):
        # An eval_log.csv ending in "49,80,6" (63.31 cut short) read as a
        # mark of 6 % with no ECE, and the table and plot then failed.
        folder = self.get_temp_dir()
        with open(os.path.join(folder, "eval_log.csv"), "w") as f:
            f.write("epoch,balanced_accuracy,ece\n39,60.5,7.25\n49,80,6")
        self.assertEqual(record.read_curve(folder), [
            {"epoch": 40, "balanced_accuracy": 60.5, "ece": 7.25}])


class CurveComparisonTest(TestCase):
    """`format_curves`: the paired marks and their per-phase differences,
    against values worked out by hand."""

    @staticmethod
    def _entry(implementation, seed, marks, ece):
        return {"implementation": implementation, "backend": "b",
                "seed": seed, "finished": False,
                "epochs": max((e for e, _ in marks), default=0), "curve": [
                    {"epoch": e, "balanced_accuracy": v, "ece": ece}
                    for e, v in marks]}

    def test_marks_side_by_side_and_phase_means(self):
        ours = self._entry("balpoe_keras", 1, [
            (5, 0.3), (10, 0.50), (160, 0.70), (170, 0.80), (180, 0.82),
            (190, 0.84), (200, 0.85)], 0.10)
        replica = self._entry("replica", 1, [
            (10, 0.52), (15, 0.6), (160, 0.69), (170, 0.78), (180, 0.80),
            (190, 0.84), (200, 0.83)], 0.05)
        other_seed = self._entry("replica", 2, [(10, 0.9)], 0.0)
        no_curve = self._entry("balpoe_keras", 0, [], 0.0)
        text = record.format_curves([no_curve, other_seed, ours, replica])
        rows = [line for line in text.splitlines()
                if line.startswith("| 1") or line.startswith("| 2")]
        self.assertEqual([row.split(" | ")[0] for row in rows],
                         ["| 10", "| 160", "| 170", "| 180", "| 190",
                          "| 200"])  # Epochs 5 and 15: one side only.
        self.assertEqual(rows[0], "| 10 | 50.00 | 52.00 | -2.00 | 10.00 | "
                         "5.00 | +5.00 |")
        # Δ balanced accuracy: -2, +1 | +2, +2 | 0, +2 points.
        self.assertIn("epochs 1–160: balanced accuracy -0.50 ± 2.12, ECE "
                      "+5.00 ± 0.00 (2 marks); epochs 161–180: balanced "
                      "accuracy +2.00 ± 0.00, ECE +5.00 ± 0.00 (2 marks); "
                      "epochs 181–200: balanced accuracy +1.00 ± 1.41, ECE "
                      "+5.00 ± 0.00 (2 marks).", text)
        # Another schedule: one drop at 100.
        self.assertIn("epochs 1–100: balanced accuracy -2.00 ± 0.00",
                      record.format_curves([ours, replica], (100,)))
        self.assertEqual(record.format_curves([ours, other_seed]), "")

    def test_pair_sharing_the_most_marks(self):
        # An earlier attempt of ours, stopped at epoch 160, and a new one
        # still short: the pair is the attempt with more marks in common.
        earlier = self._entry("balpoe_keras", 1, [(10, 0.5), (160, 0.7)],
                              0.1)
        earlier["stopped"] = True
        new = self._entry("balpoe_keras", 1, [(10, 0.4)], 0.1)
        replica = self._entry("replica", 1, [(10, 0.5), (160, 0.6)], 0.1)
        ours, _, marks = record.paired_marks([new, earlier, replica])
        self.assertIs(ours, earlier)
        self.assertEqual([epoch for epoch, _, _ in marks], [10, 160])
        self.assertIn("balpoe_keras (b, 160 epochs, stopped) and the "
                      "replica (b, 160 epochs, running)",
                      record.format_curves([new, earlier, replica]))
        # As many marks as the earlier attempt: the pair of one attempt
        # (both stopped) stays.
        new["curve"].append({"epoch": 160, "balanced_accuracy": 0.8,
                             "ece": 0.1})
        replica["stopped"] = True
        self.assertIs(record.paired_marks([new, earlier, replica])[0],
                      earlier)
        new["curve"].insert(0, {"epoch": 5, "balanced_accuracy": 0.2,
                                "ece": 0.1})
        replica["curve"].insert(0, {"epoch": 5, "balanced_accuracy": 0.2,
                                    "ece": 0.1})
        self.assertIs(record.paired_marks([new, earlier, replica])[0], new)


class KeepTest(TestCase):
    """`--keep`: an entry of the existing record whose folder is gone."""

    def _replica_folder(self, epochs):
        folder = os.path.join(self.get_temp_dir(), "replica")
        os.makedirs(folder)
        with open(os.path.join(folder, "train_log.csv"), "w") as f:
            f.write("epoch,loss\n" + "".join(f"{e},1.0\n"
                                             for e in range(epochs)))
        with open(os.path.join(folder, "eval_log.csv"), "w") as f:
            f.write("epoch,balanced_accuracy,ece\n"
                    + "".join(f"{e},0.5,0.1\n" for e in range(epochs)))
        return folder

    def test_kept_entry_survives_its_folder(self):
        out = os.path.join(self.get_temp_dir(), "record.json")
        old_run = self._replica_folder(3)
        record.main([f"--run=replica,torch,abc,{old_run},1", f"--out={out}"])
        shutil.rmtree(old_run)  # The folder is gone.
        ours = self._replica_folder(5)  # Any other run, from a folder.
        md = os.path.join(self.get_temp_dir(), "r.md")
        with open(md, "w") as f:
            f.write("\n".join(record.MARKERS) + "\n")
        entries = record.main([f"--run=replica,torch,abc,{ours},2",
                               "--keep=replica,torch,1", f"--out={out}",
                               f"--results_md={md}"])
        self.assertEqual([(e["seed"], e["epochs"], e.get("stopped"))
                          for e in entries],
                         [(2, 5, None), (1, 3, True)])
        with open(out) as f:
            self.assertEqual(json.load(f)[1]["curve"],
                             [{"epoch": e, "balanced_accuracy": 0.5,
                               "ece": 0.1} for e in (1, 2, 3)])
        with open(md) as f:
            text = f.read()
        self.assertIn("| replica | torch | 1 | 3 (stopped) | 50.00 (epoch 3)",
                      text)
        self.assertIn("| replica | torch | 2 | 5 (running) |", text)
        # Kept again from the record it was written to, listed in the
        # order of the arguments.
        again = record.main(["--keep=replica,torch,1", "--run",
                             f"replica,torch,abc,{ours},2", f"--out={out}"])
        self.assertEqual(again, entries[::-1])

    def test_keep_errors(self):
        out = os.path.join(self.get_temp_dir(), "record.json")
        folder = self._replica_folder(2)
        with self.assertRaisesRegex(SystemExit, "needs the existing record"):
            record.main([f"--run=replica,torch,abc,{folder},1",
                         "--keep=replica,torch,1", f"--out={out}"])
        record.main([f"--run=replica,torch,abc,{folder},1", f"--out={out}"])
        # A new attempt of the kept run beside it; then the two are told
        # apart by their epochs.
        os.remove(os.path.join(folder, "eval_log.csv"))
        with open(os.path.join(folder, "train_log.csv"), "a") as f:
            f.write("2,1.0\n")
        entries = record.main([f"--run=replica,torch,abc,{folder},1",
                               "--keep=replica,torch,1", f"--out={out}"])
        self.assertEqual([(e["epochs"], e.get("stopped")) for e in entries],
                         [(3, None), (2, True)])
        with self.assertRaisesRegex(SystemExit, r"2 entries .*add its EPOCHS"):
            record.main([f"--run=replica,torch,abc,{folder},1",
                         "--keep=replica,torch,1", f"--out={out}"])
        self.assertEqual(record.main([
            f"--run=replica,torch,abc,{folder},1", "--keep=replica,torch,1,2",
            f"--out={out}"]), entries)
        with self.assertRaisesRegex(SystemExit, "one entry twice"):
            record.main([f"--run=replica,torch,abc,{folder},1",
                         "--keep=replica,torch,1,2", "--keep=replica,torch,1,2",
                         f"--out={out}"])
        with self.assertRaisesRegex(SystemExit, "0 entries"):
            record.main([f"--run=replica,torch,abc,{folder},1",
                         "--keep=replica,torch,7", f"--out={out}"])
        with self.assertRaisesRegex(SystemExit, r"BACKEND,SEED\[,EPOCHS\]"):
            record.main([f"--run=replica,torch,abc,{folder},1",
                         "--keep=replica,torch", f"--out={out}"])


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

