"""A run's folder: its record of the settings and what a rerun may do.

`config.json` records the resolved settings. A rerun on a folder holding
training state must have the same settings except output-only ones
(`--epochs` to extend, `--eval_every`, `--export`, ...); otherwise
`check_workdir` refuses, naming the differing flags and the way out.
`data.json` records the classes and image counts the run trains on; a
resume on other data (images added to or removed from a folder) is
refused by `check_data`.
"""

import json
import os

from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.experiments.config import ExperimentConfig
from balpoe_keras.training.run_folder import CONFIG_FILENAME
from balpoe_keras.training.run_folder import DATA_FILENAME
from balpoe_keras.training.run_folder import RunFolder


class WorkdirError(RuntimeError):
    """The workdir holds a run with other settings; the message says how
    to go on."""


def check_workdir(config):
    """Refuses a workdir that holds a run with other settings.

    Only output settings (e.g. `--epochs` to extend a run, `--eval_every`,
    `--export`) may change when a run resumes; `--epochs` not under a
    cosine schedule, whose every epoch's learning rate depends on it.

    Raises:
        WorkdirError: naming the differing flags and the way out
            (`--overwrite` or another `--workdir`).
    """
    folder = RunFolder(config.workdir)
    path = folder.config_path
    if os.path.exists(path) and folder.has_training_state():
        try:
            recorded = ExperimentConfig.from_json(path)
        except (ConfigError, TypeError, ValueError) as e:
            raise WorkdirError(
                f"{path} cannot be read ({e}); pass --overwrite to start "
                "over or choose another --workdir.") from None
        changed = config.differences(recorded)
        if not changed and recorded.schedule == "cosine" and (
                config.epochs != recorded.epochs):
            raise WorkdirError(
                f"{config.workdir} holds a run with --schedule=cosine over "
                f"{recorded.epochs} epochs: its learning rate at every epoch "
                f"follows from --epochs, so --epochs={config.epochs} would "
                "restart it partway up a new curve instead of extending it. "
                f"Keep --epochs={recorded.epochs}, pass --overwrite to train "
                f"{config.epochs} epochs from the start, or choose another "
                "--workdir.")
        if changed:
            listed = ", ".join(f"--{name}={_flag_text(new)} (the run used "
                               f"{_flag_text(old)})"
                               for name, new, old in changed)
            raise WorkdirError(
                f"{config.workdir} holds a run with other settings: {listed}."
                " Pass --overwrite to start over, or choose another "
                "--workdir.")


def record_config(config, folder=None):
    """Creates the workdir and writes `config.json` atomically.

    Args:
        config: the resolved `ExperimentConfig`.
        folder: its `RunFolder` (default: a writing one of
            `config.workdir`).
    """
    folder = folder or RunFolder(config.workdir)
    folder.write_text(CONFIG_FILENAME, config.to_json())


def _flag_text(value):
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                        for v in value)
    return str(value)


def data_summary(experiment_data):
    """The classes and per-class train / test image counts of
    `experiment_data` (an `inputs.ExperimentData`), as a JSON-able dict."""
    return {
        "class_names": [str(n) for n in experiment_data.train.class_names],
        "train_counts": [int(n) for n in experiment_data.class_counts],
        "test_counts": [int(n) for n in experiment_data.test.class_counts],
    }


def check_data(config, experiment_data):
    """Refuses to resume a run on other data than it started on.

    The class prior and every epoch's batches come from the training
    counts, so a run that resumed after images were added to (or removed
    from) its folder would mix two trainings silently. Runs without a
    recorded `data.json` (older ones) pass.

    Raises:
        WorkdirError: naming the classes whose counts changed and the way
            out (restore the data, `--overwrite`, another `--workdir`).
    """
    folder = RunFolder(config.workdir)
    path = folder.file(DATA_FILENAME)
    if not (os.path.exists(path) and folder.has_training_state()):
        return
    with open(path) as f:
        recorded = json.load(f)
    now = data_summary(experiment_data)
    if now == recorded:
        return
    changes = []
    if now["class_names"] != recorded["class_names"]:
        changes.append(f"classes {recorded['class_names']} -> "
                       f"{now['class_names']}")
    else:
        for split in ("train", "test"):
            key = f"{split}_counts"
            changes += [f"{split} {name!r}: {old} -> {new} images"
                        for name, old, new in zip(now["class_names"],
                                                  recorded[key], now[key])
                        if old != new]
    listed = "; ".join(changes[:10]) + (" ..." if len(changes) > 10 else "")
    raise WorkdirError(
        f"{config.workdir} holds a run that trained on other data ({path}): "
        f"{listed}. Its class prior and batches came from the recorded "
        "counts: restore the data as it was to resume, or pass --overwrite "
        "to start over on the new data (or choose another --workdir).")


def record_data(experiment_data, folder):
    """Writes `data.json` (`data_summary`) into the run's `folder`."""
    folder.write_text(DATA_FILENAME,
                      json.dumps(data_summary(experiment_data), indent=1))
