"""write_report / aggregate: files written, parseable, NaN-free."""

import copy
import json
import logging
import os
from unittest import mock

import numpy as np

from balpoe_keras.evaluation import aggregate
from balpoe_keras.evaluation import evaluate
from balpoe_keras.evaluation import report
from tests.evaluation.evaluate_test import build_logit_model
from tests.evaluation.evaluate_test import expert_images
from tests.evaluation.scores_test import LABELS
from tests.evaluation.scores_test import LOGITS
from tests.test_case import TestCase


def make_results():
    # Training counts with no few-shot class -> the "few" group is None.
    # The subset has no image of class 2, so its per-class mean skips it.
    return evaluate.evaluate_model(
        build_logit_model(2, 3),
        {"uniform": (expert_images(LOGITS), LABELS),
         "forward2": np.array([0, 1, 2, 4])},
        class_counts=[200, 150, 50], lambdas=[0.5, -0.5],
        class_names=["cat", "dog", "owl"],
    )


class WriteReportTest(TestCase):
    def test_files_are_written_and_parseable(self):
        out_dir = self.get_temp_dir()
        paths = report.write_report(
            make_results(), out_dir, config={"seed": 3, "lr": 0.1}
        )
        self.assertEqual(
            sorted(paths),
            ["expert_prior", "json", "markdown", "per_class_accuracy",
             "reliability"],
        )
        with open(paths["json"]) as f:
            text = f.read()
        self.assertNotIn("NaN", text)
        parsed = json.loads(text)
        self.assertEqual(parsed["config"], {"seed": 3, "lr": 0.1})
        self.assertIn("keras", parsed["versions"])
        self.assertIsNone(parsed["balanced"]["ensemble"]["acc_few"])
        self.assertEqual(parsed["test_agnostic"]["forward2"][
            "num_classes_without_test_images"], 1)
        with open(paths["markdown"]) as f:
            markdown = f.read()
        self.assertIn("| forward2 | 4 |", markdown)
        # The hand-computed scores of scores_test (per class 2/3, 1, 0;
        # many = classes 0, 1 with > 100 training images; ECE .354, MCE
        # .62, NLL 3.968594 / 5), in % in their columns.
        self.assertIn("| ensemble | 60.00 | 55.56 | 83.33 | 0.00 | – | "
                      "35.40 | 62.00 | 0.79 |", markdown)
        self.assertIn("`forward2`: 1 classes have no test image", markdown)
        for key in ("reliability", "per_class_accuracy", "expert_prior"):
            with open(paths[key], "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_a_skewed_test_set_is_not_called_balanced(self):
        def markdown(results):
            out_dir = self.get_temp_dir()
            report.write_report(results, out_dir, plots=False)
            with open(os.path.join(out_dir, "report.md")) as f:
                return f.read()

        results = make_results()
        # LABELS hold classes 0, 0, 1, 2, 0.
        self.assertEqual(results["balanced_test_counts"], [3, 1, 1])
        text = markdown(results)
        self.assertIn("Test set `uniform`, NOT balanced (1 to 3 images per "
                      "class", text)
        self.assertNotIn("Balanced test set", text)
        self.assertNotIn("balanced test set", text)
        self.assertIn("## Ensemble (test set `uniform`)", text)
        results["balanced_test_counts"] = [2, 2, 2]
        text = markdown(results)
        self.assertIn("Balanced test set `uniform`: 5 images", text)
        self.assertIn("## Ensemble (balanced test set)", text)

    def test_json_ready_replaces_nan(self):
        self.assertEqual(
            report.to_json_ready({"a": np.array([1.0, np.nan]),
                                  "b": np.float32(2)}),
            {"a": [1.0, None], "b": 2.0},
        )

    def test_a_plot_that_fails_loses_no_number(self):
        # Plots were drawn before report.json was written: a drawing error
        # (or no matplotlib) lost the evaluation, and in a run the model.
        from balpoe_keras.evaluation import plots

        for error in (ImportError("No module named 'matplotlib'"),
                      ValueError("a drawing bug")):
            out_dir = self.get_temp_dir()
            with mock.patch.object(plots, "write_plots",
                                   side_effect=error), self.assertLogs(
                                       level=logging.WARNING) as logs:
                paths = report.write_report(make_results(), out_dir)
            self.assertEqual(sorted(paths), ["json", "markdown"])
            self.assertTrue(any("No plots in" in line
                                for line in logs.output), logs.output)
            with open(paths["json"]) as f:
                self.assertIn("balanced", json.load(f))

    def test_plots_leave_pyplot_state_alone(self):
        # matplotlib.use("Agg") switched a notebook's backend; figures
        # went into pyplot's list. An infinite KL (None in JSON) crashed.
        import matplotlib
        import matplotlib.pyplot as plt

        backend, figures = matplotlib.get_backend(), plt.get_fignums()
        results = report.to_json_ready(make_results())
        results["balanced"]["expert_prior"]["experts"][0]["kl"] = None
        from balpoe_keras.evaluation import plots

        paths = plots.write_plots(results, self.get_temp_dir())
        self.assertLen(paths, 3)
        self.assertEqual(matplotlib.get_backend(), backend)
        self.assertEqual(plt.get_fignums(), figures)


class AggregateTest(TestCase):
    def test_mean_and_sample_std(self):
        # 50 and 54 -> mean 52, sample std sqrt(((-2)^2 + 2^2) / 1) = 2.828.
        self.assertEqual(aggregate.format_mean_std([50.0, 54.0]),
                         "52.00 ± 2.83")
        self.assertEqual(aggregate.format_mean_std([50.0]), "50.00")
        self.assertEqual(aggregate.format_mean_std([None, None]), "–")
        # A number only some runs report says over how many it is taken.
        self.assertEqual(aggregate.format_mean_std([1.0, 1.2, None]),
                         "1.10 ± 0.14 (2 of 3 runs)")
        self.assertEqual(aggregate.format_mean_std([float("nan"), 2.0]),
                         "2.00 (1 of 2 runs)")

    def test_cli_writes_markdown_table(self):
        tmp = self.get_temp_dir()
        first = report.to_json_ready(make_results())
        second = copy.deepcopy(first)
        second["balanced"]["ensemble"]["accuracy"] = 0.64  # first: 0.6.
        paths = []
        for i, rep in enumerate((first, second)):
            paths.append(os.path.join(tmp, f"report{i}.json"))
            with open(paths[-1], "w") as f:
                json.dump(rep, f)
        out = os.path.join(tmp, "table.md")
        aggregate.main(paths + ["--out", out])
        with open(out) as f:
            table = f.read()
        # 0.60 and 0.64 -> in percent 62.00 ± 2.83.
        self.assertIn("| Top-1 accuracy (%) | 62.00 ± 2.83 |", table)
        self.assertIn("| Few-shot (%) | – |", table)
        self.assertIn("| forward2 | + log p_test |", table)

    def test_incompatible_reports_are_rejected(self):
        first = report.to_json_ready(make_results())
        second = copy.deepcopy(first)
        second["lambdas"] = [1.0, -1.0]
        with self.assertRaisesRegex(ValueError, "differs from report 0"):
            aggregate.aggregate_reports([first, second])
        for key, value in (("class_counts", [1, 2, 3]), ("num_bins", 10)):
            second = copy.deepcopy(first)
            second[key] = value
            with self.assertRaisesRegex(ValueError, f"report 0 in '{key}'"):
                aggregate.aggregate_reports([first, second])

    def test_runs_of_other_settings_or_a_repeated_seed_are_refused(self):
        # Mixup 0.4 and 0.0 averaged to "55.00 ± 7.07", one seed passed
        # twice to "50.00 ± 0.00", without a word.
        first = report.to_json_ready(make_results())
        first["config"] = {"seed": 1, "mixup_alpha": 0.4,
                           "workdir": "runs/a", "eval_batch_size": 256}
        second = copy.deepcopy(first)
        second["config"].update(seed=2, workdir="runs/b",
                                eval_batch_size=64)
        self.assertEqual(aggregate.aggregate_reports([first, second])[
            "seeds"], [1, 2])  # Where and how it ran may differ.
        second["config"]["mixup_alpha"] = 0.0
        with self.assertRaisesRegex(
                ValueError, r"'config.mixup_alpha' \(0.0 vs 0.4\)"):
            aggregate.aggregate_reports([first, second])
        with self.assertRaisesRegex(ValueError, "both seed 1"):
            aggregate.aggregate_reports([first, copy.deepcopy(first)])
        # Only some reports with the post-hoc variant: refused (KeyError).
        plain = copy.deepcopy(first)
        plain["config"]["seed"] = 3
        del plain["test_agnostic"]["forward2"]["posthoc"]
        with self.assertRaisesRegex(ValueError, "'test_agnostic'"):
            aggregate.aggregate_reports([first, plain])
