"""Backend-agnostic batch augmentation with `keras.ops` (jit-friendly).

The reference's CIFAR training augmentation (`cifar_data_loaders.py`) and
batch Mixup (`utils/combiner.py`), for image batches held on the accelerator:

1. random crop after zero padding by `padding` pixels (per-image offsets),
2. horizontal flip with probability 0.5 (per image),
3. optionally rotation by `U[-max_degrees, max_degrees]`, nearest, zero
   fill, about the image centre (PIL / torchvision `RandomRotation`),
4. conversion to float32 in `[0, 1]`,
5. Mixup: one `lam ~ Beta(alpha, alpha)` per batch, a full random
   permutation, `x' = lam x + (1 - lam) x[perm]` and soft labels
   `lam onehot(y) + (1 - lam) onehot(y[perm])`.

Steps 1-3 are coordinate maps, so they are fused into ONE gather per pixel
with a validity mask (zero fill); every shape is static, so the whole batch
transform compiles under `jax.jit` / XLA. Randomness is split from the
arithmetic: `draw_*` functions draw the small parameters with NumPy on the
host (`ArrayDataset` seeds them per `(seed, epoch, batch)`, for exact
resumption), and `apply_*` functions are deterministic given them. The
rotation is PIL's fixed-point nearest-neighbour rule (`rotation_matrices`),
so crop -> flip -> rotation equals torchvision's PIL transforms pixel for
pixel (tests/arrays/torchvision_parity_test.py).
"""

import math

import keras
import numpy as np
from keras import ops

from balpoe_keras.labels import to_soft_labels


def _as_rng(seed):
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def draw_crop_flip_params(batch_size, seed=None, padding=4, max_degrees=0.0,
                          image_shape=(32, 32)):
    """Draws crop offsets, flips and rotations with NumPy (on the host).

    The draws of torchvision's `RandomCrop(padding=p)`,
    `RandomHorizontalFlip()` and `RandomRotation(max_degrees)`, per image.

    Args:
        batch_size: int `B`.
        seed: an int, a `np.random.Generator`, or None.
        padding: int >= 0, zero padding of the random crop.
        max_degrees: float >= 0; 0 disables rotation (`angles` and
            `rotations` are None).
        image_shape: `(H, W)` of the images, for `rotations`.

    Returns:
        dict with `offsets` `(B, 2)` int32 in `[0, 2 padding]` (row,
        column offset into the padded image), `flips` `(B,)` bool, `angles`
        `(B,)` float32 degrees (counter-clockwise) or None, and
        `rotations`, their `(B, 6)` int32 `rotation_matrices`, or None.
    """
    rng = _as_rng(seed)
    offsets = rng.integers(0, 2 * padding + 1, (batch_size, 2))
    params = {"offsets": offsets.astype(np.int32),
              "flips": rng.random(batch_size) < 0.5,
              "angles": None, "rotations": None}
    if max_degrees:
        angles = rng.uniform(-max_degrees, max_degrees, batch_size)
        params["angles"] = angles.astype(np.float32)
        params["rotations"] = rotation_matrices(params["angles"],
                                                *image_shape)
    return params


def draw_mixup_params(batch_size, alpha, seed=None):
    """Draws one Mixup weight `lam ~ Beta(alpha, alpha)` and a permutation.

    As the reference (`np.random.beta` once per batch, `torch.randperm`):
    the permutation may map an image to itself.

    Args:
        batch_size: int `B`.
        alpha: float > 0.
        seed: an int, a `np.random.Generator`, or None.

    Returns:
        `(lam, perm)`: float32 scalar and `(B,)` int32 NumPy values.
    """
    if not alpha > 0:
        raise ValueError(f"Expected mixup alpha > 0. Received: {alpha}")
    rng = _as_rng(seed)
    lam = np.float32(rng.beta(alpha, alpha))
    return lam, rng.permutation(batch_size).astype(np.int32)


def rotation_matrices(angles, height=32, width=32):
    """PIL's nearest-neighbour rotation as 16.16 fixed-point matrices.

    `PIL.Image.rotate(angle)` (what torchvision's `RandomRotation` calls
    on the reference's PIL images) turns the angle into an affine map about
    the centre `(W/2, H/2)` and, for nearest-neighbour sampling, evaluates
    it in 16.16 fixed point (`libImaging/Geometry.c`, `affine_fixed`).
    Computing the same integers here (in float64, as PIL does) makes the
    rotation pixel-identical to PIL's; evaluating the map in float32
    differs at about one pixel in ten images.

    Args:
        angles: `(B,)` degrees, counter-clockwise.
        height: int `H`.
        width: int `W`.

    Returns:
        `(B, 6)` int32 `(A0, A1, A2, A3, A4, A5)`: output pixel `(x, y)`
        samples input column `(A2 + A1 y + A0 x) >> 16` and row
        `(A5 + A4 y + A3 x) >> 16`.
    """
    out = []
    cx, cy = width / 2.0, height / 2.0
    for angle in np.asarray(angles, np.float64).reshape(-1):
        theta = -math.radians(float(angle) % 360.0)
        a0, a1 = round(math.cos(theta), 15), round(math.sin(theta), 15)
        a3, a4 = -a1, a0
        a2 = a0 * -cx + a1 * -cy + cx
        a5 = a3 * -cx + a4 * -cy + cy
        out.append([_fix(a0), _fix(a1), _fix(a2 + a0 * 0.5 + a1 * 0.5),
                    _fix(a3), _fix(a4), _fix(a5 + a3 * 0.5 + a4 * 0.5)])
    return np.asarray(out, np.int32).reshape(-1, 6)


def _fix(value):
    return math.floor(value * 65536.0 + 0.5)


def compute_source_pixels(offsets, flips, rotations, height, width,
                          padding=4):
    """Source pixel of every output pixel of crop -> flip -> rotation.

    Output pixel `(i, j)` of image `b`: the rotation samples the flipped
    crop at the fixed-point position of `rotation_matrices` (PIL's
    nearest-neighbour rule); the flip mirrors the column (`W - 1 - q`);
    the crop adds the offset and removes the padding.

    Args:
        offsets: `(B, 2)` int row/column offsets in `[0, 2 padding]`.
        flips: `(B,)` bool.
        rotations: `(B, 6)` int32 `rotation_matrices`, or None for no
            rotation.
        height: int `H`.
        width: int `W`.
        padding: int, the crop's zero padding.

    Returns:
        `(rows, cols, valid)`: `(B, H, W)` int32 source rows and columns
        (clipped into the image) and `(B, H, W)` bool, False where the
        output is zero fill.
    """
    offsets = ops.convert_to_tensor(offsets, "int32")
    flips = ops.convert_to_tensor(flips, "bool")
    batch = ops.shape(offsets)[0]
    i = ops.broadcast_to(
        ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1)),
        (batch, height, width))
    j = ops.broadcast_to(
        ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width)),
        (batch, height, width))
    valid = ops.ones((batch, height, width), dtype="bool")
    if rotations is not None:
        i, j, valid = _rotate_coordinates(i, j, rotations, height, width)
    j = ops.where(ops.reshape(flips, (-1, 1, 1)), width - 1 - j, j)
    rows = i + ops.reshape(offsets[:, 0], (-1, 1, 1)) - padding
    cols = j + ops.reshape(offsets[:, 1], (-1, 1, 1)) - padding
    valid = ops.logical_and(valid, _inside(rows, cols, height, width))
    rows = ops.clip(rows, 0, height - 1)
    cols = ops.clip(cols, 0, width - 1)
    return rows, cols, valid


def _inside(rows, cols, height, width):
    in_rows = ops.logical_and(rows >= 0, rows < height)
    in_cols = ops.logical_and(cols >= 0, cols < width)
    return ops.logical_and(in_rows, in_cols)


def _rotate_coordinates(i, j, rotations, height, width):
    m = ops.convert_to_tensor(rotations, "int32")

    def coefficient(k):
        return ops.reshape(m[:, k], (-1, 1, 1))

    # Exact integer arithmetic; `// 65536` floors like PIL's `>> 16`.
    cols = (coefficient(2) + coefficient(1) * i + coefficient(0) * j) // 65536
    rows = (coefficient(5) + coefficient(4) * i + coefficient(3) * j) // 65536
    return rows, cols, _inside(rows, cols, height, width)


def apply_crop_flip(images, offsets, flips, rotations=None, padding=4):
    """Pad-crop, flip and (optionally) rotate a batch in one gather.

    Pixel-identical to torchvision's `RandomCrop(padding)` ->
    `RandomHorizontalFlip` -> `RandomRotation` (nearest, zero fill) on PIL
    images for the same parameters (tested).

    Args:
        images: `(B, H, W, C)` uint8 (0-255) or float in `[0, 1]`.
        offsets: `(B, 2)` int crop offsets in `[0, 2 padding]`; offset
            `padding` is the identity.
        flips: `(B,)` bool, mirror left-right.
        rotations: optional `(B, 6)` int32 `rotation_matrices(angles, H,
            W)`.
        padding: int >= 0.

    Returns:
        `(B, H, W, C)` float32 in `[0, 1]`; pixels from outside the image
        are 0.
    """
    images = ops.convert_to_tensor(images)
    batch, height, width, channels = ops.shape(images)
    rows, cols, valid = compute_source_pixels(
        offsets, flips, rotations, height, width, padding)
    base = ops.reshape(
        ops.arange(batch, dtype="int32") * (height * width), (-1, 1, 1))
    flat_index = ops.reshape(base + rows * width + cols, (-1,))
    pixels = ops.reshape(images, (-1, channels))
    out = ops.take(pixels, flat_index, axis=0)
    out = ops.reshape(out, (batch, height, width, channels))
    out = ops.where(ops.expand_dims(valid, -1), out, ops.zeros_like(out))
    return to_float(out)


def to_float(images):
    """uint8 (0-255) -> float32 `[0, 1]`; float input is cast unchanged."""
    is_uint8 = keras.backend.standardize_dtype(images.dtype) == "uint8"
    images = ops.cast(images, "float32")
    return images / 255.0 if is_uint8 else images


def apply_mixup(images, labels, lam, perm, num_classes):
    """Batch Mixup with given weight and permutation.

    Args:
        images: `(B, H, W, C)` float.
        labels: `(B,)` / `(B, 1)` int class ids, or `(B, C)` rows.
        lam: float scalar in `[0, 1]`, weight of the unpermuted batch.
        perm: `(B,)` int permutation of `range(B)`.
        num_classes: int `C`.

    Returns:
        `(mixed, soft_labels)`: `(B, H, W, C)` float32 and `(B, C)` float32
        rows summing to 1.
    """
    perm = ops.cast(perm, "int32")
    return mix_pair(images, ops.take(images, perm, axis=0), labels,
                    ops.take(labels, perm, axis=0), lam, num_classes)


def mix_pair(images, partner_images, labels, partner_labels, lam,
             num_classes):
    """`lam * images + (1 - lam) * partner_images` and the soft labels.

    `apply_mixup` with the partner batch given; `ArrayDataset` builds the
    partner by augmenting `x[perm]` with the permuted parameters, which is
    the same batch as `augmented[perm]` but avoids a gather of the float
    images (much faster under XLA on CPU).

    Args:
        images, partner_images: `(B, H, W, C)` float.
        labels, partner_labels: `(B,)` / `(B, 1)` int class ids, or
            `(B, C)` one-hot or soft rows (`labels.to_soft_labels`).
        lam: float scalar in `[0, 1]`.
        num_classes: int `C`.

    Returns:
        `(mixed, soft_labels)` as in `apply_mixup`.
    """
    lam = ops.cast(lam, "float32")
    mixed = lam * ops.cast(images, "float32") + (1.0 - lam) * ops.cast(
        partner_images, "float32")
    onehot = to_soft_labels(labels, num_classes)
    partner = to_soft_labels(partner_labels, num_classes)
    return mixed, lam * onehot + (1.0 - lam) * partner


def augment_batch(images, labels, seed=None, *, num_classes=None,
                  mixup_alpha=0.0, padding=4, max_degrees=0.0):
    """Draws parameters on the host and augments one batch on the device.

    Args:
        images: `(B, H, W, C)` uint8 or float in `[0, 1]`.
        labels: `(B,)` / `(B, 1)` int class ids, or `(B, C)` rows.
        seed: an int, a `np.random.Generator` (advanced by the draws), or
            None.
        num_classes: int `C`, needed when `mixup_alpha > 0`.
        mixup_alpha: float; 0 disables Mixup (labels stay int).
        padding: int, crop padding.
        max_degrees: float, rotation range; 0 disables rotation.

    Returns:
        `(images, labels)`: `(B, H, W, C)` float32 in `[0, 1]`, and `(B,)`
        int labels or `(B, C)` float32 soft labels (Mixup).
    """
    if mixup_alpha and not num_classes:
        raise ValueError("augment_batch with mixup_alpha > 0 needs "
                         "num_classes.")
    rng = _as_rng(seed)
    batch, height, width = ops.shape(images)[:3]
    params = draw_crop_flip_params(batch, rng, padding, max_degrees,
                                   (height, width))
    images = apply_crop_flip(images, params["offsets"], params["flips"],
                             params["rotations"], padding)
    if not mixup_alpha:
        return images, labels
    lam, perm = draw_mixup_params(batch, mixup_alpha, rng)
    return apply_mixup(images, labels, lam, perm, num_classes)
