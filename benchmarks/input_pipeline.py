"""Input-pipeline throughput (images/s) of balpoe_keras.data recipes.

Usage:
    KERAS_BACKEND=tensorflow python benchmarks/input_pipeline.py \
        [--batches 40] [--batch_size 128] [--source auto|folder|synthetic]
    KERAS_BACKEND=tensorflow python benchmarks/input_pipeline.py \
        --image_folders --data_dir=../shared/data [--repeats 2]

`--image_folders` measures your-own-data paths instead (`image_folders`):
the CIFAR-10 JPEG archive's 60,000 images read as an image folder
(`--dataset=image_folder`: the header scan, then Pillow decoding) against
the archive source (`cifar10_lt_folder`), both uncached and cached,
alternating, medians; and tf.data streaming 224-px crops from large JPEG
files (`imagenet_standard`) against the training speed of the 3-expert
ResNet-50 on the same machine.

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


def _timed(fn):
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def _cpu():
    model, flags = "unknown CPU", []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                if line.startswith("flags"):
                    flags = line.split(":", 1)[1].split()
    except OSError:
        pass
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_tile")
    return f"{model}, {os.cpu_count()} cores, " + ",".join(
        f for f in wanted if f in flags)


def load_times(data_dir, repeats, cache_root):
    """Seconds to load CIFAR-10 (train + test, 60,000 JPEGs) as an image
    folder and as the archive source, uncached and cached: `{case:
    [seconds per repeat]}`, the cases alternating within each repeat."""
    from balpoe_keras.data import archive as archive_lib
    from balpoe_keras.data import image_folder

    archive = archive_lib.find_cifar10_archive(data_dir)
    root = image_folder.extract_archive(archive, cache_root)  # Untimed.
    cache = os.path.join(cache_root, "npz")

    def folder(cached):
        def load():
            image_folder.scan_image_folder(root)  # As the runner does.
            return [image_folder.load_image_folder(
                root, split, image_size=32, channels=3,
                cache_dir=cache if cached else None)
                for split in ("train", "test")]
        return load

    def from_archive(cached):
        if cached:
            return lambda: [archive_lib.load_cifar10_folder(
                split, data_dir, cache_dir=cache) for split in ("train",
                                                                "test")]
        return lambda: archive_lib.read_image_archive(archive)

    folder(True)()  # Fill both caches (untimed).
    from_archive(True)()
    cases = {"image folder, decoded": folder(False),
             "archive, decoded": from_archive(False),
             "image folder, cached": folder(True),
             "archive, cached": from_archive(True)}
    times = {name: [] for name in cases}
    for _ in range(repeats):
        for name, load in cases.items():
            times[name].append(_timed(load)[0])
    return times


def folder_equals_archive(data_dir, root, imbalance_ratio=100):
    """Whether `--dataset=image_folder` on the archive extracted to `root`
    gives the class counts, labels and pixels of `cifar10_lt_folder`:
    `{"counts": bool, "train": bool, "test": bool}`."""
    from balpoe_keras.experiments import config as config_lib
    from balpoe_keras.experiments import inputs

    def data(dataset, folder):
        return inputs.load_data(config_lib.ExperimentConfig(
            dataset=dataset, data_dir=folder, workdir="unused",
            imbalance_ratio=imbalance_ratio).resolve())

    ours, theirs = data("image_folder", root), data("cifar10_lt_folder",
                                                    data_dir)
    same = {"counts": ours.class_counts == theirs.class_counts}
    for split in ("train", "test"):
        a, b = getattr(ours, split), getattr(theirs, split)
        same[split] = (a.class_names == b.class_names
                       and np.array_equal(a.labels, b.labels)
                       and np.array_equal(a.images, b.images))
    return same


def write_large_jpegs(folder, count, seed=0):
    """`count` 320x288 JPEG files (q90) in 4 class folders of `folder`:
    smooth random scenes, so they compress like photographs."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    for k in range(count):
        path = os.path.join(folder, "train", f"c{k % 4}", f"{k:05d}.jpg")
        if os.path.exists(path):
            continue
        os.makedirs(os.path.dirname(path), exist_ok=True)
        small = rng.integers(0, 256, (18, 20, 3), np.uint8)
        image = Image.fromarray(small).resize((320, 288), Image.BICUBIC)
        image.save(path, quality=90)
    return folder


def streaming_rate(folder, batches, batch_size):
    """images/s of tf.data reading, decoding, random-resized-cropping to
    224 px and flipping the JPEGs of `folder` (paths, not in memory)."""
    from balpoe_keras.data.image_folder import load_image_folder

    source = load_image_folder(folder, "train", in_memory=False)
    return _throughput(source, batches, batch_size,
                       recipe="imagenet_standard", image_size=224,
                       repeat=True)


def resnet50_training_rate(batch_size, steps):
    """images/s of `fit` steps of the 3-expert ResNet-50 at 224 px."""
    import balpoe_keras as bk

    model = bk.build_balpoe_classifier("resnet50", [400, 100, 25, 5],
                                       input_shape=(224, 224, 3))
    model.compile()
    rng = np.random.default_rng(0)
    x = rng.random((batch_size, 224, 224, 3), np.float32)
    y = rng.integers(0, 4, batch_size)
    model.fit(x, y, batch_size=batch_size, epochs=1, verbose=0)  # Warm-up.
    seconds, _ = _timed(lambda: model.fit(
        np.concatenate([x] * steps), np.concatenate([y] * steps),
        batch_size=batch_size, epochs=1, verbose=0, shuffle=False))
    return steps * batch_size / seconds


def image_folders(args):
    import statistics

    cache_root = os.path.join(default_cache_dir(), "benchmark_folders")
    print(f"CPU: {_cpu()}; load average {os.getloadavg()[0]:.2f}")
    times = load_times(args.data_dir, args.repeats, cache_root)
    for name, values in times.items():
        print(f"{name:28s} median {statistics.median(values):6.1f} s "
              f"({', '.join(f'{v:.1f}' for v in values)})")
    from balpoe_keras.data import archive as archive_lib
    from balpoe_keras.data import image_folder

    root = image_folder.extract_archive(
        archive_lib.find_cifar10_archive(args.data_dir), cache_root)
    same = folder_equals_archive(args.data_dir, root)
    print("image_folder --imbalance_ratio=100 equals cifar10_lt_folder "
          f"(counts, labels, pixels): {same}")
    folder = write_large_jpegs(os.path.join(cache_root, "large_jpeg"),
                               args.large_images)
    stream = streaming_rate(folder, args.batches, args.stream_batch_size)
    train = resnet50_training_rate(args.stream_batch_size, 3)
    print(f"224-px streaming (320x288 JPEG q90, imagenet_standard, batch "
          f"{args.stream_batch_size}): {stream:.0f} images/s; ResNet-50 "
          f"(3 experts) training: {train:.1f} images/s; ratio "
          f"{stream / train:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=40)
    parser.add_argument("--batch_size", type=int, default=128)
    parser.add_argument("--source", default="auto",
                        choices=("auto", "folder", "synthetic"))
    parser.add_argument("--image_folders", action="store_true")
    parser.add_argument("--data_dir", default=None)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--large_images", type=int, default=1024)
    parser.add_argument("--stream_batch_size", type=int, default=32)
    args = parser.parse_args()
    if args.image_folders:
        image_folders(args)
        return
    source, description = _load(args.source)
    print(f"data: {description}; batch {args.batch_size}; "
          f"{args.batches} timed batches; cpus: {os.cpu_count()}; "
          f"load average: {os.getloadavg()[0]:.2f}")
    for name, kwargs in CASES:
        rate = _throughput(source, args.batches, args.batch_size, **kwargs)
        print(f"{name:40s} {rate:8.0f} images/s")


if __name__ == "__main__":
    main()
