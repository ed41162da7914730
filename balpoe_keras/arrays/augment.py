"""Backend-agnostic batch augmentation with `keras.ops` (jit-friendly).

The CIFAR training augmentation of shared/REFERENCE.md 5.2 and the batch
Mixup of section 3, for image batches held on the accelerator:

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
arithmetic: `draw_*` functions draw the parameters with `keras.random`
(seeded by a `keras.random.SeedGenerator` or an int), and `apply_*`
functions are deterministic given them (the in-memory `ArrayDataset` draws
them with NumPy per `(seed, epoch, batch)` instead, for exact resumption).
"""

import math

import keras
from keras import ops


def _as_seed_generator(seed):
    if isinstance(seed, keras.random.SeedGenerator):
        return seed
    return keras.random.SeedGenerator(seed)


def draw_crop_flip_params(batch_size, seed=None, padding=4, max_degrees=0.0):
    """Draws crop offsets, flips and rotation angles with `keras.random`.

    Args:
        batch_size: int `B`.
        seed: a `keras.random.SeedGenerator`, an int, or None.
        padding: int >= 0, zero padding of the random crop.
        max_degrees: float >= 0; 0 disables rotation (angles are None).

    Returns:
        dict with `offsets` `(B, 2)` int32 in `[0, 2 padding]` (row,
        column offset into the padded image), `flips` `(B,)` bool and
        `angles` `(B,)` float32 degrees or None.
    """
    seed = _as_seed_generator(seed)
    offsets = keras.random.randint(
        (batch_size, 2), 0, 2 * padding + 1, dtype="int32", seed=seed)
    flips = keras.random.uniform((batch_size,), seed=seed) < 0.5
    angles = None
    if max_degrees:
        angles = keras.random.uniform(
            (batch_size,), -max_degrees, max_degrees, seed=seed)
    return {"offsets": offsets, "flips": flips, "angles": angles}


def draw_mixup_params(batch_size, alpha, seed=None):
    """Draws one Mixup weight `lam ~ Beta(alpha, alpha)` and a permutation.

    `lam = g1 / (g1 + g2)` with `g1, g2 ~ Gamma(alpha)` (the Beta
    distribution's construction); the permutation may map an image to
    itself, as `torch.randperm` does in the reference.

    Args:
        batch_size: int `B`.
        alpha: float > 0.
        seed: a `keras.random.SeedGenerator`, an int, or None.

    Returns:
        `(lam, perm)`: float32 scalar and `(B,)` int32.
    """
    if not alpha > 0:
        raise ValueError(f"Expected mixup alpha > 0. Received: {alpha}")
    seed = _as_seed_generator(seed)
    g1 = keras.random.gamma((), alpha, seed=seed)
    g2 = keras.random.gamma((), alpha, seed=seed)
    perm = keras.random.shuffle(ops.arange(batch_size, dtype="int32"),
                                seed=seed)
    return g1 / (g1 + g2), perm


def compute_source_pixels(offsets, flips, angles, height, width, padding=4):
    """Source pixel of every output pixel of crop -> flip -> rotation.

    Output pixel `(i, j)` of image `b`: rotation samples the flipped crop
    at `floor(R (j + .5 - W/2, i + .5 - H/2) + (W/2, H/2))` (PIL's nearest
    convention, counter-clockwise angles); the flip mirrors the column
    (`W - 1 - q`); the crop adds the offset and removes the padding.

    Args:
        offsets: `(B, 2)` int row/column offsets in `[0, 2 padding]`.
        flips: `(B,)` bool.
        angles: `(B,)` float degrees, or None for no rotation.
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
    if angles is not None:
        angles = ops.convert_to_tensor(angles, "float32")
    batch = ops.shape(offsets)[0]
    i = ops.broadcast_to(
        ops.reshape(ops.arange(height, dtype="int32"), (1, height, 1)),
        (batch, height, width))
    j = ops.broadcast_to(
        ops.reshape(ops.arange(width, dtype="int32"), (1, 1, width)),
        (batch, height, width))
    valid = ops.ones((batch, height, width), dtype="bool")
    if angles is not None:
        i, j, valid = _rotate_coordinates(i, j, angles, height, width)
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


def _rotate_coordinates(i, j, angles, height, width):
    theta = ops.reshape(ops.cast(angles, "float32"), (-1, 1, 1)) * (
        math.pi / 180.0)
    cos, sin = ops.cos(theta), ops.sin(theta)
    cy, cx = height / 2.0, width / 2.0
    u = ops.cast(j, "float32") + 0.5 - cx
    v = ops.cast(i, "float32") + 0.5 - cy
    src_x = ops.floor(cos * u - sin * v + cx)
    src_y = ops.floor(sin * u + cos * v + cy)
    # Clip before the int cast so far-away samples cannot overflow.
    rows = ops.cast(ops.clip(src_y, -1.0, float(height)), "int32")
    cols = ops.cast(ops.clip(src_x, -1.0, float(width)), "int32")
    return rows, cols, _inside(rows, cols, height, width)


def apply_crop_flip(images, offsets, flips, angles=None, padding=4):
    """Pad-crop, flip and (optionally) rotate a batch in one gather.

    Args:
        images: `(B, H, W, C)` uint8 (0-255) or float in `[0, 1]`.
        offsets: `(B, 2)` int crop offsets in `[0, 2 padding]`; offset
            `padding` is the identity.
        flips: `(B,)` bool, mirror left-right.
        angles: optional `(B,)` rotation angles in degrees.
        padding: int >= 0.

    Returns:
        `(B, H, W, C)` float32 in `[0, 1]`; pixels from outside the image
        are 0.
    """
    images = ops.convert_to_tensor(images)
    batch, height, width, channels = ops.shape(images)
    rows, cols, valid = compute_source_pixels(
        offsets, flips, angles, height, width, padding)
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
        labels: `(B,)` int class ids.
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
        labels, partner_labels: `(B,)` int class ids.
        lam: float scalar in `[0, 1]`.
        num_classes: int `C`.

    Returns:
        `(mixed, soft_labels)` as in `apply_mixup`.
    """
    lam = ops.cast(lam, "float32")
    mixed = lam * ops.cast(images, "float32") + (1.0 - lam) * ops.cast(
        partner_images, "float32")
    onehot = ops.one_hot(ops.cast(labels, "int32"), num_classes,
                         dtype="float32")
    partner = ops.one_hot(ops.cast(partner_labels, "int32"), num_classes,
                          dtype="float32")
    return mixed, lam * onehot + (1.0 - lam) * partner


def augment_batch(images, labels, seed=None, *, num_classes=None,
                  mixup_alpha=0.0, padding=4, max_degrees=0.0):
    """Draws parameters with `keras.random` and augments one batch.

    Args:
        images: `(B, H, W, C)` uint8 or float in `[0, 1]`.
        labels: `(B,)` int class ids.
        seed: a `keras.random.SeedGenerator` (advanced by each draw), an
            int, or None.
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
    seed = _as_seed_generator(seed)
    batch = ops.shape(images)[0]
    params = draw_crop_flip_params(batch, seed, padding, max_degrees)
    images = apply_crop_flip(images, padding=padding, **params)
    if not mixup_alpha:
        return images, labels
    lam, perm = draw_mixup_params(batch, mixup_alpha, seed)
    return apply_mixup(images, labels, lam, perm, num_classes)
