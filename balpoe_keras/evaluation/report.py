"""Writes evaluation results as `report.json`, `report.md` and PNG plots.

`report.json` holds every number of `evaluate_model` (NaN written as
`null`), the resolved config passed in, the software versions, and the
machine and date it was written on;
`report.md` holds the same numbers as readable tables (2 decimals).
"""

import datetime
import importlib.metadata
import json
import logging
import math
import os
import platform

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras.version import __version__

_PACKAGES = ("keras", "numpy", "tensorflow", "jax", "torch", "matplotlib")
_METRIC_COLUMNS = (
    ("accuracy", "Acc (%)"),
    ("balanced_accuracy", "Bal. acc (%)"),
    ("acc_many", "Many (%)"),
    ("acc_medium", "Medium (%)"),
    ("acc_few", "Few (%)"),
    ("ece", "ECE (%)"),
    ("mce", "MCE (%)"),
    ("nll", "NLL"),
)
# Fractions in report.json, shown as percent in the tables for people.
PERCENT_KEYS = frozenset(("accuracy", "balanced_accuracy", "acc_many",
                          "acc_medium", "acc_few", "ece", "mce", "all",
                          "many", "medium", "few"))


def describe_machine(cpuinfo="/proc/cpuinfo"):
    """`"2 CPU cores (AMD EPYC 7B13)"`, with `", 1 GPU"` etc. where the
    Keras backend lists accelerators: the machine a report was written on
    (where the runner trained)."""
    model = None
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        model = platform.processor() or None
    text = f"{os.cpu_count()} CPU cores" + (f" ({model})" if model else "")
    kinds = {}
    for device in _accelerators():
        kind = device.split(":")[0].upper()
        kinds[kind] = kinds.get(kind, 0) + 1
    return text + "".join(f", {n} {kind}{'s' if n > 1 else ''}"
                          for kind, n in sorted(kinds.items()))


def _accelerators():
    """`["gpu:0", ...]`: the backend's non-CPU devices ([] if none)."""
    try:
        if keras.backend.backend() == "torch":
            import torch

            return [f"gpu:{i}" for i in range(torch.cuda.device_count())]
        devices = keras.distribution.list_devices()
    except Exception:  # A listing failure must not lose the report.
        return []
    return [d for d in devices if not d.lower().startswith("cpu")]


def get_software_versions():
    """Versions of Python, balpoe_keras, the Keras backend and key packages.

    Packages are looked up in the installed metadata (nothing is imported);
    a package that is not installed is left out.
    """
    versions = {
        "python": platform.python_version(),
        "balpoe_keras": __version__,
        "keras_backend": keras.backend.backend(),
    }
    for package in _PACKAGES:
        try:
            versions[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            pass
    return versions


def to_json_ready(value):
    """Recursively converts NumPy values to Python; NaN/inf become None."""
    if isinstance(value, dict):
        return {str(k): to_json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json_ready(v) for v in value]
    if isinstance(value, np.ndarray):
        return to_json_ready(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_report(results, out_dir, *, config=None, plots=True):
    """Writes `report.json`, `report.md` and (optionally) PNGs to `out_dir`.

    Args:
        results: dict from `evaluate_model`.
        out_dir: directory, created if needed.
        config: optional JSON-serialisable dict, the resolved run config.
        plots: bool. If True, also write `reliability.png`,
            `per_class_accuracy.png` and `expert_prior.png` (matplotlib Agg).

    Returns:
        dict `name -> path` of every written file (`json`, `markdown`, and
        plot names). A plot that cannot be drawn (no matplotlib) is left
        out with a logged warning: the numbers are written regardless.
    """
    os.makedirs(out_dir, exist_ok=True)
    report = to_json_ready(
        {**results, "config": config, "versions": get_software_versions(),
         "machine": describe_machine(),
         "date": datetime.date.today().isoformat()}
    )
    paths = {
        "json": os.path.join(out_dir, "report.json"),
        "markdown": os.path.join(out_dir, "report.md"),
    }
    if plots:
        paths.update(_drawn_plots(report, out_dir))
    with open(paths["json"], "w") as f:
        json.dump(report, f, indent=1, allow_nan=False)
    with open(paths["markdown"], "w") as f:
        f.write(format_markdown(report, paths))
    return paths


def _drawn_plots(report, out_dir):
    """`plots.write_plots`, or `{}` with a logged warning where they
    cannot be drawn: the report's numbers must not be lost to a plot."""
    try:
        from balpoe_keras.evaluation import plots as plots_lib

        return plots_lib.write_plots(report, out_dir)
    except ImportError as e:
        logging.warning("No plots in %s: %s (pip install matplotlib).",
                        out_dir, e)
    except Exception as e:  # noqa: BLE001 - any drawing failure.
        logging.warning("No plots in %s: drawing them failed (%s: %s); the "
                        "report's numbers are written.", out_dir,
                        type(e).__name__, e)
    return {}


def format_number(value, digits=2):
    """`12.3456` -> `"12.35"`; None/NaN -> `"–"`."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return f"{value:.{digits}f}"


def format_percent(fraction, digits=2):
    """`0.123456` -> `"12.35"` (percent, for tables); None/NaN -> `"–"`."""
    return format_number(None if fraction is None else 100.0 * fraction,
                         digits)


def format_value(key, value, digits=2):
    """A report value for a table: percent for `PERCENT_KEYS`."""
    if key in PERCENT_KEYS:
        return format_percent(value, digits)
    return format_number(value, digits)


def format_table(header, rows):
    """Markdown table from a header list and row lists of strings."""
    lines = ["| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def format_markdown(report, paths=None):
    """Readable Markdown for a (JSON-ready) report dict."""
    balanced = report["balanced"]
    groups = report["shot_groups"]
    lams = ", ".join(format_number(v) for v in report["lambdas"])
    test_counts = report.get("balanced_test_counts") or []
    skewed = bool(test_counts) and min(test_counts) != max(test_counts)
    where = f"test set `{report['balanced_test_set']}`" if skewed else (
        "balanced test set")
    if skewed:
        test_set = (
            f"Test set `{report['balanced_test_set']}`, NOT balanced "
            f"({min(test_counts)} to {max(test_counts)} images per class: "
            "the balanced accuracy and the group accuracies weigh its "
            "classes equally, the accuracy, ECE, MCE and NLL follow its "
            "class mix; give every class as many test images for the "
            "paper's balanced-test numbers)")
    else:
        test_set = f"Balanced test set `{report['balanced_test_set']}`"
    parts = [
        "# BalPoE evaluation report",
        f"{test_set}: "
        f"{balanced['num_examples']} images, {report['num_classes']} "
        f"classes, {report['num_experts']} experts, lambdas [{lams}] "
        f"(mean {format_number(float(np.mean(report['lambdas'])))}). "
        f"Training-count groups: many {groups['many']} (more than "
        f"{class_prior.MANY_SHOT_MIN} training images), medium "
        f"{groups['medium']} ({class_prior.FEW_SHOT_MAX}-"
        f"{class_prior.MANY_SHOT_MIN}), few {groups['few']} (fewer than "
        f"{class_prior.FEW_SHOT_MAX}) classes. Accuracies, ECE "
        f"and MCE in % in these tables ({report['num_bins']} bins; "
        "fractions in report.json), NLL and KL in nats; – means the group "
        "has no class, or none of its classes has a test image.",
        f"## Ensemble ({where})",
        format_metric_table([("ensemble", balanced["ensemble"])]),
        f"## Experts ({where})",
        "`raw` scores the expert's own logits z_m (which model P_train^λ); "
        "`adjusted` scores z_m + τ_m·log π (which model P_train, τ = 1 − λ).",
        format_expert_table(balanced["experts"]),
        "## Expert priors (paper Fig. 4)",
        _prior_table(balanced["expert_prior"]),
        "## Test-agnostic evaluation",
        _agnostic_table(report["test_agnostic"]),
    ]
    if paths:
        images = [f"![{k}]({os.path.basename(p)})" for k, p in paths.items()
                  if p.endswith(".png")]
        parts += ["## Plots", "\n".join(images)]
    parts += [
        "## Software",
        format_table(["package", "version"],
                     sorted(report["versions"].items())),
    ]
    if report.get("machine"):
        parts.append(f"Written on {report.get('date')} on "
                     f"{report['machine']}.")
    if report.get("dtype_policy"):
        parts.append(f"Trained with the `{report['dtype_policy']}` dtype "
                     "policy.")
    if report.get("config"):
        config = json.dumps(report["config"], indent=1, sort_keys=True)
        parts += ["## Config", f"```json\n{config}\n```"]
    return "\n\n".join(parts) + "\n"


def format_metric_table(named_metrics):
    """Markdown table of `[(name, metrics dict)]` rows (accuracies, ECE...)."""
    header = ["predictor"] + [label for _, label in _METRIC_COLUMNS]
    rows = [
        [name] + [format_value(key, m[key]) for key, _ in _METRIC_COLUMNS]
        for name, m in named_metrics
    ]
    return format_table(header, rows)


def format_expert_table(experts):
    """Markdown table of every expert's `raw` and `adjusted` metrics."""
    named = []
    for e in experts:
        for view in ("raw", "adjusted"):
            label = (f"expert {e['index']} (λ={format_number(e['lambda'])}) "
                     f"{view}")
            named.append((label, e[view]))
    return format_metric_table(named)


def _prior_table(expert_prior):
    rows = [
        [f"expert {m}", format_number(p["lambda"]), format_number(p["kl"], 4)]
        for m, p in enumerate(expert_prior["experts"])
    ]
    ens = expert_prior["ensemble"]
    rows.append(["ensemble", format_number(ens["lambda"]),
                 format_number(ens["kl"], 4)])
    return format_table(["predictor", "λ", "KL(expected ‖ estimated)"], rows)


def _agnostic_table(test_agnostic):
    has_posthoc = any("posthoc" in r for r in test_agnostic.values())
    header = ["test set", "images", "All (%)", "Many (%)", "Medium (%)",
              "Few (%)"]
    if has_posthoc:
        header += ["All +log p (%)", "Many +log p (%)", "Medium +log p (%)",
                   "Few +log p (%)"]
    rows, notes = [], []
    for name, result in test_agnostic.items():
        row = [name, str(result["num_examples"])]
        for variant in ("plain", "posthoc") if has_posthoc else ("plain",):
            acc = result.get(variant, {})
            row += [format_percent(acc.get(k))
                    for k in ("all", "many", "medium", "few")]
        rows.append(row)
        missing = result["num_classes_without_test_images"]
        if missing:
            notes.append(f"- `{name}`: {missing} classes have no test image; "
                         "they are skipped in the per-class means.")
    text = format_table(header, rows)
    if has_posthoc:
        text += ("\n\n`+log p` adds the post-hoc test-prior correction "
                 "log p_test to the ensemble logits (the reference's "
                 "--posthoc_bias_correction).")
    return text + ("\n\n" + "\n".join(notes) if notes else "")
