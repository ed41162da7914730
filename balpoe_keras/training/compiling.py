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

from balpoe_keras import class_prior
from balpoe_keras.losses import BalPoELoss
from balpoe_keras.losses import logit_adjusted_crossentropy

MIXED_PRECISION_POLICIES = ("float32", "mixed_bfloat16", "mixed_float16")


@keras.saving.register_keras_serializable(package="balpoe_keras")
class ExpertLoss(keras.metrics.Mean):
    """Running mean of one expert's gLA loss, for per-expert logging.

    Attach it to the `"expert_logits"` output; it then shows in the logs as
    `expert_logits_expert_<i>_loss` (the reference's `loss_e_i`,
    `--track_expert_losses`).

    Args:
        expert_index: int, which expert `m` (0 = head expert).
        class_counts: `C` positive training counts.
        lambdas: the `M` per-expert lambdas of the model's `BalPoELoss`.
        name: metric name; default `expert_<i>_loss`.
        dtype: metric dtype.

    Call arguments (`update_state`):
        y_true: `(B,)` int labels or `(B, C)` soft labels.
        y_pred: `(B, M, C)` expert logits.
        sample_weight: optional `(B,)` weights.
    """

    def __init__(
        self, expert_index, class_counts, lambdas, name=None, dtype=None
    ):
        lambdas = class_prior.validate_lambdas(lambdas, allow_unbalanced=True)
        if not 0 <= int(expert_index) < len(lambdas):
            raise ValueError(
                f"expert_index={expert_index} is out of range for "
                f"{len(lambdas)} lambdas. Use 0 <= expert_index < "
                f"{len(lambdas)}."
            )
        expert_index = int(expert_index)
        name = name or f"expert_{expert_index}_loss"
        super().__init__(name=name, dtype=dtype)
        self.expert_index = expert_index
        self.class_counts = class_prior.validate_class_counts(class_counts)
        self.lambdas = lambdas
        self._log_prior = class_prior.compute_log_prior(self.class_counts)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if len(y_pred.shape) != 3 or y_pred.shape[1] != len(self.lambdas):
            raise ValueError(
                f"ExpertLoss expects (batch, {len(self.lambdas)}, C) expert "
                f"logits; received shape {tuple(y_pred.shape)}. Attach it to "
                "the 'expert_logits' output."
            )
        logits = y_pred[:, self.expert_index, :]
        tau = 1.0 - self.lambdas[self.expert_index]
        values = logit_adjusted_crossentropy(
            y_true, logits, self._log_prior, tau
        )
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        return {
            "expert_index": self.expert_index,
            "class_counts": self.class_counts,
            "lambdas": self.lambdas,
            "name": self.name,
            "dtype": self.dtype,
        }


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
    float32 run (benchmarks/RESULTS.md, "bfloat16 accuracy").
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
    `"expert_logits"`. Fit with dict targets (`balpoe_targets(y)`).

    Args:
        model: a built BalPoE `keras.Model` with outputs `"logits"` `(B, C)`
            and `"expert_logits"` `(B, M, C)`.
        class_counts: `C` training counts.
        optimizer: a Keras optimizer (e.g. `TorchSGD`).
        lambdas: `M` per-expert lambdas.
        allow_unbalanced: bool, passed to `BalPoELoss`.
        metrics: metrics for the `"logits"` output.
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
    loss = BalPoELoss(class_counts, lambdas, allow_unbalanced=allow_unbalanced)
    compiled_metrics = {"logits": list(metrics)}
    if track_expert_losses:
        compiled_metrics["expert_logits"] = [
            ExpertLoss(i, loss.class_counts, loss.lambdas)
            for i in range(len(loss.lambdas))
        ]
    model.compile(
        optimizer=optimizer,
        loss={"logits": None, "expert_logits": loss},
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

