"""How an epoch splits into global batches (NumPy only).

Both input executors (`balpoe_keras.data.tfdata`, `balpoe_keras.data.arrays`)
and the trainers count steps with `compute_steps_per_epoch`, so "an epoch"
means the same everywhere.
"""


def compute_steps_per_epoch(num_examples, global_batch_size,
                            drop_remainder=False):
    """Batches in an epoch of `num_examples` examples.

    The reference keeps the last partial batch (`drop_last=False`); with
    several devices the runner drops it (`drop_remainder=True`) so every
    device gets an equal share.

    Args:
        num_examples: int, training examples per epoch.
        global_batch_size: int, examples per step over all devices.
        drop_remainder: bool, drop the last partial batch.

    Returns:
        int.
    """
    if drop_remainder:
        return num_examples // global_batch_size
    return -(-num_examples // global_batch_size)
