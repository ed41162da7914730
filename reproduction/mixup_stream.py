r"""How much the reference's fixed Mixup weight stream mixes, per phase.

The reference draws each batch's Mixup weight with `np.random.beta(a, a)`
from the global NumPy stream that its long-tailed subset construction left
behind (`np.random.seed(0)`, then one shuffle per class), so every `--seed`
trains on the same sequence of weights (`reproduction/reference_train.py`
keeps that). This script rebuilds that sequence for CIFAR-10 (5,000 images
per class: the stream depends on the class sizes only) and compares its
mixing strength, the mean of `min(lam, 1 - lam)` (0: no mixing, 0.5: an
even blend), in each phase of the schedule with `--streams` independent
streams of the same length, i.e. what a seeded stream gives:

    python reproduction/mixup_stream.py --epochs=20
    python reproduction/mixup_stream.py --epochs=200

Phases: before the first LR drop, between the drops, after the last drop
(`config.scale_step_schedule`, the rule the paired runs use). Prints one
line per phase: the reference stream's value, the independent streams'
mean and standard deviation, and the z-score.
"""

import argparse
import os
import sys

import numpy as np

# Only the schedule rule is needed from balpoe_keras: no TensorFlow.
os.environ.setdefault("KERAS_BACKEND", "numpy")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "reproduction"))

import reference_data  # noqa: E402

from balpoe_keras.experiments.config import scale_step_schedule  # noqa: E402


def reference_stream(num_batches, alpha, imbalance_ratio=100.0,
                     per_class=5000, num_classes=10):
    """The reference's first `num_batches` Mixup weights, `(num_batches,)`."""
    labels = np.repeat(np.arange(num_classes), per_class)
    reference_data.long_tail_indices(labels, num_classes, imbalance_ratio)
    return np.array([np.random.beta(alpha, alpha)
                     for _ in range(num_batches)])


def phase_means(weights, steps_per_epoch, bounds):
    """Mean of `min(lam, 1 - lam)` in each `[start, end)` epoch range."""
    mix = np.minimum(weights, 1.0 - weights).reshape(-1, steps_per_epoch)
    return np.array([mix[start:end].mean() for start, end in bounds])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--epochs", type=int, default=20)
    add("--alpha", type=float, default=0.8)
    add("--steps_per_epoch", type=int, default=97,
        help="CIFAR-10-LT IR100: ceil(12,406 / 128) = 97.")
    add("--streams", type=int, default=1000)
    args = parser.parse_args(argv)
    _, drops = scale_step_schedule(args.epochs)
    edges = [0, *drops, args.epochs]
    bounds = list(zip(edges[:-1], edges[1:]))
    n = args.epochs * args.steps_per_epoch
    ours = phase_means(reference_stream(n, args.alpha),
                       args.steps_per_epoch, bounds)
    rng = np.random.default_rng(0)
    others = np.array([
        phase_means(rng.beta(args.alpha, args.alpha, n),
                    args.steps_per_epoch, bounds)
        for _ in range(args.streams)])
    mean, std = others.mean(0), others.std(0)
    print(f"Mixup alpha {args.alpha}, {args.epochs} epochs x "
          f"{args.steps_per_epoch} batches; mean min(lam, 1 - lam):")
    for (start, end), value, m, s in zip(bounds, ours, mean, std):
        print(f"  epochs {start + 1:>3}-{end:<3}  reference stream "
              f"{value:.4f}  independent streams {m:.4f} +- {s:.4f}  "
              f"z = {(value - m) / s:+.2f}")


if __name__ == "__main__":
    main()
