"""Optimizers and learning-rate schedules (backend-agnostic, registered).

- `TorchSGD`: PyTorch's SGD (coupled weight decay, PyTorch's Nesterov),
  the reference's optimizer;
- `WarmupStepSchedule`, `CosineEpochSchedule`: the reference's per-epoch
  schedules as functions of the optimizer step.

Both are saved inside compiled `.keras` files, so `import balpoe_keras`
imports this package to register them. See docs/training.md.
"""

from balpoe_keras.optimizers.schedules import CosineEpochSchedule
from balpoe_keras.optimizers.schedules import WarmupStepSchedule
from balpoe_keras.optimizers.torch_sgd import TorchSGD

__all__ = ["CosineEpochSchedule", "TorchSGD", "WarmupStepSchedule"]
