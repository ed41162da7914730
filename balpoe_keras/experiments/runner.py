"""One experiment end to end: data -> model -> training -> report -> export.

`run_experiment(config)` is what `python -m balpoe_keras.experiments.run`
executes after validating its flags. Each step is a small function, so the
data flow reads top to bottom. Outputs in `config.workdir`:

- `config.json`: the resolved configuration;
- `checkpoints/`, `train_log.csv`, `tensorboard/` (TF): training state;
- `report/`: `report.json`, `report.md`, reliability diagram and plots;
- `model.keras` and, on the TensorFlow backend, `export/<version>/` (the
  TF Serving SavedModel).
"""

import dataclasses
import json
import logging
import math
import os
import time

import keras
import numpy as np

from balpoe_keras import class_prior
from balpoe_keras import models
from balpoe_keras import training
from balpoe_keras.experiments.config import ExperimentConfig

# Per-channel pixel statistics of `[0, 1]` images (REFERENCE 5.2, 5.3).
_PIXEL_STATS = {
    "cifar": (models.CIFAR_MEAN, models.CIFAR_STD),
    "imagenet": (models.IMAGENET_MEAN, models.IMAGENET_STD),
    "inaturalist": ((0.466, 0.471, 0.380), (0.195, 0.194, 0.192)),
    # Fashion-MNIST train statistics (not in the reference).
    "fashion_mnist": ((0.2860,), (0.3530,)),
}
_LOG = logging.getLogger("balpoe_keras")


@dataclasses.dataclass
class ExperimentData:
    """The train source (long-tailed) and the test sets of a run."""

    train: object
    test: object
    class_counts: list
    test_distributions: dict


def load_data(config: ExperimentConfig):
    """Loads the train/test sources and builds the long-tailed train set."""
    from balpoe_keras import data

    spec = config.spec
    train = data.get_source(spec.source, "train", config.data_dir)
    test = data.get_source(spec.source, spec.test_split, config.data_dir)
    if spec.long_tail == "exp":
        counts = data.long_tail_counts(
            train.num_classes, len(train) // train.num_classes,
            config.imbalance_ratio,
        )  # fmt: skip
        # The reference fixes the subset with seed 0 for every run.
        train = train.subset(data.long_tail_subsample(train.labels, counts))
    class_counts = class_prior.validate_class_counts(
        train.class_counts, spec.num_classes
    )
    distributions = {}
    if config.test_distributions:
        distributions = data.make_test_distributions(
            test.labels, spec.num_classes
        )
    return ExperimentData(train, test, class_counts, distributions)


def pixel_stats(config):
    """`(mean, std)` per channel of `[0, 1]` pixels for the dataset."""
    if config.dataset.startswith("fashion_mnist"):
        return _PIXEL_STATS["fashion_mnist"]
    if config.dataset == "inaturalist2018":
        return _PIXEL_STATS["inaturalist"]
    if config.dataset == "imagenet_lt":
        return _PIXEL_STATS["imagenet"]
    return _PIXEL_STATS["cifar"]


def resolve_precision(config):
    """The Keras dtype policy name for `--mixed_precision`."""
    if config.mixed_precision != "auto":
        return config.mixed_precision
    return "float32"


def build_model(config, class_counts, steps_per_epoch):
    """Builds and compiles the BalPoE model under the current strategy."""
    spec = config.spec
    mean, std = pixel_stats(config)
    kwargs = dict(
        scale=config.scale, pixel_mean=mean, pixel_std=std,
        input_shape=(spec.image_size, spec.image_size, spec.channels),
    )  # fmt: skip
    if config.architecture == "resnet32" or config.shared_stages != 1:
        kwargs["shared_stages"] = config.shared_stages
    with training.mixed_precision_scope(resolve_precision(config)):
        model = models.build_balpoe_resnet(
            config.architecture, spec.num_classes, config.num_experts,
            **kwargs,
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
            config.learning_rate, steps_per_epoch, config.epochs
        )
    return training.WarmupStepSchedule(
        config.learning_rate, steps_per_epoch,
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
    """Batches per epoch: the reference keeps the last partial batch."""
    batch = config.global_batch_size
    steps = math.floor(num_train / batch) if num_replicas > 1 else math.ceil(
        num_train / batch
    )
    if config.max_train_steps_per_epoch:
        steps = min(steps, config.max_train_steps_per_epoch)
    return max(steps, 1)


def resolve_input_pipeline(config, experiment_data):
    """`"tfdata"` or `"arrays"` for `--input_pipeline` (auto: arrays on
    JAX/PyTorch for in-memory data with an arrays recipe, else tf.data)."""
    if config.input_pipeline != "auto":
        return config.input_pipeline
    from balpoe_keras.experiments.config import ARRAYS_RECIPES

    arrays_ok = (experiment_data.train.in_memory
                 and config.recipe in ARRAYS_RECIPES
                 and config.cutmix_alpha == 0)
    if arrays_ok and keras.backend.backend() in ("jax", "torch"):
        return "arrays"
    return "tfdata"


def make_train_dataset_fn(config, experiment_data, num_replicas):
    """`epoch -> dataset`, a function of `(seed, epoch)` only."""
    if resolve_input_pipeline(config, experiment_data) == "arrays":
        return _make_arrays_dataset_fn(config, experiment_data, num_replicas)
    from balpoe_keras import data

    def dataset_fn(epoch):
        return data.make_train_dataset(
            experiment_data.train,
            global_batch_size=config.global_batch_size,
            recipe=config.recipe, num_classes=config.spec.num_classes,
            mixup_alpha=config.mixup_alpha,
            cutmix_alpha=config.cutmix_alpha,
            mix_mode="cutmix" if config.cutmix_alpha > 0 else "mixup",
            seed=config.seed, epoch=epoch, deterministic=True,
            drop_remainder=num_replicas > 1, num_replicas=num_replicas,
            image_size=config.spec.image_size,
        )  # fmt: skip

    return dataset_fn


def _make_arrays_dataset_fn(config, experiment_data, num_replicas):
    from balpoe_keras.arrays import dataset
    from balpoe_keras.experiments.config import ARRAYS_RECIPES

    train = experiment_data.train
    if not train.in_memory:
        raise ValueError(
            f"--input_pipeline=arrays needs in-memory images; {train.name} "
            "is read from files. Use --input_pipeline=tfdata.")
    max_degrees = ARRAYS_RECIPES[config.recipe]
    return dataset.make_train_dataset_fn(
        train.images, train.labels, global_batch_size=config.global_batch_size,
        seed=config.seed, num_classes=config.spec.num_classes,
        mixup_alpha=config.mixup_alpha, augment=max_degrees is not None,
        max_degrees=max_degrees or 0.0, drop_remainder=num_replicas > 1,
    )  # fmt: skip


def make_test_sets(config, experiment_data):
    """Test sets for `evaluate_model`: the balanced one + index subsets."""
    from balpoe_keras import data

    test = experiment_data.test
    if test.in_memory:
        images = test.images.astype("float32") / 255.0
        balanced = (images, np.asarray(test.labels))
    else:
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


def run_experiment(config, *, dry_run=False, overwrite=False):
    """Trains, evaluates and exports one run; returns the report dict.

    Rerunning the same command after a crash resumes from the last
    completed epoch; rerunning a finished run is a no-op that says so
    (unless `overwrite`).

    Args:
        config: a validated `ExperimentConfig`.
        dry_run: build data and model, print the plan, stop before training.
        overwrite: delete the workdir's checkpoints and logs first.

    Returns:
        The evaluation results dict (None for a dry run).
    """
    os.makedirs(config.workdir, exist_ok=True)
    _write_config(config)
    experiment_data = load_data(config)
    # MirroredStrategy on TF, DataParallel on JAX (one device: a no-op);
    # training and evaluation run inside it.
    with training.data_parallel_scope() as replicas:
        training.validate_global_batch_size(config.global_batch_size,
                                            replicas)
        return _train_and_report(config, experiment_data, replicas, dry_run,
                                 overwrite)


def _train_and_report(config, experiment_data, replicas, dry_run, overwrite):
    steps = steps_per_epoch(config, len(experiment_data.train), replicas)
    model = build_model(config, experiment_data.class_counts, steps)
    _log_plan(config, experiment_data, model, steps, replicas)
    dataset_fn = make_train_dataset_fn(config, experiment_data, replicas)
    if dry_run:
        images, targets = next(iter(dataset_fn(0)))
        labels = targets[models.LOGITS]
        print(f"Dry run: first batch {tuple(images.shape)} {images.dtype}, "
              f"labels {tuple(labels.shape)} {labels.dtype}; stopping "
              "before training.")
        return None
    start = time.time()
    result = training.fit(
        model, dataset_fn, epochs=config.epochs, workdir=config.workdir,
        steps_per_epoch=steps, overwrite=overwrite, seed=config.seed,
        global_batch_size=config.global_batch_size,
        examples_per_epoch=None if config.max_train_steps_per_epoch
        else len(experiment_data.train),
        keep_every=100,
    )  # fmt: skip
    report_path = os.path.join(config.workdir, "report", "report.json")
    if result.already_finished and os.path.exists(report_path):
        print(f"{config.workdir}: this run already finished all "
              f"{config.epochs} epochs and wrote {report_path}; nothing to "
              "do (pass --overwrite to train it again).")
        with open(report_path) as f:
            return json.load(f)
    timing = {"train_seconds_this_invocation": round(time.time() - start, 1),
              "resumed_from_epoch": result.initial_epoch}
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
    model.save(os.path.join(config.workdir, "model.keras"))
    if config.export:
        _export(config, experiment_data, model)
    summary = results["summary"]
    print(f"Evaluation ({time.time() - start:.0f} s): " + ", ".join(
        f"{k}={v:.4f}" if isinstance(v, float) else f"{k}={v}"
        for k, v in summary.items()))
    print(f"Report: {paths['markdown']}")
    return results


def _export(config, experiment_data, model):
    if keras.backend.backend() != "tensorflow":
        print("SavedModel export skipped: it needs the TensorFlow backend "
              "(the .keras file can be re-exported there; docs/serving.md).")
        return
    from balpoe_keras import export

    paths = export.export_saved_model(
        model, os.path.join(config.workdir, "export"),
        class_names=experiment_data.train.class_names,
        image_size=config.spec.image_size, channels=config.spec.channels,
        preprocess="resize" if config.spec.image_size < 64
        else "resize_center_crop",
        overwrite=True,
    )  # fmt: skip
    print(f"SavedModel for TF Serving: {paths['saved_model']}")


def _write_config(config):
    path = os.path.join(config.workdir, "config.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(config.to_json())
    os.replace(tmp, path)


def _log_plan(config, experiment_data, model, steps, replicas):
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
        f"{replicas} replica(s), {steps} steps/epoch, lambdas "
        f"{list(config.lambdas)} (taus {config.taus})."
    )
