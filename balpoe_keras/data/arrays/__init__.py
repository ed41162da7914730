"""The in-memory input executor (`keras.ops`, no TensorFlow needed).

For small images that fit in accelerator memory (CIFAR-size), on every
backend, and the only executor where TensorFlow is not installed: the uint8
images live on the device, and each batch is gathered, augmented (pad-4
crop, flip, optional rotation, Mixup) and converted there. The tf.data
executor (`balpoe_keras.data.tfdata`) runs every recipe and streams large
datasets. See docs/data.md.

- `augment`: `apply_crop_flip`, `apply_mixup`, `mix_pair`,
  `draw_crop_flip_params`, `draw_mixup_params`, `augment_batch`
  (`keras.ops` / `keras.random`);
- `dataset`: `DeviceImages`, `ArrayDataset` (a `keras.utils.PyDataset`),
  `make_train_dataset_fn` (for `balpoe_keras.training.fit`).
"""

from balpoe_keras.data.arrays.augment import apply_crop_flip
from balpoe_keras.data.arrays.augment import apply_mixup
from balpoe_keras.data.arrays.augment import augment_batch
from balpoe_keras.data.arrays.augment import draw_crop_flip_params
from balpoe_keras.data.arrays.augment import draw_mixup_params
from balpoe_keras.data.arrays.augment import mix_pair
from balpoe_keras.data.arrays.dataset import ArrayDataset
from balpoe_keras.data.arrays.dataset import DeviceImages
from balpoe_keras.data.arrays.dataset import make_train_dataset_fn

__all__ = [
    "ArrayDataset",
    "DeviceImages",
    "apply_crop_flip",
    "apply_mixup",
    "augment_batch",
    "draw_crop_flip_params",
    "draw_mixup_params",
    "make_train_dataset_fn",
    "mix_pair",
]
