"""Throughput of the in-memory input path (`balpoe_keras.data.arrays`) alone.

Times `ArrayDataset[i]` (gather on device + crop/flip/rotation + float +
Mixup, one compiled function per batch) over one epoch of random uint8
32x32x3 images, on the current Keras backend's default device. Compilation
(first and last batch) is excluded; the best of `--repeats` epochs is
reported, in images per second.

    KERAS_BACKEND=jax python benchmarks/arrays_throughput.py
"""

import argparse
import os
import sys
import time

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))

from balpoe_keras.data.arrays import dataset  # noqa: E402

SETTINGS = (
    ("float only", dict(augment=False)),
    ("crop+flip", dict()),
    ("crop+flip+mixup", dict(mixup_alpha=0.8)),
    ("crop+flip+rot+mixup", dict(mixup_alpha=0.8, max_degrees=15.0)),
)


def _sync(batch):
    keras.ops.convert_to_numpy(batch[0][0, 0, 0])


def measure(data, batch_size, repeats, **kwargs):
    """Best images/s over `repeats` epochs of one `ArrayDataset` setting."""
    ds = dataset.ArrayDataset(data, global_batch_size=batch_size,
                              num_classes=10, **kwargs)
    _sync(ds[0])
    _sync(ds[len(ds) - 1])
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(len(ds)):
            out = ds[i]
        _sync(out)
        best = min(best, time.perf_counter() - start)
    return len(data) / best


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--num_images", type=int, default=12406)
    parser.add_argument("--batch_sizes", default="128,512")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (args.num_images, 32, 32, 3), np.uint8)
    labels = rng.integers(0, 10, args.num_images)
    data = dataset.DeviceImages(images, labels)
    print(f"backend {keras.backend.backend()}, {args.num_images} images "
          "32x32x3, images/s (best epoch):")
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        for name, kwargs in SETTINGS:
            rate = measure(data, batch, args.repeats, **kwargs)
            print(f"  batch {batch:>4} {name:<22} {rate:>12,.0f}",
                  flush=True)


if __name__ == "__main__":
    main()
