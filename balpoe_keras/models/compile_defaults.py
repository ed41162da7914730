"""What a BalPoE model is compiled with by default (`compile("auto")`).

One definition of the loss and metrics of the two outputs, shared by
`BalPoEClassifier.compile` and `training.compile_balpoe` (the path for
models without class counts, e.g. from `add_balpoe_heads`).
"""

from balpoe_keras import class_prior
from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import ExpertLoss
from balpoe_keras.metrics import GroupAccuracy
from balpoe_keras.models.heads import EXPERT_LOGITS
from balpoe_keras.models.heads import LOGITS


def make_balpoe_loss(class_counts, lambdas, *, allow_unbalanced=False):
    """`{"logits": None, "expert_logits": BalPoELoss(...)}`: the loss is on
    the expert logits only (paper eq. 12); the ensemble is not trained.

    Args:
        class_counts: `C` positive training counts.
        lambdas: `M` per-expert lambdas.
        allow_unbalanced: bool, allow lambdas whose mean is not 0.
    """
    loss = BalPoELoss(class_counts, lambdas, allow_unbalanced=allow_unbalanced)
    return {LOGITS: None, EXPERT_LOGITS: loss}


def make_ensemble_metrics(class_counts):
    """The report's metrics on the ensemble logits `(batch, C)`.

    Accuracy, `BalancedAccuracy`, one `GroupAccuracy` per non-empty
    many/medium/few group (`class_prior.compute_shot_groups`) and
    `ExpectedCalibrationError(from_logits=True)`, all in [0, 1].
    """
    counts = class_prior.validate_class_counts(class_counts)
    metrics = ["accuracy", BalancedAccuracy(len(counts))]
    groups = class_prior.compute_shot_groups(counts)
    for group in class_prior.SHOT_GROUPS:
        if groups[group].any():
            metrics.append(GroupAccuracy(counts, group))
    metrics.append(ExpectedCalibrationError(from_logits=True))
    return metrics


def make_balpoe_metrics(class_counts, lambdas, *, ensemble_metrics="auto",
                        track_expert_losses=True):
    """Metrics of the two outputs.

    Args:
        class_counts: `C` positive training counts.
        lambdas: `M` per-expert lambdas (need not average to 0).
        ensemble_metrics: `"auto"` (`make_ensemble_metrics(class_counts)`)
            or a list of metrics for `"logits"`.
        track_expert_losses: bool; if True, `"expert_logits"` gets one
            `ExpertLoss` per expert (logged as
            `expert_logits_expert_<i>_loss`, in nats).

    Returns:
        `{"logits": [...]}` plus `"expert_logits": [...]` when tracked.
    """
    if isinstance(ensemble_metrics, str) and ensemble_metrics == "auto":
        ensemble_metrics = make_ensemble_metrics(class_counts)
    metrics = {LOGITS: list(ensemble_metrics)}
    if track_expert_losses:
        lambdas = class_prior.validate_lambdas(lambdas, allow_unbalanced=True)
        metrics[EXPERT_LOGITS] = [
            ExpertLoss(i, class_counts, lambdas) for i in range(len(lambdas))
        ]
    return metrics


def make_default_optimizer():
    """The reference's optimizer: `TorchSGD()` (PyTorch's SGD, momentum
    0.9, Nesterov, coupled weight decay 5e-4) at a constant learning rate
    of 0.1, the reference's CIFAR rate at batch size 128; pass your own
    `TorchSGD(schedule)` for its warm-up and decay."""
    # Imported here: `balpoe_keras.training` imports the models package.
    from balpoe_keras.optimizers import TorchSGD

    return TorchSGD()
