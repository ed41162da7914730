"""TensorFlow-only: the per-image transform of each recipe.

`get_train_transform(recipe)` maps a uint8 `(H, W, channels)` image and a
`(2,)` seed to a float32 image in `[0, 1]`, doing what the recipe's
`balpoe_keras.data.recipes.Recipe` says; `get_eval_transform(recipe)`
converts (and, for large images, resizes and centre-crops).
"""

from balpoe_keras.data.image_file import center_crop_resize
from balpoe_keras.data.recipes import get_recipe
from balpoe_keras.data.tfdata import augment
from balpoe_keras.data.tfdata.autoaugment import cifar10_policy
from balpoe_keras.data.tfdata.randaugment import rand_augment


def get_train_transform(recipe, image_size=224):
    """`fn(image_uint8, seed) -> float32 image in [0, 1]` for `recipe`.

    Args:
        recipe: a name in `balpoe_keras.data.recipes.RECIPES`.
        image_size: output side of the resized-crop (large-image) recipes.
    """
    spec = get_recipe(recipe)

    def transform(image, seed):
        seeds = augment.split_seed(seed, 6)
        if spec.resized_crop:
            image = augment.random_resized_crop(image, seeds[0], image_size)
            image = augment.random_flip(image, seeds[1])
            if spec.color_jitter:
                image = augment.color_jitter(image, seeds[2])
            if spec.rand_augment:
                image = rand_augment(image, seeds[3])
            return augment.to_float(image)
        if spec.crop_padding is not None:
            image = augment.random_crop_with_padding(image, seeds[0],
                                                     spec.crop_padding)
            image = augment.random_flip(image, seeds[1])
        if spec.max_degrees:
            image = augment.random_rotation(image, seeds[2],
                                            spec.max_degrees)
        if spec.autoaugment:
            image = cifar10_policy(image, seeds[3])
        image = augment.to_float(image)
        if spec.cutout:
            image = augment.cutout(image, seeds[4], spec.cutout)
        return image

    return transform


def get_eval_transform(recipe, image_size=224):
    """`fn(image_uint8) -> float32 image in [0, 1]` for `recipe`."""
    if not get_recipe(recipe).resized_crop:
        return augment.to_float
    resize = center_crop_resize(image_size)  # 256 for 224.

    def transform(image):
        image = augment.resize_and_center_crop(image, resize, image_size)
        return augment.to_float(image)

    return transform
