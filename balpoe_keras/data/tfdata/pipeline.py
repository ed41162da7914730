"""TensorFlow-only: `make_train_dataset` / `make_eval_dataset`.

Train pipeline, per epoch `e`: a full permutation of the source indices
(or a class-aware resample) drawn from the seed `(seed, e)`; per element a
seed folded from `(seed, e, position)`; parallel load + augmentation
(AUTOTUNE); batch; Mixup/CutMix on the batch; labels as `int32 (B,)` or
soft `float32 (B, C)`, optionally as the BalPoE dict `{key: labels}`;
prefetch. All randomness is stateless, so epoch `e` is the same whether a
run starts at 0 or resumes at `e` (pass `epoch=e`), and with
`deterministic=True` the output is bit-identical across runs. Elements are
`(images float32 (B, H, W, channels) in [0, 1], labels)`, convertible to
NumPy, so Keras' `fit` consumes them on the TensorFlow, JAX and PyTorch
backends.
"""

import logging

import numpy as np
import tensorflow as tf

from balpoe_keras.data.batching import compute_steps_per_epoch
from balpoe_keras.data.batching import process_rows
from balpoe_keras.data.mixing import validate_mixing
from balpoe_keras.data.tfdata.decode import check_encoded_image
from balpoe_keras.data.tfdata.decode import decode_rgb
from balpoe_keras.data.tfdata.mixup import draw_mix_params
from balpoe_keras.data.tfdata.mixup import draw_partners
from balpoe_keras.data.tfdata.mixup import mix_batch
from balpoe_keras.data.tfdata.mixup import mix_rows
from balpoe_keras.data.tfdata.sampling import make_resample_fn
from balpoe_keras.data.tfdata.transforms import get_eval_transform
from balpoe_keras.data.tfdata.transforms import get_train_transform

_MAX_EPOCHS = 2**31 - 1


def _make_loader(source):
    """`index -> (uint8 image, int32 label)` for a source."""
    labels = tf.constant(source.labels, tf.int32)
    if source.in_memory:
        images = tf.convert_to_tensor(source.images)
        return lambda i: (tf.gather(images, i), tf.gather(labels, i))
    paths = tf.constant(source.paths)

    def load(i):
        path = tf.gather(paths, i)
        data = check_encoded_image(tf.io.read_file(path), path)
        return decode_rgb(data), tf.gather(labels, i)

    return load


def _check_batch(global_batch_size, num_replicas):
    if int(global_batch_size) != global_batch_size or global_batch_size < 1:
        raise ValueError(
            f"Expected global_batch_size >= 1. Received: {global_batch_size}")
    if global_batch_size % num_replicas:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by "
            f"num_replicas={num_replicas} devices; each needs an equal "
            "share. Pick a multiple of the device count.")


def _finish(ds):
    return ds.prefetch(tf.data.AUTOTUNE)


def make_train_dataset(source, *, global_batch_size, recipe="cifar_standard",
                       num_classes=None, mixup_alpha=0.0, cutmix_alpha=0.0,
                       mix_mode=None, per_sample_mixup=False, seed=None,
                       epoch=0, repeat=False, resample=None,
                       deterministic=False, drop_remainder=False,
                       num_replicas=1, image_size=224, num_processes=1,
                       process_index=0, steps_per_epoch=None):
    """The training `tf.data.Dataset` of a source.

    Args:
        source: `ImageSource`.
        global_batch_size: images per step over all devices.
        recipe: augmentation recipe (`balpoe_keras.data.recipes.RECIPES`).
        num_classes: `C` of the soft labels; default `source.num_classes`.
        mixup_alpha: Mixup Beta parameter; 0 turns mixing off (int labels).
        cutmix_alpha: CutMix Beta parameter (modes "cutmix"/"mixup_cutmix").
        mix_mode: `"mixup"`, `"cutmix"` or `"mixup_cutmix"`; None (default)
            derives it from the alphas (`balpoe_keras.data.mixing`).
        per_sample_mixup: one Mixup weight per image instead of per batch.
        seed: int; None draws one (logged).
        epoch: first epoch (0-based) whose data to produce (resuming).
        repeat: False gives epoch `epoch` only; True gives epochs
            `epoch, epoch + 1, ...` forever (use `steps_per_epoch`).
        resample: None (uniform over images, as the reference), or a
            `sampling.MODES` name: `"balanced"`, `"sqrt"`, `"instance"`.
        deterministic: keep element order under parallelism.
        drop_remainder: drop the last partial batch of each epoch. The
            reference keeps it (False); set True for several devices
            (strategies need equal per-device batches).
        num_replicas: `global_batch_size` must be divisible by it.
        image_size: crop size of the ImageNet/iNat recipes.
        num_processes: processes of a multi-process run, each feeding its
            share of every global batch (`batching.process_rows`); needs
            `drop_remainder=True` when > 1.
        process_index: this process, in `[0, num_processes)`. It decodes
            and augments only its rows of each global batch (and, with
            mixing, their partners); seeds stay those of the global batch,
            so the processes' batches, in process order, equal the batch
            of a one-process run.
        steps_per_epoch: optional int, keep only the first
            `steps_per_epoch` batches of every epoch (a shortened run);
            None keeps them all.

    Returns:
        `tf.data.Dataset` of `(images (b, H, W, ch) float32 in [0, 1],
        labels)`, labels `(b,)` int32, or `(b, C)` float32 with mixing;
        `b` is `global_batch_size / num_processes`.
    """
    _check_batch(global_batch_size, num_replicas)
    rows = process_rows(global_batch_size, num_processes, process_index)
    if num_processes > 1 and not drop_remainder:
        raise ValueError(
            "A multi-process pipeline needs drop_remainder=True: every "
            "process must feed an equal share of every global batch.")
    num_classes = num_classes or source.num_classes
    mixup_alpha, cutmix_alpha, mix_mode = validate_mixing(
        mixup_alpha, cutmix_alpha, mix_mode, num_classes=num_classes)
    mixing = mix_mode is not None
    if seed is None:
        seed = int(np.random.SeedSequence().entropy % _MAX_EPOCHS)
        logging.info("make_train_dataset: drew seed=%d", seed)
    transform = get_train_transform(recipe, image_size)
    load = _make_loader(source)
    count = len(source)
    if resample is None:
        order_fn = lambda s: tf.random.experimental.stateless_shuffle(  # noqa
            tf.range(count, dtype=tf.int64), s)
    else:
        order_fn = make_resample_fn(source.labels, source.num_classes,
                                    resample)

    @tf.autograph.experimental.do_not_convert
    def element(elem_seed, index):
        image, label = load(index)
        aug_seed = tf.random.experimental.stateless_fold_in(elem_seed, 0)
        return transform(image, aug_seed), label, elem_seed

    @tf.autograph.experimental.do_not_convert
    def mix(images, labels, seeds):
        batch_seed = tf.random.experimental.stateless_fold_in(seeds[0], 1)
        return mix_batch(images, labels, batch_seed, num_classes,
                         mixup_alpha, cutmix_alpha, mix_mode,
                         per_sample_mixup)

    @tf.autograph.experimental.do_not_convert
    def one_epoch(e):
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), e])
        order = order_fn(epoch_seed)
        ds = tf.data.Dataset.from_tensor_slices(order).enumerate()
        ds = ds.map(lambda pos, i: (
            tf.random.experimental.stateless_fold_in(epoch_seed, pos), i))
        ds = ds.map(element, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(global_batch_size, drop_remainder=drop_remainder,
                      num_parallel_calls=tf.data.AUTOTUNE)
        if mixing:
            return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.map(lambda x, y, s: (x, y))

    @tf.autograph.experimental.do_not_convert
    def one_epoch_rows(e):
        """Epoch `e`, this process's rows of every global batch only."""
        epoch_seed = tf.stack([tf.constant(seed, tf.int64), e])
        order = order_fn(epoch_seed)
        start, stop = rows

        def batch_seed(k):
            first = tf.random.experimental.stateless_fold_in(
                epoch_seed, k * global_batch_size)
            return tf.random.experimental.stateless_fold_in(first, 1)

        def plan(k):
            first = k * global_batch_size
            own = first + tf.range(start, stop, dtype=tf.int64)
            partner = own
            if mixing:
                perm = draw_partners(batch_seed(k), global_batch_size,
                                     mix_mode)
                partner = first + tf.cast(perm[start:stop], tf.int64)
            return tf.data.Dataset.from_tensor_slices(
                (own, partner, tf.fill([stop - start], k)))

        def at(pos):
            elem_seed = tf.random.experimental.stateless_fold_in(epoch_seed,
                                                                 pos)
            image, label, _ = element(elem_seed, tf.gather(order, pos))
            return image, label

        def pair(own, partner, k):
            return (*at(own), *(at(partner) if mixing else ()), k)

        def mix(images, labels, partner_images, partner_labels, k):
            shape = tf.shape(images)
            params = draw_mix_params(
                batch_seed(k[0]), global_batch_size, shape[1], shape[2],
                mixup_alpha, cutmix_alpha, mix_mode, per_sample_mixup)
            return mix_rows(images, partner_images, labels, partner_labels,
                            params["lam"][start:stop], params["box"],
                            params["cut"], num_classes)

        steps = count // global_batch_size
        ds = tf.data.Dataset.range(steps).flat_map(plan)
        ds = ds.map(pair, num_parallel_calls=tf.data.AUTOTUNE)
        ds = ds.batch(stop - start, drop_remainder=True,
                      num_parallel_calls=tf.data.AUTOTUNE)
        if mixing:
            return ds.map(mix, num_parallel_calls=tf.data.AUTOTUNE)
        return ds.map(lambda x, y, k: (x, y))

    last = _MAX_EPOCHS if repeat else epoch + 1
    epoch_fn = one_epoch if num_processes == 1 else one_epoch_rows
    steps = compute_steps_per_epoch(count, global_batch_size, drop_remainder)
    if steps_per_epoch is not None and steps_per_epoch < steps:
        steps = int(steps_per_epoch)
        ds = tf.data.Dataset.range(epoch, last).flat_map(
            lambda e: epoch_fn(e).take(steps))
    else:
        ds = tf.data.Dataset.range(epoch, last).flat_map(epoch_fn)
    if not repeat:  # Lets Keras know the epoch length (progress bar, fit).
        ds = ds.apply(tf.data.experimental.assert_cardinality(steps))
    options = tf.data.Options()
    options.deterministic = bool(deterministic)
    return _finish(ds.with_options(options))


def make_eval_dataset(source, *, global_batch_size, recipe="cifar_standard",
                      cache=False,
                      drop_remainder=False, num_replicas=1, image_size=224):
    """The evaluation `tf.data.Dataset` of a source, in source order.

    Args:
        source: `ImageSource` (e.g. `source.subset(indices)` for a test
            distribution).
        global_batch_size: images per step.
        recipe: the recipe whose eval transform to use.
        cache: False, True (memory) or a file path: caches the
            preprocessed images (useful when decoding from paths).
        drop_remainder: drop the last partial batch.
        num_replicas: `global_batch_size` must be divisible by it.
        image_size: crop size of the ImageNet/iNat recipes.

    Returns:
        `tf.data.Dataset` of `(images float32 in [0, 1], labels (B,) int32)`.
    """
    _check_batch(global_batch_size, num_replicas)
    transform = get_eval_transform(recipe, image_size)
    load = _make_loader(source)
    ds = tf.data.Dataset.range(len(source)).map(
        lambda i: load(i), num_parallel_calls=tf.data.AUTOTUNE,
        deterministic=True)
    ds = ds.map(lambda x, y: (transform(x), y),
                num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if cache:
        ds = ds.cache("" if cache is True else str(cache))
    ds = ds.batch(global_batch_size, drop_remainder=drop_remainder)
    return _finish(ds)
