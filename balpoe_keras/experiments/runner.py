"""One experiment end to end: data -> model -> training -> report -> export.

`run_experiment(config)` is what `python -m balpoe_keras.experiments.run`
executes after validating its flags. Each step is a small function, so the
data flow reads top to bottom. Outputs in `config.workdir`:

- `config.json`: the resolved configuration (a rerun must match it);
- `checkpoints/`, `train_log.csv`, `tensorboard/`: training state and logs;
- `report/`: `report.json`, `report.md`, reliability diagram and plots;
- `model.keras` and, where TensorFlow is installed, `export/<version>/`
  (the TF Serving SavedModel; exported in a TensorFlow subprocess when the
  run trained on JAX or PyTorch).

The in-memory datasets (the CIFAR-10 JPEG archive, Fashion-MNIST) load
without TensorFlow and train through either input pipeline
(`--input_pipeline`); the others need TensorFlow (tfds, file lists).
"""

import dataclasses
import json
import os
import shutil
import subprocess
import sys
import time

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras import models
from balpoe_keras import training
from balpoe_keras.tensorflow_check import is_tensorflow_installed
from balpoe_keras.experiments.config import ARRAYS_RECIPES
from balpoe_keras.experiments.config import ConfigError
from balpoe_keras.experiments.config import ExperimentConfig
from balpoe_keras.training.fit import CHECKPOINT_DIRNAME
from balpoe_keras.training.fit import CSV_FILENAME
from balpoe_keras.training.fit import TENSORBOARD_DIRNAME
from balpoe_keras.training.workdir_lock import workdir_lock

CONFIG_FILENAME = "config.json"


class WorkdirError(RuntimeError):
    """The workdir holds a run with other settings; the message says how
    to go on."""


@dataclasses.dataclass
class ExperimentData:
    """The train source (long-tailed) and the test sets of a run."""

    train: object
    test: object
    class_counts: list
    test_distributions: dict


def check_data_dir(config):
    """A given `--data_dir` must be a folder (never a silent fallback)."""
    if config.data_dir and not os.path.isdir(config.data_dir):
        raise FileNotFoundError(
            f"--data_dir={config.data_dir} does not exist or is not a folder")


def load_source(config, split):
    """An `ImageSource` of the dataset (TensorFlow-free where possible)."""
    spec = config.spec
    check_data_dir(config)
    if spec.array_source:
        from balpoe_keras.arrays import sources

        return sources.get_array_source(spec.array_source, split,
                                        config.data_dir)
    if not is_tensorflow_installed():
        raise ConfigError(
            f"--dataset={config.dataset} is read with TensorFlow, which is "
            "not installed: pip install 'balpoe_keras[tf]', or use an "
            "in-memory dataset (cifar10_lt_folder, fashion_mnist_lt).")
    from balpoe_keras import data

    return data.get_source(spec.source, split, config.data_dir)


def load_data(config: ExperimentConfig):
    """Loads the train/test sources and builds the long-tailed train set."""
    from balpoe_keras.data import long_tail
    from balpoe_keras.data import test_distributions

    spec = config.spec
    train = load_source(config, "train")
    test = load_source(config, spec.test_split)
    if spec.imbalance_ratio:
        counts = long_tail.long_tail_counts(
            train.num_classes, len(train) // train.num_classes,
            config.imbalance_ratio,
        )  # fmt: skip
        # The reference fixes the subset with seed 0 for every run.
        train = train.subset(long_tail.long_tail_subsample(train.labels,
                                                           counts))
    class_counts = class_prior.validate_class_counts(
        train.class_counts, spec.num_classes
    )
    distributions = {}
    if config.test_distributions:
        distributions = test_distributions.make_test_distributions(
            test.labels, spec.num_classes
        )
    return ExperimentData(train, test, class_counts, distributions)


def resolve_precision(config):
    """The Keras dtype policy name for `--mixed_precision` (auto:
    `training.resolve_mixed_precision`)."""
    return training.resolve_mixed_precision(config.mixed_precision)


def build_model(config, class_counts, steps_per_epoch):
    """Builds and compiles the BalPoE model under the current strategy."""
    spec = config.spec
    with training.mixed_precision_scope(resolve_precision(config)):
        model = models.build_balpoe_resnet(
            config.architecture, spec.num_classes, config.num_experts,
            scale=config.scale, shared_stages=config.shared_stages,
            pixel_mean=spec.pixel_mean, pixel_std=spec.pixel_std,
            input_shape=(spec.image_size, spec.image_size, spec.channels),
        )  # fmt: skip
    optimizer = training.TorchSGD(
        learning_rate=make_schedule(config, steps_per_epoch),
        momentum=config.momentum, nesterov=True,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    return training.compile_balpoe(
        model, class_counts=class_counts, optimizer=optimizer,
        lambdas=config.lambdas,
        allow_unbalanced=config.allow_unbalanced_lambdas,
        metrics=make_metrics(class_counts), jit_compile=jit,
    )  # fmt: skip


def make_schedule(config, steps_per_epoch):
    """The reference's per-epoch LR schedule as a step-based schedule."""
    if config.schedule == "cosine":
        return training.CosineEpochSchedule(
            config.scaled_learning_rate, steps_per_epoch, config.epochs
        )
    return training.WarmupStepSchedule(
        config.scaled_learning_rate, steps_per_epoch,
        warmup_epochs=config.warmup_epochs,
        step_epochs=config.lr_step_epochs, gamma=config.lr_gamma,
    )  # fmt: skip


def make_metrics(class_counts):
    """Training metrics on the ensemble logits (empty groups left out)."""
    from balpoe_keras import metrics

    result = ["accuracy", metrics.BalancedAccuracy(len(class_counts))]
    groups = class_prior.compute_shot_groups(class_counts)
    for group in class_prior.SHOT_GROUPS:
        if groups[group].any():
            result.append(metrics.GroupAccuracy(class_counts, group))
    result.append(metrics.ExpectedCalibrationError(from_logits=True))
    return result


def steps_per_epoch(config, num_train, num_replicas):
    """Batches per epoch (`training.compute_steps_per_epoch`), capped by
    `--max_train_steps_per_epoch`; the last partial batch is kept on one
    replica and dropped on several."""
    steps = training.compute_steps_per_epoch(
        num_train, config.global_batch_size, num_replicas > 1)
    if config.max_train_steps_per_epoch:
        steps = min(steps, config.max_train_steps_per_epoch)
    return max(steps, 1)


def resolve_input_pipeline(config, experiment_data):
    """`"tfdata"` or `"arrays"` for `--input_pipeline`.

    `auto` picks arrays where TensorFlow is missing or the backend is JAX
    or PyTorch, when the data is in memory and the recipe is one the
    arrays path implements; tf.data otherwise.
    """
    arrays_ok = (experiment_data.train.in_memory
                 and config.recipe in ARRAYS_RECIPES
                 and config.cutmix_alpha == 0)
    choice = config.input_pipeline
    if choice == "auto":
        prefer = not is_tensorflow_installed() or keras.backend.backend() != (
            "tensorflow")
        choice = "arrays" if arrays_ok and prefer else "tfdata"
    if choice == "arrays" and not experiment_data.train.in_memory:
        raise ConfigError(
            f"--input_pipeline=arrays needs in-memory images; "
            f"--dataset={config.dataset} is read from files. Use "
            "--input_pipeline=tfdata.")
    if choice == "tfdata" and not is_tensorflow_installed():
        raise ConfigError(
            "this run needs tf.data (--input_pipeline=tfdata, --recipe="
            f"{config.recipe}) but TensorFlow is not installed: pip install "
            "'balpoe_keras[tf]', or use --input_pipeline=arrays with a "
            f"recipe in {sorted(ARRAYS_RECIPES)} and no CutMix.")
    return choice


def make_train_dataset_fn(config, experiment_data, num_replicas):
    """`epoch -> dataset` of the chosen input pipeline, a function of
    `(seed, epoch)` only."""
    drop_remainder = num_replicas > 1
    train = experiment_data.train
    if resolve_input_pipeline(config, experiment_data) == "arrays":
        from balpoe_keras.arrays import dataset

        max_degrees = ARRAYS_RECIPES[config.recipe]
        return dataset.make_train_dataset_fn(
            train.images, train.labels,
            global_batch_size=config.global_batch_size, seed=config.seed,
            num_classes=config.spec.num_classes,
            mixup_alpha=config.mixup_alpha, augment=max_degrees is not None,
            max_degrees=max_degrees or 0.0, drop_remainder=drop_remainder,
        )  # fmt: skip
    from balpoe_keras import data

    def dataset_fn(epoch):
        return data.make_train_dataset(
            train, global_batch_size=config.global_batch_size,
            recipe=config.recipe, num_classes=config.spec.num_classes,
            mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha,
            mix_mode=config.mix_mode or "mixup",
            seed=config.seed, epoch=epoch, deterministic=True,
            drop_remainder=drop_remainder, num_replicas=num_replicas,
            image_size=config.spec.image_size,
        )  # fmt: skip

    return dataset_fn


def make_test_sets(config, experiment_data):
    """Test sets for `evaluate_model`: the balanced one + index subsets."""
    test = experiment_data.test
    if test.in_memory:
        images = test.images.astype("float32") / 255.0
        balanced = (images, np.asarray(test.labels))
    else:
        from balpoe_keras import data

        balanced = data.make_eval_dataset(
            test, global_batch_size=config.eval_batch_size,
            recipe=config.recipe, output_keys=None,
            image_size=config.spec.image_size,
        )  # fmt: skip
    sets = {"uniform": balanced}
    for name, indices in experiment_data.test_distributions.items():
        if name != "uniform":
            sets[name] = np.asarray(indices)
    return sets


def make_test_eval_fn(config, experiment_data):
    """`model -> {"test/<metric>": value}` on the balanced test set, for
    `--eval_every` (balanced accuracy, many/medium/few, ECE, in %)."""
    from balpoe_keras.evaluation import predict
    from balpoe_keras.evaluation import scores

    balanced = make_test_sets(config, experiment_data)["uniform"]

    def evaluate_fn(model):
        outputs = predict.predict_outputs(model, balanced,
                                          batch_size=config.eval_batch_size)
        metrics = scores.compute_classification_metrics(
            outputs["logits"], outputs["labels"],
            class_counts=experiment_data.class_counts, details=False)
        keys = ["balanced_accuracy", "ece", "nll"] + [
            f"acc_{g}" for g in class_prior.SHOT_GROUPS
            if metrics[f"acc_{g}"] is not None]
        return {f"test/{k}": metrics[k] for k in keys}

    return evaluate_fn


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


def run_experiment(config, *, dry_run=False, overwrite=False):
    """Trains, evaluates and exports one run; returns the report dict.

    Rerunning the same command after a crash resumes from the last
    completed epoch; rerunning a finished run is a no-op that says so
    (unless `overwrite`); rerunning with more `--epochs` extends it.

    Args:
        config: a resolved `ExperimentConfig`.
        dry_run: build data and model, print the plan, stop before training.
        overwrite: delete the workdir's run first.

    Returns:
        The evaluation results dict (None for a dry run).

    Raises:
        WorkdirError: the workdir holds a run with other settings.
        ConfigError: a setting this machine cannot run (e.g. tf.data
            without TensorFlow).
    """
    check_data_dir(config)
    with workdir_lock(config.workdir):
        if overwrite and not dry_run:
            remove_outputs(config.workdir)
        check_workdir(config)
        experiment_data = load_data(config)
        record_config(config)
        # MirroredStrategy on TF, DataParallel on JAX (one device: a no-op);
        # training and evaluation run inside it.
        with training.data_parallel_scope() as replicas:
            training.validate_global_batch_size(config.global_batch_size,
                                                replicas)
            return _train_and_report(config, experiment_data, replicas,
                                     dry_run)


def _train_and_report(config, experiment_data, replicas, dry_run):
    steps = steps_per_epoch(config, len(experiment_data.train), replicas)
    pipeline = resolve_input_pipeline(config, experiment_data)
    keras.utils.set_random_seed(config.seed)  # The initial weights.
    model = build_model(config, experiment_data.class_counts, steps)
    _log_plan(config, experiment_data, model, steps, replicas, pipeline)
    dataset_fn = make_train_dataset_fn(config, experiment_data, replicas)
    if dry_run:
        images, targets = next(iter(dataset_fn(0)))
        labels = targets[models.LOGITS]
        print(f"Dry run: first batch {tuple(images.shape)} {images.dtype}, "
              f"labels {tuple(labels.shape)} {labels.dtype}; stopping "
              "before training.")
        return None
    eval_fn = (make_test_eval_fn(config, experiment_data)
               if config.eval_every else None)
    start = time.time()
    result = training.fit(
        model, dataset_fn, epochs=config.epochs, workdir=config.workdir,
        steps_per_epoch=steps, seed=config.seed,
        global_batch_size=config.global_batch_size,
        examples_per_epoch=None if config.max_train_steps_per_epoch
        else len(experiment_data.train),
        eval_fn=eval_fn, eval_every=config.eval_every or 1, keep_every=100,
        checkpoint_every=config.checkpoint_every,
    )  # fmt: skip
    report_path = os.path.join(config.workdir, "report", "report.json")
    if result.already_finished and os.path.exists(report_path):
        print(f"{config.workdir}: this run already finished all "
              f"{config.epochs} epochs and wrote {report_path}; nothing to "
              "do (pass --overwrite to train it again, or a larger --epochs "
              "to extend it).")
        with open(report_path) as f:
            return json.load(f)
    seconds = time.time() - start
    trained = result.final_epoch - result.initial_epoch
    timing = {"train_seconds_this_invocation": round(seconds, 1),
              "epochs_this_invocation": trained,
              "resumed_from_epoch": result.initial_epoch}
    if trained:
        images = trained * steps * config.global_batch_size
        if not config.max_train_steps_per_epoch:
            images = trained * len(experiment_data.train)
        timing["images_per_sec_this_invocation"] = round(images / seconds, 1)
    return evaluate_and_export(config, experiment_data, model, timing)


def evaluate(config, experiment_data, model):
    """`evaluate_model` on the run's balanced and test-agnostic test sets."""
    from balpoe_keras import evaluation

    return evaluation.evaluate_model(
        model, make_test_sets(config, experiment_data),
        class_counts=experiment_data.class_counts, lambdas=config.lambdas,
        class_names=experiment_data.train.class_names,
        batch_size=config.eval_batch_size,
    )  # fmt: skip


def evaluate_and_export(config, experiment_data, model, timing=None):
    """Writes `report/` and the `.keras` / SavedModel exports.

    `timing` (optional dict) is stored in the report under `"timing"`.
    """
    from balpoe_keras import evaluation

    start = time.time()
    results = evaluate(config, experiment_data, model)
    results["timing"] = dict(timing or {},
                             eval_seconds=round(time.time() - start, 1))
    config_dict = json.loads(config.to_json())
    paths = evaluation.write_report(
        results, os.path.join(config.workdir, "report"), config=config_dict
    )
    model_path = os.path.join(config.workdir, "model.keras")
    model.save(model_path)
    if config.export:
        export_run(config, model, experiment_data.train.class_names)
    summary = results["summary"]
    print(f"Evaluation ({time.time() - start:.0f} s): " + ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.items()))
    print(f"Report: {paths['markdown']}")
    return results


def export_run(config, model, class_names):
    """Writes the TF Serving SavedModel `<workdir>/export/1/`.

    On the TensorFlow backend directly; on JAX or PyTorch by reloading the
    run's `model.keras` in a TensorFlow-backend subprocess; skipped (with a
    note) where TensorFlow is not installed.
    """
    if not is_tensorflow_installed():
        print("SavedModel export skipped: TensorFlow is not installed "
              "(model.keras can be exported later where it is; "
              "docs/serving.md).")
        return None
    export_dir = os.path.join(config.workdir, "export")
    spec = config.spec
    kwargs = dict(class_names=list(class_names), image_size=spec.image_size,
                  channels=spec.channels, preprocess=spec.export_preprocess,
                  overwrite=True)
    if keras.backend.backend() == "tensorflow":
        from balpoe_keras import export

        path = export.export_saved_model(model, export_dir, **kwargs)
        path = path["saved_model"]
    else:
        path = _export_in_subprocess(
            os.path.join(config.workdir, "model.keras"), export_dir, kwargs)
    print(f"SavedModel for TF Serving: {path}")
    return path


_EXPORT_SCRIPT = """
import json, sys
import keras
import balpoe_keras
from balpoe_keras import export
model = keras.saving.load_model(sys.argv[1], compile=False)
paths = export.export_saved_model(model, sys.argv[2], **json.loads(sys.argv[3]))
print(paths["saved_model"])
"""


def _export_in_subprocess(model_path, export_dir, kwargs):
    env = dict(os.environ, KERAS_BACKEND="tensorflow",
               CUDA_VISIBLE_DEVICES="")
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    done = subprocess.run(
        [sys.executable, "-c", _EXPORT_SCRIPT, model_path, export_dir,
         json.dumps(kwargs)], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(
            f"SavedModel export of {model_path} on the TensorFlow backend "
            f"failed:\n{done.stderr[-2000:]}")
    return done.stdout.strip().splitlines()[-1]


def _log_plan(config, experiment_data, model, steps, replicas, pipeline):
    counts = experiment_data.class_counts
    groups = class_prior.compute_shot_groups(counts)
    print(config.to_json())
    print(
        f"Train: {len(experiment_data.train)} images, {len(counts)} classes, "
        f"counts {max(counts)}..{min(counts)} (many/medium/few classes: "
        + "/".join(str(int(groups[g].sum())) for g in class_prior.SHOT_GROUPS)
        + f"); test: {len(experiment_data.test)} images."
    )
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    print(
        f"Model: {config.architecture}, {config.num_experts} experts, "
        f"{trainable:,} trainable parameters, dtype policy "
        f"{model.dtype_policy.name}; backend {keras.backend.backend()}, "
        f"input {pipeline}, {replicas} replica(s), {steps} steps/epoch, "
        f"learning rate {config.scaled_learning_rate:g}, "
        f"lambdas {list(config.lambdas)} (taus {config.taus})."
    )
