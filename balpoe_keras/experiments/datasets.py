"""The dataset and architecture registry of the experiment runner.

One place for each dataset's facts: classes, image size and channels,
default recipe, pixel statistics, default imbalance ratio and
architecture, test split, TensorFlow-free loader and export preprocessing;
and for each architecture, the stages its experts share in the reference.
"""

import dataclasses

from balpoe_keras.models import CIFAR_MEAN
from balpoe_keras.models import CIFAR_STD
from balpoe_keras.models import IMAGENET_MEAN
from balpoe_keras.models import IMAGENET_STD


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts of a long-tailed benchmark.

    Attributes:
        source: `balpoe_keras.data.get_source` name (TensorFlow loaders).
        num_classes: int, `C`.
        image_size: int, side of the square model input in pixels.
        channels: int, image channels.
        train_recipe: default augmentation recipe.
        pixel_mean, pixel_std: per-channel statistics of `[0, 1]` pixels,
            normalised inside the model.
        imbalance_ratio: default ratio of the exponential long-tailed
            subset built from a balanced train set; 0 when the train list
            is long-tailed as distributed (ImageNet-LT, iNaturalist).
        architecture: default backbone.
        test_split: split used as the balanced test set.
        array_source: `balpoe_keras.arrays.sources` loader that reads the
            data without TensorFlow, or None.
    """

    source: str
    num_classes: int
    image_size: int
    channels: int
    train_recipe: str
    pixel_mean: tuple
    pixel_std: tuple
    imbalance_ratio: float = 100.0
    architecture: str = "resnet32"
    test_split: str = "test"
    array_source: str = None

    @property
    def export_preprocess(self):
        """SavedModel resizing: small images are resized whole, large ones
        resized and centre-cropped (the reference's test transform)."""
        return "resize" if self.image_size < 64 else "resize_center_crop"


_CIFAR = dict(image_size=32, channels=3, train_recipe="cifar_standard",
              pixel_mean=CIFAR_MEAN, pixel_std=CIFAR_STD)
_LARGE = dict(image_size=224, channels=3, imbalance_ratio=0.0,
              architecture="resnet50")
DATASETS = {
    "cifar10_lt": DatasetSpec("cifar10", 10, **_CIFAR),
    "cifar100_lt": DatasetSpec("cifar100", 100, **_CIFAR),
    "cifar10_lt_folder": DatasetSpec("cifar10_folder", 10, **_CIFAR,
                                     array_source="cifar10_folder"),
    # Fashion-MNIST train statistics (not a reference setting).
    "fashion_mnist_lt": DatasetSpec(
        "fashion_mnist", 10, 28, 1, "cifar_standard", (0.2860,), (0.3530,),
        array_source="fashion_mnist"),
    "imagenet_lt": DatasetSpec("imagenet_lt", 1000, **_LARGE,
                               train_recipe="imagenet_standard",
                               pixel_mean=IMAGENET_MEAN,
                               pixel_std=IMAGENET_STD),
    "inaturalist2018": DatasetSpec(
        "inaturalist2018", 8142, **_LARGE, train_recipe="inaturalist_standard",
        pixel_mean=(0.466, 0.471, 0.380), pixel_std=(0.195, 0.194, 0.192),
        test_split="val"),
}
# Architecture -> residual stages all experts share in the reference
# (stem + layer1 for ResNet-32, stem + layer1 + layer2 for the others).
ARCHITECTURES = {"resnet32": 1, "resnet50": 2, "resnext50": 2}
# Names of balpoe_keras.data.recipes.RECIPES (kept here so validation needs
# no TensorFlow; a test checks they agree).
RECIPES = ("none", "cifar_crop_flip", "cifar_standard", "cifar_autoaugment",
           "cifar_autoaugment_cutout", "imagenet_standard",
           "inaturalist_standard", "imagenet_randaugment")
# Recipe -> rotation range of the in-memory path (`balpoe_keras.arrays`),
# which implements the CIFAR crop/flip(/rotation) recipes only.
ARRAYS_RECIPES = {"cifar_standard": 15.0, "cifar_crop_flip": 0.0,
                  "none": None}
