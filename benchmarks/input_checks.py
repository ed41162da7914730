"""What the model's input checks cost per training step.

`BalPoEClassifier` counts, inside every compiled train step, the labels
outside [0, C) and the images with pixels outside [0, 1]
(`compute_metrics`). This times those counts alone, compiled, on one
CIFAR batch, against the full train step of the 3-expert ResNet-32 on the
same batch, alternating, medians of `--repeats`.

    python benchmarks/input_checks.py [--batch_size=128] [--repeats=7]
"""

import argparse
import os
import statistics
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import throughput  # noqa: E402  (benchmarks/throughput.py: the CPU model)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--inner", type=int, default=5)
    args = parser.parse_args()

    import keras

    import balpoe_keras as bk
    from balpoe_keras import labels as label_checks
    from balpoe_keras.models import balpoe_classifier

    counts = [500 // (i + 1) + 5 for i in range(100)]
    model = bk.build_balpoe_classifier("resnet32", counts)
    model.compile(metrics=[])
    rng = np.random.default_rng(0)
    x = rng.random((args.batch_size, 32, 32, 3)).astype("float32")
    y = rng.integers(0, 100, args.batch_size)

    def checks(images, ids):
        return (balpoe_classifier._count_unscaled_images(images)
                + keras.ops.cast(label_checks.count_out_of_range(ids, 100),
                                 "float32"))

    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        checks = tf.function(checks, jit_compile=True)
    elif backend == "jax":
        import jax

        checks = jax.jit(checks)
    xt, yt = keras.ops.convert_to_tensor(x), keras.ops.convert_to_tensor(y)

    def run_checks():
        for _ in range(args.inner):
            keras.ops.convert_to_numpy(checks(xt, yt))

    def run_steps():
        for _ in range(args.inner):
            model.train_on_batch(x, y)

    times = {"checks": [], "train_step": []}
    for fn in (run_checks, run_steps):  # Warm-up: tracing, compilation.
        fn()
    for _ in range(args.repeats):
        for name, fn in (("checks", run_checks), ("train_step", run_steps)):
            start = time.perf_counter()
            fn()
            times[name].append((time.perf_counter() - start) / args.inner)
    check, step = (statistics.median(times[k])
                   for k in ("checks", "train_step"))
    print(f"backend {backend}, batch {args.batch_size}, "
          f"{os.cpu_count()} CPUs ({throughput._cpu_model()})")
    print(f"input checks: {check * 1e3:.3f} ms/step; train step: "
          f"{step * 1e3:.1f} ms; checks are {100 * check / step:.2f}% of "
          "a step")


if __name__ == "__main__":
    main()
