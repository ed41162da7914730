"""Labels as class ids, and the one check of their range (keras.ops).

Every loss and metric reads its labels through `class_ids` and
`count_out_of_range`: a label outside `[0, C)` raises `ValueError` where
its value is at hand (eager steps, in host memory), and is counted where
it is not (compiled TensorFlow and JAX steps, PyTorch tensors on a GPU,
whose reading would stall every step). The count makes a metric's result
NaN and `BalPoEClassifier.fit`/`evaluate` raise the same error.

One-hot and soft label rows `(B, C)` must be distributions: a row with a
negative value or a sum away from 1 -- such as the all-zero row `one_hot`
gives for an id outside `[0, C)` -- has the id -1, and is caught by the
same range check; so is a float id that is not a whole number (2.7, NaN),
which a cast would truncate.
"""

import numpy as np
from keras import ops
from keras.backend import standardize_dtype

# A label row is a distribution within this: float32 Mixup, CutMix and
# label-smoothing rows sum to 1 within ~1e-6, bfloat16 ones within ~0.4 %;
# an all-zero or a multi-hot row is off by 1 or more.
_ROW_SUM_TOLERANCE = 1e-2


def is_soft(y, num_classes):
    """True for one-hot / soft labels: rank 2 with `num_classes > 1`
    columns (ids are `(B,)` or `(B, 1)`)."""
    return len(y.shape) == 2 and y.shape[-1] == num_classes and (
        num_classes > 1)


def class_ids(y, num_classes):
    """Integer class ids `(B,)` int32.

    Args:
        y: ids `(B,)` / `(B, 1)`, or one-hot / soft labels `(B, C)` (their
            argmax: the dominant class of a Mixup image; -1 for a row that
            is not a distribution, see the module docstring).
        num_classes: int `C`.
    """
    y = ops.convert_to_tensor(y)
    check_label_shape(y.shape, num_classes)
    if is_soft(y, num_classes):
        ids = ops.cast(ops.argmax(y, axis=-1), "int32")
        return ops.where(_is_distribution(y), ids, -1)
    y = ops.reshape(y, (-1,))
    if "float" in standardize_dtype(y.dtype):  # A cast truncates 2.7.
        return ops.where(ops.floor(y) == y, ops.cast(y, "int32"), -1)
    return ops.cast(y, "int32")


def check_label_shape(shape, num_classes):
    """Raises `ValueError` unless `shape` is that of ids `(B,)` / `(B, 1)`
    or of one-hot / soft rows `(B, C)`: other widths were flattened into
    ids (a one-hot row of another width counted as several labels)."""
    rank = len(shape)
    if rank <= 1 or (rank == 2 and shape[-1] in (None, 1, num_classes)):
        return
    raise ValueError(
        f"Labels must be class ids of shape (B,) or (B, 1), or one-hot / "
        f"soft rows (B, {num_classes}); received shape {tuple(shape)}. "
        "Check that the labels are one-hot over the model's classes "
        f"({num_classes}) and that the model's class count is right.")


def _is_distribution(y):
    """`(B,)` bool: rows of `(B, C)` with no negative value, summing to 1."""
    y = ops.cast(y, "float32")
    return ops.logical_and(
        ops.all(y >= -_ROW_SUM_TOLERANCE, axis=-1),
        ops.abs(ops.sum(y, axis=-1) - 1.0) <= _ROW_SUM_TOLERANCE)


def host_class_ids(y, num_classes):
    """Class ids `(N,)` NumPy of labels already on the host (NumPy, lists),
    as `class_ids`; raises `ValueError` (`raise_out_of_range`) for an id
    outside `[0, num_classes)`, rows that are not distributions included.
    Integer ids are checked as given, without a trip through a device."""
    y = np.asarray(y)
    check_label_shape(y.shape, num_classes)
    if is_soft(y, num_classes):
        y = np.asarray(ops.convert_to_numpy(class_ids(y, num_classes)))
    y = y.reshape(-1)
    if y.dtype.kind not in "iub":  # float, and NumPy's bfloat16 ("V").
        values = y.astype(np.float64)
        whole = np.floor(values) == values  # False for NaN too.
        if not whole.all():
            bad = np.unique(values[~whole])
            raise ValueError(
                f"Labels must be whole class ids; found {bad[:10].tolist()},"
                " which a cast would truncate. Pass integer ids (N,), or "
                f"one-hot / soft rows (N, {num_classes}).")
        y = values.astype(np.int64)
    if y.size and (y.min() < 0 or y.max() >= num_classes):
        raise_out_of_range(y, num_classes)
    return y


def count_out_of_range(ids, num_classes):
    """Number of ids outside `[0, num_classes)`, a scalar int32 tensor.

    Raises `ValueError` naming the bad values and the class count when the
    ids are concrete and in host memory.
    """
    bad = ops.logical_or(ids < 0, ids >= num_classes)
    count = ops.sum(ops.cast(bad, "int32"))
    values = concrete_value(ids)
    if values is not None and values.size and (
            values.min() < 0 or values.max() >= num_classes):
        raise_out_of_range(values, num_classes)
    return count


def raise_out_of_range(values, num_classes):
    """The error for labels outside `[0, num_classes)`; `values`: NumPy."""
    values = np.asarray(values).reshape(-1)
    bad = values[(values < 0) | (values >= num_classes)]
    rows = (" (-1 also marks one-hot or soft label rows that are not "
            "distributions: a negative value or a sum away from 1, such as "
            "the all-zero row keras.ops.one_hot gives for an id outside "
            f"[0, {num_classes}); and float ids that are not whole numbers)"
            if -1 in bad else "")
    raise ValueError(
        f"Labels must be class ids in [0, {num_classes}). Found "
        f"{np.unique(bad)[:10].tolist()}{rows}. Check the dataset's label "
        "map and the class counts (one per class)."
    )


def count_invalid_weights(sample_weight):
    """Number of sample weights that are NaN, inf or negative, a scalar
    int32 tensor (boolean and integer weights are read as floats).

    Raises `ValueError` naming the count when the weights are concrete and
    in host memory (eager steps); compiled steps count them for a guard.
    """
    weights = ops.cast(sample_weight, "float32")
    bad = ops.logical_or(ops.logical_not(ops.isfinite(weights)), weights < 0)
    count = ops.sum(ops.cast(bad, "int32"))
    value = concrete_value(count)
    if value is not None and int(value):
        raise ValueError(
            f"sample_weight must be finite and >= 0; {int(value)} of "
            f"{int(np.size(concrete_value(weights)))} weights are not (NaN, "
            "inf or negative): a NaN turns sums into NaN and a negative "
            "weight subtracts a sample. Fix or drop them (a weight of 0 "
            "leaves a sample out).")
    return count


def to_soft_labels(y_true, num_classes, dtype="float32"):
    """Integer labels `(B,)`/`(B, 1)` or soft labels `(B, C)` -> `(B, C)`.

    Soft (e.g. Mixup) labels are recognised by their shape: same rank as the
    logits `(B, C)` with `C > 1` columns. Integer labels outside `[0, C)`
    raise `ValueError` whenever their values are concrete and in host
    memory (`balpoe_keras.labels`); inside compiled steps they give one-hot
    rows of zeros, and `BalPoEClassifier.fit`/`evaluate` raise the same
    error from their count. Soft label rows must be distributions (no
    negative value, summing to 1), checked the same way.
    """
    y_true = ops.convert_to_tensor(y_true)
    if is_soft(y_true, num_classes):
        count_out_of_range(class_ids(y_true, num_classes), num_classes)
        return ops.cast(y_true, dtype)
    if len(y_true.shape) == 2 and y_true.shape[-1] == 1:
        y_true = ops.squeeze(y_true, axis=-1)
    if len(y_true.shape) != 1:
        raise ValueError(
            "Expected labels of shape (batch,) or (batch, 1) with class ids, "
            f"or (batch, {num_classes}) soft labels. Received shape "
            f"{tuple(y_true.shape)}."
        )
    ids = class_ids(y_true, num_classes)  # -1 for a float id like 2.7.
    count_out_of_range(ids, num_classes)  # Raises when concrete.
    return ops.one_hot(ids, num_classes, dtype=dtype)


_PROBABILITY_TOLERANCE = 1e-3  # on each value; 1e-2 on row sums
# (bfloat16 softmax rows sum to 1 within ~0.4%).


def probability_rows(y_pred):
    """`(...,)` bool: the rows (last axis) of `y_pred` `(..., C)` that are
    probability distributions (every value in [0, 1] and a sum of 1,
    within the tolerances; a NaN row is not): what the calibration metrics
    and the losses tell softmax outputs from logits by."""
    y_pred = ops.cast(ops.convert_to_tensor(y_pred), "float32")
    tol = _PROBABILITY_TOLERANCE
    inside = ops.logical_and(y_pred >= -tol, y_pred <= 1.0 + tol)
    return ops.logical_and(
        ops.all(inside, axis=-1),
        ops.abs(ops.sum(y_pred, axis=-1) - 1.0) <= 10 * tol)


def concrete_value(x):
    """`x` as NumPy when its values are at hand in host memory, else None
    (symbolic or traced tensors; PyTorch tensors on an accelerator, which
    Keras' eager PyTorch steps would have to wait for)."""
    device = getattr(x, "device", None)
    if getattr(device, "type", "cpu") != "cpu":
        return None
    try:
        return np.asarray(ops.convert_to_numpy(x))
    except Exception:  # Symbolic / traced tensor: no concrete values.
        return None
