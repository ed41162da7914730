"""reproduction/paired.py: the run plan, the commands and the table."""

import argparse
import json
import os
import sys

from tests.benchmark_modules import REPRODUCTION_DIR
from tests.benchmark_modules import load_script
from tests.test_case import TestCase

paired = load_script(REPRODUCTION_DIR, "paired")


def _args(**kwargs):
    values = dict(epochs=20, workdir="/tmp/p", seeds="1,2",
                  methods="balpoe_mixup,la", pipelines="replica,tfdata")
    values.update(kwargs)
    return argparse.Namespace(**values)


class PairedTest(TestCase):
    def test_la_trains_one_seed_but_the_table_takes_every_seed(self):
        args = _args()
        self.assertEqual(
            [run for run in paired.plan(args) if run[1] == "la"],
            [("replica", "la", 1), ("tfdata", "la", 1)])
        self.assertIn(("tfdata", "la", 2),
                      paired.plan(args, every_seed=True))

    def test_commands(self):
        args = _args(pipelines="replica,replica_stream,tfdata_bf16")
        replica = paired.command(args, "replica", "balpoe_mixup", 2, "/d")
        stream = paired.command(args, "replica_stream", "balpoe_mixup", 2,
                                "/d")
        self.assertNotIn("--mixup_stream_seed=2", replica)
        self.assertIn("--mixup_stream_seed=2", stream)
        self.assertIn("--out=/tmp/p/replica_stream_balpoe_mixup_seed2",
                      stream)
        # 20 epochs: warm-up 1, drops after 16 and 18 (the one rule).
        self.assertIn("--lr_step_epochs=16,18", replica)
        bf16 = paired.command(args, "tfdata_bf16", "la", 1, "/d")
        self.assertEqual(bf16[:3], [sys.executable, "-m",
                                    "balpoe_keras.experiments.run"])
        for flag in ("--input_pipeline=tfdata", "--lambdas=0",
                     "--num_experts=1", "--mixup_alpha=0.0",
                     "--mixed_precision=mixed_bfloat16"):
            self.assertIn(flag, bf16)
        # The bf16 flag comes after the float32 default, so it wins.
        self.assertGreater(bf16.index("--mixed_precision=mixed_bfloat16"),
                           bf16.index("--mixed_precision=float32"))

    def test_table_mean_and_range_over_the_seeds(self):
        workdir = self.get_temp_dir()
        args = _args(workdir=workdir, pipelines="replica,tfdata")
        values = {("replica", 1): 0.50, ("replica", 2): 0.54,
                  ("tfdata", 1): 0.52}  # Fractions, as in the reports.
        for (pipeline, seed), value in values.items():
            path = paired.report_path(args, pipeline, "balpoe_mixup", seed)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            summary = {f"test/{key}": value for key, _ in paired.METRICS}
            with open(path, "w") as f:
                json.dump({"summary": summary}, f)
        table = paired.format_table(paired.collect(args), args)
        self.assertIn("| balpoe_mixup | replica | 1,2 | 52.00 [50.00, "
                      "54.00] |", table)
        self.assertIn("| balpoe_mixup | tfdata | 1 | 52.00 |", table)
        self.assertNotIn("| la |", table)

    def test_welch_difference(self):
        # Means 52 - 49 = 3; se = sqrt(8 / 2 + 2 / 2) = 2.236; t = 1.34;
        # df = 5^2 / (4^2 / 1 + 1^2 / 1) = 25 / 17 = 1.47.
        self.assertEqual(paired._welch([50, 54], [48, 50]),
                         "+3.00 (+1.3, df 1.5)")
        self.assertEqual(paired._welch([50, 50], [49, 49]), "+1.00")

    def test_same_init_pairs_are_per_seed_differences(self):
        def summary(acc, ece):
            return {"test/balanced_accuracy": acc, "test/ece": ece}

        results = {
            ("tfdata", "la"): {1: summary(50, 2), 2: summary(60, 3),
                               3: summary(55, 1)},
            ("arrays", "la"): {1: summary(51, 2), 2: summary(63, 3)},
            ("replica", "la"): {1: summary(0, 0), 2: summary(0, 0)},
        }
        args = _args(methods="la", pipelines="replica,tfdata,arrays")
        table = paired.format_same_init_pairs(results, args)
        # Seeds 1, 2 in common: +1, +3 -> mean +2, sd 1.414, t = 2.0.
        self.assertIn("| la | arrays | 1,2 | +1.00, +3.00 (mean +2.00, "
                      "t +2.0) | +0.00, +0.00 (mean +0.00) |", table)
        self.assertNotIn("replica |", table)
        # Only the seeds of --same_init_seeds are paired (runs trained
        # before the runner seeded the weights are not); one common seed
        # gives its difference alone.
        args = _args(methods="la", pipelines="replica,tfdata,arrays",
                     same_init_seeds="2,3")
        table = paired.format_same_init_pairs(results, args)
        self.assertIn("| la | arrays | 2 | +3.00 | +0.00 |", table)
        self.assertNotIn("1,2", table)
        self.assertEqual(paired._left_out(args, results),
                         ". Seed 1 is left out (`--same_init_seeds`): those "
                         "runs did not all start from their seed's weights")
        # No common seed: no row, no table.
        args.same_init_seeds = "3"
        self.assertEqual(paired.format_same_init_pairs(results, args), "")
