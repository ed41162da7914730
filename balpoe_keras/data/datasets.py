"""The long-tailed benchmarks: one registry of their facts (NumPy only).

One place for each dataset's facts: its source (`balpoe_keras.data.sources`),
classes, image size and channels, default recipe, pixel statistics,
default imbalance ratio and architecture, test split, export
preprocessing and the training settings of its reference configuration.
"""

import dataclasses

from balpoe_keras.data.test_distributions import DEFAULT_RATIOS

# Per-channel statistics of `[0, 1]` pixels, normalised inside the model
# (the reference's `cifar_data_loaders.py` uses the CIFAR-10 statistics for
# CIFAR-10 and CIFAR-100 alike).
CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2023, 0.1994, 0.2010)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclasses.dataclass(frozen=True)
class DatasetSpec:
    """Static facts of a long-tailed benchmark.

    Attributes:
        source: `balpoe_keras.data.sources.SOURCES` name of its loader.
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
        test_ratios: imbalance ratios of the forward / backward test sets
            (`test_distributions.make_test_distributions`): the
            reference's 50, 25, 10, 5, 2; iNaturalist's 3, 2 (3 validation
            images per class).
        training: `((setting, value), ...)`, the reference configuration's
            training settings where they differ from the CIFAR-100-LT
            standard ones (`balpoe_keras.experiments.config`), keyed by
            `ExperimentConfig` field.
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
    test_ratios: tuple = DEFAULT_RATIOS
    training: tuple = ()

    @property
    def export_preprocess(self):
        """SavedModel resizing (`preprocess_for_size`)."""
        return preprocess_for_size(self.image_size)


_CIFAR = dict(image_size=32, channels=3, train_recipe="cifar_standard",
              pixel_mean=CIFAR_MEAN, pixel_std=CIFAR_STD)
_LARGE = dict(image_size=224, channels=3, imbalance_ratio=0.0,
              architecture="resnet50")
# The reference configurations (configs/mixup/standard_training): CIFAR-10
# mixes with alpha 0.8; ImageNet-LT and iNaturalist train with a cosine
# schedule, their own batch, learning rate and lambdas (ImageNet-LT's
# 1, -0.25, -1.5 average -0.25, as in the paper).
_CIFAR10_TRAINING = (("mixup_alpha", 0.8),)
_IMAGENET_TRAINING = (
    ("mixup_alpha", 0.3), ("lambda_max", 1.0), ("lambda_min", -1.5),
    ("allow_unbalanced_lambdas", True), ("epochs", 180),
    ("global_batch_size", 64), ("learning_rate", 0.025),
    ("schedule", "cosine"), ("warmup_epochs", 0))
_INAT_TRAINING = (
    ("mixup_alpha", 0.2), ("lambda_max", 2.0), ("lambda_min", -2.0),
    ("epochs", 100), ("global_batch_size", 512), ("learning_rate", 0.2),
    ("weight_decay", 2e-4), ("schedule", "cosine"), ("warmup_epochs", 0))
DATASETS = {
    "cifar10_lt": DatasetSpec("cifar10", 10, **_CIFAR,
                              training=_CIFAR10_TRAINING),
    "cifar100_lt": DatasetSpec("cifar100", 100, **_CIFAR),
    "cifar10_lt_folder": DatasetSpec("cifar10_folder", 10, **_CIFAR,
                                     training=_CIFAR10_TRAINING),
    # Fashion-MNIST train statistics (not a reference setting).
    "fashion_mnist_lt": DatasetSpec(
        "fashion_mnist", 10, 28, 1, "cifar_standard", (0.2860,), (0.3530,)),
    "imagenet_lt": DatasetSpec("imagenet_lt", 1000, **_LARGE,
                               train_recipe="imagenet_standard",
                               pixel_mean=IMAGENET_MEAN,
                               pixel_std=IMAGENET_STD,
                               training=_IMAGENET_TRAINING),
    "inaturalist2018": DatasetSpec(
        "inaturalist2018", 8142, **_LARGE, train_recipe="inaturalist_standard",
        pixel_mean=(0.466, 0.471, 0.380), pixel_std=(0.195, 0.194, 0.192),
        test_split="val", test_ratios=(3, 2), training=_INAT_TRAINING),
}

def preprocess_for_size(image_size):
    """How a new image of any size becomes a model input of `image_size`
    px (`balpoe_keras.data.image_file.resize_image` modes): small inputs
    (`<= IN_MEMORY_MAX_SIDE`) are resized whole, larger ones resized and
    centre-cropped (the reference's test transform). Used by the SavedModel
    export and `predict`."""
    if image_size <= IN_MEMORY_MAX_SIDE:
        return "resize"
    return "resize_center_crop"


# A user's own `root/train/<class>/*` folder (`balpoe_keras.data.image_folder`):
# its spec depends on the chosen input size and channels.
IMAGE_FOLDER = "image_folder"
DATASET_NAMES = tuple(DATASETS) + (IMAGE_FOLDER,)
# Image folders with inputs up to this side are decoded into memory (and
# trained on CIFAR's recipe and ResNet-32); larger ones stream from the
# files through tf.data (ImageNet's recipe).
IN_MEMORY_MAX_SIDE = 64


def image_folder_spec(image_size, channels):
    """The `DatasetSpec` of an image folder at `image_size` px, `channels`.

    `num_classes` is 0 (read from the folder); the pixel statistics are
    ImageNet's (their mean over RGB for one channel); small images
    (`<= IN_MEMORY_MAX_SIDE`) get the CIFAR recipe and ResNet-32, larger
    ones ImageNet's recipe and ResNet-50 at 224 px (its fixed 7x7 pooling),
    ResNet-32 at other sizes. Counts are the folder's (`imbalance_ratio`
    0), and the test set is `test/` or `val/` (or a hold-out).
    """
    small = image_size <= IN_MEMORY_MAX_SIDE
    mean, std = IMAGENET_MEAN, IMAGENET_STD
    if channels == 1:
        mean = (round(sum(mean) / 3, 4),)
        std = (round(sum(std) / 3, 4),)
    return DatasetSpec(
        IMAGE_FOLDER, 0, image_size, channels,
        train_recipe="cifar_standard" if small else "imagenet_standard",
        pixel_mean=mean, pixel_std=std, imbalance_ratio=0.0,
        architecture="resnet50" if image_size == 224 else "resnet32")
