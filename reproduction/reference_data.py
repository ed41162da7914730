"""Data of the plain-PyTorch reference replica (no balpoe_keras, no Keras).

What the reference's CIFAR data loader does (its
`data_loader/imbalance_cifar.py`, `cifar_data_loaders.py`,
`utils/combiner.py`), rebuilt with NumPy, Pillow, torch and torchvision
only, so that the replica (`reference_train.py`) is an independent
measuring instrument:

- `read_cifar10_archive`: the CIFAR-10 JPEG archive decoded with Pillow in
  sorted path order, labels from the alphabetical class folders;
- `long_tail_indices`: `np.random.seed(0)`, then per class (ascending) its
  indices in file order are shuffled with the global NumPy RNG and the first
  `n_c = int(n_max * (1/IR)**(c/(C-1)))` kept; like the reference, this
  leaves the global NumPy RNG in the state that draws the Mixup weights;
- `TorchvisionAugment`: the reference's transform on PIL images, per image
  (`RandomCrop(32, 4)`, `RandomHorizontalFlip`, `RandomRotation(15)`,
  `ToTensor`, `Normalize`), with torch's global RNG;
- `TensorAugment`: the same transform for a whole batch on the device (for
  the GPU, where per-image PIL would starve it): torch draws the same
  parameters per image and the rotation uses PIL's 16.16 fixed-point
  nearest rule, so the output equals `TorchvisionAugment`'s pixel for pixel
  (tests/reproduction/reference_replica_test.py).
"""

import io
import math
import os
import tarfile

import numpy as np
import torch

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)


def read_cifar10_archive(path, cache=None):
    """`{train,test}_{images,labels}` and `class_names` of the archive.

    Args:
        path: `cifar10-jpeg.tar.gz` (`<split>/<class>/<file>.jpg`), or an
            `.npz` written by this function.
        cache: optional `.npz` path; read if it exists, else written.

    Returns:
        dict of NumPy arrays: images `(N, H, W, 3)` uint8, labels `(N,)`
        int64, `class_names` `(C,)` str.
    """
    if str(path).endswith(".npz") or (cache and os.path.exists(cache)):
        with np.load(cache if cache and os.path.exists(cache) else path) as f:
            return {key: f[key] for key in f.files}
    from PIL import Image

    files = {}
    with tarfile.open(path) as tar:
        for member in tar:
            if member.isfile() and member.name.lower().endswith(
                    (".jpg", ".jpeg", ".png")):
                files[member.name] = tar.extractfile(member).read()
    names = sorted(files)
    parts = [[p for p in n.split("/") if p not in ("", ".")][-3:-1]
             for n in names]
    classes = sorted({c for s, c in parts})
    out = {"class_names": np.asarray(classes)}
    for split in ("train", "test"):
        rows = [(n, c) for n, (s, c) in zip(names, parts) if s == split]
        images = []
        for name, _ in rows:
            with Image.open(io.BytesIO(files[name])) as image:
                images.append(np.asarray(image.convert("RGB"), np.uint8))
        out[f"{split}_images"] = np.stack(images)
        out[f"{split}_labels"] = np.asarray(
            [classes.index(c) for _, c in rows], np.int64)
    if cache:
        os.makedirs(os.path.dirname(os.path.abspath(cache)), exist_ok=True)
        tmp = f"{cache}.{os.getpid()}.tmp.npz"  # One per process.
        np.savez(tmp, **out)
        os.replace(tmp, cache)
    return out


def long_tail_indices(labels, num_classes, imbalance_ratio):
    """The reference's long-tailed subset; reseeds the global NumPy RNG.

    Returns:
        `(indices, counts)`: class-sorted int64 indices into `labels` and
        the per-class counts (list of int).
    """
    n_max = len(labels) // num_classes
    factor = 1.0 / imbalance_ratio
    counts = [int(n_max * factor ** (c / (num_classes - 1.0)))
              for c in range(num_classes)]
    np.random.seed(0)  # As the reference's constructor (rand_number=0).
    kept = []
    for c, n in enumerate(counts):
        idx = np.where(labels == c)[0]
        np.random.shuffle(idx)
        kept.append(idx[:n])
    return np.concatenate(kept), counts


def normalize(x):
    """`(B, 3, H, W)` float in `[0, 1]` -> normalised (CIFAR-10 stats)."""
    mean = torch.tensor(CIFAR_MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(CIFAR_STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def to_tensor(images, device):
    """uint8 `(B, H, W, 3)` NumPy -> normalised float `(B, 3, H, W)`."""
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
    return normalize(x.permute(0, 3, 1, 2).float() / 255.0)


class TorchvisionAugment:
    """The reference's CIFAR train transform, per PIL image (as shipped)."""

    def __init__(self, max_degrees=15.0):
        from torchvision import transforms

        steps = [transforms.RandomCrop(32, padding=4),
                 transforms.RandomHorizontalFlip()]
        if max_degrees:
            steps.append(transforms.RandomRotation(max_degrees))
        steps += [transforms.ToTensor(),
                  transforms.Normalize(CIFAR_MEAN, CIFAR_STD)]
        self.transform = transforms.Compose(steps)

    def __call__(self, images, device):
        from PIL import Image

        return torch.stack([self.transform(Image.fromarray(image))
                            for image in images]).to(device)


class TensorAugment:
    """The same transform on a batch on the device, pixel-identical.

    Per image, as torchvision draws them: crop offsets `randint(0, 9)`
    (row, then column), flip `rand() < 0.5`, angle `U(-15, 15)`; drawn
    here in one call per parameter with torch's global RNG.
    """

    def __init__(self, max_degrees=15.0, padding=4):
        self.max_degrees, self.padding = max_degrees, padding

    def draw(self, batch):
        """`(offsets (B, 2) int64, flips (B,) bool, angles (B,) or None)`."""
        offsets = torch.randint(0, 2 * self.padding + 1, (batch, 2))
        flips = torch.rand(batch) < 0.5
        angles = None
        if self.max_degrees:
            angles = torch.empty(batch).uniform_(-self.max_degrees,
                                                 self.max_degrees)
        return offsets, flips, angles

    def __call__(self, images, device, params=None):
        x = torch.from_numpy(np.ascontiguousarray(images)).to(device)
        batch, height, width, _ = x.shape
        offsets, flips, angles = params or self.draw(batch)
        p = self.padding
        x = torch.nn.functional.pad(x.permute(0, 3, 1, 2), (p, p, p, p))
        rows = offsets[:, :1, None].to(device) + torch.arange(
            height, device=device)[None, :, None]
        cols = offsets[:, 1:, None].to(device) + torch.arange(
            width, device=device)[None, None, :]
        flip = flips.to(device)[:, None, None]
        cols = torch.where(flip, cols.flip(-1), cols)
        valid = torch.ones_like(rows.expand(-1, -1, width), dtype=torch.bool)
        rows, cols = rows.expand(-1, -1, width), cols.expand(-1, height, -1)
        if angles is not None:
            rows, cols, valid = _rotate(rows, cols, angles, height, width,
                                        device)
        b = torch.arange(batch, device=device)[:, None, None]
        out = x[b, :, rows, cols].permute(0, 3, 1, 2)  # (B, 3, H, W)
        out = torch.where(valid[:, None], out, torch.zeros_like(out))
        return normalize(out.float() / 255.0)


def pil_fixed_point_matrix(angle, height, width):
    """PIL `rotate(angle)` nearest map as 16.16 ints (Geometry.c)."""
    theta = -math.radians(float(angle) % 360.0)
    a, b = round(math.cos(theta), 15), round(math.sin(theta), 15)
    d, e = -b, a
    cx, cy = width / 2.0, height / 2.0
    c = a * -cx + b * -cy + cx
    f = d * -cx + e * -cy + cy

    def fix(v):
        return math.floor(v * 65536.0 + 0.5)

    return [fix(a), fix(b), fix(c + a * 0.5 + b * 0.5), fix(d), fix(e),
            fix(f + d * 0.5 + e * 0.5)]


def _rotate(rows, cols, angles, height, width, device):
    """Output pixel -> source pixel of the rotated crop, and validity."""
    m = torch.tensor([pil_fixed_point_matrix(a, height, width)
                      for a in angles.tolist()], device=device)
    m = m[:, :, None, None]
    y = torch.arange(height, device=device)[None, :, None]
    x = torch.arange(width, device=device)[None, None, :]
    src_x = torch.div(m[:, 2] + m[:, 1] * y + m[:, 0] * x, 65536,
                      rounding_mode="floor")
    src_y = torch.div(m[:, 5] + m[:, 4] * y + m[:, 3] * x, 65536,
                      rounding_mode="floor")
    valid = (src_x >= 0) & (src_x < width) & (src_y >= 0) & (src_y < height)
    src_y, src_x = src_y.clamp(0, height - 1), src_x.clamp(0, width - 1)
    b = torch.arange(rows.shape[0], device=device)[:, None, None]
    return rows[b, src_y, src_x], cols[b, src_y, src_x], valid
