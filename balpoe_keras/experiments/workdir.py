"""A run's folder: its record of the settings and what a rerun may do.

`config.json` records the resolved settings. A rerun on a folder holding
training state must have the same settings except output-only ones
(`--epochs` to extend, `--eval_every`, `--export`, ...); otherwise
`check_workdir` refuses, naming the differing flags and the way out.
"""

import os
import shutil

from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.experiments.config import ExperimentConfig
from balpoe_keras.training.fit import CHECKPOINT_DIRNAME
from balpoe_keras.training.fit import CSV_FILENAME
from balpoe_keras.training.fit import TENSORBOARD_DIRNAME

CONFIG_FILENAME = "config.json"


class WorkdirError(RuntimeError):
    """The workdir holds a run with other settings; the message says how
    to go on."""


def check_workdir(config):
    """Refuses a workdir that holds a run with other settings.

    Only output settings (e.g. `--epochs` to extend a run, `--eval_every`,
    `--export`) may change when a run resumes.

    Raises:
        WorkdirError: naming the differing flags and the way out
            (`--overwrite` or another `--workdir`).
    """
    path = os.path.join(config.workdir, CONFIG_FILENAME)
    state = os.path.join(config.workdir, CHECKPOINT_DIRNAME, "state.json")
    if os.path.exists(path) and os.path.exists(state):
        try:
            recorded = ExperimentConfig.from_json(path)
        except (ConfigError, TypeError, ValueError) as e:
            raise WorkdirError(
                f"{path} cannot be read ({e}); pass --overwrite to start "
                "over or choose another --workdir.") from None
        changed = config.differences(recorded)
        if changed:
            listed = ", ".join(f"--{name}={_flag_text(new)} (the run used "
                               f"{_flag_text(old)})"
                               for name, new, old in changed)
            raise WorkdirError(
                f"{config.workdir} holds a run with other settings: {listed}."
                " Pass --overwrite to start over, or choose another "
                "--workdir.")


def record_config(config):
    """Creates the workdir and writes `config.json` atomically."""
    path = os.path.join(config.workdir, CONFIG_FILENAME)
    os.makedirs(config.workdir, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json())
    os.replace(tmp, path)


def _flag_text(value):
    if isinstance(value, (tuple, list)):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v)
                        for v in value)
    return str(value)


def remove_outputs(workdir):
    """Deletes a run's checkpoints, logs, reports, exports and config."""
    for name in (CHECKPOINT_DIRNAME, TENSORBOARD_DIRNAME, "report",
                 "export"):
        shutil.rmtree(os.path.join(workdir, name), ignore_errors=True)
    for name in (CSV_FILENAME, "model.keras", CONFIG_FILENAME):
        path = os.path.join(workdir, name)
        if os.path.exists(path):
            os.remove(path)
