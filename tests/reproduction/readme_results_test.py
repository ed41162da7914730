"""reproduction/readme_results.py: the README's quickstart block."""

import json
import os
import sys
from unittest import mock

import keras
import pytest

from balpoe_keras.evaluation import report as report_lib
from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.evaluation.report_test import make_results
from tests.test_case import TestCase

readme_results = load_script(REPRODUCTION_DIR, "readme_results")

def _written_report(out_dir):
    """A real report.json (written by `write_report`), as a dict."""
    report_lib.write_report(make_results(), out_dir, plots=False)
    with open(os.path.join(out_dir, "report.json")) as f:
        return json.load(f)


def _report(out_dir, **extra):
    report = _written_report(out_dir)
    report.update(
        config={"dataset": "cifar10_lt_folder", "imbalance_ratio": 100,
                "epochs": 2},
        timing={"train_seconds_this_invocation": 120.0,
                "epochs_this_invocation": 2, "resumed_from_epoch": 0},
        **extra)
    return report


@pytest.mark.skipif(keras.backend.backend() != "tensorflow",
                    reason="no Keras computation; once (TensorFlow pass)")
class ReadmeResultsTest(TestCase):
    def test_the_runs_machine_and_date_not_this_ones(self):
        # The date and machine were those of the machine running the
        # script; the report now records where and when it was written.
        block = readme_results.format_results(_report(
            self.get_temp_dir(), machine="64 CPU cores (Example CPU), 1 GPU",
            date="2026-01-02"))
        self.assertIn("measured 2026-01-02 on 64 CPU cores (Example CPU), "
                      "1 GPU;", block)
        self.assertIn("2.0 min of training;", block)
        self.assertIn("quickstart_reliability.png", block)

    def test_a_resumed_run_says_its_time_is_the_last_part(self):
        report = _report(self.get_temp_dir())
        report["timing"].update(resumed_from_epoch=1,
                                epochs_this_invocation=1)
        self.assertIn("2.0 min of training (its last 1 epochs, after a "
                      "resume)", readme_results.format_results(report))

    def test_reports_record_machine_and_date(self):
        out = self.get_temp_dir()
        written = _written_report(out)
        self.assertRegex(written["machine"], r"^\d+ CPU cores")
        self.assertRegex(written["date"], r"^\d{4}-\d\d-\d\d$")
        with open(os.path.join(out, "report.md")) as f:
            self.assertIn(f"Written on {written['date']} on "
                          f"{written['machine']}.", f.read())

    def test_without_the_diagram_the_block_is_written_without_it(self):
        # A report written without matplotlib has no reliability.png: the
        # script crashed with FileNotFoundError after reading it.
        root = self.get_temp_dir()
        run = os.path.join(root, "run")
        os.makedirs(os.path.join(run, "report"))
        with open(os.path.join(run, "report", "report.json"), "w") as f:
            json.dump(_report(self.get_temp_dir(), machine="2 CPU cores",
                              date="2026-01-02"), f)
        readme = os.path.join(root, "README.md")
        with open(readme, "w") as f:
            f.write(f"x\n{readme_results.START}\nPREVIOUS BLOCK\n"
                    f"{readme_results.END}\ny\n")
        with mock.patch.object(readme_results, "README", readme), \
                mock.patch.object(readme_results, "ROOT", root), \
                mock.patch.object(sys, "argv", ["readme_results.py", run]):
            readme_results.main()
        with open(readme) as f:
            text = f.read()
        self.assertIn("measured 2026-01-02 on 2 CPU cores", text)
        self.assertNotIn("PREVIOUS BLOCK", text)
        self.assertNotIn("quickstart_reliability.png", text)
        self.assertFalse(os.path.exists(os.path.join(
            root, readme_results.IMAGE)))
