"""Experiment settings: `ExperimentConfig` and its checks.

One source for every setting. Each `ExperimentConfig` field carries its
flag's help text and group; `run.py` generates the absl flags from the
fields, `from_flags` reads them back, `resolve` fills the per-dataset
defaults (`balpoe_keras.data.datasets.DATASETS`,
`balpoe_keras.architectures.ARCHITECTURES`) and
`validate_config` is the one place that checks values and combinations.
Errors are `ConfigError`s naming the flag and the fix. The library never
reads flags.
"""

import dataclasses
import json
import math

import numpy as np

from balpoe_keras import class_prior
from balpoe_keras.architectures import ARCHITECTURES
from balpoe_keras.data import image_folder
from balpoe_keras.data import long_tail
from balpoe_keras.data import mixing
from balpoe_keras.data.datasets import DATASET_NAMES
from balpoe_keras.data.datasets import DATASETS
from balpoe_keras.data.datasets import IMAGE_FOLDER
from balpoe_keras.data.datasets import IN_MEMORY_MAX_SIDE
from balpoe_keras.data.datasets import image_folder_spec
from balpoe_keras.data.recipes import IN_MEMORY_RECIPES
from balpoe_keras.data.recipes import RECIPES

SCHEDULES = ("step", "cosine")
# Training settings of the reference's CIFAR-100-LT standard configuration,
# the default of every dataset whose `DatasetSpec.training` does not set
# them (the benchmarks' reference values) and of image folders.
TRAINING_DEFAULTS = dict(
    mixup_alpha=0.4, lambda_max=1.0, lambda_min=-1.0,
    allow_unbalanced_lambdas=False, epochs=200, global_batch_size=128,
    learning_rate=0.1, weight_decay=5e-4, schedule="step", warmup_epochs=5)
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
INPUT_PIPELINES = ("auto", "tfdata", "arrays")
JIT = ("auto", "true", "false")


class ConfigError(ValueError):
    """An invalid setting; the message names the flag and the fix."""


def _field(default, help, group, choices=None, flag=None, item=None,
           resume_safe=False):
    """A config field with what its flag needs.

    Args:
        default: the default (None: resolved per dataset / architecture).
        help: the flag's help text.
        group: help section.
        choices: allowed values (an enum flag).
        flag: flag name when it differs from the field name.
        item: element type of a tuple field (`float` or `int`).
        resume_safe: may change when a run resumes (output-only settings).
    """
    return dataclasses.field(default=default, metadata=dict(
        help=help, group=group, choices=choices, flag=flag, item=item,
        resume_safe=resume_safe))


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    """Settings of one training run; `resolve()` fills the None defaults."""

    # === Data ===
    dataset: str = _field("cifar100_lt", "Long-tailed benchmark, or "
                          "image_folder: your own DIR/train/<class>/<image> "
                          "with --data_dir=DIR (docs/data.md, "
                          "docs/your_data.md).", "Data",
                          choices=DATASET_NAMES)
    data_dir: str = _field(None, "Folder holding the dataset (meaning per "
                           "dataset, docs/data.md); an error if it does not "
                           "exist. Default: $BALPOE_KERAS_DATA, then the "
                           "user cache (tfds datasets: $TFDS_DATA_DIR, "
                           "then ~/tensorflow_datasets).", "Data",
                           resume_safe=True)
    imbalance_ratio: float = _field(
        None, "max/min class count of the long-tailed train set (the "
        "reference's imb_factor is its inverse). Default: 100 for CIFAR and "
        "Fashion-MNIST; 0 (as distributed) for ImageNet-LT, iNat and "
        "image_folder (there, a ratio keeps the largest exponential profile "
        "the folder's counts allow).", "Data")
    image_size: int = _field(
        None, "image_folder: side of the square model input in pixels; "
        "images are resized to it when read (up to 64: decoded into "
        "memory; larger: streamed from the files). Default: the training "
        "images' median longer side if at most 64, else 224. Fixed for the "
        "benchmarks.", "Data")
    channels: int = _field(
        0, "image_folder: 1 (grayscale) or 3 (RGB) input channels; 0 = 1 "
        "when every training image is grayscale and images are held in "
        "memory, else 3. Fixed for the benchmarks.", "Data")
    holdout_per_class: int = _field(
        0, "image_folder without a test/ or val/ folder: hold out this many "
        "training images of every class (seed 0) as the balanced test "
        "set.", "Data")
    recipe: str = _field(None, "Augmentation recipe; default the "
                         "dataset's standard one.", "Data",
                         choices=tuple(RECIPES))
    mixup_alpha: float = _field(
        None, "Mixup Beta(alpha, alpha); 0 = off. Default: the dataset's "
        "reference value (CIFAR-10 0.8, ImageNet-LT 0.3, iNaturalist 0.2, "
        "else 0.4).", "Data")
    cutmix_alpha: float = _field(0.0, "CutMix Beta parameter; 0 = off. "
                                 "With --mixup_alpha too, each batch uses "
                                 "one of the two (p = 0.5), as the "
                                 "reference's mixup_cutmix mode.", "Data")
    input_pipeline: str = _field(
        "auto", "tfdata (every recipe; needs TensorFlow) or arrays (images "
        "in memory, augmented on the device; CIFAR recipes, no CutMix); "
        "auto picks arrays on JAX/PyTorch or without TensorFlow where it "
        "can, else tfdata.", "Data", choices=INPUT_PIPELINES)
    test_distributions: bool = _field(
        True, "Also evaluate on forward/backward long-tailed test sets "
        "(ratios 50 to 2; iNaturalist 3 and 2) with and without log-prior "
        "correction.", "Data", resume_safe=True)
    # === Model ===
    architecture: str = _field(None, "Backbone; default per dataset.",
                               "Model", choices=tuple(ARCHITECTURES))
    num_experts: int = _field(3, "Number of experts M.", "Model")
    lambdas: tuple = _field(
        None, "Per-expert lambdas, head expert first (lambda = 1 - tau of "
        "the reference code). Default: --num_experts values evenly spread "
        "from --lambda_max to --lambda_min.", "Model", item=float)
    lambda_max: float = _field(
        None, "Lambda of the first expert. Default: 2 for iNaturalist, "
        "else 1.", "Model")
    lambda_min: float = _field(
        None, "Lambda of the last expert. Default: -1.5 for ImageNet-LT, "
        "-2 for iNaturalist, else -1.", "Model")
    allow_unbalanced_lambdas: bool = _field(
        None, "Allow lambdas whose mean is not 0 (not Fisher-consistent "
        "for the balanced error). Default: on for ImageNet-LT (its "
        "reference lambdas 1, -0.25, -1.5 average -0.25), else off.",
        "Model")
    scale: float = _field(30.0, "Cosine-head logit scale (the code's 30; "
                          "the paper states 32).", "Model")
    shared_stages: int = _field(
        None, "Residual stages shared by all experts (0 = independent "
        "networks, all = linear experts). Default: the reference's, 1 for "
        "resnet32 and 2 for resnet50/resnext50.", "Model")
    # === Optimisation ===
    epochs: int = _field(None, "Training epochs. A run may be resumed "
                         "with more epochs to extend it (step schedule "
                         "only). Default: ImageNet-LT 180, iNaturalist 100, "
                         "else 200.", "Optimisation", resume_safe=True)
    global_batch_size: int = _field(
        None, "Global batch size (all devices and processes). Default: "
        "ImageNet-LT 64, iNaturalist 512, else 128.", "Optimisation",
        flag="batch_size")
    learning_rate: float = _field(
        None, "Base learning rate. Default: ImageNet-LT 0.025, iNaturalist "
        "0.2, else 0.1.", "Optimisation")
    learning_rate_batch_size: int = _field(
        0, "Linear scaling for other batch sizes (e.g. bigger GPU "
        "batches): --learning_rate is given for this batch size and "
        "multiplied by --batch_size / it (the warm-up keeps its epochs); 0 = "
        "no scaling.", "Optimisation")
    weight_decay: float = _field(
        None, "Coupled L2 weight decay on all weights (PyTorch SGD). "
        "Default: iNaturalist 2e-4, else 5e-4.", "Optimisation")
    momentum: float = _field(0.9, "Nesterov momentum.", "Optimisation")
    schedule: str = _field(
        None, "step: linear warm-up then x lr_gamma after each of "
        "lr_step_epochs; cosine: per-epoch cosine annealing to 0, no "
        "warm-up. Default: cosine for ImageNet-LT and iNaturalist, else "
        "step.", "Optimisation", choices=SCHEDULES)
    warmup_epochs: int = _field(
        None, "Linear warm-up epochs (step). Default: 0 for ImageNet-LT "
        "and iNaturalist, else 5.", "Optimisation")
    lr_step_epochs: tuple = _field((160, 180), "Epochs after which the LR "
                                   "is multiplied by lr_gamma.",
                                   "Optimisation", item=int)
    lr_gamma: float = _field(0.1, "LR decay factor of the step schedule.",
                             "Optimisation")
    max_train_steps_per_epoch: int = _field(
        0, "Cap on steps per epoch for quick runs; 0 = full epochs.",
        "Optimisation")
    # === Run ===
    seed: int = _field(1, "Seed of data order, augmentation and init.",
                       "Run")
    seeds: tuple = _field(
        (), "Several seeds trained together in one JAX program (vmapped "
        "models, one per seed; in-memory datasets): one report per seed in "
        "<workdir>/seed_<s>/ and their mean +- std in "
        "<workdir>/report/aggregate.md. Empty: the single --seed.", "Run",
        item=int)
    workdir: str = _field(None, "Output directory of the run (required).",
                          "Run", resume_safe=True)
    mixed_precision: str = _field(
        "float32", "Keras dtype policy. auto = mixed_bfloat16 when "
        "training on a CPU with AVX512_BF16 or AMX (TensorFlow, PyTorch; "
        "~1.5x faster there), else float32. Opt-in, so that results do not "
        "depend on the CPU; on 20-epoch CIFAR-10-LT runs its effect was "
        "within seed noise (reproduction/RESULTS.md).", "Run",
        choices=PRECISIONS)
    jit_compile: str = _field(
        "auto", "XLA (TF, JAX) or torch.compile (PyTorch); auto = Keras' "
        "choice: on for JAX; off for TensorFlow on the CPU (slower) and "
        "under a tf.distribute strategy, which the runner trains under "
        "on GPUs (true asks for XLA there); off for PyTorch "
        "(torch.compile breaks its graph in every Keras layer).", "Run",
        choices=JIT,
        resume_safe=True)
    eval_batch_size: int = _field(256, "Evaluation batch size.", "Run",
                                  resume_safe=True)
    eval_every: int = _field(
        0, "Evaluate on the test set every N epochs during training "
        "(balanced accuracy, many/medium/few, ECE into train_log.csv and "
        "TensorBoard); 0 = only at the end.", "Run", resume_safe=True)
    checkpoint_every: int = _field(
        1, "Epochs between checkpoints (the last epoch is always saved); a "
        "rerun resumes from the latest.", "Run", resume_safe=True)
    export: bool = _field(True, "Export a TF Serving SavedModel (needs "
                          "TensorFlow installed; any training backend).",
                          "Run", resume_safe=True)

    @property
    def spec(self):
        """The `DatasetSpec` of `dataset` (of a resolved config for
        image_folder, whose spec depends on its size and channels)."""
        if self.dataset == IMAGE_FOLDER:
            return image_folder_spec(self.image_size, self.channels)
        return DATASETS[self.dataset]

    @property
    def taus(self):
        """Reference-code taus, `1 - lambda` per expert."""
        return class_prior.lambdas_to_taus(self.lambdas)

    @property
    def scaled_learning_rate(self):
        """`learning_rate`, linearly scaled to the batch size if asked."""
        if not self.learning_rate_batch_size:
            return self.learning_rate
        return (self.learning_rate * self.global_batch_size
                / self.learning_rate_batch_size)

    @property
    def mix_mode(self):
        """None (no mixing), "mixup", "cutmix" or "mixup_cutmix"."""
        return mixing.mix_mode(self.mixup_alpha, self.cutmix_alpha)

    def resolve(self, check_data=True):
        """A copy with every None default filled in and validated.

        Args:
            check_data: for `--dataset=image_folder`, check the folder and
                read its defaults from it. False for a recorded config
                (`from_json`), whose size and channels are already set:
                a run resumes even if its folder has moved.

        Raises:
            ConfigError: naming the flag and the fix.
        """
        _require(self.dataset in DATASET_NAMES, "--dataset",
                 f"unknown {self.dataset!r}; use one of "
                 f"{sorted(DATASET_NAMES)}")
        if self.dataset == IMAGE_FOLDER and (
                check_data or not (self.image_size and self.channels)):
            inputs = self._resolve_image_folder()
        elif self.dataset == IMAGE_FOLDER:
            inputs = dict(image_size=self.image_size, channels=self.channels)
        else:
            inputs = self._resolve_benchmark_inputs()
        spec = dataclasses.replace(self, **inputs).spec
        defaults = {**TRAINING_DEFAULTS, **dict(spec.training)}
        training = {name: default if getattr(self, name) is None
                    else getattr(self, name)
                    for name, default in defaults.items()}
        filled = dataclasses.replace(self, **training, **inputs)
        architecture = filled.architecture or spec.architecture
        _require(architecture in ARCHITECTURES, "--architecture",
                 f"unknown {architecture!r}; use one of "
                 f"{sorted(ARCHITECTURES)}")
        config = dataclasses.replace(
            filled,
            architecture=architecture,
            recipe=filled.recipe or spec.train_recipe,
            imbalance_ratio=float(spec.imbalance_ratio
                                  if filled.imbalance_ratio is None
                                  else filled.imbalance_ratio),
            shared_stages=(ARCHITECTURES[architecture].shared_stages
                           if filled.shared_stages is None
                           else filled.shared_stages),
            lambdas=filled._resolve_lambdas(),
            lr_step_epochs=tuple(int(e) for e in filled.lr_step_epochs),
        )
        validate_config(config)
        return config

    def _resolve_benchmark_inputs(self):
        spec = DATASETS[self.dataset]
        for flag, value, fixed in (("--image_size", self.image_size,
                                    spec.image_size),
                                   ("--channels", self.channels,
                                    spec.channels)):
            _require(value in (None, 0, fixed), flag,
                     f"{self.dataset} images are {spec.image_size}x"
                     f"{spec.image_size}x{spec.channels}; the flag applies "
                     "to --dataset=image_folder")
        _require(not self.holdout_per_class, "--holdout_per_class",
                 f"{self.dataset} has its own test set; the flag applies "
                 "to --dataset=image_folder")
        return dict(image_size=spec.image_size, channels=spec.channels)

    def _resolve_image_folder(self):
        """Checks the folder (layout, classes, sampled headers; every
        file's header when it is streamed) and fills the input size and
        channels from it."""
        _require(bool(self.data_dir), "--data_dir", "--dataset=image_folder "
                 "reads DIR/train/<class>/<image>; pass --data_dir=DIR")
        try:
            layout = image_folder.scan_image_folder(self.data_dir)
        except (OSError, ValueError) as e:
            raise ConfigError(f"--data_dir: {e}") from None
        size = self.image_size or (
            layout.typical_side
            if layout.typical_side <= IN_MEMORY_MAX_SIDE else 224)
        _require(size >= 8, "--image_size", f"{size} px is too small; use "
                 ">= 8" if self.image_size else "the folder's images are "
                 f"typically {size} px, too small for the network; pass "
                 "--image_size=8 (or more) to upsample them")
        channels = self.channels or (
            1 if layout.grayscale and size <= IN_MEMORY_MAX_SIDE else 3)
        _require(channels in (1, 3), "--channels", "use 1 or 3")
        _require(channels == 3 or size <= IN_MEMORY_MAX_SIDE, "--channels",
                 f"images larger than {IN_MEMORY_MAX_SIDE} px stream through "
                 "tf.data as RGB; use --channels=3")
        if size > IN_MEMORY_MAX_SIDE:  # Streamed: check every file now.
            try:
                image_folder.check_image_files(
                    self.data_dir, ("train",) + ((layout.test_split,)
                                                 if layout.test_split
                                                 else ()))
            except ValueError as e:
                raise ConfigError(f"--data_dir: {e}") from None
        holdout = self.holdout_per_class
        _require(holdout >= 0, "--holdout_per_class", "must be >= 0")
        if layout.test_split is None:
            _require(holdout > 0, "--holdout_per_class",
                     f"{self.data_dir} has no test/ or val/ folder; add one "
                     "(same class folders as train/) or pass "
                     "--holdout_per_class=N to test on N held-out training "
                     "images per class")
            fewest = int(np.argmin(layout.train_counts))
            _require(holdout < layout.train_counts[fewest],
                     "--holdout_per_class",
                     f"class {layout.class_names[fewest]!r} has "
                     f"{layout.train_counts[fewest]} training images; hold "
                     "out fewer, so that every class keeps at least one")
            counts = [n - holdout for n in layout.train_counts]
        else:
            counts = list(layout.train_counts)
            _require(holdout == 0, "--holdout_per_class",
                     f"{self.data_dir} has a {layout.test_split}/ folder, "
                     "used as the test set; drop the flag (or move that "
                     "folder away to hold out training images instead)")
        if self.imbalance_ratio and self.imbalance_ratio >= 1:
            try:
                long_tail.largest_long_tail_counts(
                    counts, self.imbalance_ratio,
                    order=long_tail.head_first(counts))
            except ValueError as e:
                raise ConfigError(f"--imbalance_ratio: {e}") from None
        return dict(image_size=size, channels=channels)

    def _resolve_lambdas(self):
        _require(self.num_experts >= 1, "--num_experts", "must be >= 1")
        if self.lambdas:
            values = tuple(float(v) for v in self.lambdas)
        else:
            values = tuple(class_prior.spread_lambdas(
                self.num_experts, self.lambda_max, self.lambda_min))
        if len(values) != self.num_experts:
            raise ConfigError(
                f"--lambdas has {len(values)} values but --num_experts="
                f"{self.num_experts}. Give one lambda per expert, or drop "
                "--lambdas to spread them between --lambda_max and "
                "--lambda_min.")
        try:
            class_prior.validate_lambdas(
                values, allow_unbalanced=self.allow_unbalanced_lambdas)
        except ValueError as e:
            raise ConfigError(f"--lambdas: {e}") from None
        return values

    def differences(self, other):
        """Flags whose values differ from `other` and that a resumed run
        must keep: `[(flag, this value, other value)]`."""
        return [(flag_name(f), getattr(self, f.name), getattr(other, f.name))
                for f in dataclasses.fields(self)
                if not f.metadata["resume_safe"]
                and getattr(self, f.name) != getattr(other, f.name)]

    def to_json(self):
        """The configuration as an indented JSON string."""
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, path):
        """Reads the `config.json` a run wrote (resolved and validated)."""
        with open(path) as f:
            values = json.load(f)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - set(fields))
        if unknown:
            raise ConfigError(f"{path}: unknown config keys {unknown}.")
        for name, value in values.items():
            if isinstance(value, list):
                values[name] = tuple(value)
        return cls(**values).resolve(check_data=False)

    @classmethod
    def from_flags(cls, flag_values):
        """Builds and resolves a config from parsed absl flag values."""
        values = {}
        for f in dataclasses.fields(cls):
            value = getattr(flag_values, flag_name(f))
            item = f.metadata["item"]
            if item is not None and value is not None:
                value = tuple(item(v) for v in value)
            values[f.name] = value
        return cls(**values).resolve()


def flag_name(field):
    """The flag of a config field (`--batch_size` for global_batch_size)."""
    return field.metadata["flag"] or field.name


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


def validate_config(config):
    """Checks values and combinations; raises `ConfigError` naming the
    flag and the fix. `config` is resolved (no None defaults left)."""
    _check_choices(config)
    _require(config.epochs >= 1, "--epochs", "must be >= 1")
    _require(config.global_batch_size >= 1, "--batch_size", "must be >= 1")
    _require(config.eval_batch_size >= 1, "--eval_batch_size", "must be >= 1")
    _require(len(set(config.seeds)) == len(config.seeds), "--seeds",
             "give distinct seeds")
    if config.seeds:
        _require(config.eval_every == 0, "--eval_every",
                 "--seeds scores each seed's test set after training only; "
                 "drop the flag, or train one --seed at a time")
        _require(config.checkpoint_every == 1, "--checkpoint_every",
                 "--seeds saves every epoch; drop the flag, or train one "
                 "--seed at a time")
    _require(config.checkpoint_every >= 1, "--checkpoint_every",
             "must be >= 1")
    _require(config.eval_every >= 0, "--eval_every",
             "must be >= 0 (0 = evaluate only after training)")
    _require(config.learning_rate > 0, "--learning_rate", "must be > 0")
    _require(config.learning_rate_batch_size >= 0,
             "--learning_rate_batch_size", "must be >= 0 (0 = no scaling)")
    _require(config.weight_decay >= 0, "--weight_decay", "must be >= 0")
    _require(0 <= config.momentum < 1, "--momentum", "must be in [0, 1)")
    _require(config.scale > 0, "--scale", "must be > 0")
    try:
        mixing.validate_mixing(config.mixup_alpha, config.cutmix_alpha)
    except ValueError as e:
        raise ConfigError(f"--mixup_alpha/--cutmix_alpha: {e}") from None
    _require(0 <= config.warmup_epochs <= config.epochs, "--warmup_epochs",
             "must be between 0 and --epochs")
    _require(config.max_train_steps_per_epoch >= 0,
             "--max_train_steps_per_epoch", "must be >= 0 (0 = full epochs)")
    steps = config.lr_step_epochs
    _require(list(steps) == sorted(set(steps)) and all(s >= 1 for s in steps),
             "--lr_step_epochs", "must be increasing positive epochs")
    _require(bool(config.workdir), "--workdir", "give an output directory")
    _check_dataset(config)
    _check_model(config)
    if config.input_pipeline == "arrays":
        _require(config.recipe in IN_MEMORY_RECIPES, "--recipe",
                 f"--input_pipeline=arrays implements "
                 f"{list(IN_MEMORY_RECIPES)} only; use "
                 "--input_pipeline=tfdata for this recipe")
        _require(config.cutmix_alpha == 0, "--cutmix_alpha",
                 "--input_pipeline=arrays has Mixup only; use "
                 "--input_pipeline=tfdata for CutMix")


def _check_choices(config):
    for f in dataclasses.fields(config):
        choices = f.metadata["choices"]
        value = getattr(config, f.name)
        _require(choices is None or value in choices, f"--{flag_name(f)}",
                 f"unknown {value!r}; use one of {list(choices or ())}")


def _check_dataset(config):
    ratio = config.imbalance_ratio
    valid = ratio >= 1 and math.isfinite(ratio)
    if config.dataset == IMAGE_FOLDER:
        _require(ratio == 0 or valid, "--imbalance_ratio",
                 "must be 0 (the folder's counts as they are) or >= 1 (the "
                 "largest exponential profile with that max/min ratio)")
        resizing = [n for n, r in RECIPES.items() if r.resized_crop]
        _require(config.image_size <= IN_MEMORY_MAX_SIDE
                 or RECIPES[config.recipe].resized_crop, "--recipe",
                 f"{config.recipe} does not resize, and images above "
                 f"{IN_MEMORY_MAX_SIDE} px (--image_size="
                 f"{config.image_size}) are read from the files at their "
                 f"own size; use a recipe that crops them to the input "
                 f"({', '.join(resizing)}) or --image_size <= "
                 f"{IN_MEMORY_MAX_SIDE} to resize them into memory")
    elif config.spec.imbalance_ratio:
        _require(valid, "--imbalance_ratio",
                 "must be >= 1 (max/min class count; the reference's "
                 "imb_factor is its inverse, e.g. 0.01 -> 100)")
    else:
        _require(ratio in (0, 1), "--imbalance_ratio",
                 f"{config.dataset} is long-tailed as distributed; leave it "
                 "unset")


def _check_model(config):
    spec = ARCHITECTURES[config.architecture]
    stages = spec.num_stages
    _require(0 <= config.shared_stages <= stages, "--shared_stages",
             f"{config.architecture} has {stages} residual stages; use 0.."
             f"{stages}")
    size = config.spec.image_size
    if spec.input_size and size != spec.input_size:
        raise ConfigError(
            f"--architecture={config.architecture} needs {spec.input_size}x"
            f"{spec.input_size} inputs (fixed 7x7 pooling); {config.dataset} "
            f"has {size}x{size}. Use resnet32 for small images.")


def _require(condition, flag, message):
    if not condition:
        raise ConfigError(f"{flag}: {message}.")
