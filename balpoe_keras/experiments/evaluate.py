r"""Evaluates a trained BalPoE model and writes the full report.

    python -m balpoe_keras.experiments.evaluate --model=runs/quickstart
    python -m balpoe_keras.experiments.evaluate --model=my.keras \
        --flagfile=experiments/cifar10_ir100_standard.flags --report_dir=out

`--model` is a run directory (its `model.keras` and `config.json` are used;
flags are then not needed: `--data_dir` (where the data is now),
`--eval_batch_size` and `--[no]test_distributions` may be given, other run
flags are refused) or a `.keras` file together with flags naming the
dataset (`--flagfile`), which give the test sets. The training class
counts (the prior, the many/medium/few groups), the lambdas and the class
names come from the model file (a `BalPoEClassifier`; a plain functional
model saved by an older version is refused, saying what to do); an image
folder is read at the model's input size, and data whose classes or input
shape differ from the model's is refused (`check_data_matches_model`). The
report (`report.json`, `report.md`, PNGs) goes to `--report_dir` (default:
the run directory's `report/`).
"""

import dataclasses
import json
import os

from absl import app
from absl import flags

from balpoe_keras.data.datasets import IMAGE_FOLDER
from balpoe_keras.experiments import cli
from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import run  # (run's flags and parser)

flags.DEFINE_string("model", None,
                    "Run directory or .keras file to evaluate.")
flags.DEFINE_string("report_dir", None,
                    "Output folder; default <run dir>/report.")
FLAGS = flags.FLAGS
# Settings a run directory's recorded config takes from the flags: where
# the data is now and how the evaluation runs, not what was trained.
RUN_DIR_SETTINGS = ("data_dir", "eval_batch_size", "test_distributions")


def resolve_inputs(model_arg, flags_values, input_shape=None):
    """`(model_path, config, report_dir)` from `--model` and the flags.

    `input_shape`: the model's `(None, H, W, channels)`, when loaded; an
    image folder given by flags is then read at the model's size and
    channels unless `--image_size` / `--channels` say otherwise.
    """
    model_path = model_path_of(model_arg)
    if os.path.isdir(model_arg):
        config = config_lib.ExperimentConfig.from_json(
            os.path.join(model_arg, "config.json"))
        given = _given_settings(flags_values)
        other = [name for name in given if name not in RUN_DIR_SETTINGS]
        if other:
            raise config_lib.ConfigError(
                f"--model={model_arg} is a run directory: its config.json "
                "holds the settings it was trained with, and "
                f"{', '.join('--' + _flag(n) for n in other)} would change "
                "them. Only --data_dir (where the data is now), "
                "--eval_batch_size and --[no]test_distributions apply to "
                "it; for other settings pass its model.keras with the flags "
                "(--flagfile).")
        config = dataclasses.replace(config, **given).resolve(
            check_data=False)
        default_report = os.path.join(model_arg, "report")
    else:
        if not flags_values.workdir:
            flags_values.workdir = os.path.dirname(os.path.abspath(model_arg))
        if (input_shape is not None and len(input_shape) == 4
                and flags_values.dataset == IMAGE_FOLDER):
            for name, value in (("image_size", input_shape[1]),
                                ("channels", input_shape[3])):
                if not flags_values[name].present and value is not None:
                    flags_values[name].value = int(value)
        config = config_lib.ExperimentConfig.from_flags(flags_values)
        default_report = os.path.join(config.workdir, "report")
    return model_path, config, flags_values.report_dir or default_report


def _given_settings(flags_values):
    """`{config field: value}` of the config flags given on the command
    line or in a flagfile (none for `flags_values=None`)."""
    given = {}
    for field in dataclasses.fields(config_lib.ExperimentConfig):
        name = config_lib.flag_name(field)
        if flags_values is not None and name in flags_values and (
                flags_values[name].present):
            given[field.name] = flags_values[name].value
    return given


def _flag(field_name):
    fields = {f.name: f for f in dataclasses.fields(
        config_lib.ExperimentConfig)}
    return config_lib.flag_name(fields[field_name])


def model_path_of(model_arg):
    """The `.keras` file `--model` names (a run directory's model.keras).

    Raises:
        ConfigError: it does not exist, or the directory is not a finished
            run's.
    """
    if os.path.isdir(model_arg):
        model_path = os.path.join(model_arg, "model.keras")
        if not os.path.exists(model_path) or not os.path.exists(
                os.path.join(model_arg, "config.json")):
            raise config_lib.ConfigError(
                f"--model={model_arg} is a directory without model.keras and "
                "config.json; pass a finished run directory or a .keras file "
                "with --flagfile.")
        return model_path
    if not os.path.exists(model_arg):
        raise config_lib.ConfigError(f"--model={model_arg} does not exist.")
    return model_arg


def check_data_matches_model(model, config, experiment_data):
    """Refuses a test set the model cannot be scored on correctly.

    Raises:
        ConfigError: the classes (number or names, in order) or the input
            shape of the data differ from the model's, naming both.
    """
    data_names = experiment_data.train.class_names
    num_classes = len(experiment_data.class_counts)
    if num_classes != model.num_classes:
        raise config_lib.ConfigError(
            f"the data has {num_classes} classes, the model "
            f"{model.num_classes}; evaluate on the dataset (or folder) the "
            "model was trained on.")
    model_names = getattr(model, "class_names", None)
    if model_names is not None and data_names is not None and [
            str(n) for n in model_names] != [str(n) for n in data_names]:
        moved = [f"{i}: model {m!r}, data {d!r}" for i, (m, d) in
                 enumerate(zip(model_names, data_names)) if str(m) != str(d)]
        raise config_lib.ConfigError(
            "the data's classes are not the model's, so its labels would "
            f"score the wrong outputs ({'; '.join(moved[:5])}"
            f"{'; ...' if len(moved) > 5 else ''}); class folders are "
            "sorted by name: name them as in the training folder.")
    expected = (config.spec.image_size, config.spec.image_size,
                config.spec.channels)
    if tuple(model.input_shape[1:]) != expected:
        raise config_lib.ConfigError(
            f"the model takes {tuple(model.input_shape[1:])} inputs, the "
            f"flags give {expected} images; drop --image_size/--channels "
            "(the model's are used) or pass the model's.")


def _check_writable(report_dir):
    """Creates `report_dir` before the evaluation's work, so that a path
    the report cannot be written to fails now.

    Raises:
        ConfigError: naming the folder and the reason.
    """
    try:
        os.makedirs(report_dir, exist_ok=True)
    except OSError as e:
        raise config_lib.ConfigError(
            f"--report_dir: cannot create {report_dir} ({e.strerror or e})"
        ) from None
    if not os.access(report_dir, os.W_OK):
        raise config_lib.ConfigError(
            f"--report_dir: {report_dir} is not writable; choose another.")


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

    try:
        model_path = model_path_of(FLAGS.model)
    except config_lib.ConfigError as e:
        run.fail(str(e))
    try:  # Evaluation needs no optimizer, loss or metrics.
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # noqa: BLE001 - zip, h5, config errors alike.
        run.fail(f"--model: {model_path} cannot be loaded ({type(e).__name__}"
                 f": {e}); pass a .keras file this version wrote.")
    try:
        check_model(model)
    except ValueError as e:
        run.fail(f"{model_path}: {e}")
    try:
        _, config, report_dir = resolve_inputs(FLAGS.model, FLAGS,
                                               model.input_shape)
        _check_writable(report_dir)
        experiment_data = inputs.load_data(config)
        check_data_matches_model(model, config, experiment_data)
    except config_lib.ConfigError as e:
        run.fail(str(e))
    except FileNotFoundError as e:
        run.fail(f"data not found: {e}")
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
