"""TF-only: exports a BalPoE model as a TF Serving SavedModel.

`export_saved_model` writes `<export_dir>/<version>/` (the layout TF Serving
watches) with three signatures:

- `serving_default`: float32 `images` `(batch, H, W, C)` in `[0, 1]`;
- `serving_bytes`: `image_bytes` `(batch,)` `tf.string` of encoded
  JPEG/PNG/GIF/BMP/WebP files, decoded, scaled to `[0, 1]` and resized in-graph;
- `raw_outputs`: float32 `images` -> the model's `logits` `(batch, C)` and
  `expert_logits` `(batch, M, C)`.

The first two return `probabilities` `(batch, C)` float32 (softmax of the
ensemble logits, optionally plus a baked-in `log p_target`), `top_k_ids`
`(batch, k)` int32, `top_k_scores` `(batch, k)` float32 and `top_k_names`
`(batch, k)` string. Bad input gets an error naming the problem: non-finite
or out-of-range pixels, a wrong image shape, bytes that are not an image,
or an encoded image larger than `max_pixels` (read from its header before
decoding, so a huge file cannot exhaust memory); an empty batch returns
empty outputs. docs/reliability.md lists every case. `raw_outputs`, the
model's own two outputs for inspection, has none of these checks. Works
for models built on the TensorFlow backend and, through `jax2tf`, on the
JAX backend (TensorFlow must be installed); the torch backend is not
supported. See docs/serving.md.
"""

import json
import os
import shutil

import keras
import numpy as np
import tensorflow as tf

from balpoe_keras import class_prior
from balpoe_keras.data.datasets import preprocess_for_size
from balpoe_keras.data.image_file import RESIZE_MODES as PREPROCESS_MODES
from balpoe_keras.data.image_file import center_crop_resize
from balpoe_keras.data.tfdata.augment import resize_and_center_crop
from balpoe_keras.data.tfdata.augment import resize_uint8
from balpoe_keras.data.tfdata.decode import decode_pixels
from balpoe_keras.data.tfdata.decode import header_bytes
from balpoe_keras.models.balpoe_classifier import PIXEL_TOLERANCE
from balpoe_keras.models.balpoe_classifier import check_model

DEFAULT_MAX_PIXELS = 2**25  # 33.5 megapixels: ~400 MB as decoded floats.
_MAGIC = (  # Leading bytes of the formats tf.io.decode_image reads.
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF8", "GIF"),
    (b"BM", "BMP"),
    (b"RIFF", "WebP"),  # And "WEBP" at byte 8 (`_is_webp`).
)


def export_saved_model(
    model,
    export_dir,
    *,
    version=1,
    class_names=None,
    image_size=None,
    channels=None,
    target_prior=None,
    top_k=5,
    preprocess=None,
    max_pixels=DEFAULT_MAX_PIXELS,
    overwrite=False,
):
    """Writes a TF Serving SavedModel and a `.keras` copy of `model`.

    Args:
        model: BalPoE Keras model, float32 images `(B, H, W, C)` in `[0, 1]`
            -> `{"logits": (B, C), "expert_logits": (B, M, C)}`.
        export_dir: base directory; the SavedModel goes to
            `<export_dir>/<version>/`.
        version: int >= 1, the TF Serving model version.
        class_names: `C` strings returned by `top_k_names`; default: the
            model's own (`BalPoEClassifier(class_names=...)`).
        image_size: int or `(H, W)`, the model's input size; default: read
            from the model's input shape (required if that has no size).
        channels: int, 1 or 3, image channels; default: the model's.
        target_prior: optional `(C,)` class counts or probabilities of the
            deployment distribution. If given, `log p_target` is added to the
            ensemble logits (the reference's post-hoc correction; less
            `lambda_bar log pi` for lambdas that do not average to 0:
            `class_prior.deployment_prior_bias`); classes with 0 get
            probability 0.
        top_k: int, number of top classes returned (capped at `C`).
        preprocess: resize policy of `serving_bytes`: `"resize"` (bilinear,
            antialiased resize to `(H, W)`, aspect ratio not kept) or
            `"resize_center_crop"` (shorter side to `round(max(H, W) /
            0.875)`, e.g. 256 for 224, then a central `(H, W)` crop);
            default by the input size as the runner and `predict` choose
            (`balpoe_keras.data.datasets.preprocess_for_size`: `"resize"`
            up to 64 px).
        max_pixels: int, the largest encoded image `serving_bytes` decodes
            (height x width, read from the JPEG/PNG/GIF/BMP/WebP header); larger
            ones are refused with an error naming their size.
        overwrite: bool. If False, an existing version directory is an error.

    Returns:
        dict with `saved_model` (the version directory), `keras` (the
        `.keras` file inside it) and `metadata` (a JSON description).

    Raises:
        ValueError: on a bad argument, an existing version directory or the
            torch backend.
    """
    check_model(model)  # A BalPoEClassifier, or a clear error.
    class_names, image_size, channels = _defaults_from_model(
        model, class_names, image_size, channels
    )
    height, width = _validate_args(
        model, class_names, image_size, channels, top_k,
        preprocess or PREPROCESS_MODES[0], version, max_pixels
    )
    preprocess = preprocess or preprocess_for_size(max(height, width))
    version_dir = os.path.join(os.fspath(export_dir), str(int(version)))
    if os.path.exists(version_dir) and not overwrite:
        raise ValueError(
            f"{version_dir} already exists. Pass a new `version` (TF "
            "Serving serves the highest) or overwrite=True."
        )
    bias = None
    if isinstance(target_prior, (str, bytes, os.PathLike)):
        raise ValueError(
            f"target_prior takes (C,) counts or probabilities, not "
            f"{target_prior!r}: for the training distribution pass "
            "model.class_counts; to read a prior file, "
            "balpoe_keras.experiments.predict.target_prior_from_file(path, "
            "class_names).")
    if target_prior is not None:
        bias = class_prior.deployment_prior_bias(
            target_prior, model.class_counts, model.lambdas)
    # Written beside it under a name TF Serving skips (not a number), and
    # swapped in only when complete: a failed export leaves the version
    # that was there.
    final_dir = version_dir
    version_dir = os.path.join(os.fspath(export_dir),
                               f".writing-{int(version)}-{os.getpid()}")
    shutil.rmtree(version_dir, ignore_errors=True)
    try:
        archive = keras.export.ExportArchive()
        archive.track(model)
        image_spec = tf.TensorSpec(
            (None, height, width, channels), tf.float32, name="images"
        )
        raw_outputs = archive.add_endpoint(
            "raw_outputs", _make_model_fn(model), input_signature=[image_spec]
        )
        postprocess = _make_postprocess(class_names, bias, top_k)
        logits_fn = _make_logits_fn(raw_outputs, len(class_names))
        serve_images = _make_image_endpoint(logits_fn, postprocess, image_spec)
        serve_bytes = _make_bytes_endpoint(
            logits_fn, postprocess, (height, width), channels, preprocess,
            int(max_pixels),
        )
        archive.add_endpoint("serving_default", serve_images)
        archive.add_endpoint("serving_bytes", serve_bytes)
        archive.write_out(version_dir, verbose=False)
        keras_path = os.path.join(version_dir, "model.keras")
        model.save(keras_path)
        _write_metadata(
            version_dir, model, class_names, (height, width, channels),
            target_prior, top_k, preprocess, int(max_pixels),
        )
    except BaseException:
        shutil.rmtree(version_dir, ignore_errors=True)
        raise
    _swap_in(version_dir, final_dir)
    return {
        "saved_model": final_dir,
        "keras": os.path.join(final_dir, "model.keras"),
        "metadata": os.path.join(final_dir, "assets.extra",
                                 "export_metadata.json"),
    }


def _swap_in(written, version_dir):
    """Moves the complete export `written` to `version_dir`, replacing a
    previous one (renamed aside first, then removed)."""
    old = None
    if os.path.exists(version_dir):
        old = f"{written}-previous"
        os.replace(version_dir, old)
    os.replace(written, version_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _defaults_from_model(model, class_names, image_size, channels):
    """Fills in what the arguments leave out from the model itself."""
    if class_names is None:
        class_names = getattr(model, "class_names", None)
        if class_names is None:
            raise ValueError(
                "Pass class_names: this model does not store them (give "
                "BalPoEClassifier(class_names=...) to keep them in the model)."
            )
    shape = tuple(model.input_shape[1:])
    if image_size is None:
        if len(shape) != 3 or None in shape[:2]:
            raise ValueError(
                f"The model's input shape {shape} has no fixed image size; "
                "pass image_size=(H, W)."
            )
        image_size = shape[:2]
    if channels is None:
        channels = shape[-1] if len(shape) == 3 else None
    return class_names, image_size, channels


def _validate_args(
    model, class_names, image_size, channels, top_k, preprocess, version,
    max_pixels,
):
    if keras.backend.backend() not in ("tensorflow", "jax"):
        raise ValueError(
            "export_saved_model needs the TensorFlow or JAX backend. "
            f"Received backend {keras.backend.backend()!r}: save the model "
            "as .keras and export it with KERAS_BACKEND=tensorflow."
        )
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    if len(image_size) != 2 or min(image_size) < 1:
        raise ValueError(
            f"Expected image_size=int or (H, W). Received {image_size}."
        )
    if channels not in (1, 3):
        raise ValueError(f"Expected channels 1 or 3. Received {channels}.")
    num_classes = model.num_classes
    if isinstance(class_names, (str, bytes)):
        raise ValueError(
            "Expected class_names as a list of strings, one per class. "
            f"Received: class_names={class_names!r}"
        )
    if len(class_names) != num_classes:
        raise ValueError(
            f"Got {len(class_names)} class_names for a model with "
            f"{num_classes} classes."
        )
    if int(top_k) < 1:
        raise ValueError(f"Expected top_k >= 1. Received {top_k}.")
    if preprocess not in PREPROCESS_MODES:
        raise ValueError(
            f"Expected preprocess in {PREPROCESS_MODES}. Received "
            f"{preprocess!r}."
        )
    if int(version) < 1:
        raise ValueError(f"Expected version >= 1. Received {version}.")
    if int(max_pixels) < 1:
        raise ValueError(
            f"Expected max_pixels >= 1 (the largest height x width "
            f"serving_bytes decodes; default {DEFAULT_MAX_PIXELS}). Received "
            f"{max_pixels}: every image would be refused."
        )
    return int(image_size[0]), int(image_size[1])


def _make_model_fn(model):
    def raw_outputs(images):
        outputs = model(images, training=False)
        return {
            "logits": outputs["logits"],
            "expert_logits": outputs["expert_logits"],
        }

    return raw_outputs


def _make_postprocess(class_names, bias, top_k):
    names = tf.constant([str(n) for n in class_names], tf.string)
    k = min(int(top_k), len(class_names))
    bias = None if bias is None else tf.constant(bias, tf.float32)

    def postprocess(logits):
        logits = tf.cast(logits, tf.float32)
        if bias is not None:
            logits = logits + bias
        probabilities = tf.nn.softmax(logits, axis=-1)
        top = tf.math.top_k(probabilities, k=k)
        ids = tf.cast(top.indices, tf.int32)
        return {
            "probabilities": probabilities,
            "top_k_ids": ids,
            "top_k_scores": top.values,
            "top_k_names": tf.gather(names, ids),
        }

    return postprocess


def _make_logits_fn(raw_outputs, num_classes):
    """Ensemble logits; an empty batch skips the model (oneDNN's conv
    kernels reject a batch of 0) and gives `(0, C)` logits."""

    def logits_fn(images):
        return tf.cond(
            tf.shape(images)[0] > 0,
            lambda: tf.cast(raw_outputs(images)["logits"], tf.float32),
            lambda: tf.zeros((0, num_classes), tf.float32))

    return logits_fn


def _make_image_endpoint(logits_fn, postprocess, image_spec):
    expected = tuple(image_spec.shape[1:])

    @tf.function(input_signature=[image_spec], autograph=False)
    def serving_default(images):
        shape = tf.debugging.assert_equal(
            tf.shape(images)[1:], tf.constant(expected, tf.int32),
            message=f"serving_default expects float32 images of shape "
            f"(batch, H, W, C) = (batch, {', '.join(map(str, expected))}); "
            "received a different (H, W, C)",
        )
        with tf.control_dependencies([shape]):
            finite = tf.debugging.assert_all_finite(
                images, "serving_default received non-finite pixel values "
                "(NaN or Inf); send finite values in [0, 1]")
        # Range checks only on finite input (NaN fails every comparison).
        with tf.control_dependencies([finite]):
            checks = [
                # The tolerance of the model's own check: a resize's
                # overshoot passes both.
                tf.debugging.assert_greater_equal(
                    tf.reduce_min(images), -PIXEL_TOLERANCE,
                    message="pixels must lie in [0, 1]; received a negative "
                    "value",
                ),
                tf.debugging.assert_less_equal(
                    tf.reduce_max(images), 1.0 + PIXEL_TOLERANCE,
                    message="pixels must lie in "
                    "[0, 1]; received a value > 1 (divide 0-255 pixels by "
                    "255)",
                ),
            ]
        with tf.control_dependencies(checks):
            images = tf.identity(images)
        return postprocess(logits_fn(images))

    serving_default.get_concrete_function()
    return serving_default


def _make_bytes_endpoint(logits_fn, postprocess, size, channels, mode,
                         max_pixels):
    spec = tf.TensorSpec((None,), tf.string, name="image_bytes")

    @tf.function(input_signature=[spec], autograph=False)
    def serving_bytes(image_bytes):
        known = tf.zeros_like(image_bytes, tf.bool)
        for magic, _ in _MAGIC:
            head = tf.strings.substr(image_bytes, 0, len(magic))
            match = tf.equal(head, magic)
            if magic == b"RIFF":
                match = tf.logical_and(match, _is_webp(image_bytes))
            known = tf.logical_or(known, match)
        check = tf.debugging.Assert(
            tf.reduce_all(known),
            [
                "serving_bytes expects encoded "
                + "/".join(n for _, n in _MAGIC)
                + " images; these batch positions hold something else:",
                tf.where(tf.logical_not(known))[:, 0],
            ],
        )
        with tf.control_dependencies([check]):
            pixels = tf.map_fn(_header_pixels, image_bytes,
                               fn_output_signature=tf.int64)
        large = pixels > max_pixels
        size_check = tf.debugging.Assert(
            tf.logical_not(tf.reduce_any(large)),
            [f"serving_bytes decodes images of at most {max_pixels} pixels "
             "(height x width); downscale these before sending. Batch "
             "positions and pixel counts:",
             tf.where(large)[:, 0], tf.boolean_mask(pixels, large)],
        )
        with tf.control_dependencies([size_check]):
            image_bytes = tf.identity(image_bytes)
        images = tf.map_fn(
            lambda data: _decode_and_resize(data, size, channels, mode),
            image_bytes,
            fn_output_signature=tf.TensorSpec(size + (channels,), tf.float32),
        )
        return postprocess(logits_fn(images))

    serving_bytes.get_concrete_function()
    return serving_bytes


def _header_pixels(data):
    """Height x width (int64) from an encoded image's header; 0 if unknown.

    JPEG via `extract_jpeg_shape`; PNG: big-endian width/height at bytes
    16-23; GIF: little-endian uint16 at 6-9; BMP: little-endian int32 at
    18-25 (height may be negative: bottom-up rows); WebP: its first
    chunk's (`_webp_pixels`).
    """

    def numbers(offset, count, dtype, little_endian):
        raw = header_bytes(data, offset, count * dtype.size)
        values = tf.io.decode_raw(raw, dtype, little_endian=little_endian)
        return tf.abs(tf.cast(values, tf.int64))

    def jpeg():
        shape = tf.image.extract_jpeg_shape(data)
        return tf.cast(shape[0], tf.int64) * tf.cast(shape[1], tf.int64)

    def product(offset, dtype, little_endian):
        return lambda: tf.reduce_prod(numbers(offset, 2, dtype,
                                              little_endian))

    head = tf.strings.substr(data, 0, 4)
    return tf.case([
        (tf.equal(tf.strings.substr(data, 0, 3), b"\xff\xd8\xff"), jpeg),
        (tf.equal(head, b"\x89PNG"), product(16, tf.int32, False)),
        (tf.equal(head, b"GIF8"), product(6, tf.uint16, True)),
        (tf.equal(tf.strings.substr(data, 0, 2), b"BM"),
         product(18, tf.int32, True)),
        (_is_webp(data), lambda: _webp_pixels(data)),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def _is_webp(data):
    """`RIFF....WEBP`: a WebP file (elementwise over a string tensor; a
    payload shorter than 12 bytes is not one)."""
    return tf.logical_and(
        tf.equal(header_bytes(data, 0, 4), b"RIFF"),
        tf.equal(header_bytes(data, 8, 4), b"WEBP"))


def _webp_pixels(data):
    """Height x width of a WebP from its first chunk: `VP8X` (24-bit
    canvas sizes minus 1 at bytes 24-29), `VP8L` (14-bit sizes minus 1
    packed at 21-24) or `VP8 ` (14-bit sizes at 26-29); a cut-off header
    reads as zeros (`header_bytes`), which the decoder then refuses."""
    raw = header_bytes(data, 20, 10)
    b = tf.cast(tf.io.decode_raw(raw, tf.uint8), tf.int64)
    chunk = header_bytes(data, 12, 4)
    extended = ((b[4] + b[5] * 256 + b[6] * 65536 + 1)
                * (b[7] + b[8] * 256 + b[9] * 65536 + 1))
    bits = b[1] + b[2] * 256 + b[3] * 65536 + b[4] * 16777216
    lossless = ((bits % 16384 + 1) * ((bits // 16384) % 16384 + 1))
    lossy = ((b[6] + b[7] * 256) % 16384) * ((b[8] + b[9] * 256) % 16384)
    return tf.case([
        (tf.equal(chunk, b"VP8X"), lambda: extended),
        (tf.equal(chunk, b"VP8L"), lambda: lossless),
        (tf.equal(chunk, b"VP8 "), lambda: lossy),
    ], default=lambda: tf.constant(0, tf.int64), exclusive=False)


def _decode_and_resize(data, size, channels, mode):
    """One encoded image -> float32 `(H, W, channels)` in `[0, 1]`,
    decoded as training decodes it (JPEG: the accurate IDCT of libjpeg and
    PIL, not TensorFlow's default fast one), resized (`resize_uint8`) or
    resized and centre-cropped as the evaluation transform does
    (`resize_and_center_crop`), to uint8 as training stores pixels, and
    scaled as training does."""
    image = decode_pixels(data, channels)
    if mode == "resize_center_crop":
        image = resize_and_center_crop(
            image, center_crop_resize(size), tuple(size))
    else:
        image = resize_uint8(image, size)
    return tf.cast(image, tf.float32) / 255.0


def _write_metadata(
    version_dir, model, class_names, shape, target_prior, top_k, preprocess,
    max_pixels,
):
    extra = os.path.join(version_dir, "assets.extra")
    os.makedirs(extra, exist_ok=True)
    path = os.path.join(extra, "export_metadata.json")
    metadata = {
        "class_names": [str(n) for n in class_names],
        "image_shape": list(shape),
        "pixel_range": [0.0, 1.0],
        "target_prior": None
        if target_prior is None
        else np.asarray(target_prior, np.float64).tolist(),
        "top_k": min(int(top_k), len(class_names)),  # As served.
        "preprocess": preprocess,
        "max_pixels": max_pixels,
        "signatures": ["serving_default", "serving_bytes", "raw_outputs"],
        # What the model is (None for a model that does not store it).
        "class_counts": getattr(model, "class_counts", None),
        "lambdas": getattr(model, "lambdas", None),
        "keras_backend": keras.backend.backend(),
        "keras_version": keras.__version__,
    }
    with open(path, "w") as f:
        json.dump(metadata, f, indent=1)
    return path
