"""The tf.data input executor (TensorFlow): every recipe, files or memory.

- pipelines: `make_train_dataset`, `make_eval_dataset` (`pipeline`);
- the per-image transforms of the recipes: `get_train_transform`,
  `get_eval_transform` (`transforms`; steps in `augment`, `autoaugment`,
  `randaugment`, `image_ops`);
- Mixup/CutMix on batches: `mixup_batch`, `cutmix_batch`, `mix_batch`
  (`mixup`);
- class-aware resampling: `make_resample_fn`, `class_aware_resample`
  (`sampling`);
- decoding files in the graph: `decode_rgb`, `check_encoded_image`
  (`decode`).

What the recipes and Mixup do is defined in the NumPy core
(`balpoe_keras.data.recipes`, `balpoe_keras.data.mixing`).
"""

from balpoe_keras.data.tfdata.decode import check_encoded_image
from balpoe_keras.data.tfdata.decode import decode_rgb
from balpoe_keras.data.tfdata.mixup import cutmix_batch
from balpoe_keras.data.tfdata.mixup import mix_batch
from balpoe_keras.data.tfdata.mixup import mixup_batch
from balpoe_keras.data.tfdata.pipeline import make_eval_dataset
from balpoe_keras.data.tfdata.pipeline import make_train_dataset
from balpoe_keras.data.tfdata.sampling import class_aware_resample
from balpoe_keras.data.tfdata.sampling import make_resample_fn
from balpoe_keras.data.tfdata.transforms import get_eval_transform
from balpoe_keras.data.tfdata.transforms import get_train_transform

__all__ = [
    "check_encoded_image",
    "class_aware_resample",
    "cutmix_batch",
    "decode_rgb",
    "get_eval_transform",
    "get_train_transform",
    "make_eval_dataset",
    "make_resample_fn",
    "make_train_dataset",
    "mix_batch",
    "mixup_batch",
]
