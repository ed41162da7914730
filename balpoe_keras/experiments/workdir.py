"""A run's folder: its record of the settings and what a rerun may do.

`config.json` records the resolved settings. A rerun on a folder holding
training state must have the same settings except output-only ones
(`--epochs` to extend, `--eval_every`, `--export`, ...); otherwise
`check_workdir` refuses, naming the differing flags and the way out.
"""

import os

from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.experiments.config import ExperimentConfig
from balpoe_keras.training.run_folder import CONFIG_FILENAME
from balpoe_keras.training.run_folder import RunFolder


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
