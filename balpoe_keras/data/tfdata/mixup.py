"""TensorFlow-only: batch-level Mixup and CutMix as stateless tf ops.

The definitions are `balpoe_keras.data.mixing`'s. Here `lam` comes from two
stateless Gammas; the soft labels make the loss equal to the reference's
mixed loss (CE is linear in the target). `per_sample` draws one `lam` per
image instead. CutMix recomputes `lam = 1 - box_area / (H W)`.
"""

import tensorflow as tf

from balpoe_keras.data.mixing import validate_mixing


def sample_beta(shape, seed, alpha):
    """`Beta(alpha, alpha)` samples from two stateless Gammas, float32."""
    seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(seed))
    a = tf.random.stateless_gamma(shape, seed_a, alpha)
    b = tf.random.stateless_gamma(shape, seed_b, alpha)
    return a / (a + b)


def _soft_labels(labels, perm, lam, num_classes):
    onehot = tf.one_hot(tf.cast(labels, tf.int32), num_classes)
    lam = tf.reshape(lam, [-1, 1])
    return lam * onehot + (1.0 - lam) * tf.gather(onehot, perm)


def mixup_batch(images, labels, seed, alpha, num_classes, per_sample=False):
    """Mixup of one batch.

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` int class ids.
        seed: `(2,)` int seed.
        alpha: float > 0, Beta parameter.
        num_classes: `C`.
        per_sample: one `lam` per image instead of one per batch.

    Returns:
        `(mixed_images, soft_labels)`: `(B, H, W, channels)` float32 and
        `(B, C)` float32 rows summing to 1.
    """
    batch = tf.shape(images)[0]
    lam_seed, perm_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed))
    lam = sample_beta([batch] if per_sample else [], lam_seed, alpha)
    perm = tf.random.experimental.stateless_shuffle(tf.range(batch),
                                                    perm_seed)
    return apply_mixup(images, labels, lam, perm, num_classes)


def apply_mixup(images, labels, lam, perm, num_classes):
    """Mixup with a given weight and permutation.

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` int class ids.
        lam: scalar (one weight per batch, the reference) or `(B,)`.
        perm: `(B,)` int permutation of `range(B)`.
        num_classes: `C`.

    Returns:
        `(lam x + (1 - lam) x[perm], lam onehot(y) + (1 - lam)
        onehot(y[perm]))`.
    """
    lam = tf.broadcast_to(tf.cast(lam, tf.float32), tf.shape(labels))
    w = tf.reshape(lam, [-1, 1, 1, 1])
    mixed = w * images + (1.0 - w) * tf.gather(images, perm)
    return mixed, _soft_labels(labels, perm, lam, num_classes)


def cutmix_box(height, width, lam, seed):
    """The reference's `rand_bbox`: `(y1, y2, x1, x2)` int32, clipped.

    Cut sides are `int(side * sqrt(1 - lam))`; the centre is uniform over
    integer pixels.
    """
    ratio = tf.sqrt(1.0 - lam)
    cut_h = tf.cast(tf.cast(height, tf.float32) * ratio, tf.int32)
    cut_w = tf.cast(tf.cast(width, tf.float32) * ratio, tf.int32)
    cy_seed, cx_seed = tf.unstack(tf.random.experimental.stateless_split(seed))
    cy = tf.random.stateless_uniform([], cy_seed, 0, height, tf.int32)
    cx = tf.random.stateless_uniform([], cx_seed, 0, width, tf.int32)
    y1 = tf.clip_by_value(cy - cut_h // 2, 0, height)
    y2 = tf.clip_by_value(cy + cut_h // 2, 0, height)
    x1 = tf.clip_by_value(cx - cut_w // 2, 0, width)
    x2 = tf.clip_by_value(cx + cut_w // 2, 0, width)
    return y1, y2, x1, x2


def cutmix_batch(images, labels, seed, alpha, num_classes):
    """CutMix of one batch (one box and one `lam` per batch).

    Returns:
        `(mixed_images, soft_labels)` as in `mixup_batch`; the label weight
        is `lam = 1 - box_area / (H W)`.
    """
    shape = tf.shape(images)
    seeds = tf.unstack(tf.random.experimental.stateless_split(seed, 3))
    lam = sample_beta([], seeds[0], alpha)
    perm = tf.random.experimental.stateless_shuffle(tf.range(shape[0]),
                                                    seeds[1])
    y1, y2, x1, x2 = cutmix_box(shape[1], shape[2], lam, seeds[2])
    rows, cols = tf.range(shape[1]), tf.range(shape[2])
    box = ((rows >= y1) & (rows < y2))[:, None] & ((cols >= x1)
                                                   & (cols < x2))[None, :]
    mixed = tf.where(box[None, :, :, None], tf.gather(images, perm), images)
    area = tf.cast((y2 - y1) * (x2 - x1), tf.float32)
    lam = 1.0 - area / tf.cast(shape[1] * shape[2], tf.float32)
    lam = tf.broadcast_to(lam, [shape[0]])
    return mixed, _soft_labels(labels, perm, lam, num_classes)


def mix_batch(images, labels, seed, num_classes, mixup_alpha=0.0,
              cutmix_alpha=0.0, mode="mixup", per_sample=False):
    """Mixup, CutMix, or either with probability 0.5 (`"mixup_cutmix"`).

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` int class ids.
        seed: `(2,)` int seed.
        num_classes: `C`.
        mixup_alpha: Beta parameter of Mixup.
        cutmix_alpha: Beta parameter of CutMix.
        mode: one of `balpoe_keras.data.mixing.MODES`.
        per_sample: per-image `lam` (Mixup only).

    Returns:
        `(images, soft_labels (B, C) float32)`.
    """
    validate_mixing(mixup_alpha, cutmix_alpha, mode, num_classes=num_classes)
    choose_seed, mix_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed))
    if mode == "mixup":
        return mixup_batch(images, labels, mix_seed, mixup_alpha, num_classes,
                           per_sample)
    if mode == "cutmix":
        return cutmix_batch(images, labels, mix_seed, cutmix_alpha,
                            num_classes)
    use_mixup = tf.random.stateless_uniform([], choose_seed) < 0.5
    return tf.cond(
        use_mixup,
        lambda: mixup_batch(images, labels, mix_seed, mixup_alpha,
                            num_classes, per_sample),
        lambda: cutmix_batch(images, labels, mix_seed, cutmix_alpha,
                             num_classes),
    )
