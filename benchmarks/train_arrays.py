"""CIFAR-10-LT BalPoE training on the TensorFlow-free in-memory input path.

Trains the reference CIFAR-10-LT IR100 recipe (shared/REFERENCE.md 4.1:
ResNet-32, 3 experts, lambdas 1/0/-1, TorchSGD lr 0.1 Nesterov momentum 0.9
coupled wd 5e-4, warm-up 5 + steps at 160/180, batch 128, 200 epochs, Mixup
alpha 0.8, pad-4 crop + flip + rotation U[-15, 15]) with
`balpoe_keras.arrays` for input and `balpoe_keras.training.fit` (same
checkpoints and `train_log.csv` as the experiment runner), then writes the
test report with `balpoe_keras.evaluation`. Works on the JAX and torch
backends without TensorFlow installed; made for the GPU machines
(benchmarks/gpu_check.sh, docs/gpu.md).

    KERAS_BACKEND=jax python benchmarks/train_arrays.py --out gpu_out/train
    python benchmarks/train_arrays.py --tiny        # 1 epoch on 512 images
"""

import argparse
import json
import math
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from balpoe_keras import models  # noqa: E402
from balpoe_keras import training  # noqa: E402
from balpoe_keras.arrays import dataset  # noqa: E402
from balpoe_keras.arrays import sources  # noqa: E402
from balpoe_keras.data import test_distributions  # noqa: E402

LAMBDAS = (1.0, 0.0, -1.0)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--data", default=None, help="Folder with cifar10-jpeg.tar.gz, or "
        "an .npz of the arrays (default: search the usual places).")
    add("--out", default=os.environ.get("OUT", "gpu_out") + "/train")
    add("--epochs", type=int, default=200)
    add("--batch_size", type=int, default=128)
    add("--learning_rate", type=float, default=None,
        help="Default 0.1 * batch_size / 128 (linear scaling).")
    add("--imbalance_ratio", type=float, default=100.0)
    add("--mixup_alpha", type=float, default=0.8)
    add("--max_degrees", type=float, default=15.0,
        help="Rotation range (reference standard recipe: 15; 0 = off).")
    add("--mixed_precision", default="float32",
        choices=training.compiling.MIXED_PRECISION_POLICIES)
    add("--blocks_per_stage", type=int, default=5,
        help="ResNet-32 has 5; --tiny uses 1 (fast to compile).")
    add("--jit_compile", default="auto", choices=("auto", "true", "false"),
        help="XLA-compile the train step (false: eager, quicker to start).")
    add("--checkpoint_every", type=int, default=10,
        help="Epochs between checkpoints (the last is always saved).")
    add("--seed", type=int, default=0)
    add("--tiny", action="store_true",
        help="Smoke mode: 1 epoch, 512 train / 250 test images, batch 64, "
        "one block per stage.")
    add("--overwrite", action="store_true",
        help="Start from scratch instead of resuming from --out.")
    add("--verbose", type=int, default=2)
    return parser.parse_args(argv)


def load_data(args):
    """LT train arrays, test arrays, class counts and class names."""
    arrays = sources.load_cifar10_arrays(args.data)
    names = [str(n) for n in arrays["class_names"]]
    x, y, counts = sources.make_long_tailed(
        arrays["train_images"], arrays["train_labels"], len(names),
        args.imbalance_ratio)
    x_test, y_test = arrays["test_images"], arrays["test_labels"]
    if args.tiny:
        keep = np.random.default_rng(0).permutation(len(y))[:512]
        x, y = x[np.sort(keep)], y[np.sort(keep)]
        counts = np.bincount(y, minlength=len(names)).tolist()
        x_test, y_test = x_test[::40], y_test[::40]
    return x, y, counts, x_test, y_test, names


def _step_epochs(epochs):
    """160/180 for 200 epochs; the same fractions (80%, 90%) otherwise."""
    return tuple(sorted({int(epochs * 0.8), int(epochs * 0.9)} - {0}))


def build(args, counts, steps_per_epoch):
    lr = args.learning_rate or 0.1 * args.batch_size / 128
    schedule = training.WarmupStepSchedule(
        lr, steps_per_epoch, warmup_epochs=min(5, args.epochs),
        step_epochs=_step_epochs(args.epochs))
    with training.mixed_precision_scope(args.mixed_precision):
        model = models.build_balpoe_resnet32(
            len(counts), num_experts=3,
            blocks_per_stage=args.blocks_per_stage)
    optimizer = training.TorchSGD(schedule, momentum=0.9, nesterov=True,
                                  weight_decay=5e-4)
    return training.compile_balpoe(
        model, class_counts=counts, optimizer=optimizer, lambdas=LAMBDAS,
        jit_compile={"auto": "auto", "true": True, "false": False}[
            args.jit_compile],
        mixed_precision=args.mixed_precision)


def main(argv=None):
    args = parse_args(argv)
    if args.tiny:
        args.epochs, args.batch_size, args.blocks_per_stage = 1, 64, 1
    start = time.time()
    x, y, counts, x_test, y_test, names = load_data(args)
    print(f"data: {len(y)} LT train images (counts {counts}), "
          f"{len(y_test)} test, loaded in {time.time() - start:.1f} s",
          flush=True)
    steps = math.ceil(len(y) / args.batch_size)
    keras.utils.set_random_seed(args.seed)
    model = build(args, counts, steps)
    dataset_fn = dataset.make_train_dataset_fn(
        x, y, global_batch_size=args.batch_size, seed=args.seed,
        num_classes=len(names), mixup_alpha=args.mixup_alpha,
        max_degrees=args.max_degrees)
    start = time.time()
    training.fit(model, dataset_fn, epochs=args.epochs, workdir=args.out,
                 steps_per_epoch=steps, seed=args.seed,
                 global_batch_size=args.batch_size,
                 examples_per_epoch=len(y), verbose=args.verbose,
                 overwrite=args.overwrite,
                 checkpoint_every=args.checkpoint_every)
    train_s = time.time() - start
    print(f"training: {args.epochs} epochs in {train_s:.1f} s "
          f"({args.epochs * len(y) / train_s:.0f} img/s incl. compile)")
    report = evaluate(model, args, counts, x_test, y_test, names, train_s)
    print(json.dumps(report["summary"], indent=1))
    return report


def evaluate(model, args, counts, x_test, y_test, names, train_s):
    from balpoe_keras import evaluation

    test_sets = {"uniform": (x_test.astype("float32") / 255.0, y_test)}
    if not args.tiny:
        for name, idx in test_distributions.make_test_distributions(
                y_test, len(names)).items():
            if name != "uniform":
                test_sets[name] = idx
    results = evaluation.evaluate_model(
        model, test_sets, class_counts=counts, lambdas=LAMBDAS,
        class_names=names, batch_size=512)
    config = {k: v for k, v in vars(args).items()}
    config.update(backend=keras.backend.backend(), train_seconds=train_s,
                  input_path="balpoe_keras.arrays (in-memory, on device)")
    paths = evaluation.write_report(
        results, os.path.join(args.out, "report"), config=config)
    with open(paths["markdown"]) as f:
        print(f.read())
    return results


if __name__ == "__main__":
    main()
