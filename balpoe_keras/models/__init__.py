"""BalPoE models (backend-agnostic, keras.ops only).

`BalPoEClassifier` is the model: a backbone plus expert heads, knowing its
class counts and lambdas. It takes float images `(batch, H, W, channels)`
with pixels in `[0, 1]`; `model(x)` returns `{"logits": (batch, C),
"expert_logits": (batch, M, C)}`, `predict` the ensemble logits. Build it by
architecture name (`build_balpoe_classifier`) or on your own backbone
(`add_balpoe_heads`); the `build_*_backbone` functions give the trunks.
"""

from balpoe_keras.models.balpoe import BACKBONES
from balpoe_keras.models.balpoe import add_balpoe_heads
from balpoe_keras.models.balpoe import build_balpoe_backbone
from balpoe_keras.models.balpoe import build_balpoe_classifier
from balpoe_keras.models.balpoe_classifier import BalPoEClassifier
from balpoe_keras.models.components import CIFAR_MEAN
from balpoe_keras.models.components import CIFAR_STD
from balpoe_keras.models.components import IMAGENET_MEAN
from balpoe_keras.models.components import IMAGENET_STD
from balpoe_keras.models.components import OptionAShortcut
from balpoe_keras.models.components import PixelNormalization
from balpoe_keras.models.heads import EXPERT_LOGITS
from balpoe_keras.models.heads import LOGITS
from balpoe_keras.models.resnet_cifar import build_resnet32_backbone
from balpoe_keras.models.resnet_imagenet import build_resnet50_backbone
from balpoe_keras.models.resnet_imagenet import build_resnext50_backbone

__all__ = [
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
    "build_balpoe_backbone",
    "build_balpoe_classifier",
    "build_resnet32_backbone",
    "build_resnet50_backbone",
    "build_resnext50_backbone",
]
