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


def process_rows(global_batch_size, num_processes=1, process_index=0):
    """The rows `[start, stop)` of every global batch one process feeds.

    In a run of several processes each feeds an equal, contiguous share of
    every global batch (process `p` rows `p B / P` to `(p + 1) B / P`), so
    the processes' batches, in process order, are the global batch.

    Args:
        global_batch_size: int `B`, examples per step over all processes.
        num_processes: int `P >= 1`.
        process_index: int in `[0, P)`.

    Returns:
        `(start, stop)` ints.

    Raises:
        ValueError: naming the values and the fix.
    """
    if int(num_processes) != num_processes or num_processes < 1:
        raise ValueError(
            f"Expected num_processes >= 1. Received: {num_processes!r}")
    if int(process_index) != process_index or not (
            0 <= process_index < num_processes):
        raise ValueError(
            f"Expected 0 <= process_index < num_processes={num_processes}. "
            f"Received: process_index={process_index!r}")
    if global_batch_size % num_processes:
        raise ValueError(
            f"global_batch_size={global_batch_size} is not divisible by "
            f"the {num_processes} processes; each feeds an equal share. Use "
            f"a multiple of {num_processes}.")
    share = global_batch_size // num_processes
    return process_index * share, (process_index + 1) * share
