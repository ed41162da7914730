"""What `BalPoEClassifier.compile()` uses by default (`"auto"`): the loss
on the expert logits, the report metrics on the ensemble logits, the
reference's optimizer."""

from balpoe_keras import class_prior
from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import GroupAccuracy


def make_balpoe_loss(class_counts, lambdas, *, allow_unbalanced=False):
    """`BalPoELoss(class_counts, lambdas)`: the mean of the experts' gLA
    losses on the expert logits (paper eq. 12); the ensemble is not
    trained directly.

    Args:
        class_counts: `C` positive training counts.
        lambdas: `M` per-expert lambdas.
        allow_unbalanced: bool, allow lambdas whose mean is not 0.
    """
    return BalPoELoss(class_counts, lambdas,
                      allow_unbalanced=allow_unbalanced)


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


def make_default_optimizer():
    """The reference's optimizer: `TorchSGD()` (PyTorch's SGD, momentum
    0.9, Nesterov, coupled weight decay 5e-4) at a constant learning rate
    of 0.1, the reference's CIFAR rate at batch size 128; pass your own
    `TorchSGD(schedule)` for its warm-up and decay."""
    # Imported here: `balpoe_keras.training` imports the models package.
    from balpoe_keras.optimizers import TorchSGD

    return TorchSGD()
