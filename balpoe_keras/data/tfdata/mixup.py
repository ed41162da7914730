"""TensorFlow-only: batch-level Mixup and CutMix as stateless tf ops.

The definitions are `balpoe_keras.data.mixing`'s. Here `lam` comes from two
stateless Gammas; the soft labels make the loss equal to the reference's
mixed loss (CE is linear in the target). `per_sample` draws one `lam` per
image instead. CutMix recomputes `lam = 1 - box_area / (H W)`.

Mixing is split in two: `draw_mix_params` draws a batch's parameters from
its seed (the permutation, the weights, the box), and `mix_rows` mixes any
rows of the batch with their partners `x[perm]`. `mix_batch` does both for
a whole batch; the per-process pipelines of a multi-process run apply
`mix_rows` to their own rows only, with the parameters of the global batch.
"""

import tensorflow as tf

from balpoe_keras.data.mixing import validate_mixing


def sample_beta(shape, seed, alpha):
    """`Beta(alpha, alpha)` samples from two stateless Gammas, float32."""
    seed_a, seed_b = tf.unstack(tf.random.experimental.stateless_split(seed))
    a = tf.random.stateless_gamma(shape, seed_a, alpha)
    b = tf.random.stateless_gamma(shape, seed_b, alpha)
    return a / (a + b)


def _shuffle(batch_size, seed):
    return tf.random.experimental.stateless_shuffle(tf.range(batch_size),
                                                    seed)


def _mixup_params(seed, batch_size, alpha, per_sample):
    lam_seed, perm_seed = tf.unstack(
        tf.random.experimental.stateless_split(seed))
    lam = sample_beta([batch_size] if per_sample else [], lam_seed, alpha)
    lam = tf.broadcast_to(tf.cast(lam, tf.float32), [batch_size])
    return {"perm": _shuffle(batch_size, perm_seed), "lam": lam, "box": None,
            "cut": None}


def _cutmix_seeds(seed):
    return tf.unstack(tf.random.experimental.stateless_split(seed, 3))


def _cutmix_params(seed, batch_size, height, width, alpha):
    seeds = _cutmix_seeds(seed)
    lam = sample_beta([], seeds[0], alpha)
    y1, y2, x1, x2 = cutmix_box(height, width, lam, seeds[2])
    area = tf.cast((y2 - y1) * (x2 - x1), tf.float32)
    lam = 1.0 - area / tf.cast(height * width, tf.float32)
    return {"perm": _shuffle(batch_size, seeds[1]),
            "lam": tf.broadcast_to(lam, [batch_size]),
            "box": tf.stack([y1, y2, x1, x2]), "cut": tf.constant(True)}


def _split_batch_seed(seed):
    """`(choose_seed, mix_seed)` of a batch seed."""
    return tf.unstack(tf.random.experimental.stateless_split(seed))


def draw_partners(seed, batch_size, mode="mixup"):
    """The permutation `perm` `(B,)` int32 that `draw_mix_params` draws
    from the same seed (row `i` is mixed with row `perm[i]`), without the
    weights, so a pipeline can load the partners before the images."""
    choose_seed, mix_seed = _split_batch_seed(seed)
    mixup = _shuffle(batch_size, tf.unstack(
        tf.random.experimental.stateless_split(mix_seed))[1])
    cutmix = _shuffle(batch_size, _cutmix_seeds(mix_seed)[1])
    if mode == "mixup":
        return mixup
    if mode == "cutmix":
        return cutmix
    use_mixup = tf.random.stateless_uniform([], choose_seed) < 0.5
    return tf.where(use_mixup, mixup, cutmix)


def draw_mix_params(seed, batch_size, height, width, mixup_alpha=0.0,
                    cutmix_alpha=0.0, mode="mixup", per_sample=False):
    """The mixing parameters of one batch, from its `(2,)` seed.

    Args:
        seed: `(2,)` int seed of the batch.
        batch_size: int or scalar tensor `B`.
        height, width: image size (CutMix's box).
        mixup_alpha, cutmix_alpha, mode, per_sample: see `mix_batch`.

    Returns:
        dict: `perm` `(B,)` int32 partners, `lam` `(B,)` float32 weight of
        each row's own image and label, `box` `(4,)` int32 `(y1, y2, x1,
        x2)` and `cut` (scalar bool: paste the box instead of blending);
        `box` and `cut` are None in mode `"mixup"`.
    """
    choose_seed, mix_seed = _split_batch_seed(seed)
    if mode == "mixup":
        return _mixup_params(mix_seed, batch_size, mixup_alpha, per_sample)
    cutmix = _cutmix_params(mix_seed, batch_size, height, width,
                            cutmix_alpha)
    if mode == "cutmix":
        return cutmix
    mixup = dict(_mixup_params(mix_seed, batch_size, mixup_alpha, per_sample),
                 box=tf.zeros([4], tf.int32), cut=tf.constant(False))
    use_mixup = tf.random.stateless_uniform([], choose_seed) < 0.5
    return {key: tf.where(use_mixup, mixup[key], cutmix[key])
            for key in mixup}


def label_rows(labels, num_classes):
    """`(b, C)` float32 target rows: one-hot rows of class ids `(b,)` or
    `(b, 1)` (as `keras.datasets` gives them), or `(b, C)` one-hot / soft
    rows as given.

    Raises:
        ValueError: for any other shape (a `(b, 1)` id column one-hot
            encoded as it is would broadcast to `(b, b, C)` labels).
    """
    labels = tf.convert_to_tensor(labels)
    shape = labels.shape
    if shape.rank == 2 and shape[-1] == 1:
        labels = tf.reshape(labels, [-1])
    elif shape.rank == 2 and shape[-1] == num_classes and num_classes > 1:
        return tf.cast(labels, tf.float32)
    elif shape.rank != 1:
        raise ValueError(
            "Expected labels of shape (batch,) or (batch, 1) with class ids, "
            f"or (batch, {num_classes}) one-hot or soft rows. Received shape "
            f"{shape}.")
    return tf.one_hot(tf.cast(labels, tf.int32), num_classes)


def mix_rows(images, partner_images, labels, partner_labels, lam, box, cut,
             num_classes):
    """Mixes rows with their partners.

    Args:
        images: `(b, H, W, channels)` float32, the rows.
        partner_images: `(b, H, W, channels)`, their partners `x[perm]`.
        labels, partner_labels: `(b,)` / `(b, 1)` int class ids of both,
            or `(b, C)` rows (`label_rows`).
        lam: `(b,)` float32 weight of the own image and label.
        box: `(4,)` int32 CutMix box `(y1, y2, x1, x2)`, or None.
        cut: scalar bool, paste the box (CutMix) instead of blending; None
            blends.
        num_classes: `C`.

    Returns:
        `(mixed images (b, H, W, channels), soft labels (b, C) float32)`.
    """
    w = tf.reshape(lam, [-1, 1, 1, 1])
    mixed = w * images + (1.0 - w) * partner_images
    if cut is not None:
        shape = tf.shape(images)
        rows, cols = tf.range(shape[1]), tf.range(shape[2])
        inside = ((rows >= box[0]) & (rows < box[1]))[:, None] & (
            (cols >= box[2]) & (cols < box[3]))[None, :]
        pasted = tf.where(inside[None, :, :, None], partner_images, images)
        mixed = tf.where(cut, pasted, mixed)
    onehot = label_rows(labels, num_classes)
    partner = label_rows(partner_labels, num_classes)
    weight = tf.reshape(lam, [-1, 1])
    return mixed, weight * onehot + (1.0 - weight) * partner


def _mix_whole_batch(images, labels, params, num_classes):
    perm = params["perm"]
    return mix_rows(images, tf.gather(images, perm), labels,
                    tf.gather(labels, perm), params["lam"], params["box"],
                    params["cut"], num_classes)


def mixup_batch(images, labels, seed, alpha, num_classes, per_sample=False):
    """Mixup of one batch.

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` / `(B, 1)` int class ids or `(B, C)` rows.
        seed: `(2,)` int seed.
        alpha: float > 0, Beta parameter.
        num_classes: `C`.
        per_sample: one `lam` per image instead of one per batch.

    Returns:
        `(mixed_images, soft_labels)`: `(B, H, W, channels)` float32 and
        `(B, C)` float32 rows summing to 1.
    """
    validate_mixing(alpha, mode="mixup", num_classes=num_classes)
    params = _mixup_params(seed, tf.shape(images)[0], alpha, per_sample)
    return _mix_whole_batch(images, labels, params, num_classes)


def apply_mixup(images, labels, lam, perm, num_classes):
    """Mixup with a given weight and permutation.

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` / `(B, 1)` int class ids, or `(B, C)` rows.
        lam: scalar (one weight per batch, the reference) or `(B,)`.
        perm: `(B,)` int permutation of `range(B)`.
        num_classes: `C`.

    Returns:
        `(lam x + (1 - lam) x[perm], lam onehot(y) + (1 - lam)
        onehot(y[perm]))`.
    """
    lam = tf.broadcast_to(tf.cast(lam, tf.float32), tf.shape(labels)[:1])
    params = {"perm": perm, "lam": lam, "box": None, "cut": None}
    return _mix_whole_batch(images, labels, params, num_classes)


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

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` / `(B, 1)` int class ids or `(B, C)` rows.
        seed: `(2,)` int seed.
        alpha: float > 0, Beta parameter of `lam`.
        num_classes: `C`.

    Returns:
        `(mixed_images, soft_labels)` as in `mixup_batch`; the label weight
        is `lam = 1 - box_area / (H W)`.
    """
    validate_mixing(cutmix_alpha=alpha, mode="cutmix",
                    num_classes=num_classes)
    shape = tf.shape(images)
    params = _cutmix_params(seed, shape[0], shape[1], shape[2], alpha)
    return _mix_whole_batch(images, labels, params, num_classes)


def mix_batch(images, labels, seed, num_classes, mixup_alpha=0.0,
              cutmix_alpha=0.0, mode="mixup", per_sample=False):
    """Mixup, CutMix, or either with probability 0.5 (`"mixup_cutmix"`).

    Args:
        images: `(B, H, W, channels)` float32.
        labels: `(B,)` / `(B, 1)` int class ids, or `(B, C)` rows.
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
    shape = tf.shape(images)
    params = draw_mix_params(seed, shape[0], shape[1], shape[2], mixup_alpha,
                             cutmix_alpha, mode, per_sample)
    return _mix_whole_batch(images, labels, params, num_classes)
