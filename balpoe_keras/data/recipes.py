"""Named augmentation recipes: what each one does (NumPy only).

The reference's transforms (`cifar_data_loaders.py`, `others.py`), as data
that both executors read:

- `"none"`: no augmentation;
- `"cifar_crop_flip"`: pad-4 random crop and flip only (what the reference
  code applies for CIFAR-10 long training);
- `"cifar_standard"`: pad-4 random crop, flip, rotation U[-15, 15] deg
  (nearest, zero fill);
- `"cifar_autoaugment"`: crop, flip, AutoAugment CIFAR10Policy (long
  training); `"cifar_autoaugment_cutout"` adds Cutout(16);
- `"imagenet_standard"`: RandomResizedCrop(size), flip, ColorJitter(0.4,
  0.4, 0.4, 0); `"inaturalist_standard"`: the same without ColorJitter;
- `"imagenet_randaugment"`: imagenet_standard + RandAugment n2 m10 mstd0.5.

Evaluation: small-image recipes and `"none"` only convert to float; the
large-image ones resize the shorter side to `size * 256 / 224` and
centre-crop `size`. The tf.data executor implements every recipe
(`balpoe_keras.data.tfdata.transforms`); the in-memory executor
(`balpoe_keras.data.arrays`) those whose `in_memory` is True.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Recipe:
    """What a recipe applies, in order.

    Attributes:
        name: the recipe's name.
        crop_padding: zero padding of the random crop (small images), or
            None for no crop and flip.
        max_degrees: rotation range U[-max_degrees, max_degrees] after the
            crop and flip; 0 = none.
        autoaugment: AutoAugment's CIFAR10Policy after the flip.
        cutout: side of the Cutout square in pixels; 0 = none.
        resized_crop: RandomResizedCrop to the model size, then flip (large
            images); evaluation resizes and centre-crops.
        color_jitter: ColorJitter(0.4, 0.4, 0.4) after the flip.
        rand_augment: RandAugment (n 2, m 10, mstd 0.5) last.
    """

    name: str
    crop_padding: int = None
    max_degrees: float = 0.0
    autoaugment: bool = False
    cutout: int = 0
    resized_crop: bool = False
    color_jitter: bool = False
    rand_augment: bool = False

    @property
    def in_memory(self):
        """True when the in-memory executor implements it (crop, flip and
        rotation of small images)."""
        return not (self.autoaugment or self.cutout or self.resized_crop
                    or self.color_jitter or self.rand_augment)


RECIPES = {r.name: r for r in (
    Recipe("none"),
    Recipe("cifar_crop_flip", crop_padding=4),
    Recipe("cifar_standard", crop_padding=4, max_degrees=15.0),
    Recipe("cifar_autoaugment", crop_padding=4, autoaugment=True),
    Recipe("cifar_autoaugment_cutout", crop_padding=4, autoaugment=True,
           cutout=16),
    Recipe("imagenet_standard", resized_crop=True, color_jitter=True),
    Recipe("inaturalist_standard", resized_crop=True),
    Recipe("imagenet_randaugment", resized_crop=True, color_jitter=True,
           rand_augment=True),
)}
IN_MEMORY_RECIPES = tuple(n for n, r in RECIPES.items() if r.in_memory)


def get_recipe(name):
    """The `Recipe` called `name`.

    Raises:
        ValueError: for an unknown name, listing `RECIPES`.
    """
    if name not in RECIPES:
        raise ValueError(f"Unknown recipe {name!r}. Expected one of "
                         f"{tuple(RECIPES)}.")
    return RECIPES[name]
