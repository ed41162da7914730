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

import contextlib
import json
import os
import subprocess
import sys
import time

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras import models
from balpoe_keras import training
from balpoe_keras.experiments import config as config_lib
from balpoe_keras.experiments import inputs
from balpoe_keras.experiments import workdir as workdir_lib
from balpoe_keras.tensorflow_check import is_tensorflow_installed
from balpoe_keras.training import multi_host
from balpoe_keras.training.run_folder import RunFolder


def resolve_precision(config):
    """The Keras dtype policy name for `--mixed_precision` (auto:
    `training.resolve_mixed_precision`)."""
    return training.resolve_mixed_precision(config.mixed_precision)


def build_model(config, class_counts, steps_per_epoch, class_names=None):
    """Builds and compiles the run's `BalPoEClassifier` under the current
    strategy: it holds the run's class counts, lambdas and class names."""
    spec = config.spec
    with training.mixed_precision_scope(resolve_precision(config)):
        model = models.build_balpoe_classifier(
            config.architecture, class_counts, config.lambdas,
            allow_unbalanced=config.allow_unbalanced_lambdas,
            scale=config.scale, shared_stages=config.shared_stages,
            pixel_mean=spec.pixel_mean, pixel_std=spec.pixel_std,
            input_shape=(spec.image_size, spec.image_size, spec.channels),
            class_names=class_names,
        )  # fmt: skip
    optimizer = training.TorchSGD(
        learning_rate=make_schedule(config, steps_per_epoch),
        momentum=config.momentum, nesterov=True,
        weight_decay=config.weight_decay,
    )  # fmt: skip
    jit = {"auto": "auto", "true": True, "false": False}[config.jit_compile]
    model.compile(optimizer=optimizer, jit_compile=jit)  # BalPoE's loss.
    return model


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


def run_experiment(config, *, dry_run=False, overwrite=False,
                   show_config=False, processes=None):
    """Trains, evaluates and exports one run; returns the report dict.

    Rerunning the same command after a crash resumes from the last
    completed epoch; rerunning a finished run is a no-op that says so
    (unless `overwrite`); rerunning with more `--epochs` extends it.

    Args:
        config: a resolved `ExperimentConfig`.
        dry_run: build data and model, print the plan, stop before training.
        overwrite: delete the workdir's run first.
        show_config: also print the resolved configuration (it is always
            written to `<workdir>/config.json`).
        processes: the `training.multi_host.ProcessGroup` of a
            multi-process JAX run (None: one process). Every process feeds
            its share of each global batch; process 0 alone writes the run
            folder and evaluates, on a copy of the model in its own devices.

    Returns:
        The evaluation results dict (None for a dry run and for the
        processes other than 0).

    Raises:
        workdir.WorkdirError: the workdir holds a run with other settings.
        ConfigError: a setting this machine cannot run (e.g. tf.data
            without TensorFlow).
    """
    inputs.check_data_dir(config)
    group = processes or multi_host.ProcessGroup()
    folder = RunFolder(config.workdir, writer=group.is_writer)
    with folder.lock():
        if group.is_writer:
            if overwrite and not dry_run:
                folder.remove_outputs()
            workdir_lib.check_workdir(config)
            workdir_lib.record_config(config, folder)
        multi_host.barrier("settings", group=group)
        experiment_data = inputs.load_data(config)
        workdir_lib.check_data(config, experiment_data)  # Every process.
        if group.is_writer:
            workdir_lib.record_data(experiment_data, folder)
        # MirroredStrategy on TF, DataParallel on JAX (one device: a no-op);
        # training and evaluation run inside it.
        with training.data_parallel_scope() as devices:
            training.validate_global_batch_size(config.global_batch_size,
                                                devices)
            return _train_and_report(config, experiment_data, devices,
                                     dry_run, show_config, folder, group)


def _train_and_report(config, experiment_data, devices, dry_run,
                      show_config, folder, group):
    steps = inputs.steps_per_epoch(config, len(experiment_data.train), devices)
    pipeline = inputs.resolve_input_pipeline(config, experiment_data)
    keras.utils.set_random_seed(config.seed)  # The initial weights.
    model = build_model(config, experiment_data.class_counts, steps,
                        experiment_data.train.class_names)
    if group.is_writer:
        _log_plan(config, experiment_data, model, steps, devices, pipeline,
                  show_config, group)
    dataset_fn = inputs.make_train_dataset_fn(
        config, experiment_data, devices, group.num_processes,
        group.process_index)
    if dry_run:
        images, labels = next(iter(dataset_fn(0)))
        print(f"Dry run: first batch {tuple(images.shape)} {images.dtype}, "
              f"labels {tuple(labels.shape)} {labels.dtype}; stopping "
              "before training.")
        return None
    eval_fn = None
    if config.eval_every and group.is_writer:
        evaluate_test = inputs.make_test_eval_fn(config, experiment_data)

        def eval_fn(trained):
            local = _local_model(trained, group)
            with _undistributed(group):
                return evaluate_test(local)
    start = time.time()
    result = training.fit(
        model, dataset_fn, epochs=config.epochs, workdir=folder,
        steps_per_epoch=steps, seed=config.seed,
        verbose="auto" if group.is_writer else 0,
        global_batch_size=config.global_batch_size,
        examples_per_epoch=None if config.max_train_steps_per_epoch
        else len(experiment_data.train),
        eval_fn=eval_fn, eval_every=config.eval_every or 1, keep_every=100,
        checkpoint_every=config.checkpoint_every,
    )  # fmt: skip
    if not group.is_writer:  # Process 0 evaluates, writes and exports.
        multi_host.barrier("report", timeout_seconds=_REPORT_TIMEOUT,
                           group=group)
        return None
    report_path = os.path.join(folder.report_dir, "report.json")
    if result.already_finished and os.path.exists(report_path):
        print(f"{config.workdir}: this run already finished all "
              f"{config.epochs} epochs and wrote {report_path}; nothing to "
              "do (pass --overwrite to train it again, or a larger --epochs "
              "to extend it).")
        multi_host.barrier("report", group=group)
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
    results = evaluate_and_export(config, experiment_data, model, timing,
                                  group)
    multi_host.barrier("report", group=group)
    return results


# How long the other processes wait for process 0's evaluation and export.
_REPORT_TIMEOUT = 3 * 3600


def _evaluates_locally(group):
    """True where the evaluation leaves the data-parallel distribution:
    several processes (the others are not evaluating), or several JAX
    devices (Keras' `DataParallel` cannot split a test set's last partial
    batch unevenly: a size not divisible by the device count failed, after
    the whole training)."""
    distribution = keras.distribution.distribution()
    return group.multi_process or (
        distribution is not None
        and distribution.device_mesh.devices.size > 1)


def _local_model(model, group):
    """`model`, or where `_evaluates_locally` a copy with the same weights
    outside the distribution, to evaluate under `_undistributed(group)`."""
    if not _evaluates_locally(group):
        return model
    with multi_host.without_distribution():
        copy = model.__class__.from_config(model.get_config())
        copy.set_weights(model.get_weights())
    return copy


def _undistributed(group):
    """Outside the data-parallel distribution where `_evaluates_locally`."""
    if _evaluates_locally(group):
        return multi_host.without_distribution()
    return contextlib.nullcontext()


def evaluate(config, experiment_data, model):
    """`evaluate_model` on the run's balanced and test-agnostic test sets.

    The `BalPoEClassifier` brings its class counts and lambdas, and its
    class names when it stores them (else the data's).
    """
    from balpoe_keras import evaluation

    known = {}
    if getattr(model, "class_names", None) is None:
        known["class_names"] = experiment_data.train.class_names
    return evaluation.evaluate_model(
        model, inputs.make_test_sets(config, experiment_data),
        batch_size=config.eval_batch_size, **known,
    )  # fmt: skip


def evaluate_and_export(config, experiment_data, model, timing=None,
                        group=None):
    """Writes `report/` and the `.keras` / SavedModel exports.

    `timing` (optional dict) is stored in the report under `"timing"`;
    `group` (a multi-process run's `ProcessGroup`) evaluates a copy of the
    model on this process's devices.
    """
    from balpoe_keras import evaluation

    start = time.time()
    group = group or multi_host.ProcessGroup()
    local = _local_model(model, group)
    with _undistributed(group):
        results = evaluate(config, experiment_data, local)
    results["timing"] = dict(timing or {},
                             eval_seconds=round(time.time() - start, 1))
    # What --mixed_precision=auto resolved to on this machine.
    results["dtype_policy"] = model.dtype_policy.name
    model_path = RunFolder(config.workdir).model_path
    with multi_host.local_saving():  # The trained model first.
        model.save(model_path)
    config_dict = json.loads(config.to_json())
    paths = evaluation.write_report(
        results, RunFolder(config.workdir).report_dir, config=config_dict
    )
    results["config"] = config_dict  # As report.json (seed aggregation).
    if config.export:
        export_run(config, model, experiment_data.train.class_names)
    summary = results["summary"]
    print(f"Evaluation ({time.time() - start:.0f} s): " + ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.items()))
    print(f"Report: {paths['markdown']}")
    return results


def export_run(config, model, class_names=None):
    """Writes the TF Serving SavedModel `<workdir>/export/1/`.

    Class names come from the model if it stores them, else from
    `class_names`; the image size and channels from the model's input.
    On the TensorFlow backend directly; on JAX or PyTorch by reloading the
    run's `model.keras` in a TensorFlow-backend subprocess; skipped (with a
    note) where TensorFlow is not installed.
    """
    if not is_tensorflow_installed():
        print("SavedModel export skipped: TensorFlow is not installed "
              "(model.keras can be exported later where it is; "
              "docs/serving.md).")
        return None
    export_dir = RunFolder(config.workdir).export_dir
    kwargs = dict(preprocess=config.spec.export_preprocess, overwrite=True)
    if getattr(model, "class_names", None) is None:
        kwargs["class_names"] = list(class_names)
    if keras.backend.backend() == "tensorflow":
        from balpoe_keras import export

        path = export.export_saved_model(model, export_dir, **kwargs)
        path = path["saved_model"]
    else:
        path = _export_in_subprocess(
            RunFolder(config.workdir).model_path, export_dir, kwargs)
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


def late_drop_note(config):
    """A note when step-schedule drops fall at or after `--epochs` (a
    shorter run of a 200-epoch flagfile would train at the full rate
    throughout), or None."""
    late = [e for e in config.lr_step_epochs if e >= config.epochs]
    if config.schedule != "step" or not late:
        return None
    how = ("never drops" if len(late) == len(config.lr_step_epochs)
           else "drops fewer times")
    note = (f"Note: the learning-rate drop(s) after epoch(s) "
            f"{','.join(map(str, late))} (--lr_step_epochs) are not reached "
            f"in --epochs={config.epochs}: the learning rate {how} in this "
            "run.")
    _, scaled = config_lib.scale_step_schedule(config.epochs)
    if max(scaled) < config.epochs:
        note += (" For the reference schedule scaled to this length pass "
                 f"--lr_step_epochs={','.join(map(str, scaled))}.")
    return note


def _log_plan(config, experiment_data, model, steps, devices, pipeline,
              show_config=False, group=None):
    counts = experiment_data.class_counts
    groups = class_prior.compute_shot_groups(counts)
    if show_config:
        print(config.to_json())
    print(f"Settings: {RunFolder(config.workdir).config_path} "
          "(--show_config prints them).")
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
        f"input {pipeline}, {devices} device(s), {steps} steps/epoch, "
        f"learning rate {config.scaled_learning_rate:g}, "
        f"lambdas {list(config.lambdas)} (taus {config.taus})."
    )
    note = late_drop_note(config)
    if note:
        print(note)
    if group is not None and group.multi_process:
        print(f"Processes: {group.num_processes} (this is process "
              f"{group.process_index}, which writes {config.workdir}), "
              f"{group.num_devices} devices in all; each process feeds "
              f"{config.global_batch_size // group.num_processes} images of "
              "every global batch.")
