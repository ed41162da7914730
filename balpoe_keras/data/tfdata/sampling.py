"""TensorFlow-only: class-aware resampling in tf.data.

Two forms: `make_resample_fn` draws a whole epoch of indices from a `(2,)`
seed (used by `make_train_dataset(resample=...)`, deterministic and
resumable), and `class_aware_resample` is a generic `tf.data` transform
for any `(image, label)` dataset via `Dataset.sample_from_datasets`. The
class probabilities are `balpoe_keras.data.sampling.class_sampling_probs`.
"""

import numpy as np
import tensorflow as tf

from balpoe_keras.data.sampling import class_sampling_probs


def make_resample_fn(labels, num_classes, mode, num_samples=None):
    """A function `seed -> (num_samples,)` int64 resampled indices.

    Args:
        labels: `(N,)` int class ids.
        num_classes: `C`.
        mode: one of `MODES`.
        num_samples: indices per call; default `N` (one epoch).

    Returns:
        Callable taking a `(2,)` int seed tensor (works in graphs).
    """
    labels = np.asarray(labels, np.int64)
    counts = np.bincount(labels, minlength=num_classes)
    probs = class_sampling_probs(counts, mode)
    by_class = tf.constant(np.argsort(labels, kind="stable"), tf.int64)
    offsets = tf.constant(np.concatenate([[0], np.cumsum(counts)[:-1]]),
                          tf.int64)
    counts_t = tf.constant(counts, tf.float32)
    logits = tf.constant(np.log(np.maximum(probs, 1e-300))[None], tf.float32)
    num_samples = int(num_samples or labels.size)

    def resample(seed):
        class_seed, pos_seed = tf.unstack(
            tf.random.experimental.stateless_split(seed))
        classes = tf.random.stateless_categorical(
            logits, num_samples, class_seed, dtype=tf.int64)[0]
        u = tf.random.stateless_uniform([num_samples], pos_seed)
        within = tf.cast(tf.floor(u * tf.gather(counts_t, classes)), tf.int64)
        return tf.gather(by_class, tf.gather(offsets, classes) + within)

    return resample


def class_aware_resample(dataset, class_counts, mode="balanced", seed=None):
    """Resamples an `(image, label)` dataset by class; infinite output.

    Each class's elements are filtered out of `dataset`, repeated, and
    `tf.data.Dataset.sample_from_datasets` picks a class per element with
    `class_sampling_probs(class_counts, mode)`. Scans `dataset` once per
    class, so prefer `make_train_dataset(resample=...)` for large sets.

    Args:
        dataset: elements `(image, label)` with a scalar int label.
        class_counts: `(C,)` images per class in `dataset`.
        mode: one of `MODES`.
        seed: int seed of the class choice.

    Returns:
        An infinite `tf.data.Dataset` (use `take`).
    """
    probs = class_sampling_probs(class_counts, mode)
    present = [c for c in range(len(probs)) if probs[c] > 0]
    per_class = [
        dataset.filter(lambda x, y, c=c: tf.equal(tf.cast(y, tf.int64), c))
        .repeat()
        for c in present
    ]
    return tf.data.Dataset.sample_from_datasets(
        per_class, weights=[float(probs[c]) for c in present], seed=seed)
