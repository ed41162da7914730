"""TensorFlow-free in-memory training input: a `keras.utils.PyDataset`.

For datasets that fit in accelerator memory (CIFAR-size). The uint8 images
are uploaded to the device once (`DeviceImages`); each batch is gathered,
augmented (crop/flip/rotation, Mixup; `augment.py`) and converted to float
there by one compiled function (`jax.jit` on JAX, `tf.function` on
TensorFlow, eager CUDA kernels on torch). The host only draws the small
random parameters with NumPy, from `(seed, epoch, batch index)` alone, so a
resumed run sees exactly the batches of an uninterrupted one and batches
can be produced in any order.

Semantics match the tf.data path (`balpoe_keras.data.make_train_dataset`
with recipe `"cifar_standard"` / crop+flip): pad-4 zero-fill crop, flip
with p = 0.5, optional rotation U[-15, 15] deg, per-batch Mixup with soft
labels, the last partial batch kept unless `drop_remainder`.
"""

import functools

import keras
import numpy as np
from keras import ops

from balpoe_keras.data.arrays import augment
from balpoe_keras.data.batching import compute_steps_per_epoch
from balpoe_keras.data.batching import process_rows
from balpoe_keras.data.mixing import validate_mixing


class DeviceImages:
    """uint8 images `(N, H, W, C)` and labels, uploaded to the device once.

    Args:
        images: `(N, H, W, C)` uint8 NumPy array.
        labels: `(N,)` int class ids.
    """

    def __init__(self, images, labels):
        images = np.asarray(images)
        labels = np.asarray(labels).reshape(-1).astype(np.int32)
        if images.ndim != 4 or images.dtype != np.uint8:
            raise ValueError(
                "Expected uint8 images of shape (N, H, W, C). Received "
                f"{images.shape} {images.dtype}; convert with "
                "np.asarray(x * 255).round().astype('uint8') for [0, 1] "
                "floats."
            )
        if len(images) != len(labels):
            raise ValueError(
                f"{len(images)} images but {len(labels)} labels.")
        self.shape = images.shape
        self.labels = labels
        self.images = ops.convert_to_tensor(images)
        self.device_labels = ops.convert_to_tensor(labels)

    def __len__(self):
        return self.shape[0]


class ArrayDataset(keras.utils.PyDataset):
    """One epoch of shuffled, augmented batches for `model.fit`.

    Batch `k` of epoch `e` holds the images `order[k B:(k+1) B]` of the
    permutation drawn from `(seed, e)`; its augmentation parameters come
    from `(seed, e, k)`.

    Args:
        data: a `DeviceImages` (shared across epochs) or an `(images,
            labels)` pair of NumPy arrays.
        global_batch_size: int `B`.
        epoch: int >= 0, the 0-based epoch this dataset yields.
        seed: int >= 0.
        num_classes: int `C` (required for Mixup).
        shuffle: bool; False keeps the data order (evaluation, tests).
        augment: bool, apply crop + flip (+ rotation).
        padding: int, crop padding (4 in the reference).
        max_degrees: float, rotation range; 0 (default) disables it, 15
            is the reference's standard CIFAR recipe.
        mixup_alpha: float; 0 disables Mixup (labels stay int).
        drop_remainder: bool; False keeps the last partial batch.
        num_processes: processes of a multi-process run, each feeding its
            share of every global batch (`batching.process_rows`); needs
            `drop_remainder=True` when > 1.
        process_index: this process, in `[0, num_processes)`. It gathers
            and augments only its rows (and their Mixup partners), with the
            parameters of the global batch, so the processes' batches, in
            process order, equal the batch of a one-process run.
        **kwargs: `keras.utils.PyDataset` arguments (`workers`, ...).

    Yields:
        `(images, targets)`: `(b, H, W, C)` float32 in `[0, 1]` and `(b,)`
        int32 or `(b, C)` float32 labels, on the backend's default device;
        `b = B / num_processes` (the last batch may be smaller).
    """

    def __init__(self, data, *, global_batch_size, epoch=0, seed=0,
                 num_classes=None, shuffle=True, augment=True, padding=4,
                 max_degrees=0.0, mixup_alpha=0.0, drop_remainder=False,
                 num_processes=1, process_index=0,
                 **kwargs):
        super().__init__(**kwargs)
        if not isinstance(data, DeviceImages):
            data = DeviceImages(*data)
        _check(global_batch_size, epoch, seed, mixup_alpha, num_classes,
               len(data), drop_remainder)
        self.rows = process_rows(global_batch_size, num_processes,
                                 process_index)
        if num_processes > 1 and not drop_remainder:
            raise ValueError(
                "A multi-process dataset needs drop_remainder=True: every "
                "process must feed an equal share of every global batch.")
        self.num_processes = int(num_processes)
        self.data = data
        self.global_batch_size = int(global_batch_size)
        self.epoch, self.seed = int(epoch), int(seed)
        self.num_classes = num_classes
        self.augment, self.padding = bool(augment), int(padding)
        self.max_degrees, self.mixup_alpha = max_degrees, mixup_alpha
        self.drop_remainder = drop_remainder
        self.order = np.arange(len(data), dtype=np.int32)
        if shuffle:
            rng = np.random.default_rng([self.seed, self.epoch, 0, 0])
            self.order = rng.permutation(len(data)).astype(np.int32)

    @property
    def num_batches(self):
        return compute_steps_per_epoch(len(self.data), self.global_batch_size,
                                       self.drop_remainder)

    def __len__(self):
        return self.num_batches

    def batch_params(self, index):
        """NumPy parameters of batch `index`: a dict, see `augment.py`."""
        size = len(self.batch_indices(index))
        rng = np.random.default_rng([self.seed, self.epoch, 1, index])
        return draw_params_numpy(
            rng, size, self.padding if self.augment else None,
            self.max_degrees if self.augment else 0.0, self.mixup_alpha,
            self.data.shape[1:3])

    def batch_indices(self, index):
        """`(b,)` int32 rows of the data in batch `index`."""
        if not 0 <= index < self.num_batches:
            raise IndexError(f"Batch {index} out of range "
                             f"[0, {self.num_batches}).")
        b = self.global_batch_size
        return self.order[index * b:(index + 1) * b]

    def __getitem__(self, index):
        params = self.batch_params(index)
        indices = self.batch_indices(index)
        own = np.arange(len(indices))
        if self.num_processes > 1:
            own = own[slice(*self.rows)]
        fn = _batch_fn(self.augment, self.padding,
                       params["rotations"] is not None,
                       self.num_classes if self.mixup_alpha else None)
        args = _rows(indices, params, own)
        if self.mixup_alpha:
            args += _rows(indices, params, params["perm"][own])
            args += (params["lam"],)
        return fn(self.data.images, self.data.device_labels, *args)


def _rows(indices, params, rows):
    """`(indices, offsets, flips, rotations)` of the batch rows `rows`."""
    return tuple(None if x is None else x[rows] for x in (
        indices, params["offsets"], params["flips"], params["rotations"]))


def draw_params_numpy(rng, batch_size, padding=4, max_degrees=0.0,
                      mixup_alpha=0.0, image_shape=(32, 32)):
    """Augmentation parameters of one batch drawn with NumPy.

    Args:
        rng: a `np.random.Generator`.
        batch_size: int `b`.
        padding: int crop padding, or None for no crop/flip.
        max_degrees: float rotation range (0: no rotation).
        mixup_alpha: float (0: no Mixup).
        image_shape: `(H, W)`, for the rotation matrices.

    Returns:
        dict with `offsets` `(b, 2)` int32, `flips` `(b,)` bool, `angles`
        `(b,)` float32 degrees and their `rotations` `(b, 6)` int32
        (`augment.rotation_matrices`) or None,
        `lam` float32 scalar and `perm` `(b,)` int32 (`lam`/`perm` are None
        without Mixup); see `augment.draw_crop_flip_params`.
    """
    params = {"offsets": None, "flips": None, "angles": None,
              "rotations": None}
    if padding is not None:
        params.update(augment.draw_crop_flip_params(
            batch_size, rng, padding, max_degrees, image_shape))
    params["lam"], params["perm"] = (
        augment.draw_mixup_params(batch_size, mixup_alpha, rng)
        if mixup_alpha else (None, None))
    return params


def _check(batch_size, epoch, seed, mixup_alpha, num_classes, size,
           drop_remainder):
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(
            f"Expected global_batch_size >= 1. Received: {batch_size}")
    if epoch < 0 or seed < 0:
        raise ValueError(
            f"Expected epoch >= 0 and seed >= 0. Received: epoch={epoch}, "
            f"seed={seed}")
    validate_mixing(mixup_alpha, num_classes=num_classes)
    if size == 0 or (drop_remainder and size < batch_size):
        raise ValueError(
            f"{size} images give no batch of {batch_size} (drop_remainder="
            f"{drop_remainder}). Lower the batch size or add data.")


@functools.lru_cache(maxsize=None)
def _batch_fn(crop, padding, rotate, mixup_classes):
    """The compiled per-batch function for one static configuration.

    Cached, so the datasets of all epochs share one compiled function (JAX
    retraces only for a new batch size, e.g. the last partial batch).
    """

    def augmented(images, indices, offsets, flips, rotations):
        x = ops.take(images, indices, axis=0)
        if not crop:
            return augment.to_float(x)
        return augment.apply_crop_flip(x, offsets, flips, rotations, padding)

    def fn(images, labels, indices, offsets, flips, rotations, *partner):
        indices = ops.convert_to_tensor(indices)
        x = augmented(images, indices, offsets, flips, rotations)
        y = ops.take(labels, indices, axis=0)
        if not mixup_classes:
            return x, y
        # The partners x[perm], augmented with their own parameters
        # (identical to augmenting first and permuting after).
        indices2, offsets2, flips2, rotations2, lam = partner
        indices2 = ops.convert_to_tensor(indices2)
        x2 = augmented(images, indices2, offsets2, flips2, rotations2)
        y2 = ops.take(labels, indices2, axis=0)
        return augment.mix_pair(x, x2, y, y2, lam, mixup_classes)

    return _compile(fn)


def _compile(fn):
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.jit(fn)
    if backend == "tensorflow":
        import tensorflow as tf

        return tf.function(fn, reduce_retracing=True)
    return fn


def make_train_dataset_fn(images, labels, *, global_batch_size, seed=0,
                          **kwargs):
    """`epoch -> ArrayDataset` for `balpoe_keras.training.fit`.

    Uploads the images once and shares them across epochs; every epoch's
    data depends only on `(seed, epoch)`.

    Args:
        images: `(N, H, W, C)` uint8.
        labels: `(N,)` int.
        global_batch_size: int.
        seed: int >= 0.
        **kwargs: further `ArrayDataset` arguments (`num_classes`,
            `mixup_alpha`, `max_degrees`, ...).
    """
    data = DeviceImages(images, labels)

    def dataset_fn(epoch):
        return ArrayDataset(data, global_batch_size=global_batch_size,
                            epoch=epoch, seed=seed, **kwargs)

    return dataset_fn
