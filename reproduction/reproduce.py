"""CE vs LA vs BalPoE vs BalPoE + Mixup on CIFAR-10-LT IR100 (paper Table 6).

Runs the four methods of the comparison through the experiment runner, one
run directory each (so an interrupted comparison resumes where it stopped),
then writes a table of balanced accuracy, many/medium/few, ECE and MCE with
links to each run's reliability diagram:

    # The full reference schedule (200 epochs), e.g. on a GPU:
    python reproduction/reproduce.py --epochs=200 --workdir=runs/reproduce
    # A CPU budget: the same recipe with the LR milestones scaled:
    python reproduction/reproduce.py --epochs=12 --workdir=runs/reproduce_cpu \
        --results_md=reproduction/RESULTS.md --figures_dir=docs/images/reproduce

Data: the offline CIFAR-10 JPEG archive (`--dataset=cifar10_lt_folder`);
`--dataset=cifar10_lt` uses tfds' CIFAR-10 (the reference's exact subset).
For `epochs != 200` the schedule is scaled by the project's one rule
(`balpoe_keras.experiments.config.scale_step_schedule`): warm-up
`round(5 * epochs / 200)` (at least 1), LR drops at 80 % and 90 % of the
epochs, as 160/180 of 200.
"""

import argparse
import json
import os
import re
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from balpoe_keras.experiments.config import scale_step_schedule  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BASE_FLAGFILE = os.path.join(ROOT, "experiments",
                             "cifar10_ir100_standard.flags")
# name -> (experts, lambdas, mixup alpha); paper Table 6 at IR100.
METHODS = {
    "ce": (1, "1", 0.0),
    "la": (1, "0", 0.0),
    "balpoe": (3, "1,0,-1", 0.0),
    "balpoe_mixup": (3, "1,0,-1", 0.8),
}
PAPER = {"ce": "71.3", "la": "–", "balpoe": "80.5", "balpoe_mixup": "84.2"}
MARKERS = ("<!-- reproduce:start -->", "<!-- reproduce:end -->")


def scaled_schedule(epochs):
    """`(warmup_epochs, (step1, step2))` of the reference scaled to `epochs`
    (`balpoe_keras.experiments.config.scale_step_schedule`)."""
    return scale_step_schedule(epochs)


def method_command(method, args):
    """The runner command line of one method."""
    experts, lambdas, alpha = METHODS[method]
    warmup, (step1, step2) = scaled_schedule(args.epochs)
    command = [
        sys.executable, "-m", "balpoe_keras.experiments.run",
        f"--flagfile={BASE_FLAGFILE}", f"--dataset={args.dataset}",
        f"--workdir={os.path.join(args.workdir, method)}",
        f"--num_experts={experts}", f"--lambdas={lambdas}",
        f"--mixup_alpha={alpha}", f"--epochs={args.epochs}",
        f"--warmup_epochs={warmup}", f"--lr_step_epochs={step1},{step2}",
        f"--seed={args.seed}",
    ]
    if method == "ce":
        command.append("--allow_unbalanced_lambdas")
    return command + args.extra_flags


def copy_figures(methods, args):
    """Copies each run's reliability diagram into `args.figures_dir`.

    Returns `{method: markdown image link}`, relative to the directory of
    `args.results_md` (or absolute paths without it).
    """
    os.makedirs(args.figures_dir, exist_ok=True)
    base = os.path.dirname(os.path.abspath(args.results_md or "."))
    links = {}
    for method in methods:
        source = os.path.join(ROOT, args.workdir, method, "report",
                              "reliability.png")
        target = os.path.join(os.path.abspath(args.figures_dir),
                              f"{method}_reliability.png")
        shutil.copyfile(source, target)
        links[method] = f"![{method}]({os.path.relpath(target, base)})"
    return links


def format_table(reports, args, figures=None):
    """Markdown table of the methods' `summary` numbers (fractions in the
    reports, shown in %).

    `figures`: optional `{method: markdown}` for the reliability column
    (default: the run's own `reliability.png` path).
    """
    header = ("| method | paper (200 ep.) | bal. acc | many | medium | few "
              "| ECE | MCE | reliability |\n|---|---|---|---|---|---|---|---"
              "|---|")
    rows = []
    for method, report in reports.items():
        s = report["summary"]
        cells = [_fmt(s.get(f"test/{k}")) for k in (
            "balanced_accuracy", "acc_many", "acc_medium", "acc_few", "ece",
            "mce")]
        png = os.path.join(args.workdir, method, "report", "reliability.png")
        link = (figures or {}).get(method, f"`{png}`")
        rows.append(f"| {method} | {PAPER[method]} | " + " | ".join(cells)
                    + f" | {link} |")
    title = (f"CIFAR-10-LT IR100 ({args.dataset}), {args.epochs} epochs, "
             f"seed {args.seed}; command: `python reproduction/reproduce.py "
             f"--epochs={args.epochs} --workdir={args.workdir}`")
    return "\n".join([title, "", header, *rows])


def _fmt(value):
    """A fraction from a report as percent for the table."""
    return "–" if value is None else f"{100 * value:.1f}"


def update_markdown(path, block, markers=MARKERS):
    """Replaces the text between the `markers` of `path`."""
    with open(path) as f:
        text = f.read()
    start, end = markers
    if start not in text or end not in text:
        raise SystemExit(f"{path} lacks the markers {start} ... {end}")
    pattern = re.escape(start) + ".*?" + re.escape(end)
    text = re.sub(pattern, lambda _: f"{start}\n{block}\n{end}", text,
                  flags=re.S)
    with open(path, "w") as f:
        f.write(text)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=200)
    parser.add_argument("--workdir", default="runs/reproduce")
    parser.add_argument("--dataset", default="cifar10_lt_folder",
                        choices=["cifar10_lt_folder", "cifar10_lt"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--results_md", default=None,
                        help="Markdown file whose reproduce markers to fill.")
    parser.add_argument("--figures_dir", default=None,
                        help="Copy the reliability diagrams here and link "
                        "them from the table (e.g. docs/images/reproduce).")
    parser.add_argument("extra_flags", nargs="*",
                        help="More runner flags after `--`.")
    args = parser.parse_args()
    reports = {}
    for method in args.methods.split(","):
        if method not in METHODS:
            parser.error(f"unknown method {method!r}; known: {list(METHODS)}")
        subprocess.run(method_command(method, args), check=True, cwd=ROOT)
        path = os.path.join(args.workdir, method, "report", "report.json")
        with open(os.path.join(ROOT, path)) as f:
            reports[method] = json.load(f)
    figures = copy_figures(reports, args) if args.figures_dir else None
    block = format_table(reports, args, figures)
    with open(os.path.join(ROOT, args.workdir, "reproduce.md"), "w") as f:
        f.write(block + "\n")
    if args.results_md:
        update_markdown(args.results_md, block)
    print(block)


if __name__ == "__main__":
    main()
