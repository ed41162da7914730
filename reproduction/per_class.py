r"""Per-class test accuracy of a balpoe_keras run and a replica run.

Scores both finished models again, here, on the same test images of the
CIFAR-10 JPEG archive with the replica's scoring function
(`reference_train.scores`): balpoe_keras from its run folder's
`model.keras` (a `BalPoEClassifier`, or the functional model with
`{"logits", "expert_logits"}` outputs that older runs saved; class names
from its report), the PyTorch replica from its folder's `checkpoint.pt`
(its `report.json` gives its architecture and class counts). Prints each
class's accuracy side by side with the difference, then both runs'
balanced accuracy and ECE as scored here, which must equal what each run
reported (a check of the two evaluations against one another):

    python reproduction/per_class.py --data=../shared/data \
        --ours=runs/cifar10_folder_ir100_standard --replica=runs/replica_seed1

`--json=FILE` also writes the figures (fractions) to FILE. Runs on the
CPU in about a minute for CIFAR-10's 10,000 test images.
"""

import argparse
import json
import os
import sys

import numpy as np
import torch  # noqa: F401  Before TensorFlow: the reverse order crashes.

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_train  # noqa: E402


def replica_logits(folder, x_test, data):
    """`(N, C)` mean expert logits of the replica in `folder`, and its
    training class counts."""
    with open(os.path.join(folder, "report.json")) as f:
        report = json.load(f)
    if report["config"].get("tiny"):
        raise SystemExit(f"{folder} is a --tiny run (scored on every 20th "
                         "test image); compare full runs.")
    args = reference_train.parse_args(["--out", folder, "--device", "cpu"])
    for key, value in report["config"].items():
        if key in vars(args) and key not in ("out", "device", "data"):
            setattr(args, key, value)
    args.data = data
    counts = report["class_counts"]
    model, _, _, _ = reference_train.build(args, counts)
    state = torch.load(os.path.join(folder, reference_train.CHECKPOINT),
                       map_location="cpu", weights_only=False)
    model.load_state_dict(state["model"])
    return reference_train.predict(model, x_test, "cpu"), counts


def ours_logits(folder, x_test):
    """`(N, C)` ensemble logits of the balpoe_keras run in `folder`, and
    its class names (from its report)."""
    import keras

    import balpoe_keras  # noqa: F401  Registers the saved classes.

    model = keras.saving.load_model(os.path.join(folder, "model.keras"))
    logits = model.predict(x_test.astype("float32") / 255.0,
                           batch_size=256, verbose=0)
    if isinstance(logits, dict):  # Runs saved as a functional model.
        logits = logits["logits"]
    with open(os.path.join(folder, "report", "report.json")) as f:
        names = json.load(f)["class_names"]
    return np.asarray(logits, np.float64), list(names)


def compare(ours, replica, data):
    """Per-class accuracies and both summaries, as a dict of lists."""
    folder = os.path.join(data, "cifar10-jpeg.tar.gz") if os.path.isdir(
        data) else data
    arrays = reference_train.reference_data.read_cifar10_archive(folder)
    x_test, y_test = arrays["test_images"], arrays["test_labels"]
    names = [str(n) for n in arrays["class_names"]]
    rep_logits, counts = replica_logits(replica, x_test, data)
    our_logits, our_names = ours_logits(ours, x_test)
    if our_names != names:
        raise SystemExit(f"{ours} orders its classes {our_names}, the "
                         f"archive {names}: not the same classes.")
    result = {"class_names": names, "class_counts": list(counts)}
    for key, logits in (("balpoe_keras", our_logits),
                        ("replica", rep_logits)):
        summary, _ = reference_train.scores(logits, y_test, counts)
        result[key] = {
            "per_class_accuracy": reference_train.per_class_accuracy(
                logits.argmax(1), y_test, len(names)).tolist(),
            "balanced_accuracy": summary["test/balanced_accuracy"],
            "ece": summary["test/ece"]}
    return result


def markdown(result):
    """The side-by-side table (accuracies in %, Δ in points)."""
    ours, rep = result["balpoe_keras"], result["replica"]
    lines = ["| class | train images | balpoe_keras | replica | Δ |",
             "|---|---|---|---|---|"]
    for name, count, a, b in zip(result["class_names"],
                                 result["class_counts"],
                                 ours["per_class_accuracy"],
                                 rep["per_class_accuracy"]):
        lines.append(f"| {name} | {count} | {100 * a:.1f} | {100 * b:.1f} "
                     f"| {100 * (a - b):+.1f} |")
    for label, key in (("balanced accuracy", "balanced_accuracy"),
                       ("ECE", "ece")):
        lines.append(f"| {label} | | {100 * ours[key]:.2f} | "
                     f"{100 * rep[key]:.2f} | "
                     f"{100 * (ours[key] - rep[key]):+.2f} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", required=True, help="The CIFAR-10 JPEG "
                        "archive or the folder holding it.")
    parser.add_argument("--ours", required=True, help="balpoe_keras run "
                        "folder (model.keras).")
    parser.add_argument("--replica", required=True, help="Replica run "
                        "folder (checkpoint.pt, report.json).")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    result = compare(args.ours, args.replica, args.data)
    print(markdown(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
