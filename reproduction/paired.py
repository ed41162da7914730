r"""Paired runs: the PyTorch replica vs balpoe_keras, same data, same budget.

Three training paths on the same CIFAR-10-LT IR100 arrays (the JPEG
archive), with the reference recipe scaled to `--epochs` by the project's
one rule (`config.scale_step_schedule`):

- `replica`: `reproduction/reference_train.py`, plain PyTorch (torchvision's
  PIL transforms, the reference's Mixup and LambdaLR), CPU;
- `tfdata`: the experiment runner, TensorFlow backend, tf.data input;
- `arrays`: the experiment runner, TensorFlow backend, in-memory input
  (`balpoe_keras.data.arrays`, the path that trained on the GPU);
- on request, `tfdata_bf16`: `tfdata` in mixed bfloat16 (the accuracy check
  behind `--mixed_precision=auto`), and `replica_stream`: the replica with
  its Mixup weight stream seeded by the seed (the reference's is the same
  for every seed; `reproduction/mixup_stream.py`).

Methods: BalPoE + Mixup 0.8 (3 experts, lambdas 1/0/-1) with `--seeds`, LA
(1 expert, lambda 0, no Mixup) with the first seed. Every run has its own
folder under `--workdir`; a finished run (its report exists) is skipped and
an interrupted one resumes, so rerunning the command continues the
experiment. The table (mean and [min, max] over the seeds) goes to
stdout, `<workdir>/paired.md` and, with `--results_md`, between the paired
markers of that file; `--figure` adds the reliability diagrams of every
path side by side.

    python reproduction/paired.py --epochs=20 --workdir=runs/paired \
        --results_md=reproduction/RESULTS.md
"""

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "reproduction"))

from reproduce import update_markdown  # noqa: E402

from balpoe_keras.data.archive import find_cifar10_archive  # noqa: E402
from balpoe_keras.experiments.config import scale_step_schedule  # noqa: E402

PIPELINES = ("replica", "tfdata", "arrays")
# More paths on request (--pipelines): tf.data in mixed bfloat16, the
# accuracy check of `--mixed_precision=auto` on CPUs with AVX512_BF16/AMX.
EXTRA_FLAGS = {
    "tfdata_bf16": ("tfdata", ["--mixed_precision=mixed_bfloat16"]),
    # GPU variants (reproduction/gpu_reproduce.sh GPU_REPRO_VARIANTS).
    "arrays_bf16": ("arrays", ["--mixed_precision=mixed_bfloat16"]),
    "arrays_b512": ("arrays", ["--batch_size=512",
                               "--learning_rate_batch_size=128"]),
}
# The replica with its Mixup weight stream seeded by --seed (a diagnostic:
# the reference draws the same stream for every seed).
REPLICA_FLAGS = {"replica": [], "replica_stream": ["--mixup_stream_seed"]}
# name -> (lambdas, mixup alpha)
METHODS = {"balpoe_mixup": ("1,0,-1", 0.8), "la": ("0", 0.0)}
MARKERS = ("<!-- paired:start -->", "<!-- paired:end -->")
METRICS = (("balanced_accuracy", "bal. acc"), ("acc_many", "many"),
           ("acc_medium", "medium"), ("ece", "ECE"), ("mce", "MCE"),
           ("nll", "NLL"))
# The metrics compared between paths (differences, same-init pairs).
COMPARED = (("balanced_accuracy", "bal. acc"), ("ece", "ECE"))


def plan(args, every_seed=False):
    """`[(pipeline, method, seed)]`, seed-major so early results pair up.

    LA trains with the first seed only, unless `every_seed` (the table
    collects every seed that has a report, e.g. LA runs of other seeds).
    """
    runs = []
    seeds = [int(s) for s in args.seeds.split(",")]
    for method in args.methods.split(","):
        use = seeds if method == "balpoe_mixup" or every_seed else seeds[:1]
        for seed in use:
            runs += [(p, method, seed) for p in args.pipelines.split(",")]
    return runs


def run_dir(args, pipeline, method, seed):
    return os.path.join(args.workdir, f"{pipeline}_{method}_seed{seed}")


def command(args, pipeline, method, seed, archive_dir):
    """The command line of one run."""
    lambdas, alpha = METHODS[method]
    warmup, steps = scale_step_schedule(args.epochs)
    steps = ",".join(str(s) for s in steps)
    out = run_dir(args, pipeline, method, seed)
    if pipeline in REPLICA_FLAGS:
        extra = [f"{flag}={seed}" for flag in REPLICA_FLAGS[pipeline]]
        return [sys.executable, os.path.join(ROOT, "reproduction",
                                             "reference_train.py"),
                f"--data={archive_dir}", f"--out={out}",
                f"--epochs={args.epochs}", f"--warmup_epochs={warmup}",
                f"--lr_step_epochs={steps}", f"--lambdas={lambdas}",
                f"--mixup_alpha={alpha}", f"--seed={seed}",
                f"--cache={os.path.join(args.workdir, 'replica_arrays.npz')}",
                *extra]
    pipeline, extra = EXTRA_FLAGS.get(pipeline, (pipeline, []))
    return [sys.executable, "-m", "balpoe_keras.experiments.run",
            "--flagfile=" + os.path.join(ROOT, "experiments",
                                         "cifar10_ir100_standard.flags"),
            "--dataset=cifar10_lt_folder", f"--data_dir={archive_dir}",
            f"--input_pipeline={pipeline}", f"--workdir={out}",
            "--mixed_precision=float32", *extra,
            f"--epochs={args.epochs}", f"--warmup_epochs={warmup}",
            f"--lr_step_epochs={steps}",
            f"--num_experts={len(lambdas.split(','))}",
            f"--lambdas={lambdas}", f"--mixup_alpha={alpha}",
            f"--seed={seed}", "--export=false", "--test_distributions=false"]


def report_path(args, pipeline, method, seed):
    folder = run_dir(args, pipeline, method, seed)
    if pipeline in REPLICA_FLAGS:
        return os.path.join(folder, "report.json")
    return os.path.join(folder, "report", "report.json")


def load_reports(args):
    """`{(pipeline, method): {seed: report dict}}` of the finished runs
    (every seed with a report, LA too)."""
    reports = {}
    for pipeline, method, seed in plan(args, every_seed=True):
        path = report_path(args, pipeline, method, seed)
        if os.path.exists(path):
            with open(path) as f:
                reports.setdefault((pipeline, method), {})[seed] = (
                    json.load(f))
    return reports


def collect(args, reports=None):
    """`{(pipeline, method): {seed: summary}}` of the finished runs, with
    accuracies, ECE and MCE in % (the reports hold fractions) for the
    tables, NLL in nats."""
    reports = load_reports(args) if reports is None else reports
    return {key: {seed: _percent(report["summary"])
                  for seed, report in runs.items()}
            for key, runs in reports.items()}


def _percent(summary):
    return {k: v if v is None or k == "test/nll" else 100.0 * v
            for k, v in summary.items()}


def _reliability(pipeline, report):
    """The ensemble's reliability-diagram bins of one report, or None."""
    if pipeline in REPLICA_FLAGS:
        return report.get("reliability")
    return report["balanced"]["ensemble"].get("reliability")


def draw_reliability(args, path, reports):
    """PNG: one reliability diagram per method (row) and path (column), of
    the first seed (the seed every path has), titled with its ECE/MCE."""
    from balpoe_keras.evaluation.plots import plot_reliability_grid

    seed = int(args.seeds.split(",")[0])
    panels = []
    for method in args.methods.split(","):
        row = []
        for pipeline in args.pipelines.split(","):
            report = reports.get((pipeline, method), {}).get(seed)
            reliability = report and _reliability(pipeline, report)
            row.append(None if not reliability else {
                "reliability": reliability,
                "ece": report["summary"]["test/ece"],
                "mce": report["summary"]["test/mce"],
                "title": f"{method}, {pipeline}, seed {seed}"})
        if any(row):
            panels.append(row)
    if not panels:
        raise SystemExit(f"No reliability bins under {args.workdir}: rerun "
                         "the finished replica runs to add them.")
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    plot_reliability_grid(panels, path)


def format_table(results, args):
    """Markdown: one row per pipeline and method, mean [min, max] (seeds)."""
    head = "| method | path | seeds | " + " | ".join(
        label for _, label in METRICS) + " |"
    lines = [head, "|" + "---|" * (3 + len(METRICS))]
    for method in args.methods.split(","):
        for pipeline in args.pipelines.split(","):
            runs = results.get((pipeline, method), {})
            if not runs:
                continue
            cells = [_cell([s[f"test/{key}"] for s in runs.values()])
                     for key, _ in METRICS]
            seeds = ",".join(str(s) for s in sorted(runs))
            lines.append(f"| {method} | {pipeline} | {seeds} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_differences(results, args):
    """Markdown: each path minus the replica, per method, for balanced
    accuracy and ECE: difference of the means and Welch's t (both need two
    or more seeds on each side)."""
    keys = COMPARED
    lines = ["| method | path | seeds (replica) | " + " | ".join(
        f"Δ {label} (Welch t, df)" for _, label in keys) + " |",
        "|" + "---|" * (3 + len(keys))]
    for method in args.methods.split(","):
        base = results.get(("replica", method), {})
        for pipeline in args.pipelines.split(","):
            runs = results.get((pipeline, method), {})
            if pipeline == "replica" or len(runs) < 2 or len(base) < 2:
                continue
            cells = [_welch([s[f"test/{k}"] for s in runs.values()],
                            [s[f"test/{k}"] for s in base.values()])
                     for k, _ in keys]
            lines.append(f"| {method} | {pipeline} | {len(runs)} "
                         f"({len(base)}) | " + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def format_same_init_pairs(results, args):
    """Markdown: our other paths minus `tfdata`, seed by seed.

    Our paths seed the initial weights with the run's seed
    (`keras.utils.set_random_seed`), so `tfdata` and `arrays` runs of one
    seed start from the same weights and differ only in the input
    pipeline's draws: the per-seed difference removes the initial weights'
    share of the seed noise. Only the seeds of `args.same_init_seeds`
    (all when empty) are paired: runs that did not start from their
    seed's weights (trained before the runner seeded them) are left out.
    Mean difference and paired t with two or more common seeds, the one
    difference with one; "" when no path has a common seed.
    """
    keys = COMPARED
    allowed = set(same_init_seeds(args) or _all_seeds(results))
    lines = ["| method | path − tfdata | common seeds | " + " | ".join(
        f"Δ {label} per seed (mean, paired t)" for _, label in keys)
        + " |", "|" + "---|" * (3 + len(keys))]
    for method in args.methods.split(","):
        base = results.get(("tfdata", method), {})
        for pipeline in args.pipelines.split(","):
            if pipeline in REPLICA_FLAGS or pipeline == "tfdata":
                continue
            runs = results.get((pipeline, method), {})
            seeds = sorted(set(runs) & set(base) & allowed)
            if not seeds:
                continue
            cells = []
            for key, _ in keys:
                diffs = [runs[s][f"test/{key}"] - base[s][f"test/{key}"]
                         for s in seeds]
                cells.append(", ".join(f"{d:+.2f}" for d in diffs) + (
                    f" ({_paired(diffs)})" if len(diffs) > 1 else ""))
            lines.append(f"| {method} | {pipeline} | "
                         f"{','.join(map(str, seeds))} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines) if len(lines) > 2 else ""


def _left_out(args, results):
    """`. Seeds 1, 2 are left out (...)` when `--same_init_seeds` leaves
    out seeds that have runs; "" otherwise."""
    chosen = same_init_seeds(args)
    out = sorted(_all_seeds(results) - set(chosen)) if chosen else []
    if not out:
        return ""
    return (f". Seed{'s' if len(out) > 1 else ''} "
            f"{', '.join(map(str, out))} "
            f"{'are' if len(out) > 1 else 'is'} left out "
            "(`--same_init_seeds`): those runs did not all start from their "
            "seed's weights")


def same_init_seeds(args):
    """The seeds of `--same_init_seeds`, as ints ([] when not given)."""
    text = getattr(args, "same_init_seeds", None) or ""
    return [int(seed) for seed in text.split(",") if seed.strip()]


def _all_seeds(results):
    return {seed for runs in results.values() for seed in runs}


def _paired(diffs):
    """`"mean +d, t"` of per-seed differences (paired t-statistic)."""
    d = np.asarray(diffs, np.float64)
    se = d.std(ddof=1) / np.sqrt(len(d))
    mean = f"mean {d.mean():+.2f}"
    return f"{mean}, t {d.mean() / se:+.1f}" if se > 0 else mean


def _welch(a, b):
    """`"+d (t, df)"`: mean(a) - mean(b), Welch's t statistic and its
    Welch-Satterthwaite degrees of freedom."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    diff = a.mean() - b.mean()
    va, vb = a.var(ddof=1) / len(a), b.var(ddof=1) / len(b)
    if va + vb <= 0:
        return f"{diff:+.2f}"
    df = (va + vb) ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return f"{diff:+.2f} ({diff / np.sqrt(va + vb):+.1f}, df {df:.1f})"


def _cell(values):
    values = [v for v in values if v is not None]
    if not values:
        return "–"
    mean = sum(values) / len(values)
    if len(values) == 1:
        return f"{mean:.2f}"
    return f"{mean:.2f} [{min(values):.2f}, {max(values):.2f}]"


def run_all(args):
    """Runs every planned run that has no report yet (resuming)."""
    archive_dir = os.path.dirname(find_cifar10_archive(args.data_dir))
    env = dict(os.environ, KERAS_BACKEND="tensorflow")
    for pipeline, method, seed in plan(args):
        if os.path.exists(report_path(args, pipeline, method, seed)):
            continue
        print(f"== {pipeline} {method} seed {seed}", flush=True)
        subprocess.run(command(args, pipeline, method, seed, archive_dir),
                       check=True, cwd=ROOT, env=env)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--epochs", type=int, default=20)
    add("--workdir", default="runs/paired")
    add("--seeds", default="1,2")
    add("--methods", default=",".join(METHODS))
    add("--pipelines", default=",".join(PIPELINES))
    add("--data_dir", default=None, help="Folder of cifar10-jpeg.tar.gz "
        "(default: the usual places).")
    add("--results_md", default=None)
    add("--table_only", action="store_true",
        help="Only collect the finished runs and print the table.")
    add("--figure", default=None, help="Also draw the reliability "
        "diagrams of the first seed side by side into this PNG.")
    add("--same_init_seeds", default="", help="Seeds whose runs of our "
        "paths started from the seed's weights, paired in the same-weights "
        "table (default: all); leave out runs trained before the runner "
        "seeded the initial weights.")
    add("--device_note", default="CPU, TensorFlow backend for the "
        "balpoe_keras paths", help="Where the runs trained (for the table).")
    args = parser.parse_args(argv)
    if not args.table_only:
        run_all(args)
    warmup, steps = scale_step_schedule(args.epochs)
    reports = load_reports(args)
    results = collect(args, reports)
    table = format_table(results, args)
    block = (f"CIFAR-10-LT IR100 (JPEG archive), {args.epochs} epochs "
             f"(warm-up {warmup}, LR x0.1 after epochs {list(steps)}), "
             f"{args.device_note}; mean [min, max] over the seeds, all in % "
             "except NLL (nats).\n"
             f"Command: `python reproduction/paired.py --epochs={args.epochs}"
             f" --workdir={args.workdir} --seeds={args.seeds}"
             f" --methods={args.methods} --pipelines={args.pipelines}`"
             "\n\n" + table)
    differences = format_differences(results, args)
    if differences:
        block += ("\n\nEach path minus the replica (difference of the "
                  "means; Welch's t and its degrees of freedom in "
                  "brackets; p < 0.05 (two-sided) needs |t| above 12.7 at "
                  "df 1, 4.3 at 2, 2.8 at 4, 2.4 at 6):\n\n"
                  + differences)
    pairs = format_same_init_pairs(results, args)
    if pairs:
        block += ("\n\nSame initial weights: our runs of one seed start "
                  "from the same weights on every input path, so each "
                  "path minus tf.data, seed by seed, isolates the input "
                  "pipeline (differences per seed; mean and paired t)"
                  + _left_out(args, results) + ":\n\n" + pairs)
    if args.figure:
        draw_reliability(args, args.figure, reports)
        relative = os.path.relpath(
            args.figure, os.path.dirname(os.path.abspath(
                args.results_md or os.path.join(args.workdir, "paired.md"))))
        block += (f"\n\nReliability diagrams (seed "
                  f"{args.seeds.split(',')[0]}; rows: methods, columns: "
                  f"paths):\n\n![paired reliability diagrams]({relative})")
    with open(os.path.join(args.workdir, "paired.md"), "w") as f:
        f.write(block + "\n")
    if args.results_md:
        update_markdown(args.results_md, block, MARKERS)
    print(block)


if __name__ == "__main__":
    main()
