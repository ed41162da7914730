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


def describe_machine(cpuinfo="/proc/cpuinfo"):
    """`"2 CPU cores (AMD EPYC)"`: the cores and model of this machine."""
    model = None
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    cores = f"{os.cpu_count()} CPU cores"
    return f"{cores} ({model})" if model else cores


def format_results(report):
    """Markdown block for the README from a report dict."""
    config = report.get("config") or {}
    timing = report.get("timing") or {}
    seconds = timing.get("train_seconds_this_invocation")
    wall = f", {seconds / 60:.1f} min of training" if seconds else ""
    policy = report.get("dtype_policy")
    policy = f" in {policy}" if policy else ""
    lines = [
        f"Quickstart results ({config.get('dataset')}, imbalance ratio "
        f"{config.get('imbalance_ratio')}, {config.get('epochs')} epochs, "
        f"{report['versions'].get('keras_backend', 'tensorflow')} backend"
        f"{policy}{wall}; measured {time.strftime('%Y-%m-%d')} on "
        f"{describe_machine()}; written by "
        "`python reproduction/readme_results.py runs/quickstart`). "
        "Accuracies, ECE and MCE in %, NLL in nats; a few epochs are far "
        "from the paper's 200-epoch schedule:",
        "",
        report_lib.format_metric_table(
            [("ensemble", report["balanced"]["ensemble"])]),
        "",
        report_lib.format_expert_table(report["balanced"]["experts"]),
        "",
        f"![Reliability diagram of the quickstart model]({IMAGE})",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("run_dir", help="Workdir of a finished run.")
    args = parser.parse_args()
    report_dir = os.path.join(args.run_dir, "report")
    with open(os.path.join(report_dir, "report.json")) as f:
        report = json.load(f)
    os.makedirs(os.path.dirname(os.path.join(ROOT, IMAGE)), exist_ok=True)
    shutil.copyfile(os.path.join(report_dir, "reliability.png"),
                    os.path.join(ROOT, IMAGE))
    with open(README) as f:
        text = f.read()
    if START not in text or END not in text:
        raise SystemExit(f"README.md lacks the markers {START} ... {END}")
    block = f"{START}\n{format_results(report)}\n{END}"
    text = re.sub(re.escape(START) + ".*?" + re.escape(END),
                  lambda _: block, text, flags=re.S)
    with open(README, "w") as f:
        f.write(text)
    print(block)


if __name__ == "__main__":
    main()
