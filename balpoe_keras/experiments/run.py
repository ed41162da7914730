r"""Trains, evaluates and exports a BalPoE model from a flagfile.

    python -m balpoe_keras.experiments.run --flagfile=experiments/quickstart.flags
    cd experiments && python -m balpoe_keras.experiments.run --flagfile=cifar100.flags

One flagfile per paper setting lives in `experiments/`; flags given after
`--flagfile` override it. The backend is chosen with `KERAS_BACKEND`
(tensorflow by default; jax and torch work too). This is the only module
that reads flags: it validates them into an `ExperimentConfig` and calls
`runner.run_experiment`. Rerunning a command after a crash resumes it.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# TF_ENABLE_ONEDNN_OPTS=1 is set by balpoe_keras/__init__.py, which Python
# imports (with TensorFlow) before this module: see the comment there.

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from balpoe_keras.experiments import config as config_lib  # noqa: E402

FLAGS = flags.FLAGS

# === Data ===
flags.DEFINE_enum("dataset", "cifar100_lt", sorted(config_lib.DATASETS),
                  "Long-tailed benchmark (docs/data.md).")
flags.DEFINE_string("data_dir", None,
                    "Where the dataset lives (meaning per dataset; see "
                    "docs/data.md). Default: each source's standard places.")
flags.DEFINE_float("imbalance_ratio", 100.0,
                   "max/min class count of the long-tailed train set "
                   "(the reference's imb_factor is its inverse). 0 for "
                   "datasets that are long-tailed as distributed.")
flags.DEFINE_string("recipe", None,
                    "Augmentation recipe; default: the dataset's standard "
                    "recipe. One of " + ", ".join(config_lib.RECIPES) + ".")
flags.DEFINE_float("mixup_alpha", 0.4, "Mixup Beta(alpha, alpha); 0 = off.")
flags.DEFINE_float("cutmix_alpha", 0.0, "CutMix Beta parameter; 0 = off.")
flags.DEFINE_boolean("test_distributions", True,
                     "Also evaluate on forward/backward long-tailed test "
                     "sets (ratios 2..50) with and without log-prior "
                     "correction.")
# === Model ===
flags.DEFINE_string("architecture", None,
                    "resnet32, resnet50 or resnext50; default per dataset.")
flags.DEFINE_integer("num_experts", 3, "Number of experts M.")
flags.DEFINE_list("lambdas", None,
                  "Per-expert lambdas, head expert first (lambda = 1 - tau "
                  "of the reference code). Default: --num_experts values "
                  "evenly spread from --lambda_max to --lambda_min.")
flags.DEFINE_float("lambda_max", 1.0, "Lambda of the first expert.")
flags.DEFINE_float("lambda_min", -1.0, "Lambda of the last expert.")
flags.DEFINE_boolean("allow_unbalanced_lambdas", False,
                     "Allow lambdas whose mean is not 0 (not Fisher-"
                     "consistent for the balanced error; the reference's "
                     "ImageNet-LT setting).")
flags.DEFINE_float("scale", 30.0, "Cosine-head logit scale (the code's 30; "
                   "the paper states 32).")
flags.DEFINE_integer("shared_stages", 1,
                     "ResNet-32 stages shared by all experts (1 = reference"
                     ", 3 = linear experts, 0 = independent networks).")
# === Optimisation ===
flags.DEFINE_integer("epochs", 200, "Training epochs.")
flags.DEFINE_integer("batch_size", 128, "Global batch size (all replicas).")
flags.DEFINE_float("learning_rate", 0.1, "Base learning rate.")
flags.DEFINE_float("weight_decay", 5e-4,
                   "Coupled L2 weight decay on all weights (PyTorch SGD).")
flags.DEFINE_float("momentum", 0.9, "Nesterov momentum.")
flags.DEFINE_enum("schedule", "step", config_lib.SCHEDULES,
                  "step: linear warmup then x lr_gamma at lr_step_epochs; "
                  "cosine: per-epoch cosine annealing to 0, no warmup.")
flags.DEFINE_integer("warmup_epochs", 5, "Linear warmup epochs (step).")
flags.DEFINE_list("lr_step_epochs", ["160", "180"],
                  "Epochs after which the LR is multiplied by lr_gamma.")
flags.DEFINE_float("lr_gamma", 0.1, "LR decay factor of the step schedule.")
flags.DEFINE_integer("max_train_steps_per_epoch", 0,
                     "Cap on steps per epoch for quick runs; 0 = full.")
# === Run ===
flags.DEFINE_integer("seed", 1, "Seed of data order, augmentation, init.")
flags.DEFINE_string("workdir", None, "Output directory of the run.")
flags.DEFINE_enum("mixed_precision", "auto", config_lib.PRECISIONS,
                  "Keras dtype policy; auto = float32 (see "
                  "benchmarks/RESULTS.md).")
flags.DEFINE_enum("jit_compile", "auto", ["auto", "true", "false"],
                  "XLA; auto = Keras' choice (on for JAX and TF on GPU, "
                  "off for TF on CPU, where XLA is slower).")
flags.DEFINE_enum("input_pipeline", "auto", config_lib.INPUT_PIPELINES,
                  "Training input: tfdata (tf.data, every recipe), arrays "
                  "(balpoe_keras.arrays: in-memory images augmented on the "
                  "device, CIFAR recipes, TensorFlow-free) or auto.")
flags.DEFINE_integer("eval_batch_size", 256, "Evaluation batch size.")
flags.DEFINE_boolean("export", True,
                     "Export a TF Serving SavedModel (TensorFlow backend).")
flags.DEFINE_boolean("dry_run", False,
                     "Load data and build the model, print the plan, stop.")
flags.DEFINE_boolean("overwrite", False,
                     "Start from scratch, deleting the workdir's "
                     "checkpoints and logs.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from balpoe_keras.experiments import runner

    config = config_lib.ExperimentConfig.from_flags(FLAGS)
    try:
        runner.run_experiment(
            config, dry_run=FLAGS.dry_run, overwrite=FLAGS.overwrite
        )
    except FileNotFoundError as e:  # Missing data: say where and how.
        raise SystemExit(f"Data not found for --dataset={config.dataset}: {e}")


if __name__ == "__main__":
    app.run(main)
