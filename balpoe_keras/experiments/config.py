"""Experiment configuration: dataset registry, `ExperimentConfig`, checks.

`ExperimentConfig.from_flags(FLAGS)` is the single place where flags are
validated, across flags too (lambdas averaging to 0, batch size divisible by
the replicas, dataset-specific options). Every error names the flag and the
fix. The library never reads flags; `run.py` is the only FLAGS reader.
"""

import dataclasses
import json
import math

from absl import app

from balpoe_keras import class_prior


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts of a long-tailed benchmark.

    Attributes:
        source: name understood by `balpoe_keras.data.get_source`.
        num_classes: int, `C`.
        image_size: int, side of the (square) model input in pixels.
        channels: int, image channels.
        train_recipe: default augmentation recipe (its eval transform is
            used for testing).
        long_tail: "exp" if the LT subset is built from a balanced train set
            with an imbalance ratio (CIFAR, Fashion-MNIST), "given" if the
            train list is already long-tailed (ImageNet-LT, iNat).
        test_split: split used as the balanced test set.
        architecture: default backbone.
    """

    source: str
    num_classes: int
    image_size: int
    channels: int
    train_recipe: str
    long_tail: str
    test_split: str = "test"
    architecture: str = "resnet32"


DATASETS = {
    "cifar10_lt": DatasetSpec("cifar10", 10, 32, 3, "cifar_standard", "exp"),
    "cifar100_lt": DatasetSpec("cifar100", 100, 32, 3, "cifar_standard",
                               "exp"),
    "cifar10_lt_folder": DatasetSpec("cifar10_folder", 10, 32, 3,
                                     "cifar_standard", "exp"),
    "fashion_mnist_lt": DatasetSpec("fashion_mnist", 10, 28, 1,
                                    "cifar_standard", "exp"),
    "imagenet_lt": DatasetSpec("imagenet_lt", 1000, 224, 3,
                               "imagenet_standard", "given",
                               architecture="resnet50"),
    "inaturalist2018": DatasetSpec("inaturalist2018", 8142, 224, 3,
                                   "inaturalist_standard", "given",
                                   test_split="val",
                                   architecture="resnet50"),
}
ARCHITECTURES = ("resnet32", "resnet50", "resnext50")
# Names of balpoe_keras.data.recipes.RECIPES (kept here so validation needs
# no TensorFlow; a test checks they agree).
RECIPES = ("none", "cifar_crop_flip", "cifar_standard", "cifar_autoaugment",
           "cifar_autoaugment_cutout", "imagenet_standard",
           "inaturalist_standard", "imagenet_randaugment")
SCHEDULES = ("step", "cosine")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
INPUT_PIPELINES = ("auto", "tfdata", "arrays")
# Recipe -> rotation range of the in-memory path (`balpoe_keras.arrays`),
# which implements only the CIFAR crop/flip(/rotation) recipes.
ARRAYS_RECIPES = {"cifar_standard": 15.0, "cifar_crop_flip": 0.0,
                  "none": None}


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Resolved, validated settings of one training run (see run.py flags)."""

    dataset: str
    data_dir: str | None
    imbalance_ratio: float
    architecture: str
    num_experts: int
    lambdas: tuple
    allow_unbalanced_lambdas: bool
    scale: float
    shared_stages: int
    mixup_alpha: float
    cutmix_alpha: float
    recipe: str
    epochs: int
    global_batch_size: int
    learning_rate: float
    weight_decay: float
    momentum: float
    schedule: str
    warmup_epochs: int
    lr_step_epochs: tuple
    lr_gamma: float
    seed: int
    workdir: str
    mixed_precision: str
    jit_compile: str
    input_pipeline: str
    eval_batch_size: int
    max_train_steps_per_epoch: int
    test_distributions: bool
    export: bool

    @property
    def spec(self):
        """The `DatasetSpec` of `dataset`."""
        return DATASETS[self.dataset]

    @property
    def taus(self):
        """Reference-code taus, `1 - lambda` per expert."""
        return class_prior.lambdas_to_taus(self.lambdas)

    def to_json(self):
        """The configuration as an indented JSON string."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path):
        """Reads and validates the `config.json` a run wrote."""
        with open(path) as f:
            values = json.load(f)
        fields = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - fields)
        if unknown:
            raise app.UsageError(f"{path}: unknown config keys {unknown}.")
        for key in ("lambdas", "lr_step_epochs"):
            values[key] = tuple(values[key])
        config = cls(**values)
        validate_config(config)
        return config

    @classmethod
    def from_flags(cls, flags_values):
        """Builds and validates a config from parsed absl flag values.

        Raises:
            app.UsageError: naming the offending flag and the fix.
        """
        f = flags_values
        lambdas = _resolve_lambdas(f)
        recipe = f.recipe or DATASETS[f.dataset].train_recipe
        config = cls(
            dataset=f.dataset, data_dir=f.data_dir,
            imbalance_ratio=float(f.imbalance_ratio),
            architecture=f.architecture or DATASETS[f.dataset].architecture,
            num_experts=f.num_experts, lambdas=tuple(lambdas),
            allow_unbalanced_lambdas=f.allow_unbalanced_lambdas,
            scale=f.scale, shared_stages=f.shared_stages,
            mixup_alpha=f.mixup_alpha, cutmix_alpha=f.cutmix_alpha,
            recipe=recipe, epochs=f.epochs,
            global_batch_size=f.batch_size, learning_rate=f.learning_rate,
            weight_decay=f.weight_decay, momentum=f.momentum,
            schedule=f.schedule, warmup_epochs=f.warmup_epochs,
            lr_step_epochs=tuple(int(e) for e in f.lr_step_epochs),
            lr_gamma=f.lr_gamma, seed=f.seed, workdir=f.workdir,
            mixed_precision=f.mixed_precision, jit_compile=f.jit_compile,
            input_pipeline=f.input_pipeline,
            eval_batch_size=f.eval_batch_size,
            max_train_steps_per_epoch=f.max_train_steps_per_epoch,
            test_distributions=f.test_distributions, export=f.export,
        )
        validate_config(config)
        return config


def scale_step_schedule(epochs, reference_epochs=200, warmup_epochs=5,
                        step_epochs=(160, 180)):
    """The reference's warm-up + step schedule scaled to `epochs`.

    The one scaling rule of the project (shorter CPU budgets, quick
    comparisons): warm-up `max(1, round(warmup * r))` and each LR drop at
    `round(step * r)` with `r = epochs / reference_epochs` (so 80 % and
    90 % of the run for the CIFAR recipe), kept strictly increasing and
    `>= 1`. `epochs == reference_epochs` returns the reference's values.

    Args:
        epochs: int >= 1.
        reference_epochs: the schedule's own length (200 standard, 400
            long).
        warmup_epochs: its warm-up (5 standard, 10 long).
        step_epochs: its LR drops (160, 180 standard; 320, 360 long).

    Returns:
        `(warmup_epochs, step_epochs tuple)`.
    """
    if int(epochs) != epochs or epochs < 1:
        raise ValueError(f"Expected epochs >= 1. Received: {epochs}")
    ratio = epochs / reference_epochs
    warmup = min(epochs, max(1, round(warmup_epochs * ratio)))
    steps = []
    for step in step_epochs:
        step = max(1, round(step * ratio))
        steps.append(max(step, steps[-1] + 1) if steps else step)
    return warmup, tuple(steps)


def _resolve_lambdas(f):
    if f.lambdas:
        values = [float(v) for v in f.lambdas]
    else:
        values = class_prior.spread_lambdas(
            f.num_experts, f.lambda_max, f.lambda_min
        )
    if len(values) != f.num_experts:
        raise app.UsageError(
            f"--lambdas has {len(values)} values but --num_experts="
            f"{f.num_experts}. Give one lambda per expert, or drop --lambdas "
            "to spread them between --lambda_max and --lambda_min."
        )
    try:
        class_prior.validate_lambdas(
            values, allow_unbalanced=f.allow_unbalanced_lambdas
        )
    except ValueError as e:
        raise app.UsageError(f"--lambdas: {e}") from None
    return values


def validate_config(config):
    """Cross-flag checks; raises `app.UsageError` naming flag and fix."""
    spec = config.spec
    _require(config.architecture in ARCHITECTURES, "--architecture",
             f"unknown {config.architecture!r}; use one of {ARCHITECTURES}")
    _require(config.recipe in RECIPES, "--recipe",
             f"unknown {config.recipe!r}; use one of {RECIPES}")
    _require(config.schedule in SCHEDULES, "--schedule",
             f"use one of {SCHEDULES}")
    _require(config.mixed_precision in PRECISIONS, "--mixed_precision",
             f"use one of {PRECISIONS}")
    _require(config.jit_compile in ("auto", "true", "false"), "--jit_compile",
             "use auto, true or false")
    _require(config.input_pipeline in INPUT_PIPELINES, "--input_pipeline",
             f"use one of {INPUT_PIPELINES}")
    if config.input_pipeline == "arrays":
        _require(config.recipe in ARRAYS_RECIPES, "--recipe",
                 f"--input_pipeline=arrays implements {list(ARRAYS_RECIPES)}"
                 " only; use --input_pipeline=tfdata for this recipe")
        _require(config.cutmix_alpha == 0, "--cutmix_alpha",
                 "--input_pipeline=arrays has Mixup only; use "
                 "--input_pipeline=tfdata for CutMix")
    _require(config.num_experts >= 1, "--num_experts", "must be >= 1")
    _require(config.epochs >= 1, "--epochs", "must be >= 1")
    _require(config.global_batch_size >= 1, "--batch_size", "must be >= 1")
    _require(config.eval_batch_size >= 1, "--eval_batch_size", "must be >= 1")
    _require(config.learning_rate > 0, "--learning_rate", "must be > 0")
    _require(config.weight_decay >= 0, "--weight_decay", "must be >= 0")
    _require(0 <= config.momentum < 1, "--momentum", "must be in [0, 1)")
    _require(config.scale > 0, "--scale", "must be > 0")
    _require(config.mixup_alpha >= 0 and config.cutmix_alpha >= 0,
             "--mixup_alpha/--cutmix_alpha", "must be >= 0 (0 = off)")
    _require(0 <= config.warmup_epochs <= config.epochs, "--warmup_epochs",
             "must be between 0 and --epochs")
    _require(config.max_train_steps_per_epoch >= 0,
             "--max_train_steps_per_epoch", "must be >= 0 (0 = full epochs)")
    steps = config.lr_step_epochs
    _require(list(steps) == sorted(steps) and all(s >= 1 for s in steps),
             "--lr_step_epochs", "must be increasing positive epochs")
    _require(bool(config.workdir), "--workdir", "give an output directory")
    if spec.long_tail == "exp":
        _require(config.imbalance_ratio >= 1 and math.isfinite(
            config.imbalance_ratio), "--imbalance_ratio",
            "must be >= 1 (max/min class count; the reference's imb_factor "
            "is its inverse, e.g. 0.01 -> 100)")
    else:
        _require(config.imbalance_ratio in (0, 1), "--imbalance_ratio",
                 f"{config.dataset} is long-tailed as distributed; leave it "
                 "at 0")
    if config.architecture == "resnext50" and spec.image_size != 224:
        raise app.UsageError(
            "--architecture=resnext50 needs 224x224 inputs (fixed 7x7 "
            f"pooling); {config.dataset} has {spec.image_size}x"
            f"{spec.image_size}. Use resnet32 for small images."
        )


def _require(condition, flag, message):
    if not condition:
        raise app.UsageError(f"{flag}: {message}.")
