"""The reference's CIFAR augmentation, run with torchvision on PIL images.

The reference's `cifar_data_loaders.py`: `RandomCrop(32, padding=4)` (zero
fill) ->
`RandomHorizontalFlip()` -> `RandomRotation(15)` (nearest, zero fill), on
the PIL images of the reference's CIFAR dataset. Here each step is
torchvision's functional op with the parameters given, so the project's
transforms can be compared with it for the same draw.
"""

import numpy as np
from PIL import Image
from torchvision.transforms import InterpolationMode
from torchvision.transforms import functional as F


def crop_flip_rotate(image, offsets, flip, angle=None, padding=4):
    """torchvision's crop -> flip -> rotation of one uint8 image.

    Args:
        image: `(H, W, 3)` or `(H, W, 1)` uint8.
        offsets: `(top, left)` into the padded image (`RandomCrop`'s `i, j`).
        flip: bool, `RandomHorizontalFlip` fired.
        angle: degrees (`RandomRotation`'s draw), or None for no rotation.
        padding: `RandomCrop`'s padding.

    Returns:
        `(H, W, channels)` uint8.
    """
    gray = image.shape[-1] == 1
    pil = Image.fromarray(image[..., 0] if gray else image)
    height, width = image.shape[:2]
    pil = F.pad(pil, padding, fill=0)
    pil = F.crop(pil, int(offsets[0]), int(offsets[1]), height, width)
    if flip:
        pil = F.hflip(pil)
    if angle is not None:
        pil = F.rotate(pil, float(angle), InterpolationMode.NEAREST, fill=0)
    out = np.asarray(pil)
    return out[..., None] if gray else out


def random_images(num, height=32, width=32, channels=3, seed=0):
    """uint8 images with values in [1, 255], so zero fill is visible."""
    rng = np.random.default_rng(seed)
    return rng.integers(1, 256, (num, height, width, channels), np.uint8)


# Angles where rounding is fragile: the range ends, 0 and -0, tiny angles,
# and multiples of 90 (PIL's fast paths).
EDGE_ANGLES = (15.0, -15.0, 0.0, -0.0, 1e-4, -1e-4, 7.5, 45.0, 90.0, -90.0,
               180.0)
