"""reproduction/reproduce.py: schedule scaling, commands and the table."""

import os

from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.experiments.flags_util import parse
from tests.test_case import TestCase

reproduce = load_script(REPRODUCTION_DIR, "reproduce")


class Args:
    epochs, workdir, dataset, seed, extra_flags = 12, "/tmp/r", "x", 1, []


class ReproduceTest(TestCase):
    def test_full_schedule_is_the_reference(self):
        self.assertEqual(reproduce.scaled_schedule(200), (5, (160, 180)))
        # 12 epochs: warm-up round(0.3) -> 1; drops at round(9.6), round(10.8)
        self.assertEqual(reproduce.scaled_schedule(12), (1, (10, 11)))
        self.assertEqual(reproduce.scaled_schedule(1), (1, (1, 2)))

    def test_commands_parse_into_the_intended_configs(self):
        args = Args()
        args.dataset = "cifar10_lt_folder"
        for method, (experts, _, alpha) in reproduce.METHODS.items():
            argv = reproduce.method_command(method, args)[3:]
            config = parse(*argv)
            self.assertEqual(config.num_experts, experts)
            self.assertEqual(config.mixup_alpha, alpha)
            self.assertEqual((config.epochs, config.lr_step_epochs),
                             (12, (10, 11)))
        ce = parse(*reproduce.method_command("ce", args)[3:])
        self.assertEqual(ce.lambdas, (1.0,))

    def test_table_and_markers(self):
        summary = {"test/balanced_accuracy": 0.8054, "test/acc_many": 0.9,
                   "test/acc_medium": 0.6, "test/acc_few": None,
                   "test/ece": 0.0321, "test/mce": 0.1}  # Fractions.
        table = reproduce.format_table({"balpoe": {"summary": summary}},
                                       Args())
        self.assertIn("| balpoe | 80.5 | 80.5 | 90.0 | 60.0 | – | 3.2 | 10.0",
                      table)
        path = os.path.join(self.get_temp_dir(), "r.md")
        with open(path, "w") as f:
            f.write("a\n<!-- reproduce:start -->\nold\n"
                    "<!-- reproduce:end -->\n")
        reproduce.update_markdown(path, "new")
        with open(path) as f:
            self.assertEqual(f.read(), "a\n<!-- reproduce:start -->\nnew\n"
                             "<!-- reproduce:end -->\n")

    def test_figures_are_copied_and_linked_relative_to_the_results_file(self):
        root = self.get_temp_dir()
        args = Args()
        args.workdir = os.path.join(root, "runs")
        args.results_md = os.path.join(root, "bench", "RESULTS.md")
        args.figures_dir = os.path.join(root, "docs", "img")
        report_dir = os.path.join(args.workdir, "la", "report")
        os.makedirs(report_dir)
        with open(os.path.join(report_dir, "reliability.png"), "wb") as f:
            f.write(b"png bytes")
        links = reproduce.copy_figures(["la"], args)
        self.assertEqual(links, {"la": "![la](../docs/img/la_reliability.png)"})
        with open(os.path.join(args.figures_dir, "la_reliability.png"),
                  "rb") as f:
            self.assertEqual(f.read(), b"png bytes")
        summary = {"test/balanced_accuracy": 0.4}
        table = reproduce.format_table({"la": {"summary": summary}}, args,
                                       links)
        self.assertIn("| ![la](../docs/img/la_reliability.png) |", table)
