"""Mean ± std over seeds of several `report.json` files (paper-style tables).

Usage:

    python -m balpoe_keras.evaluation.aggregate \
        runs/seed1/report.json runs/seed2/report.json ... --out table.md

The standard deviation is the sample std (ddof=1) over runs, as for the
paper's "mean ± std over 5 seeds"; it is omitted for a single run. Groups
with no class (None in the reports) stay "–"; a number that only some
runs report is marked with how many ("(2 of 3 runs)"). Runs of other
training sets (class counts), lambdas, bins, test sets or settings (the
recorded `config`, except the seed and where the run ran), and a seed
given twice, are refused.
"""

import argparse
import json
import math
import sys

import numpy as np

from balpoe_keras.evaluation.report import PERCENT_KEYS
from balpoe_keras.evaluation.report import format_number
from balpoe_keras.evaluation.report import format_table

_ENSEMBLE_ROWS = (
    ("accuracy", "Top-1 accuracy (%)"),
    ("balanced_accuracy", "Balanced accuracy (%)"),
    ("acc_many", "Many-shot (%)"),
    ("acc_medium", "Medium-shot (%)"),
    ("acc_few", "Few-shot (%)"),
    ("ece", "ECE (%)"),
    ("mce", "MCE (%)"),
    ("nll", "NLL (nats)"),
)
_GROUP_KEYS = ("all", "many", "medium", "few")
# Settings seeds of one setting may differ in: the seed and where or how
# the run was executed and recorded, not what it trained or tested.
_RUN_ONLY_SETTINGS = frozenset((
    "seed", "seeds", "workdir", "data_dir", "eval_batch_size", "eval_every",
    "checkpoint_every", "export", "jit_compile", "input_pipeline",
    "test_distributions"))


def compute_mean_std(values):
    """`(mean, std, n)` of the non-None values; std is None for n < 2."""
    values = [float(v) for v in values if v is not None]
    values = [v for v in values if math.isfinite(v)]
    if not values:
        return None, None, 0
    std = float(np.std(values, ddof=1)) if len(values) > 1 else None
    return float(np.mean(values)), std, len(values)


def format_mean_std(values, digits=2, scale=1.0):
    """`"52.03 ± 0.45"` (or `"52.03"` for one run, `"–"` for none) of the
    values times `scale` (100 shows fractions as percent), with
    `" (n of N runs)"` when only n of the N values are numbers."""
    mean, std, n = compute_mean_std(
        [None if v is None else scale * float(v) for v in values])
    if mean is None:
        return "–"
    text = format_number(mean, digits)
    if std is not None:
        text += f" ± {format_number(std, digits)}"
    if n < len(values):
        text += f" ({n} of {len(values)} runs)"
    return text


def aggregate_reports(reports):
    """Collects each reported number across runs.

    Args:
        reports: list of report dicts (parsed `report.json`), one per seed.

    Returns:
        dict with `num_runs`, `seeds` (from each config's `seed` if any),
        `ensemble` (`metric -> list`), `experts` (`[{"raw": {...},
        "adjusted": {...}, "lambda", "kl"}]`, lists per metric) and
        `test_agnostic` (`set -> variant -> group -> list`).

    Raises:
        ValueError: if the runs differ in classes, experts or test sets.
    """
    if not reports:
        raise ValueError("Pass at least one report.json.")
    _check_compatible(reports)
    first = reports[0]

    def collect(fn):
        return [fn(r) for r in reports]

    ensemble = {k: collect(lambda r, k=k: r["balanced"]["ensemble"][k])
                for k, _ in _ENSEMBLE_ROWS}
    experts = []
    for m, expert in enumerate(first["balanced"]["experts"]):
        entry = {"lambda": expert["lambda"], "kl": collect(
            lambda r, m=m: r["balanced"]["expert_prior"]["experts"][m]["kl"])}
        for view in ("raw", "adjusted"):
            entry[view] = {k: collect(
                lambda r, m=m, v=view, k=k: r["balanced"]["experts"][m][v][k])
                for k, _ in _ENSEMBLE_ROWS}
        experts.append(entry)
    agnostic = {}
    for name, result in first["test_agnostic"].items():
        agnostic[name] = {
            variant: {g: collect(
                lambda r, n=name, v=variant, g=g: r["test_agnostic"][n][v][g])
                for g in _GROUP_KEYS}
            for variant in ("plain", "posthoc") if variant in result
        }
    return {
        "num_runs": len(reports),
        "seeds": [(r.get("config") or {}).get("seed") for r in reports],
        "ensemble": ensemble,
        "experts": experts,
        "test_agnostic": agnostic,
    }


def _check_compatible(reports):
    keys = ("num_classes", "num_experts", "lambdas", "class_counts",
            "num_bins", "balanced_test_set", "test_agnostic", "config")
    for i, report in enumerate(reports[1:], start=1):
        for key in keys:
            a, b = _comparable(key, reports[0]), _comparable(key, report)
            if key == "config" and (a is None or b is None):
                continue  # A report written from Python: no settings.
            if a != b:
                if key == "config":
                    key, b, a = _differing_setting(b, a)
                raise ValueError(
                    f"Report {i} differs from report 0 in {key!r} ({b} vs "
                    f"{a}); only aggregate seeds of one setting."
                )
    seen = {}
    for i, report in enumerate(reports):
        seed = (report.get("config") or {}).get("seed")
        if seed is not None and seed in seen:
            raise ValueError(
                f"Reports {seen[seed]} and {i} are both seed {seed}: the same "
                "run passed twice would shrink the std; pass each seed's "
                "report once.")
        seen.setdefault(seed, i)


def _comparable(key, report):
    """What must agree across seeds under `key` of a report: the test
    sets with the variants each reports, the config without
    `_RUN_ONLY_SETTINGS` (None where a report has none, e.g. one written
    from Python: not compared)."""
    value = report.get(key)
    if key == "test_agnostic":
        return {name: sorted(v for v in ("plain", "posthoc") if v in result)
                for name, result in (value or {}).items()}
    if key == "config":
        return None if value is None else {
            k: v for k, v in value.items() if k not in _RUN_ONLY_SETTINGS}
    return value


def _differing_setting(config, first):
    """`(flag, value, first value)` of the first setting two configs differ
    in (None if either report has no config)."""
    if config is None or first is None:
        return "config", config, first
    for name in sorted(set(config) | set(first)):
        if config.get(name) != first.get(name):
            return f"config.{name}", config.get(name), first.get(name)
    return "config", config, first


def format_aggregate_markdown(aggregated, sources=()):
    """Markdown tables (mean ± std) of an `aggregate_reports` result."""
    n = aggregated["num_runs"]
    parts = [f"# BalPoE results: mean ± std over {n} run(s)"]
    if sources:
        parts.append("Runs: " + ", ".join(f"`{s}`" for s in sources))
    rows = [[label, format_mean_std(aggregated["ensemble"][k],
                                    scale=_scale(k))]
            for k, label in _ENSEMBLE_ROWS]
    parts += ["## Ensemble (balanced test set)",
              format_table(["metric", "value"], rows)]
    header = ["expert", "λ", "view"] + [label for _, label in _ENSEMBLE_ROWS]
    rows = []
    for m, expert in enumerate(aggregated["experts"]):
        for view in ("raw", "adjusted"):
            rows.append([str(m), format_number(expert["lambda"]), view] + [
                format_mean_std(expert[view][k], scale=_scale(k))
                for k, _ in _ENSEMBLE_ROWS])
    parts += ["## Experts (balanced test set)", format_table(header, rows)]
    rows = [[str(m), format_number(e["lambda"]), format_mean_std(e["kl"], 4)]
            for m, e in enumerate(aggregated["experts"])]
    parts += ["## Expert prior KL(expected ‖ estimated) (nats)",
              format_table(["expert", "λ", "KL"], rows)]
    parts += ["## Test-agnostic accuracy (%)", _agnostic_table(aggregated)]
    return "\n\n".join(parts) + "\n"


def _agnostic_table(aggregated):
    header, rows = ["test set", "variant", "All", "Many", "Medium", "Few"], []
    for name, variants in aggregated["test_agnostic"].items():
        for variant, groups in variants.items():
            label = "+ log p_test" if variant == "posthoc" else "plain"
            rows.append([name, label] +
                        [format_mean_std(groups[g], scale=100.0)
                         for g in _GROUP_KEYS])
    return format_table(header, rows)


def _scale(key):
    """100 for the fractions shown as percent, else 1."""
    return 100.0 if key in PERCENT_KEYS else 1.0


def main(argv=None):
    """CLI: aggregate report.json files into a Markdown (and JSON) table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("reports", nargs="+", help="report.json files")
    parser.add_argument("--out", help="Markdown output (default: stdout)")
    parser.add_argument("--json_out", help="optional JSON with all values")
    args = parser.parse_args(argv)
    reports = []
    for path in args.reports:
        with open(path) as f:
            reports.append(json.load(f))
    aggregated = aggregate_reports(reports)
    text = format_aggregate_markdown(aggregated, args.reports)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    if args.json_out:
        with open(args.json_out, "w") as f:
            json.dump(aggregated, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
