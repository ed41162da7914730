"""TensorFlow-free, in-memory input path for CIFAR-size data.

For the JAX / PyTorch backends without TensorFlow (e.g. the GPU machines)
and for the fastest training of small images on an accelerator: the uint8
images live on the device, and each batch is gathered, augmented (pad-4
crop, flip, optional rotation, Mixup) and converted there. `tf.data`
(`balpoe_keras.data`) stays the path for large datasets. See docs/gpu.md.

- `sources`: `load_cifar10_arrays`, `read_image_archive`,
  `make_long_tailed` (tarfile + Pillow, `.npz` cache);
- `augment`: `apply_crop_flip`, `apply_mixup`, `mix_pair`,
  `draw_crop_flip_params`, `draw_mixup_params`, `augment_batch`
  (`keras.ops` / `keras.random`);
- `dataset`: `DeviceImages`, `ArrayDataset` (a `keras.utils.PyDataset`),
  `make_train_dataset_fn` (for `balpoe_keras.training.fit`).
"""

from balpoe_keras.arrays.augment import apply_crop_flip
from balpoe_keras.arrays.augment import apply_mixup
from balpoe_keras.arrays.augment import augment_batch
from balpoe_keras.arrays.augment import draw_crop_flip_params
from balpoe_keras.arrays.augment import draw_mixup_params
from balpoe_keras.arrays.augment import mix_pair
from balpoe_keras.arrays.dataset import ArrayDataset
from balpoe_keras.arrays.dataset import DeviceImages
from balpoe_keras.arrays.dataset import make_train_dataset_fn
from balpoe_keras.arrays.sources import load_cifar10_arrays
from balpoe_keras.arrays.sources import make_long_tailed
from balpoe_keras.arrays.sources import read_image_archive

__all__ = [
    "ArrayDataset",
    "DeviceImages",
    "apply_crop_flip",
    "apply_mixup",
    "augment_batch",
    "draw_crop_flip_params",
    "draw_mixup_params",
    "load_cifar10_arrays",
    "make_long_tailed",
    "make_train_dataset_fn",
    "mix_pair",
    "read_image_archive",
]
