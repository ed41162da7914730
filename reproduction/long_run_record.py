r"""The record of full-schedule runs: final scores and test curves.

Reads each run's own outputs (never typed numbers) and writes one JSON list
and a plot of balanced accuracy and ECE against epoch:

    python reproduction/long_run_record.py \
        --run=balpoe_keras,tensorflow,2b0c07c,runs/cifar10_folder_ir100 \
        --run=replica,torch,2b0c07c,runs/replica_seed1 \
        --out=reproduction/results/cifar10_lt_ir100_200ep.json \
        --plot=docs/images/cifar10_lt_ir100_200ep.png

`--run=IMPLEMENTATION,BACKEND,COMMIT,FOLDER[,SEED[,NOTE]]`, one per run
(SEED: when the folder does not record it yet, as an unfinished replica
run; NOTE: free text, may contain commas):

- a balpoe_keras run folder (`python -m balpoe_keras.experiments.run`):
  `config.json`, `train_log.csv` (the `test/...` columns of
  `--eval_every`) and, once finished, `report/report.json`;
- a PyTorch replica folder (`reproduction/reference_train.py`):
  `train_log.csv`, `eval_log.csv` (`--eval_every`) and, once finished,
  `report.json`;
- a folder holding only a balpoe_keras `report.json` (and optionally
  `train_log*.csv` without test columns): the final scores, no curve.

A run that has not finished is recorded with the epochs it completed and
its curve so far (final scores null). Accuracies, ECE and MCE are
fractions in [0, 1] in the record (percent in the Markdown table), NLL in
nats; `median_images_per_sec` is the median training speed over the
logged epochs (what the run's machine and its neighbours allowed).
Folders written before scores became fractions hold percent: name each
with `--percent_run=FOLDER` and its values are divided by 100.
A run whose folder is gone (a machine lost with it) can stay in the
record as it was last written:
`--keep=IMPLEMENTATION,BACKEND,SEED[,EPOCHS]` copies that entry of the
existing `--out` file, an unfinished one marked `"stopped": true` (no
longer training: "stopped" in the table and the plot); a new attempt of
the same run may train beside it under `--run`. Entries follow the order
of the `--run` and `--keep` arguments.
`--results_md` also writes the final scores side by side between the
`long-run` markers of that file, then the test marks of balpoe_keras and
the replica of the same seed side by side with their difference, and its
mean in each learning-rate phase (`--lr_step_epochs`).
"""

import argparse
import csv
import glob
import io
import json
import os
import sys

IMPLEMENTATIONS = ("balpoe_keras", "replica")
_FINAL = {"balanced_accuracy": "test/balanced_accuracy",
          "many": "test/acc_many", "medium": "test/acc_medium",
          "few": "test/acc_few", "ece": "test/ece", "mce": "test/mce",
          "nll": "test/nll"}


def parse_run(text):
    """`IMPLEMENTATION,BACKEND,COMMIT,FOLDER[,SEED[,NOTE]]` -> dict."""
    parts = text.split(",", 5)
    if len(parts) < 4 or parts[0] not in IMPLEMENTATIONS:
        raise ValueError(
            f"--run={text!r}: expected IMPLEMENTATION,BACKEND,COMMIT,FOLDER"
            f"[,SEED[,NOTE]] with IMPLEMENTATION in {IMPLEMENTATIONS}.")
    implementation, backend, commit, folder = parts[:4]
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"--run={text!r}: no folder {folder}")
    seed = parts[4].strip() if len(parts) > 4 else ""
    return {"implementation": implementation, "backend": backend,
            "commit": commit, "folder": folder,
            "seed": int(seed) if seed else None,
            "note": parts[5] if len(parts) > 5 else None}


def _read_csv(path):
    """The rows of a log a run may be appending to: a last line without
    its newline is a row still being written, left out (its cut number
    would read as another value, or as none)."""
    with open(path, newline="") as f:
        text = f.read()
    if text and not text.endswith("\n"):
        text = text[:text.rfind("\n") + 1]
    return list(csv.DictReader(io.StringIO(text)))


def _number(value):
    if value in (None, "", "NA", "None"):
        return None
    return float(value)


def _report(folder):
    for path in (os.path.join(folder, "report", "report.json"),
                 os.path.join(folder, "report.json")):
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
    return None


def read_curve(folder):
    """`[{"epoch", "balanced_accuracy", "ece"}]` (1-based epochs, as
    logged)."""
    eval_log = os.path.join(folder, "eval_log.csv")
    if os.path.exists(eval_log):  # The replica.
        return [{"epoch": int(r["epoch"]) + 1,
                 "balanced_accuracy": _number(r["balanced_accuracy"]),
                 "ece": _number(r["ece"])} for r in _read_csv(eval_log)]
    curve = []
    for path in sorted(glob.glob(os.path.join(folder, "train_log*.csv"))):
        for row in _read_csv(path):
            value = _number(row.get("test/balanced_accuracy"))
            if value is not None:
                curve.append({"epoch": int(row["epoch"]) + 1,
                              "balanced_accuracy": value,
                              "ece": _number(row.get("test/ece"))})
    unique = {point["epoch"]: point for point in curve}  # Last log wins.
    return [unique[e] for e in sorted(unique)]


def epochs_done(folder):
    """Completed epochs: the last row of the training log."""
    rows = []
    for path in sorted(glob.glob(os.path.join(folder, "train_log*.csv"))):
        rows += _read_csv(path)
    return max((int(r["epoch"]) + 1 for r in rows), default=0)


def median_images_per_sec(folder):
    """Median training speed over the logged epochs (images/s; the last
    row of each epoch), or None without an `images_per_sec` column."""
    rates = {}
    for path in sorted(glob.glob(os.path.join(folder, "train_log*.csv"))):
        for row in _read_csv(path):
            value = _number(row.get("images_per_sec"))
            if value is not None:
                rates[int(row["epoch"])] = value
    values = sorted(rates.values())
    if not values:
        return None
    middle = len(values) // 2
    return (values[middle] if len(values) % 2
            else (values[middle - 1] + values[middle]) / 2)


def _seed(folder, report):
    path = os.path.join(folder, "config.json")
    if os.path.exists(path):
        with open(path) as f:
            return int(json.load(f)["seed"])
    config = (report or {}).get("config", {})
    return int(config["seed"]) if "seed" in config else None


def kept_entries(path, keys):
    """The entries of the record at `path` named by `keys` (each
    `IMPLEMENTATION,BACKEND,SEED[,EPOCHS]`, EPOCHS telling apart two
    attempts of one run), unfinished ones marked `"stopped": True`."""
    if not keys:
        return []
    if not os.path.exists(path):
        raise SystemExit(f"--keep needs the existing record {path}.")
    with open(path) as f:
        old = json.load(f)
    if len(set(keys)) != len(keys):
        raise SystemExit(f"--keep names one entry twice: {sorted(keys)}.")
    kept = []
    for key in keys:
        parts = key.split(",")
        if len(parts) not in (3, 4) or not all(
                p.strip().isdigit() for p in parts[2:]):
            raise SystemExit(f"--keep={key!r}: expected "
                             "IMPLEMENTATION,BACKEND,SEED[,EPOCHS].")
        wanted = (parts[0].strip(), parts[1].strip(),
                  *(int(p) for p in parts[2:]))
        found = [e for e in old if (e["implementation"], e["backend"],
                                    e["seed"], e["epochs"])[:len(wanted)]
                 == wanted]
        if len(found) != 1:
            raise SystemExit(
                f"--keep={key!r}: {len(found)} entries of {path} match, "
                "expected one" + (" (add its EPOCHS)." if found else "."))
        kept.append(dict(found[0], stopped=not found[0]["finished"]))
    return kept


def record(run, percent=False):
    """One entry of the record for a `parse_run` dict; `percent`: the
    folder logged percent (divided by 100 here)."""
    folder = run["folder"]
    report = _report(folder)
    summary = (report or {}).get("summary", {})
    seed = _seed(folder, report)
    if seed is None:
        seed = run["seed"]
    elif run["seed"] is not None and run["seed"] != seed:
        raise ValueError(f"{folder} trained seed {seed}, not {run['seed']}.")
    entry = {"implementation": run["implementation"],
             "backend": run["backend"], "seed": seed,
             "epochs": epochs_done(folder), "finished": report is not None}
    scale = 0.01 if percent else 1.0
    for key, name in _FINAL.items():
        value = summary.get(name)
        if value is not None and key != "nll":
            value = scale * float(value)
        entry[key] = None if value is None else round(float(value), 6)
    entry["curve"] = [
        {"epoch": p["epoch"], **{k: None if p[k] is None else scale * p[k]
                                 for k in ("balanced_accuracy", "ece")}}
        for p in read_curve(folder)]
    entry["median_images_per_sec"] = median_images_per_sec(folder)
    entry["commit"] = run["commit"]
    if run["note"]:
        entry["note"] = run["note"]
    return entry


MARKERS = ("<!-- long-run:start -->", "<!-- long-run:end -->")
_COLUMNS = (("balanced_accuracy", "Bal. acc"), ("many", "Many"),
            ("medium", "Medium"), ("few", "Few"), ("ece", "ECE"),
            ("mce", "MCE"), ("nll", "NLL"))


def format_table(entries):
    """Markdown: the final scores side by side, one row per run (for a
    run still training: its last test so far)."""
    lines = ["Accuracies, ECE and MCE in %, NLL in nats.", "",
             "| run | backend | seed | epochs | "
             + " | ".join(label for _, label in _COLUMNS) + " | commit |",
             "|" + "---|" * (5 + len(_COLUMNS))]
    for e in entries:
        cells = ["–" if e[key] is None else _cell(key, e[key])
                 for key, _ in _COLUMNS]
        if not e["finished"] and e["curve"]:  # The last test so far.
            last = e["curve"][-1]
            cells[0] = f"{100 * last['balanced_accuracy']:.2f} (epoch " \
                       f"{last['epoch']})"
            cells[4] = f"{100 * last['ece']:.2f} (epoch {last['epoch']})"
        state = _state(e)
        epochs = str(e["epochs"]) + (
            "" if state == "finished" else f" ({state})")
        lines.append(f"| {e['implementation']} | {e['backend']} | "
                     f"{e['seed']} | {epochs} | " + " | ".join(cells)
                     + f" | {e['commit'][:7]} |")
    return "\n".join(lines)


def paired_marks(entries):
    """The balpoe_keras run and the replica run of its seed that share the
    most test epochs (on a tie, a pair of one attempt, both stopped or
    both not, then the first in order): `(ours, replica, [(epoch, ours
    point, replica point)])`, or None without such a pair."""
    best = None
    for ours in entries:
        if ours["implementation"] != "balpoe_keras":
            continue
        for replica in entries:
            if (replica["implementation"] != "replica"
                    or replica["seed"] != ours["seed"]):
                continue
            theirs = {p["epoch"]: p for p in replica["curve"]}
            marks = [(p["epoch"], p, theirs[p["epoch"]])
                     for p in ours["curve"] if p["epoch"] in theirs]
            # On a tie, two runs of one attempt (both stopped or both
            # not) before runs of two attempts.
            rank = (len(marks),
                    bool(ours.get("stopped")) == bool(replica.get("stopped")))
            if marks and (best is None or rank > best[0]):
                best = (rank, (ours, replica, marks))
    return best and best[1]


def format_curves(entries, milestones=(160, 180)):
    """Markdown: the paired test marks (`paired_marks`) side by side, ours
    minus the replica's in points at each, and the mean ± standard
    deviation of that difference in each learning-rate phase (the epochs
    up to each of `milestones`, then the rest). Empty without a pair."""
    pair = paired_marks(entries)
    if not pair or not pair[2]:
        return ""
    ours, replica, marks = pair
    lines = [f"Test marks of seed {ours['seed']}: balpoe_keras "
             f"({_attempt(ours)}) and the replica ({_attempt(replica)}); "
             "Δ = balpoe_keras − replica, in points.", "",
             "| epoch | Bal. acc | replica | Δ | ECE | replica | Δ |",
             "|---|---|---|---|---|---|---|"]
    deltas = []
    for epoch, a, b in marks:
        row = [str(epoch)]
        delta = {}
        for key in ("balanced_accuracy", "ece"):
            delta[key] = 100 * (a[key] - b[key])
            row += [f"{100 * a[key]:.2f}", f"{100 * b[key]:.2f}",
                    f"{delta[key]:+.2f}"]
        deltas.append((epoch, delta))
        lines.append("| " + " | ".join(row) + " |")
    bounds = [0, *milestones, max(epoch for epoch, _ in deltas)]
    phases = []
    for lo, hi in zip(bounds[:-1], bounds[1:]):
        inside = [d for epoch, d in deltas if lo < epoch <= hi]
        if not inside:
            continue
        parts = []
        for key, label in (("balanced_accuracy", "balanced accuracy"),
                           ("ece", "ECE")):
            values = [d[key] for d in inside]
            mean = sum(values) / len(values)
            sd = (sum((v - mean) ** 2 for v in values) / (len(values) - 1)
                  ) ** 0.5 if len(values) > 1 else 0.0
            parts.append(f"{label} {mean:+.2f} ± {sd:.2f}")
        span = f"epoch {hi}" if hi == lo + 1 else f"epochs {lo + 1}–{hi}"
        phases.append(f"{span}: " + ", ".join(parts)
                      + f" ({len(inside)} marks)")
    lines += ["", "Mean Δ ± standard deviation over the marks of each "
              "learning-rate phase: " + "; ".join(phases) + "."]
    return "\n".join(lines)


def _state(entry):
    """`finished`, `stopped` (kept, no longer training) or `running`."""
    return ("finished" if entry["finished"] else
            "stopped" if entry.get("stopped") else "running")


def _attempt(entry):
    """`tensorflow, 151 epochs, stopped`: which run of a pair."""
    return f"{entry['backend']}, {entry['epochs']} epochs, {_state(entry)}"


def _cell(key, value):
    return f"{value:.2f}" if key == "nll" else f"{100 * value:.2f}"


def plot(entries, path, milestones=(160, 180)):
    """Balanced accuracy and ECE against epoch, one line per run, dotted
    lines at the learning-rate `milestones`."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for entry in entries:
        label = f"{entry['implementation']} ({entry['backend']}, seed " \
                f"{entry['seed']})"
        if entry.get("stopped"):
            label += f", stopped at epoch {entry['epochs']}"
        for ax, key in zip(axes, ("balanced_accuracy", "ece")):
            if entry["curve"]:
                ax.plot([p["epoch"] for p in entry["curve"]],
                        [100 * p[key] for p in entry["curve"]], marker=".",
                        label=label)
            elif entry[key] is not None:  # A run logged without a curve.
                ax.plot([entry["epochs"]], [100 * entry[key]], marker="*",
                        markersize=10, ls="none", label=f"{label}, final")
    for ax, title in zip(axes, ("Balanced accuracy (%)", "ECE (%)")):
        ax.set_xlabel("epoch")
        ax.set_title(title)
        ax.grid(alpha=0.3)
        for drop in milestones:
            ax.axvline(drop, color="grey", lw=0.8, ls=":")
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _options_in_order(argv, names):
    """The occurrences of the options `names` in `argv`, in order (the
    record lists the runs and the kept entries as they were given)."""
    return [arg.split("=")[0] for arg in argv
            if arg.split("=")[0] in names]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     allow_abbrev=False)
    parser.add_argument("--run", action="append", required=True,
                        help="IMPLEMENTATION,BACKEND,COMMIT,FOLDER"
                        "[,SEED[,NOTE]]")
    parser.add_argument("--percent_run", action="append", default=[],
                        help="FOLDER of a --run written before scores "
                        "became fractions (its values are in percent).")
    parser.add_argument("--keep", action="append", default=[],
                        help="IMPLEMENTATION,BACKEND,SEED[,EPOCHS]: an "
                        "entry of the "
                        "existing --out record whose run folder is gone, "
                        "kept as recorded (marked stopped).")
    parser.add_argument("--out", required=True, help="The JSON record.")
    parser.add_argument("--plot", default=None, help="PNG of the curves.")
    parser.add_argument("--results_md", default=None, help="Markdown file "
                        "whose long-run markers receive the tables.")
    parser.add_argument("--lr_step_epochs", default="160,180",
                        help="The recipe's learning-rate drops (epochs): "
                        "the plot's marks and the phases of the mean "
                        "differences.")
    args = parser.parse_args(argv)
    runs = [parse_run(text) for text in args.run]
    milestones = [int(m) for m in args.lr_step_epochs.split(",") if m]
    percent = {os.path.realpath(p) for p in args.percent_run}
    unknown = percent - {os.path.realpath(r["folder"]) for r in runs}
    if unknown:
        raise SystemExit(f"--percent_run names no --run folder: "
                         f"{sorted(unknown)}")
    kept = iter(kept_entries(args.out, args.keep))
    fresh = iter([record(r, os.path.realpath(r["folder"]) in percent)
                  for r in runs])
    entries = [next(kept if option == "--keep" else fresh)
               for option in _options_in_order(argv, ("--run", "--keep"))]
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(entries, f, indent=1)
        f.write("\n")
    if args.plot:
        plot(entries, args.plot, milestones)
    if args.results_md:
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from reproduce import update_markdown

        curves = format_curves(entries, milestones)
        update_markdown(args.results_md, format_table(entries)
                        + ("\n\n" + curves if curves else ""), MARKERS)
    for e in entries:
        print(f"{e['implementation']:13s} {e['backend']:10s} seed {e['seed']}"
              f" epochs {e['epochs']:3d} bal. acc {e['balanced_accuracy']} "
              f"ECE {e['ece']} ({len(e['curve'])} curve points)")
    return entries


if __name__ == "__main__":
    main()
