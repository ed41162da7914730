"""A small synthetic stand-in for the CIFAR-10 JPEG archive."""

import io
import os
import tarfile

import numpy as np

CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog",
                   "frog", "horse", "ship", "truck")


def write_cifar_archive(folder, train_per_class=20, test_per_class=5,
                        size=32, classes=CIFAR10_CLASSES, seed=0):
    """Writes `<folder>/cifar10-jpeg.tar.gz` (`./<split>/<class>/NNNN.jpg`).

    Returns:
        The archive path.
    """
    from PIL import Image

    rng = np.random.default_rng(seed)
    path = os.path.join(folder, "cifar10-jpeg.tar.gz")
    with tarfile.open(path, "w:gz") as tar:
        for split, count in (("train", train_per_class),
                             ("test", test_per_class)):
            for name in classes:
                for k in range(count):
                    image = rng.integers(0, 256, (size, size, 3), np.uint8)
                    data = io.BytesIO()
                    Image.fromarray(image).save(data, format="JPEG")
                    info = tarfile.TarInfo(f"./{split}/{name}/{k:04d}.jpg")
                    info.size = data.tell()
                    data.seek(0)
                    tar.addfile(info, data)
    return path
