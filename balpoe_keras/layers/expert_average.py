"""Merge of per-expert logits into the BalPoE ensemble logits."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="balpoe_keras")
class ExpertAverage(keras.layers.Layer):
    """Averages expert logits and exposes them stacked for the loss.

    BalPoE's prediction is the mean of the experts' (unadjusted) logits,
    i.e. a product of experts in probability space (paper eq. 11).

    Input: a list of `M` tensors of shape `(batch, C)`, or one stacked tensor
    `(batch, M, C)`.

    Returns:
        A tuple `(logits, expert_logits)`: the ensemble logits
        `(batch, C)` and the stacked per-expert logits `(batch, M, C)`.

    Computes in float32 unless given another `dtype` (the output layer of
    a mixed-precision model, as Keras recommends).

    Example:
        >>> logits, expert_logits = ExpertAverage()([z0, z1, z2])
    """

    def __init__(self, **kwargs):
        if kwargs.get("dtype") is None:
            kwargs["dtype"] = "float32"  # Not the global mixed policy.
        super().__init__(**kwargs)

    def call(self, inputs):
        if isinstance(inputs, (list, tuple)):
            if not inputs:
                raise ValueError("ExpertAverage needs at least one expert.")
            stacked = ops.stack(list(inputs), axis=1)
        else:
            if len(inputs.shape) != 3:
                raise ValueError(
                    "ExpertAverage expects a list of (batch, C) tensors or a "
                    f"(batch, M, C) tensor. Received shape {inputs.shape}."
                )
            stacked = inputs
        return ops.mean(stacked, axis=1), stacked

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, (list, tuple)) and isinstance(
            input_shape[0], (list, tuple)
        ):
            batch, classes = input_shape[0][0], input_shape[0][-1]
            return (batch, classes), (batch, len(input_shape), classes)
        return (input_shape[0], input_shape[2]), tuple(input_shape)
