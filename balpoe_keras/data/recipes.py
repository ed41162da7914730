"""TensorFlow-only: named augmentation recipes (train and eval transforms).

A recipe maps a uint8 `(H, W, channels)` image and a `(2,)` seed to a
float32 image in `[0, 1]` (reference `cifar_data_loaders.py`, `others.py`):

- `"none"`: no augmentation;
- `"cifar_crop_flip"`: pad-4 random crop and flip only (what the reference
  code applies for CIFAR-10 long training, reference `cifar_data_loaders.py`);
- `"cifar_standard"`: pad-4 random crop, flip, rotation U[-15, 15] deg
  (nearest, zero fill);
- `"cifar_autoaugment"`: crop, flip, AutoAugment CIFAR10Policy (long
  training); `"cifar_autoaugment_cutout"` adds Cutout(16);
- `"imagenet_standard"`: RandomResizedCrop(size), flip, ColorJitter(0.4,
  0.4, 0.4, 0); `"inaturalist_standard"`: the same without ColorJitter;
- `"imagenet_randaugment"`: imagenet_standard + RandAugment n2 m10 mstd0.5.

Eval: CIFAR recipes and `"none"` only convert to float; ImageNet/iNat
recipes resize the shorter side to `size * 256 / 224` and centre-crop
`size`.
"""

from balpoe_keras.data import augment
from balpoe_keras.data.autoaugment import cifar10_policy
from balpoe_keras.data.randaugment import rand_augment

RECIPES = ("none", "cifar_crop_flip", "cifar_standard", "cifar_autoaugment",
           "cifar_autoaugment_cutout", "imagenet_standard",
           "inaturalist_standard", "imagenet_randaugment")
_LARGE = ("imagenet_standard", "inaturalist_standard",
          "imagenet_randaugment")


def validate_recipe(recipe):
    """Returns `recipe` or raises a ValueError listing `RECIPES`."""
    if recipe not in RECIPES:
        raise ValueError(f"Unknown recipe {recipe!r}. Expected one of "
                         f"{RECIPES}.")
    return recipe


def get_train_transform(recipe, image_size=224):
    """`fn(image_uint8, seed) -> float32 image in [0, 1]` for `recipe`.

    Args:
        recipe: one of `RECIPES`.
        image_size: output side of the ImageNet/iNat recipes.
    """
    validate_recipe(recipe)

    def transform(image, seed):
        seeds = augment.split_seed(seed, 6)
        if recipe in _LARGE:
            image = augment.random_resized_crop(image, seeds[0], image_size)
            image = augment.random_flip(image, seeds[1])
            if recipe != "inaturalist_standard":
                image = augment.color_jitter(image, seeds[2])
            if recipe == "imagenet_randaugment":
                image = rand_augment(image, seeds[3])
            return augment.to_float(image)
        if recipe != "none":
            image = augment.random_crop_with_padding(image, seeds[0])
            image = augment.random_flip(image, seeds[1])
        if recipe == "cifar_standard":
            image = augment.random_rotation(image, seeds[2])
        if recipe.startswith("cifar_autoaugment"):
            image = cifar10_policy(image, seeds[3])
        image = augment.to_float(image)
        if recipe == "cifar_autoaugment_cutout":
            image = augment.cutout(image, seeds[4])
        return image

    return transform


def get_eval_transform(recipe, image_size=224):
    """`fn(image_uint8) -> float32 image in [0, 1]` for `recipe`."""
    validate_recipe(recipe)
    if recipe not in _LARGE:
        return augment.to_float
    resize = int(round(image_size * 256 / 224))

    def transform(image):
        image = augment.resize_and_center_crop(image, resize, image_size)
        return augment.to_float(image)

    return transform
