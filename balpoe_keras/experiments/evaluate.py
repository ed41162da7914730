r"""Evaluates a trained BalPoE model and writes the full report.

    python -m balpoe_keras.experiments.evaluate --model=runs/quickstart
    python -m balpoe_keras.experiments.evaluate --model=my.keras \
        --flagfile=experiments/cifar10_ir100_standard.flags --report_dir=out

`--model` is a run directory (its `model.keras` and `config.json` are used;
flags are then not needed) or a `.keras` file together with the run's flags
(`--flagfile`), which name the dataset and the long-tailed training counts
that define the prior and the many/medium/few groups. The report
(`report.json`, `report.md`, PNGs) goes to `--report_dir` (default: the run
directory's `report/`).
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF_ENABLE_ONEDNN_OPTS=1 is set by balpoe_keras/__init__.py, which Python
# imports (with TensorFlow) before this module: see the comment there.

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from balpoe_keras.experiments import config as config_lib  # noqa: E402
from balpoe_keras.experiments import run  # noqa: E402,F401 (run's flags)

flags.DEFINE_string("model", None,
                    "Run directory or .keras file to evaluate.")
flags.DEFINE_string("report_dir", None,
                    "Output folder; default <run dir>/report.")
FLAGS = flags.FLAGS


def resolve_inputs(model_arg, flags_values):
    """`(model_path, config, report_dir)` from `--model` and the flags."""
    if os.path.isdir(model_arg):
        model_path = os.path.join(model_arg, "model.keras")
        config_path = os.path.join(model_arg, "config.json")
        if not os.path.exists(model_path) or not os.path.exists(config_path):
            raise app.UsageError(
                f"--model={model_arg} is a directory without model.keras and "
                "config.json; pass a finished run directory or a .keras file "
                "with --flagfile."
            )
        config = config_lib.ExperimentConfig.from_json(config_path)
        default_report = os.path.join(model_arg, "report")
    else:
        if not os.path.exists(model_arg):
            raise app.UsageError(f"--model={model_arg} does not exist.")
        model_path = model_arg
        if not flags_values.workdir:
            flags_values.workdir = os.path.dirname(os.path.abspath(model_arg))
        config = config_lib.ExperimentConfig.from_flags(flags_values)
        default_report = os.path.join(config.workdir, "report")
    return model_path, config, flags_values.report_dir or default_report


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    import keras

    import balpoe_keras  # noqa: F401  (registers the custom objects)
    from balpoe_keras import evaluation
    from balpoe_keras.experiments import runner

    if not FLAGS.model:
        raise app.UsageError("--model: give a run directory or .keras file.")
    model_path, config, report_dir = resolve_inputs(FLAGS.model, FLAGS)
    model = keras.saving.load_model(model_path)
    experiment_data = runner.load_data(config)
    results = runner.evaluate(config, experiment_data, model)
    paths = evaluation.write_report(
        results, report_dir, config=json.loads(config.to_json())
    )
    print(", ".join(f"{k}={v}" for k, v in results["summary"].items()))
    print(f"Report: {paths['markdown']}")


if __name__ == "__main__":
    app.run(main)
