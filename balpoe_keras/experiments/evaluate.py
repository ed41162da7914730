r"""Evaluates a trained BalPoE model and writes the full report.

    python -m balpoe_keras.experiments.evaluate --model=runs/quickstart
    python -m balpoe_keras.experiments.evaluate --model=my.keras \
        --flagfile=experiments/cifar10_ir100_standard.flags --report_dir=out

`--model` is a run directory (its `model.keras` and `config.json` are used;
flags are then not needed) or a `.keras` file together with flags naming
the dataset (`--flagfile`), which give the test sets. The training class
counts (the prior, the many/medium/few groups), the lambdas and the class
names come from the model file (a `BalPoEClassifier`; a plain functional
model saved by an older version is refused, saying what to do). The
report (`report.json`, `report.md`, PNGs) goes to `--report_dir` (default:
the run directory's `report/`).
"""

import json
import os

from absl import app
from absl import flags

from balpoe_keras.experiments import cli
from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import run  # (run's flags and parser)

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
            raise config_lib.ConfigError(
                f"--model={model_arg} is a directory without model.keras and "
                "config.json; pass a finished run directory or a .keras file "
                "with --flagfile."
            )
        config = config_lib.ExperimentConfig.from_json(config_path)
        default_report = os.path.join(model_arg, "report")
    else:
        if not os.path.exists(model_arg):
            raise config_lib.ConfigError(
                f"--model={model_arg} does not exist.")
        model_path = model_arg
        if not flags_values.workdir:
            flags_values.workdir = os.path.dirname(os.path.abspath(model_arg))
        config = config_lib.ExperimentConfig.from_flags(flags_values)
        default_report = os.path.join(config.workdir, "report")
    return model_path, config, flags_values.report_dir or default_report


def main(argv):
    if len(argv) > 1:
        run.fail(f"unexpected arguments {argv[1:]} (see --helpshort).")
    if not FLAGS.model:
        run.fail("--model: give a run directory or .keras file.")
    cli.load_keras()  # Flags checked: now the seconds TensorFlow takes.
    import keras

    import balpoe_keras  # noqa: F401  (registers the custom objects)
    from balpoe_keras import evaluation
    from balpoe_keras.evaluation.predict import check_model
    from balpoe_keras.experiments import inputs
    from balpoe_keras.experiments import runner

    config = None
    try:
        model_path, config, report_dir = resolve_inputs(FLAGS.model, FLAGS)
        # Evaluation needs no optimizer, loss or metrics.
        model = keras.saving.load_model(model_path, compile=False)
        experiment_data = inputs.load_data(config)
    except config_lib.ConfigError as e:
        run.fail(str(e))
    except FileNotFoundError as e:
        run.fail(f"data not found: {e}")
    try:
        check_model(model)
    except ValueError as e:
        run.fail(f"{model_path}: {e}")
    counts = getattr(model, "class_counts", None)
    if counts is not None and counts != experiment_data.class_counts:
        print("Note: the flags' training set has other class counts than "
              "the model was trained with; the report uses the model's.")
    results = runner.evaluate(config, experiment_data, model)
    paths = evaluation.write_report(
        results, report_dir, config=json.loads(config.to_json())
    )
    print(", ".join(f"{k}={v}" for k, v in results["summary"].items()))
    print(f"Report: {paths['markdown']}")


if __name__ == "__main__":
    cli.start()  # Before Keras: TensorFlow's settings, quiet start-up.
    app.run(main, flags_parser=run.parse_flags)
