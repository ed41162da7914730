"""Parses run.py's flags into an `ExperimentConfig` inside tests."""

import glob
import os

from absl import flags

from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import run  # (defines the flags)

FLAGFILE_DIR = os.path.abspath(
    os.path.join(os.path.dirname(__file__), "..", "..", "experiments")
)


def setting_flagfiles():
    """Every paper-setting flagfile (the base_*.flags are only included;
    image_folder.flags needs a folder, tests/experiments/image_folder_test)."""
    paths = sorted(glob.glob(os.path.join(FLAGFILE_DIR, "*.flags")))
    return [p for p in paths if not os.path.basename(p).startswith("base_")
            and os.path.basename(p) != "image_folder.flags"]


def parse_flags(*args):
    """Parses `args` into a fresh `FlagValues` holding run.py's flags."""
    values = flags.FlagValues()
    for name, flag in flags.FLAGS._flags().items():
        if name == flag.name and name not in values:
            values[name] = flag
    values.unparse_flags()
    values(run.expand_flagfiles(["run.py", *args]))
    return values


def parse(*args):
    """`ExperimentConfig` from command-line style `args`."""
    return config_lib.ExperimentConfig.from_flags(parse_flags(*args))
