"""Per-epoch learning-rate schedules of the reference (reference `train.py`).

The reference steps its PyTorch scheduler once per *epoch*. Here the
schedules are `keras.optimizers.schedules.LearningRateSchedule`s of the
optimizer step, constant within an epoch: the 0-based epoch is
`e = floor(step / steps_per_epoch)`. Because the position is the optimizer's
`iterations` variable, it is saved with the optimizer and restored on resume
(the reference's `base_trainer.py` forgets its scheduler state on resume).
"""

import math

import keras
from keras import ops


def _validate_positive_int(value, name):
    if int(value) != value or value < 1:
        raise ValueError(
            f"Expected {name} to be an integer >= 1. Received: {name}={value}"
        )
    return int(value)


def _epoch_index(step, steps_per_epoch):
    """0-based epoch `floor(step / steps_per_epoch)` as a float32 tensor."""
    step = ops.cast(step, "float32")
    return ops.floor(ops.divide(step, float(steps_per_epoch)))


@keras.saving.register_keras_serializable(package="balpoe_keras")
class WarmupStepSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up then step decay, constant within each epoch.

    The reference's `CustomLR` (a `LambdaLR`): for the 0-based epoch `e`,
    `factor = 1` for `e < step_epochs[0]`, `gamma` from `step_epochs[0]`,
    `gamma**2` from `step_epochs[1]` (one power of `gamma` per boundary
    passed); if `e < warmup_epochs` it is also multiplied by
    `(e + 1) / warmup_epochs`. `lr = base_lr * factor`.

    CIFAR standard (`base_lr=0.1`, warm-up 5, steps 160/180): lr for the
    1-based epochs 1-5 is 0.02, 0.04, 0.06, 0.08, 0.1; 0.1 up to epoch 160;
    0.01 for 161-180; 0.001 for 181-200.

    Args:
        base_lr: float, peak learning rate.
        steps_per_epoch: int, optimizer steps per epoch (the number of
            batches, last partial batch included).
        warmup_epochs: int >= 0, epochs of linear warm-up (0 = none).
        step_epochs: increasing 0-based epoch indices where the LR is
            multiplied by `gamma` (the reference's `step1`, `step2`).
        gamma: float, the decay factor at each step.
        name: schedule name.
    """

    def __init__(
        self,
        base_lr,
        steps_per_epoch,
        warmup_epochs=5,
        step_epochs=(160, 180),
        gamma=0.1,
        name="warmup_step_schedule",
    ):
        super().__init__()
        if not base_lr > 0:
            raise ValueError(f"Expected base_lr > 0. Received: {base_lr}")
        if int(warmup_epochs) != warmup_epochs or warmup_epochs < 0:
            raise ValueError(
                "Expected warmup_epochs to be an integer >= 0. "
                f"Received: warmup_epochs={warmup_epochs}"
            )
        steps = [int(s) for s in step_epochs]
        increasing = all(b > a for a, b in zip(steps, steps[1:]))
        if not increasing or any(s < 0 for s in steps):
            raise ValueError(
                "Expected step_epochs to be non-negative and strictly "
                f"increasing. Received: step_epochs={step_epochs}"
            )
        self.base_lr = float(base_lr)
        self.steps_per_epoch = _validate_positive_int(
            steps_per_epoch, "steps_per_epoch"
        )
        self.warmup_epochs = int(warmup_epochs)
        self.step_epochs = steps
        self.gamma = float(gamma)
        self.name = name

    def __call__(self, step):
        epoch = _epoch_index(step, self.steps_per_epoch)
        factor = ops.ones_like(epoch)
        for boundary in self.step_epochs:
            factor = ops.where(epoch >= boundary, factor * self.gamma, factor)
        if self.warmup_epochs > 0:
            warm = (epoch + 1.0) / float(self.warmup_epochs)
            factor = ops.where(
                epoch < self.warmup_epochs, factor * warm, factor
            )
        return ops.multiply(factor, self.base_lr)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "warmup_epochs": self.warmup_epochs,
            "step_epochs": list(self.step_epochs),
            "gamma": self.gamma,
            "name": self.name,
        }


@keras.saving.register_keras_serializable(package="balpoe_keras")
class CosineEpochSchedule(keras.optimizers.schedules.LearningRateSchedule):
    """Per-epoch cosine annealing without warm-up (PyTorch CosineAnnealingLR).

    For the 0-based epoch `e`:
    `lr = eta_min + 0.5 * (base_lr - eta_min) * (1 + cos(pi * e / T))` with
    `T = total_epochs`. ImageNet-LT (`base_lr=0.025`, `T=180`): epoch 1 (e=0)
    0.025, epoch 91 (e=90) 0.0125, epoch 180 (e=179) ~1.9e-6.

    Args:
        base_lr: float, initial learning rate.
        steps_per_epoch: int, optimizer steps per epoch.
        total_epochs: int, `T_max` in epochs (the run length in the
            reference configs).
        eta_min: float, final learning rate.
        name: schedule name.
    """

    def __init__(
        self,
        base_lr,
        steps_per_epoch,
        total_epochs,
        eta_min=0.0,
        name="cosine_epoch_schedule",
    ):
        super().__init__()
        if not base_lr > 0 or not 0 <= eta_min <= base_lr:
            raise ValueError(
                "Expected base_lr > 0 and 0 <= eta_min <= base_lr. "
                f"Received: base_lr={base_lr}, eta_min={eta_min}"
            )
        self.base_lr = float(base_lr)
        self.steps_per_epoch = _validate_positive_int(
            steps_per_epoch, "steps_per_epoch"
        )
        self.total_epochs = _validate_positive_int(
            total_epochs, "total_epochs"
        )
        self.eta_min = float(eta_min)
        self.name = name

    def __call__(self, step):
        epoch = _epoch_index(step, self.steps_per_epoch)
        cosine = ops.cos(epoch * (math.pi / self.total_epochs))
        amplitude = 0.5 * (self.base_lr - self.eta_min)
        return self.eta_min + amplitude * (1.0 + cosine)

    def get_config(self):
        return {
            "base_lr": self.base_lr,
            "steps_per_epoch": self.steps_per_epoch,
            "total_epochs": self.total_epochs,
            "eta_min": self.eta_min,
            "name": self.name,
        }
