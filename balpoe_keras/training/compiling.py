"""`compile_balpoe`: loss/metric wiring, XLA and mixed precision.

Mixed precision must be chosen BEFORE the model is built (layers take their
dtype policy at construction), so build inside `mixed_precision_scope`:

    with mixed_precision_scope("mixed_bfloat16"):
        model = build_balpoe_resnet32(100)
    compile_balpoe(model, class_counts=counts, optimizer=TorchSGD(sched),
                   mixed_precision="mixed_bfloat16")

With `"mixed_float16"` Keras wraps the optimizer in a
`keras.optimizers.LossScaleOptimizer` at compile time (dynamic loss
scaling); losses and metrics are computed in float32.
"""

import contextlib

import keras

from balpoe_keras.models import compile_defaults

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


def compile_balpoe(
    model,
    *,
    class_counts,
    optimizer,
    lambdas=(1.0, 0.0, -1.0),
    allow_unbalanced=False,
    metrics=("accuracy",),
    track_expert_losses=True,
    jit_compile="auto",
    steps_per_execution=1,
    mixed_precision=None,
):
    """Compiles a BalPoE model (docs/ARCHITECTURE.md wiring).

    `loss={"logits": None, "expert_logits": BalPoELoss(...)}`, `metrics` on
    `"logits"`, and (optionally) one `ExpertLoss` per expert on
    `"expert_logits"` (`models.compile_defaults`, as
    `BalPoEClassifier.compile`). For models that do not hold their class
    counts, e.g. from `add_balpoe_heads`; a `BalPoEClassifier` needs only
    `model.compile(optimizer=...)`. Fit with dict targets
    (`balpoe_targets(y)`).

    Args:
        model: a built BalPoE `keras.Model` with outputs `"logits"` `(B, C)`
            and `"expert_logits"` `(B, M, C)`.
        class_counts: `C` training counts.
        optimizer: a Keras optimizer (e.g. `TorchSGD`).
        lambdas: `M` per-expert lambdas.
        allow_unbalanced: bool, passed to `BalPoELoss`.
        metrics: metrics for the `"logits"` output, or `"auto"` for
            `compile_defaults.make_ensemble_metrics(class_counts)`.
        track_expert_losses: bool, add `ExpertLoss` for each expert.
        jit_compile: `"auto"`, True or False (XLA on TF/JAX).
        steps_per_execution: int, steps per compiled call.
        mixed_precision: optional policy name the model must have been
            built with; checked so a forgotten `mixed_precision_scope`
            fails loudly.

    Returns:
        The compiled `model`.
    """
    if mixed_precision is not None:
        _validate_policy(mixed_precision)
        if model.dtype_policy.name != mixed_precision:
            raise ValueError(
                f"mixed_precision={mixed_precision!r} but the model was "
                f"built with dtype policy {model.dtype_policy.name!r}. Build "
                "the model inside `mixed_precision_scope(...)` (or after "
                "keras.config.set_dtype_policy) so its layers use it."
            )
    loss = compile_defaults.make_balpoe_loss(
        class_counts, lambdas, allow_unbalanced=allow_unbalanced)
    compiled_metrics = compile_defaults.make_balpoe_metrics(
        class_counts, lambdas, ensemble_metrics=metrics,
        track_expert_losses=track_expert_losses)
    model.compile(
        optimizer=optimizer,
        loss=loss,
        metrics=compiled_metrics,
        jit_compile=jit_compile,
        steps_per_execution=steps_per_execution,
    )
    return model


def _validate_policy(policy):
    if policy not in MIXED_PRECISION_POLICIES:
        raise ValueError(
            f"Unknown mixed precision policy {policy!r}. Use one of "
            f"{MIXED_PRECISION_POLICIES}."
        )

