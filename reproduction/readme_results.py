"""Puts a run's real results into README.md (between marker comments).

    python reproduction/readme_results.py runs/quickstart

Copies `<run>/report/reliability.png` to `docs/images/quickstart_
reliability.png` and writes the ensemble and per-expert tables of
`<run>/report/report.json` between `<!-- quickstart-results:start -->` and
`<!-- quickstart-results:end -->`, with the run's command, wall time
(the report's `timing`) and date, so the README shows measured numbers only.
"""

import argparse
import json
import os
import re
import shutil
import time

from balpoe_keras.evaluation import report as report_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(ROOT, "README.md")
IMAGE = os.path.join("docs", "images", "quickstart_reliability.png")
START = "<!-- quickstart-results:start -->"
END = "<!-- quickstart-results:end -->"


def format_results(report, with_image=True):
    """Markdown block for the README from a report dict (the reliability
    diagram's image line when `with_image`)."""
    config = report.get("config") or {}
    timing = report.get("timing") or {}
    seconds = timing.get("train_seconds_this_invocation")
    wall = f", {seconds / 60:.1f} min of training" if seconds else ""
    if seconds and timing.get("resumed_from_epoch"):
        wall += (f" (its last {timing.get('epochs_this_invocation')} "
                 "epochs, after a resume)")
    # Where and when the run wrote its report (older reports name
    # neither: then this machine and today).
    machine = report.get("machine") or report_lib.describe_machine()
    date = report.get("date") or time.strftime("%Y-%m-%d")
    policy = report.get("dtype_policy")
    policy = f" in {policy}" if policy else ""
    lines = [
        f"Quickstart results ({config.get('dataset')}, imbalance ratio "
        f"{config.get('imbalance_ratio')}, {config.get('epochs')} epochs, "
        f"{report['versions'].get('keras_backend', 'tensorflow')} backend"
        f"{policy}{wall}; measured {date} on {machine}; written by "
        "`python reproduction/readme_results.py runs/quickstart`). "
        "Accuracies, ECE and MCE in %, NLL in nats; a few epochs are far "
        "from the paper's 200-epoch schedule:",
        "",
        report_lib.format_metric_table(
            [("ensemble", report["balanced"]["ensemble"])]),
        "",
        report_lib.format_expert_table(report["balanced"]["experts"]),
    ]
    if with_image:
        lines += ["", f"![Reliability diagram of the quickstart model]"
                  f"({IMAGE})"]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="Workdir of a finished run.")
    args = parser.parse_args()
    report_dir = os.path.join(args.run_dir, "report")
    with open(os.path.join(report_dir, "report.json")) as f:
        report = json.load(f)
    diagram = os.path.join(report_dir, "reliability.png")
    with_image = os.path.isfile(diagram)
    if with_image:
        os.makedirs(os.path.dirname(os.path.join(ROOT, IMAGE)),
                    exist_ok=True)
        shutil.copyfile(diagram, os.path.join(ROOT, IMAGE))
    else:  # The report's plots need matplotlib.
        print(f"No {diagram} (was matplotlib installed?): the README's "
              "block is written without the reliability diagram.")
    with open(README) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    block = f"{START}\n{format_results(report, with_image)}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END),
                  lambda _: block, text, flags=re.S)
    with open(README, "w") as f:
        f.write(text)
    print(block)


if __name__ == "__main__":
    main()
