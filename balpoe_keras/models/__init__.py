"""BalPoE models (backend-agnostic, keras.ops only).

Every model takes float images `(batch, H, W, channels)` with pixels in
`[0, 1]` and returns `{"logits": (batch, C), "expert_logits": (batch, M, C)}`.
`BalPoEClassifier` is the task model (backbone + expert heads, knowing its
class counts and lambdas); the `build_balpoe_*` builders return the same
networks as plain functional models.
"""

from balpoe_keras.models.balpoe import ARCHITECTURES
from balpoe_keras.models.balpoe import BACKBONES
from balpoe_keras.models.balpoe import build_balpoe_backbone
from balpoe_keras.models.balpoe import build_balpoe_classifier
from balpoe_keras.models.balpoe import build_balpoe_resnet
from balpoe_keras.models.balpoe_classifier import BalPoEClassifier
from balpoe_keras.models.components import CIFAR_MEAN
from balpoe_keras.models.components import CIFAR_STD
from balpoe_keras.models.components import IMAGENET_MEAN
from balpoe_keras.models.components import IMAGENET_STD
from balpoe_keras.models.components import OptionAShortcut
from balpoe_keras.models.components import PixelNormalization
from balpoe_keras.models.heads import EXPERT_LOGITS
from balpoe_keras.models.heads import LOGITS
from balpoe_keras.models.heads import add_balpoe_heads
from balpoe_keras.models.heads import apply_expert_heads
from balpoe_keras.models.heads import balpoe_targets
from balpoe_keras.models.resnet_cifar import build_balpoe_resnet32
from balpoe_keras.models.resnet_cifar import build_resnet32_backbone
from balpoe_keras.models.resnet_imagenet import build_balpoe_resnet50
from balpoe_keras.models.resnet_imagenet import build_balpoe_resnext50
from balpoe_keras.models.resnet_imagenet import build_resnet50_backbone
from balpoe_keras.models.resnet_imagenet import build_resnext50_backbone

__all__ = [
    "ARCHITECTURES",
    "BACKBONES",
    "BalPoEClassifier",
    "CIFAR_MEAN",
    "CIFAR_STD",
    "EXPERT_LOGITS",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "LOGITS",
    "OptionAShortcut",
    "PixelNormalization",
    "add_balpoe_heads",
    "apply_expert_heads",
    "balpoe_targets",
    "build_balpoe_backbone",
    "build_balpoe_classifier",
    "build_balpoe_resnet",
    "build_balpoe_resnet32",
    "build_balpoe_resnet50",
    "build_balpoe_resnext50",
    "build_resnet32_backbone",
    "build_resnet50_backbone",
    "build_resnext50_backbone",
]
