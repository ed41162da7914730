"""One image file as the model sees it: decode, resize (NumPy + Pillow).

The TensorFlow-free twin of the serving signature's preprocessing
(`balpoe_keras.export.saved_model`, `serving_bytes`): JPEGs decode with
libjpeg's accurate integer IDCT (Pillow's default, and what
`balpoe_keras.data.tfdata.decode.decode_pixels` asks TensorFlow for), and
the bilinear, antialiased resize runs in float32 (Pillow's `"F"` mode
equals `tf.image.resize(..., antialias=True)` to ~1e-5 of a level), so
`predict`, in-memory image folders and the SavedModel see the same pixels.
"""

import io
import os

import numpy as np

# The file types image folders and `predict` read.
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
# Image types they do not read, counted so that leaving them out is said.
UNREAD_IMAGE_EXTENSIONS = (
    ".tif", ".tiff", ".heic", ".heif", ".avif", ".jxl", ".jp2", ".ppm",
    ".pgm", ".pnm", ".ico", ".psd", ".dng", ".cr2", ".nef", ".arw")
RESIZE_MODES = ("resize", "resize_center_crop")
CENTER_CROP_FRACTION = 0.875  # 224 / 256, the ImageNet eval transform.
_GRAYSCALE_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N")
# The BMPs every path reads (TensorFlow's decoder, used by the SavedModel
# and streamed folders, reads no other): a Windows header (DIB of 40 bytes
# or more), these bits per pixel, uncompressed (or bit fields); others are
# refused as unreadable (save them as PNG).
BMP_BITS = (8, 24, 32)
BMP_MIN_DIB = 40
BMP_COMPRESSIONS = (0, 3)  # BI_RGB, BI_BITFIELDS; not RLE.
BMP_HEAD = 34  # Bytes holding those fields.


def unsupported_bmp(head):
    """True when `head` (a file's first `BMP_HEAD` bytes or more) is a BMP
    outside what every path reads (`BMP_BITS`, `BMP_MIN_DIB`,
    `BMP_COMPRESSIONS`), or a BMP too short to tell."""
    if head[:2] != b"BM":
        return False
    if len(head) < BMP_HEAD:
        return True
    dib = int.from_bytes(head[14:18], "little")
    bits = int.from_bytes(head[28:30], "little")
    compression = int.from_bytes(head[30:34], "little")
    return not (dib >= BMP_MIN_DIB and bits in BMP_BITS
                and compression in BMP_COMPRESSIONS
                and (bits != 8 or compression == 0))


def center_crop_resize(size):
    """The shorter side an image is resized to before its central
    `size` (an int or `(H, W)`) is cropped: `round(max(size) / 0.875)`,
    256 for 224 (the ImageNet evaluation transform)."""
    side = max(size) if isinstance(size, (tuple, list)) else size
    return round(side / CENTER_CROP_FRACTION)


def image_files_under(folder, unread=None):
    """Sorted paths of the image files (`IMAGE_EXTENSIONS`, any case) in
    `folder` and its sub-folders, as torchvision's `ImageFolder` finds
    them (linked folders followed, each once; broken links left out);
    hidden files and folders (`.name`, such as macOS' `._x.jpg` resource
    forks) are skipped. Files of `UNREAD_IMAGE_EXTENSIONS` (TIFF, HEIC,
    ...) are counted by extension into the dict `unread` if given."""
    found, seen = [], set()
    for parent, folders, names in os.walk(folder, followlinks=True):
        seen.add(os.path.realpath(parent))
        # Linked folders are followed (as torchvision does), once each.
        folders[:] = [f for f in folders if not f.startswith(".") and (
            os.path.realpath(os.path.join(parent, f)) not in seen)]
        found += [path for path in (os.path.join(parent, name)
                                    for name in names
                                    if not name.startswith(".")
                                    and name.lower().endswith(
                                        IMAGE_EXTENSIONS))
                  if os.path.isfile(path)]  # Not a broken link.
        if unread is not None:
            for name in names:
                extension = os.path.splitext(name)[1].lower()
                if extension in UNREAD_IMAGE_EXTENSIONS and (
                        not name.startswith(".")):
                    unread[extension] = unread.get(extension, 0) + 1
    return sorted(found)


def decode_image(data, channels=3):
    """Encoded bytes -> `(H, W, channels)` uint8, or None if undecodable.

    As `tf.io.decode_image`: CMYK, palette and alpha images are converted
    to RGB (a GIF's transparent pixels black), 16-bit grayscale keeps its
    top 8 bits (PIL's own conversion would clip it to 255); with
    `channels=1` a JPEG gives its luma (as libjpeg's grayscale output),
    other images their `L` conversion. A BMP
    TensorFlow cannot read (1, 4 or 16 bits per pixel, RLE, an OS/2
    header: `unsupported_bmp`) gives None.

    Args:
        data: the bytes of a JPEG, PNG, BMP, GIF or WebP file.
        channels: 3 (RGB) or 1 (grayscale).
    """
    from PIL import Image

    if unsupported_bmp(data[:BMP_HEAD]):
        return None
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
                gray = (np.asarray(image, np.int64) >> 8).clip(0, 255)
                gray = gray.astype(np.uint8)[..., None]
                return gray if channels == 1 else np.repeat(gray, 3, -1)
            hidden = _gif_transparent_pixels(image)
            if channels == 1:
                if image.format == "JPEG":
                    image.draft("L", image.size)  # libjpeg's own luma.
                pixels = np.asarray(image.convert("L"), np.uint8)[..., None]
            else:
                pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
            if hidden is not None:
                pixels = np.where(hidden[..., None], np.uint8(0), pixels)
            return pixels
    except Exception:  # PIL raises many types for corrupt files.
        return None


def _gif_transparent_pixels(image):
    """`(H, W)` bool: the pixels of a GIF's first frame that its
    transparent colour index marks, or None. TensorFlow's GIF decoder
    (the served model's) makes them black; Pillow would show the index's
    palette colour."""
    index = image.info.get("transparency")
    if image.format != "GIF" or not isinstance(index, int) or (
            image.mode not in ("P", "L")):
        return None
    return np.asarray(image) == index


def read_header(path):
    """`(width, height, grayscale)` of an image file from its header, or
    None if Pillow cannot identify it or `decode_image` would refuse it (a
    BMP `unsupported_bmp` names); reads a few bytes, not the pixels.
    """
    from PIL import Image

    try:
        with open(path, "rb") as f:
            if unsupported_bmp(f.read(BMP_HEAD)):
                return None
        with Image.open(path) as image:
            return image.size[0], image.size[1], (
                image.mode in _GRAYSCALE_MODES)
    except Exception:  # PIL raises many types for bad files.
        return None


def resize_image(image, size, mode="resize"):
    """Resizes like the SavedModel's `serving_bytes` and the evaluation
    transform, in float32, rounded as training stores pixels.

    Args:
        image: `(H, W, C)` uint8 or float pixels in `[0, 255]`.
        size: `(height, width)` of the result.
        mode: `"resize"` (bilinear, antialiased, aspect ratio not kept) or
            `"resize_center_crop"` (shorter side to `round(max(size) /
            0.875)`, the longer side scaled and truncated, then the
            central `size`, offsets rounded half to even: torchvision's
            `Resize` + `CenterCrop`, the ImageNet evaluation transform, as
            `balpoe_keras.data.tfdata.augment.resize_and_center_crop`).

    Returns:
        `(height, width, C)` float32 of whole numbers in `[0, 255]`.
    """
    if mode not in RESIZE_MODES:
        raise ValueError(f"mode must be one of {RESIZE_MODES}. Got {mode!r}")
    image = np.asarray(image, np.float32)
    height, width = (int(s) for s in size)
    if mode == "resize":
        return np.round(_resize(image, height, width))
    resize = center_crop_resize((height, width))
    short, long_side = sorted(image.shape[:2])
    # float32, as the graph computes it: int(long * resize / short).
    scaled = int(np.float32(long_side) * np.float32(resize)
                 / np.float32(short))
    new_h, new_w = ((resize, scaled) if image.shape[0] <= image.shape[1]
                    else (scaled, resize))
    image = np.round(_resize(image, new_h, new_w))
    top = int(np.round((new_h - height) / 2))  # Half to even, as tf.round.
    left = int(np.round((new_w - width) / 2))
    return image[top:top + height, left:left + width]


def _resize(image, height, width):
    from PIL import Image

    if image.shape[:2] == (height, width):
        return image
    return np.stack([
        np.asarray(Image.fromarray(np.ascontiguousarray(image[..., c]),
                                   mode="F").resize((width, height),
                                                    Image.BILINEAR))
        for c in range(image.shape[-1])
    ], axis=-1).clip(0.0, 255.0)


def load_image(data, size, channels=3, mode="resize"):
    """Encoded bytes -> the model's input: float32 `(H, W, channels)` in
    `[0, 1]`, or None if the bytes are not a readable image.

    Args:
        data: the file's bytes.
        size: `(H, W)` of the model's input.
        channels: the model's input channels, 1 or 3.
        mode: resize policy (`resize_image`).
    """
    image = decode_image(data, channels)
    if image is None:
        return None
    return resize_image(image, size, mode) / np.float32(255.0)
