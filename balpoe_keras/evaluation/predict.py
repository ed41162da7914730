"""Runs a BalPoE model over a test set and collects its outputs in NumPy.

Works on every Keras backend: NumPy `(images, labels)` pairs go through
`model.predict_outputs`; `tf.data` datasets and other iterables of
`(images, labels)` batches are fed to it as a generator of NumPy images, so
TensorFlow is only needed when the caller already holds a
`tf.data.Dataset`.
"""

import numpy as np

from balpoe_keras.labels import host_class_ids
from balpoe_keras.models.balpoe_classifier import check_model  # noqa: F401


def is_index_array(value):
    """True if `value` is a 1-D integer NumPy array (indices into a set)."""
    return (
        isinstance(value, np.ndarray)
        and value.ndim == 1
        and np.issubdtype(value.dtype, np.integer)
    )


def validate_labels(labels, num_classes=None):
    """Int class ids `(N,)` from `(N,)`, `(N, 1)` ids or `(N, C)` one-hot
    / soft rows (each a distribution, `balpoe_keras.labels`)."""
    labels = np.asarray(labels)
    if labels.ndim == 2 and labels.shape[-1] > 1:
        if num_classes and labels.shape[-1] != num_classes:
            raise ValueError(
                f"Expected one-hot labels with {num_classes} columns, one "
                f"per class. Received shape {labels.shape}.")
        labels = host_class_ids(labels, labels.shape[-1])
    elif labels.ndim > 2 or (labels.ndim == 2 and labels.shape[-1] != 1):
        raise ValueError("Expected labels of shape (N,), (N, 1) or (N, C). "
                         f"Received shape {labels.shape}.")
    labels = labels.reshape(-1)
    if labels.size and not np.all(labels == np.round(labels)):
        raise ValueError("Expected integer class ids as labels.")
    labels = labels.astype(np.int64)
    if labels.size and (
        labels.min() < 0 or (num_classes and labels.max() >= num_classes)
    ):
        raise ValueError(
            f"Labels must lie in [0, {num_classes}). Received labels in "
            f"[{labels.min()}, {labels.max()}]."
        )
    return labels


def _split_outputs(outputs):
    if not isinstance(outputs, dict) or not {
        "logits",
        "expert_logits",
    } <= set(outputs):
        got = sorted(outputs) if isinstance(outputs, dict) else type(outputs)
        raise ValueError(
            "Expected a BalPoE model returning a dict with keys 'logits' "
            "(batch, C) and 'expert_logits' (batch, M, C) (see "
            f"docs/ARCHITECTURE.md). Received outputs: {got}"
        )
    logits = np.asarray(outputs["logits"], np.float32)
    expert_logits = np.asarray(outputs["expert_logits"], np.float32)
    if expert_logits.ndim != 3 or expert_logits.shape[::2] != logits.shape:
        raise ValueError(
            "Expected 'expert_logits' of shape (batch, M, C) matching "
            f"'logits' {logits.shape}. Received {expert_logits.shape}."
        )
    return logits, expert_logits


def _to_numpy(x):
    if hasattr(x, "numpy"):
        return x.numpy()
    return np.asarray(x)


def predict_outputs(model, test_set, *, batch_size=256):
    """Runs `model` once over `test_set` and returns its outputs in NumPy.

    Args:
        model: a `BalPoEClassifier` (its `predict_outputs`), taking float32
            images `(B, H, W, C)` in `[0, 1]`.
        test_set: a pair `(images, labels)` of NumPy arrays, or a
            `tf.data.Dataset` / iterable yielding `(images, labels)` batches.
            Labels are int ids `(N,)` / `(N, 1)` or one-hot `(N, C)`.
        batch_size: int, batch size for NumPy inputs.

    Returns:
        dict with `logits` `(N, C)` float32, `expert_logits` `(N, M, C)`
        float32 and `labels` `(N,)` int64.
    """
    check_model(model)
    if isinstance(test_set, (tuple, list)) and len(test_set) == 2:
        images, labels = test_set
        if isinstance(images, np.ndarray):
            logits, expert_logits = _split_outputs(
                model.predict_outputs(images, batch_size=batch_size))
            return {
                "logits": logits,
                "expert_logits": expert_logits,
                "labels": validate_labels(labels, logits.shape[-1]),
            }
    labels = []
    logits, expert_logits = _split_outputs(
        model.predict_outputs(_images_of(test_set, labels)))
    return {
        "logits": logits,
        "expert_logits": expert_logits,
        "labels": validate_labels(np.concatenate(labels), logits.shape[-1]),
    }


def _images_of(batches, labels):
    """Yields the images of `(images, labels)` batches, appending each
    batch's labels to `labels`."""
    for batch in batches:
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError(
                "Expected the test set to yield (images, labels) batches. "
                f"Received an element of type {type(batch).__name__}."
            )
        labels.append(validate_labels(_to_numpy(batch[1])))
        yield (_to_numpy(batch[0]),)
    if not labels:
        raise ValueError("The test set yielded no batches.")


def check_indices(indices, size):
    """`indices` `(K,)` as int64, raising `ValueError` unless they lie in
    `[0, size)` (the balanced test set's images)."""
    indices = np.asarray(indices, np.int64)
    if indices.size and (indices.min() < 0 or indices.max() >= size):
        raise ValueError(
            f"Test-set indices must lie in [0, {size}) (the balanced test "
            f"set). Received indices in [{indices.min()}, {indices.max()}]."
        )
    return indices


def select_outputs(outputs, indices):
    """Restricts collected outputs to `indices` `(K,)` (a test subset)."""
    indices = check_indices(indices, outputs["labels"].size)
    return {key: value[indices] for key, value in outputs.items()}
