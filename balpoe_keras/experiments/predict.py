r"""Classifies image files with a trained BalPoE model.

    python -m balpoe_keras.experiments.predict --model=runs/quickstart \
        photos/ extra/cat.jpg
    python -m balpoe_keras.experiments.predict \
        --model=runs/quickstart/model.keras --format=json \
        --output=predictions.json --top_k=3 'photos/**/*.png'
    python -m balpoe_keras.experiments.predict --model=runs/quickstart \
        --target_prior=deployment_counts.json photos/

`--model` is a run directory (its `model.keras`) or a `.keras` file of a
`BalPoEClassifier`. The inputs are image files, folders (searched
recursively for .jpg, .jpeg, .png, .bmp, .gif and .webp files) or glob
patterns (quoted, `**` matches any depth); a file named explicitly is read
whatever its extension. The list is de-duplicated and sorted, so the output
order does not depend on the order of the inputs. Each image is decoded,
resized to the model's input as the SavedModel's `serving_bytes` signature
does it (`balpoe_keras.data.image_file.load_image`, mode
`balpoe_keras.data.datasets.preprocess_for_size`) and scaled to [0, 1].

The output (`--output`, default stdout) holds each readable file's top
`--top_k` classes with their probabilities, fractions in [0, 1]: CSV
(`path,class_1,probability_1,...`, 6 decimals) or JSON (`[{"path": ...,
"top_k": [{"class": name, "id": int, "probability": p}, ...]}, ...]`).
Files that cannot be read are named on stderr and skipped; the exit status
is 1 only when no file could be read, 2 for a usage error (a bad flag, an
input that matches no image, a bad model or prior file).

`--target_prior` chooses the class distribution the probabilities are for:
`uniform` (default; the softmax of the ensemble logits, which a balanced
BalPoE ensemble targets), `train` (the model's training distribution) or a
FILE describing the deployment distribution: a JSON list of one
non-negative count or probability per class, a JSON object mapping every
class name to one, or a text file of one number per line. The
probabilities are then `softmax(logits + log p_target)` (the paper's
post-hoc correction); a class with prior 0 gets probability 0. A model
trained with lambdas that do not average to 0 (`--allow_unbalanced_lambdas`)
targets `pi^lambda_bar`, not the uniform prior: `uniform` gives its
ensemble as trained and reported, and the other targets subtract
`lambda_bar log pi` as well (`class_prior.deployment_prior_bias`).

The same from Python (any Keras backend; no TensorFlow needed):

    from balpoe_keras.experiments import predict

    paths = predict.find_images(["photos/"])
    rows, unreadable = predict.predict_files(model, paths, top_k=3)
    rows[0]["top_k"][0]  # {"class": "cat", "id": 3, "probability": 0.91}
"""

import contextlib
import csv
import glob
import json
import math
import os
import sys

from absl import app
from absl import flags

from balpoe_keras.experiments import cli

# This tool's own flags, apart from absl's global ones: the training
# tools' flags (`--batch_size`, `--model`) keep their meaning and defaults
# when both are imported in one process.
FLAGS = flags.FlagValues()
flags.DEFINE_string(
    "model", None, "Run directory (its model.keras) or .keras file.",
    flag_values=FLAGS)
flags.DEFINE_integer(
    "batch_size", 64, "Images read, decoded and classified at a time.",
    lower_bound=1, flag_values=FLAGS)
flags.DEFINE_integer(
    "top_k", 5, "Classes per image in the output (at most the number of "
    "classes).", lower_bound=1, flag_values=FLAGS)
flags.DEFINE_enum(
    "format", "csv", ["csv", "json"], "Output format.", flag_values=FLAGS)
flags.DEFINE_string(
    "output", None, "Output file; default: stdout.", flag_values=FLAGS)
flags.DEFINE_string(
    "target_prior", "uniform", "Class distribution the probabilities are "
    "for: uniform, train (the model's training counts) or a FILE (JSON "
    "list, JSON object by class name, or one number per line).",
    flag_values=FLAGS)
flags.DEFINE_boolean(
    "progress", True, "Show a progress bar on stderr (when there is more "
    "than one batch).", flag_values=FLAGS)

PRIOR_KEYWORDS = ("uniform", "train")
_HELP_ARGS = ("--help", "--helpshort", "--helpfull", "-h", "-?")
_PRIOR_FORMATS = ("a JSON list, a JSON object mapping every class name to "
                  "its number, or a text file of one number per line")
_MAX_LISTED = 10  # Names listed in an error before "... (N in all)".


fail = cli.fail  # One-line usage errors, status 2.


def parse_flags(argv):
    """Parses this tool's flags, then absl's own (`--verbosity`, ...);
    returns `[program, *inputs]`. One-line errors; `--help` lists this
    tool's flags."""
    if any(arg in _HELP_ARGS for arg in argv[1:]):
        print(__doc__)
        print(f"flags:\n{FLAGS.get_help()}")
        raise SystemExit(0)
    try:
        rest = FLAGS(argv, known_only=True)
        return flags.FLAGS(rest)
    except flags.Error as e:
        fail(f"{e} (see --help)")


def find_images(inputs):
    """The image files named by `inputs`, de-duplicated and sorted.

    Args:
        inputs: strings, each an existing file (taken whatever its
            extension), a folder (searched recursively for files whose
            lower-case name ends with one of
            `balpoe_keras.data.image_file.IMAGE_EXTENSIONS`) or a glob
            pattern (`glob.glob(..., recursive=True)`; matched files are
            kept if they have an image extension, matched folders are
            searched).

    Returns:
        `list[str]` of normalised paths (`os.path.normpath`, relative ones
        stay relative), sorted.

    Raises:
        ValueError: naming the inputs that match no image file.
    """
    found, missing = set(), []
    for arg in inputs:
        if os.path.isfile(arg):
            matches = [arg]
        else:
            candidates = [arg] if os.path.isdir(arg) else sorted(
                glob.glob(arg, recursive=True))
            matches = [p for c in candidates for p in _images_in(c)]
        if not matches:
            missing.append(arg)
        found.update(os.path.normpath(p) for p in matches)
    if missing:
        from balpoe_keras.data.image_file import IMAGE_EXTENSIONS

        raise ValueError(
            f"no image file found for {_listed(missing)}: give existing "
            "files, or folders or glob patterns (quoted) holding files "
            f"ending in {', '.join(IMAGE_EXTENSIONS)}.")
    return sorted(found)


def _images_in(path):
    """An existing file with an image extension, or the image files under
    a folder (recursively)."""
    from balpoe_keras.data.image_file import IMAGE_EXTENSIONS
    from balpoe_keras.data.image_file import image_files_under

    if os.path.isfile(path):
        return [path] if path.lower().endswith(IMAGE_EXTENSIONS) else []
    return image_files_under(path)


def resolve_model_path(model_arg):
    """The `.keras` file of `--model`: the argument itself, or a run
    directory's `model.keras`.

    Raises:
        ValueError: the path does not exist, or the directory holds no
            `model.keras`.
    """
    if os.path.isdir(model_arg):
        path = os.path.join(model_arg, "model.keras")
        if not os.path.isfile(path):
            raise ValueError(
                f"--model={model_arg} is a directory without model.keras; "
                "pass a finished run directory or a .keras file.")
        return path
    if not os.path.exists(model_arg):
        raise ValueError(f"--model={model_arg} does not exist.")
    return model_arg


def input_spec(model):
    """How files become the model's input: `((H, W), channels, mode)`.

    `(H, W)` and `channels` (1 or 3) come from the model's input shape
    `(None, H, W, channels)`; `mode` is the resize policy of
    `balpoe_keras.data.datasets.preprocess_for_size` for `max(H, W)`
    (the SavedModel export's).

    Raises:
        ValueError: the model takes no fixed-size images.
    """
    from balpoe_keras.data.datasets import preprocess_for_size

    shape = tuple(model.input_shape)
    if len(shape) != 4 or None in shape[1:] or shape[-1] not in (1, 3):
        raise ValueError(
            f"the model's input shape is {shape}; predicting on image "
            "files needs a fixed (None, H, W, 1 or 3) input: build the "
            "classifier with input_shape=(H, W, channels).")
    size = (int(shape[1]), int(shape[2]))
    return size, int(shape[3]), preprocess_for_size(max(size))


def class_names_of(model):
    """The model's `C` class names, or `"0"`, `"1"`, ... when it stores
    none."""
    names = getattr(model, "class_names", None)
    if names is None:
        return [str(i) for i in range(model.num_classes)]
    return [str(n) for n in names]


def read_prior_file(path):
    """Reads a target-prior file without knowing the model.

    Args:
        path: a JSON list of numbers, a JSON object `{class name: number}`
            or a text file of numbers (one per line; blank lines skipped).

    Returns:
        `list[float]`, or `dict[str, float]` for a JSON object; every
        number finite and >= 0 (counts or probabilities).

    Raises:
        ValueError: one line naming the file, the problem and the fix.
    """
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as e:
        raise ValueError(
            f"target prior file {path}: cannot be read ({_reason(e)}); "
            f"give {' or '.join(PRIOR_KEYWORDS)}, or the path of a prior "
            f"file: {_PRIOR_FORMATS}.") from None
    try:
        data = json.loads(text)
    except ValueError:
        data = None
    if isinstance(data, dict):
        return {str(k): _prior_number(path, v, f"class {k!r}")
                for k, v in data.items()}
    if isinstance(data, list):
        return [_prior_number(path, v, f"entry {i}")
                for i, v in enumerate(data)]
    values = []
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            value = float(line.strip())
        except ValueError:
            raise _prior_error(
                path, f"line {number} ({line.strip()[:40]!r}) is not a "
                "number") from None
        values.append(_prior_number(path, value, f"line {number}"))
    return values


def target_prior_from_file(path, class_names):
    """The deployment class distribution of a prior file.

    Args:
        path: the file (`read_prior_file`).
        class_names: the model's `C` class names (`class_names_of`), the
            keys a JSON object must use.

    Returns:
        `(C,)` float64 NumPy array of non-negative numbers, not all 0 (in
        the file's units: counts or probabilities).

    Raises:
        ValueError: one line naming the file, the problem and the fix
            (wrong length, unknown or missing class names, all zero, not
            a number).
    """
    import numpy as np

    values = read_prior_file(path)
    count = len(class_names)
    if isinstance(values, dict):
        unknown = [k for k in values if k not in set(class_names)]
        missing = [n for n in class_names if n not in values]
        if unknown or missing:
            problems = []
            if unknown:
                problems.append(f"unknown class names {_listed(unknown)}")
            if missing:
                problems.append(f"no number for {_listed(missing)}")
            raise _prior_error(path, "; ".join(problems), count)
        values = [values[n] for n in class_names]
    if len(values) != count:
        raise _prior_error(
            path, f"holds {len(values)} number(s) for the model's {count} "
            "classes", count)
    if sum(values) <= 0:
        raise _prior_error(path, "sums to 0", count)
    return np.asarray(values, np.float64)


def _prior_number(path, value, where):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _prior_error(path, f"{where} ({value!r}) is not a number")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise _prior_error(
            path, f"{where} is {value!r}; counts and probabilities are "
            "finite and >= 0")
    return value


def _prior_error(path, problem, count=None):
    total = "" if count is None else f" ({count} in all)"
    return ValueError(
        f"target prior file {path}: {problem}. Give one non-negative count "
        f"or probability per class{total}, in the model's class order: "
        f"{_PRIOR_FORMATS}.")


def prior_bias(model, target_prior):
    """`log p_target` to add to the ensemble logits, or None.

    Args:
        model: the `BalPoEClassifier` (its `class_counts`, `class_names`).
        target_prior: None or `"uniform"` (no correction: the balanced
            ensemble's own softmax), `"train"` (the model's training
            distribution, `class_counts`), a path to a prior file
            (`target_prior_from_file`), or a `(C,)` sequence of
            non-negative counts or probabilities.

    Returns:
        None, or `(C,)` float32 NumPy array in nats
        (`balpoe_keras.class_prior.deployment_prior_bias`: `log p_target`,
        less `lambda_bar log pi` for a model whose lambdas do not average
        to 0; `-inf` for classes with prior 0).

    Raises:
        ValueError: a bad file or sequence (wrong length, negative, all
            zero).
    """
    from balpoe_keras.class_prior import deployment_prior_bias

    if target_prior is None or (isinstance(target_prior, str)
                                and target_prior == "uniform"):
        return None
    if isinstance(target_prior, str) and target_prior == "train":
        target_prior = model.class_counts
    elif isinstance(target_prior, (str, os.PathLike)):
        target_prior = target_prior_from_file(target_prior,
                                              class_names_of(model))
    return deployment_prior_bias(target_prior, model.class_counts,
                                 model.lambdas)


def predict_files(model, paths, *, batch_size=64, top_k=5,
                  target_prior=None, progress=False):
    """Classifies image files, batch by batch.

    Files are read, decoded and resized (`input_spec`,
    `balpoe_keras.data.image_file.load_image`) one batch at a time, so
    memory holds one batch of images whatever the number of files. Batches
    are padded to one fixed size (the model is traced once).

    Args:
        model: a `BalPoEClassifier` with a fixed input `(None, H, W, 1 or
            3)`.
        paths: image file paths, classified in this order.
        batch_size: int >= 1, files per batch.
        top_k: int >= 1, classes per row (capped at `C`).
        target_prior: the class distribution the probabilities are for
            (`prior_bias`): None / `"uniform"`, `"train"`, a prior file's
            path or a `(C,)` sequence of counts or probabilities.
        progress: bool, show a `keras.utils.Progbar` on stderr when there
            is more than one batch.

    Returns:
        `(rows, unreadable)`. `rows`: one dict per readable file, in the
        order of `paths`: `path` (str), `probabilities` (`(C,)` float32
        NumPy, fractions summing to 1) and `top_k` (list of `{"class":
        name, "id": int, "probability": float}`, most probable first).
        `unreadable`: `[(path, reason)]` of the files that could not be
        read or decoded (skipped).

    Raises:
        ValueError: not a `BalPoEClassifier`, no fixed input size, a bad
            `batch_size`/`top_k` or a bad `target_prior`.
    """
    import numpy as np

    from balpoe_keras.data.image_file import load_image
    from balpoe_keras.evaluation import scores
    from balpoe_keras.evaluation.predict import check_model

    check_model(model)
    if int(batch_size) < 1 or int(top_k) < 1:
        raise ValueError(
            f"Expected batch_size >= 1 and top_k >= 1. Received "
            f"batch_size={batch_size}, top_k={top_k}.")
    size, channels, mode = input_spec(model)
    bias = prior_bias(model, target_prior)
    names = class_names_of(model)
    k = min(int(top_k), len(names))
    paths = [os.fspath(p) for p in paths]
    batch_size = int(batch_size)
    padded = min(batch_size, len(paths))
    bar = _ProgressBar(len(paths), enabled=progress and (
        len(paths) > batch_size))
    rows, unreadable = [], []
    for start in range(0, len(paths), batch_size):
        images, kept = [], []
        for path in paths[start:start + batch_size]:
            try:
                with open(path, "rb") as f:
                    image = load_image(f.read(), size, channels, mode)
            except OSError as e:
                unreadable.append((path, _reason(e)))
                continue
            if image is None:
                unreadable.append((path, "not a readable image"))
                continue
            images.append(image)
            kept.append(path)
        if images:
            batch = np.zeros((padded, *size, channels), np.float32)
            batch[:len(images)] = images
            logits = np.asarray(model.predict_on_batch(batch),
                                np.float64)[:len(images)]
            probabilities = scores.compute_softmax(
                logits if bias is None else logits + bias).astype("float32")
            for path, p in zip(kept, probabilities):
                rows.append(_row(path, p, names, k))
        bar.update(min(start + batch_size, len(paths)))
    return rows, unreadable


def _row(path, probabilities, names, k):
    import numpy as np

    order = np.argsort(-probabilities, kind="stable")[:k]
    return {
        "path": path,
        "probabilities": probabilities,
        "top_k": [{"class": names[i], "id": int(i),
                   "probability": float(probabilities[i])} for i in order],
    }


class _ProgressBar:
    """`keras.utils.Progbar` over files, written to stderr (Keras writes
    it to stdout, which may hold the output)."""

    def __init__(self, target, enabled):
        self._bar = None
        if enabled:
            import keras

            with contextlib.redirect_stdout(sys.stderr):
                self._bar = keras.utils.Progbar(target, unit_name="file")

    def update(self, current):
        if self._bar is not None:
            with contextlib.redirect_stdout(sys.stderr):
                self._bar.update(current)


def write_csv(rows, stream):
    """Writes `path,class_1,probability_1,...,class_k,probability_k`
    (probabilities as fractions with 6 decimals), one line per row."""
    k = max((len(r["top_k"]) for r in rows), default=0)
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(["path"] + [f"{name}_{i}" for i in range(1, k + 1)
                                for name in ("class", "probability")])
    for row in rows:
        writer.writerow([row["path"]] + [
            value for top in row["top_k"]
            for value in (top["class"], f"{top['probability']:.6f}")])


def write_json(rows, stream):
    """Writes a JSON list of `{"path": ..., "top_k": [{"class", "id",
    "probability"}, ...]}` (probabilities as fractions)."""
    json.dump([{"path": r["path"], "top_k": r["top_k"]} for r in rows],
              stream, indent=1)
    stream.write("\n")


def _listed(items):
    shown = ", ".join(str(i) for i in items[:_MAX_LISTED])
    if len(items) > _MAX_LISTED:
        shown += f", ... ({len(items)} in all)"
    return shown


def _reason(error):
    return getattr(error, "strerror", None) or str(error) or type(
        error).__name__


def main(argv):
    """The command: `argv` is `[program, *inputs]` (`parse_flags`); the
    flags are this module's `FLAGS`. Writes the output, reports unreadable
    files on stderr; exits 2 on a usage error, 1 if no file was read."""
    _quiet_python_logging()
    inputs = argv[1:]
    if not FLAGS.model:
        fail("--model: give a run directory or .keras file.")
    if not inputs:
        fail("give the images to classify: files, folders or glob patterns "
             "(see --help).")
    prior = FLAGS.target_prior
    try:
        paths = find_images(inputs)
        model_path = resolve_model_path(FLAGS.model)
        if prior not in PRIOR_KEYWORDS:
            read_prior_file(prior)  # Its format, before loading the model.
    except ValueError as e:
        fail(str(e))
    if FLAGS.output:
        folder = os.path.dirname(os.path.abspath(FLAGS.output))
        if not os.path.isdir(folder):
            fail(f"--output={FLAGS.output}: the folder {folder} does not "
                 "exist.")
        if os.path.isdir(FLAGS.output):
            fail(f"--output={FLAGS.output} is a folder; name the file to "
                 f"write, e.g. {os.path.join(FLAGS.output, 'predictions')}."
                 f"{FLAGS.format}.")
        if not os.access(folder, os.W_OK) or (
                os.path.exists(FLAGS.output)
                and not os.access(FLAGS.output, os.W_OK)):
            fail(f"--output={FLAGS.output} is not writable; choose another "
                 "path.")
    cli.load_keras()  # Flags checked: now the seconds TensorFlow takes.
    import keras

    import balpoe_keras  # noqa: F401  (registers the custom objects)
    from balpoe_keras.evaluation.predict import check_model

    try:
        model = keras.saving.load_model(model_path, compile=False)
    except Exception as e:  # noqa: BLE001 - zip, h5, config errors alike.
        fail(f"cannot load {model_path} ({type(e).__name__}: "
             f"{_first_line(e)}); pass a .keras file this version wrote.")
    try:
        check_model(model)
        input_spec(model)
    except ValueError as e:
        fail(f"{model_path}: {_first_line(e)}")
    if prior not in PRIOR_KEYWORDS:
        try:
            prior = target_prior_from_file(prior, class_names_of(model))
        except ValueError as e:
            fail(str(e))
    rows, unreadable = predict_files(
        model, paths, batch_size=FLAGS.batch_size, top_k=FLAGS.top_k,
        target_prior=prior, progress=FLAGS.progress)
    for path, reason in unreadable:
        print(f"could not read {path}: {reason}", file=sys.stderr)
    if unreadable:
        print(f"{len(unreadable)} of {len(paths)} files could not be read.",
              file=sys.stderr)
    if not rows:
        print(f"error: none of the {len(paths)} files could be read.",
              file=sys.stderr)
        raise SystemExit(1)
    write = write_json if FLAGS.format == "json" else write_csv
    if FLAGS.output:
        with open(FLAGS.output, "w", encoding="utf-8", newline="") as f:
            write(rows, f)
    else:
        write(rows, sys.stdout)
        sys.stdout.flush()


def _quiet_python_logging():
    """Unless `--verbosity` is given, Python logging shows warnings and
    above (absl's app otherwise logs INFO)."""
    import logging

    from absl import logging as absl_logging

    if flags.FLAGS.is_parsed() and not flags.FLAGS["verbosity"].present:
        absl_logging.set_verbosity(absl_logging.WARNING)
        logging.getLogger("tensorflow").setLevel(logging.ERROR)


def _first_line(error):
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


if __name__ == "__main__":
    cli.start()  # Before Keras: TensorFlow's settings, quiet start-up.
    app.run(main, flags_parser=parse_flags)
