"""Input-pipeline throughput (images/s) of balpoe_keras.data recipes.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/input_pipeline.py \
        [--batches 40] [--batch_size 128] [--source auto|folder|synthetic]

Uses CIFAR-10 from the JPEG archive when it is already decoded in the
cache (`get_source("cifar10_folder")`; `--source folder` forces the
one-time extraction, about a minute), else synthetic uint8 images of the
same shape. Prints which. The model trains at ~120-190 images/s on this
class of CPU machine, so the target is >= ~1,000 images/s.
"""

import argparse
import glob
import os
import time

import numpy as np

from balpoe_keras.data import ImageSource
from balpoe_keras.data import get_source
from balpoe_keras.data import make_train_dataset
from balpoe_keras.data.image_folder import default_cache_dir

CASES = (
    ("cifar_standard", dict(recipe="cifar_standard")),
    ("cifar_standard + mixup 0.4",
     dict(recipe="cifar_standard", mixup_alpha=0.4)),
    ("cifar_autoaugment", dict(recipe="cifar_autoaugment")),
    ("cifar_autoaugment_cutout + mixup 0.4",
     dict(recipe="cifar_autoaugment_cutout", mixup_alpha=0.4)),
)


def _load(kind):
    cached = glob.glob(os.path.join(default_cache_dir(),
                                    "cifar10_folder-train-*.npz"))
    if kind == "folder" or (kind == "auto" and cached):
        return get_source("cifar10_folder", "train"), "CIFAR-10 JPEG folder"
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (50000, 32, 32, 3)).astype(np.uint8)
    source = ImageSource(rng.randint(0, 10, 50000), [str(c) for c in
                                                     range(10)],
                         images=images)
    return source, "synthetic uint8 (50000, 32, 32, 3)"


def _throughput(source, batches, batch_size, **kwargs):
    ds = make_train_dataset(source, global_batch_size=batch_size, seed=0,
                            **kwargs)
    iterator = iter(ds)
    for _ in range(3):  # warm-up: tracing, autotune
        next(iterator)
    start = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    return batches * batch_size / (time.perf_counter() - start)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--source", default="auto",
                        choices=("auto", "folder", "synthetic"))
    args = parser.parse_args()
    source, description = _load(args.source)
    print(f"data: {description}; batch {args.batch_size}; "
          f"{args.batches} timed batches; cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.2f}")
    for name, kwargs in CASES:
        rate = _throughput(source, args.batches, args.batch_size, **kwargs)
        print(f"{name:40s} {rate:8.0f} images/s")


if __name__ == "__main__":
    main()
