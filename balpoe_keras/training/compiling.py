"""Mixed precision: which policy to train in, and a scope to build in.

Mixed precision must be chosen BEFORE the model is built (layers take their
dtype policy at construction), so build inside `mixed_precision_scope`:

    with mixed_precision_scope("mixed_bfloat16"):
        model = build_balpoe_classifier("resnet32", counts)
    model.compile(optimizer=TorchSGD(schedule))

With `"mixed_float16"` Keras wraps the optimizer in a
`keras.optimizers.LossScaleOptimizer` at compile time (dynamic loss
scaling); losses and metrics are computed in float32.
"""

import contextlib

import keras

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True if this CPU computes bfloat16 natively (AVX512_BF16 or AMX).

    Read from the CPU flags (`/proc/cpuinfo`, Linux); False where they
    cannot be read. Detected, never assumed: machines of one kind differ.
    """
    try:
        with open(cpuinfo) as f:
            flags = set(f.read().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16"})


def resolve_mixed_precision(policy="auto"):
    """The Keras dtype policy for `policy`, `"auto"` resolved.

    `"auto"` is `"mixed_bfloat16"` for training on a CPU with native
    bfloat16 (`cpu_has_bfloat16`) on the TensorFlow or PyTorch backend
    (1.5x and 1.6x the float32 images/s there), else `"float32"` (GPUs,
    JAX on a CPU, CPUs without bfloat16 units, where it is emulated). Not
    the runner's default, so that results do not depend on the CPU: on
    four paired 20-epoch CIFAR-10-LT seeds its effect on balanced accuracy
    and ECE was within seed noise, but two of its ECEs lay above every
    float32 run (reproduction/RESULTS.md, "bfloat16 accuracy").
    """
    if policy != "auto":
        _validate_policy(policy)
        return policy
    backend = keras.backend.backend()
    if backend not in ("tensorflow", "torch") or not cpu_has_bfloat16():
        return "float32"
    if _has_gpu(backend):
        return "float32"
    return "mixed_bfloat16"


def _has_gpu(backend):
    if backend == "torch":
        import torch

        return torch.cuda.is_available()
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


@contextlib.contextmanager
def mixed_precision_scope(policy="mixed_bfloat16"):
    """Sets Keras' global dtype policy inside the block, then restores it.

    Args:
        policy: one of `"float32"`, `"mixed_bfloat16"`, `"mixed_float16"`.
    """
    _validate_policy(policy)
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


def _validate_policy(policy):
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(
            f"Unknown mixed precision policy {policy!r}. Use one of "
            f"{MIXED_PRECISION_POLICIES}."
        )

