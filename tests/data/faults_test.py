"""Bad data files: each gives a clear error naming the file (or a
documented skip), in the tf.data loaders and the TensorFlow-free ones."""

import io
import os
import tarfile

import numpy as np
import pytest
from PIL import Image

from balpoe_keras.data import archive as array_sources
from balpoe_keras.data import idx
from tests.test_case import TestCase


def _encode(array, fmt, **kwargs):
    data = io.BytesIO()
    Image.fromarray(array).save(data, format=fmt, **kwargs)
    return data.getvalue()


def _jpeg(seed=0, size=8):
    rng = np.random.default_rng(seed)
    return _encode(rng.integers(0, 256, (size, size, 3), np.uint8), "JPEG")


def _write(path, data):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as f:
        f.write(data)


def _truncated_jpeg():
    data = _jpeg(size=32)
    return data[: len(data) // 2]


class DecodeParityTest(TestCase):
    """CMYK and 16-bit files decode to the same RGB in both loaders."""

    @pytest.mark.tf_only
    def test_sixteen_bit_png_keeps_its_top_byte_in_both_loaders(self):
        import tensorflow as tf

        from balpoe_keras.data.tfdata.decode import decode_rgb

        gray = np.arange(0, 65536, 257, dtype=np.uint16)[:64].reshape(8, 8)
        gray[0, 0] = 65535
        data = _encode(gray, "PNG")
        tf_image = decode_rgb(tf.constant(data)).numpy()
        pil_image = array_sources.decode_image(data)
        np.testing.assert_array_equal(pil_image, tf_image)
        self.assertEqual(int(pil_image[0, 0, 0]), 255)
        self.assertEqual(int(pil_image[0, 1, 0]), 257 >> 8)

    @pytest.mark.tf_only
    def test_cmyk_jpeg_decodes_to_rgb_in_both_loaders(self):
        import tensorflow as tf

        from balpoe_keras.data.tfdata.decode import decode_rgb

        rgb = np.random.default_rng(1).integers(0, 256, (8, 8, 3), np.uint8)
        buffer = io.BytesIO()
        Image.fromarray(rgb).convert("CMYK").save(buffer, "JPEG", quality=95)
        data = buffer.getvalue()
        tf_image = decode_rgb(tf.constant(data)).numpy()
        pil_image = array_sources.decode_image(data)
        self.assertEqual(tf_image.shape, (8, 8, 3))
        self.assertEqual(pil_image.shape, (8, 8, 3))
        # libjpeg's accurate IDCT on both paths: the same pixels.
        np.testing.assert_array_equal(tf_image, pil_image)


class ArchiveFaultTest(TestCase):
    def test_truncated_and_empty_members_are_named(self):
        path = os.path.join(self.get_temp_dir(), "a.tar.gz")
        files = {"train/cat/0.jpg": _jpeg(), "train/cat/1.jpg": b"",
                 "train/dog/0.jpg": _truncated_jpeg(),
                 "train/dog/1.jpg": _jpeg(2)}
        with tarfile.open(path, "w:gz") as tar:
            for name, data in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
        with self.assertRaisesRegex(
                ValueError, r"2 image file\(s\) in .* could not be decoded: "
                r"\['train/cat/1.jpg', 'train/dog/0.jpg'\]"):
            array_sources.read_image_archive(path)


@pytest.mark.tf_only
class FolderFaultTest(TestCase):
    def _folder(self, bad_name, bad_data):
        root = self.get_temp_dir()
        for k in range(2):
            _write(os.path.join(root, "train", "cat", f"{k}.jpg"), _jpeg(k))
        _write(os.path.join(root, "train", "dog", "0.jpg"), _jpeg(5))
        bad = os.path.join(root, "train", "dog", bad_name)
        _write(bad, bad_data)
        return root, bad

    def test_in_memory_folder_names_or_skips_bad_files(self):
        from balpoe_keras.data.image_folder import load_image_folder

        for bad_data in (b"", _truncated_jpeg()):
            root, bad = self._folder("1.jpg", bad_data)
            with self.assertRaisesRegex(ValueError, f"could not be decoded: "
                                        f".*{bad}"):
                load_image_folder(root, "train")
            with self.assertLogs(level="WARNING") as logs:
                source = load_image_folder(root, "train", skip_corrupt=True)
            self.assertEqual(len(source), 3)  # The bad one skipped...
            self.assertIn("Skipping 1 unreadable image", logs.output[0])

    def test_streamed_pipeline_names_the_bad_file(self):
        import tensorflow as tf

        from balpoe_keras.data import make_train_dataset
        from balpoe_keras.data.image_folder import load_image_folder

        for bad_data in (b"", _truncated_jpeg()):
            root, bad = self._folder("1.jpg", bad_data)
            source = load_image_folder(root, "train", in_memory=False)
            ds = make_train_dataset(source, global_batch_size=4,
                                    recipe="none", seed=0)
            with self.assertRaisesRegex(
                    tf.errors.InvalidArgumentError,
                    f"Unreadable image file \\(empty or truncated\\):(.|\\n)*"
                    f"{bad}"):
                for _ in ds:
                    pass

    def test_streamed_files_with_trailing_bytes_decode(self):
        # Phones append metadata (or a motion photo's video) after a
        # JPEG's end marker; decoders ignore it. The completeness check
        # used to look for the marker in the last 64 bytes only.
        from balpoe_keras.data import make_train_dataset
        from balpoe_keras.data.image_folder import load_image_folder

        rng = np.random.default_rng(3)
        png = _encode(rng.integers(0, 256, (8, 8, 3), np.uint8), "PNG")
        trailer = bytes(rng.integers(0, 256, 300, np.uint8))
        for name, data in (("1.jpg", _jpeg(7) + trailer),
                           ("1.png", png + trailer)):
            root, _ = self._folder(name, data)
            source = load_image_folder(root, "train", in_memory=False)
            ds = make_train_dataset(source, global_batch_size=4,
                                    recipe="none", seed=0)
            self.assertEqual(sum(int(b[0].shape[0]) for b in ds), 4)

    def test_jpeg_cut_after_an_embedded_thumbnail_is_named(self):
        # An EXIF thumbnail is a whole JPEG (ending in FFD9) inside the
        # APP1 header segment: a file cut short after it passed the check
        # (a marker was found) and failed in the decoder, naming no file.
        import tensorflow as tf

        from balpoe_keras.data.tfdata.decode import check_encoded_image
        from balpoe_keras.data.tfdata.decode import decode_rgb

        main = _jpeg(11, size=32)
        payload = b"Exif\0\0" + _jpeg(12)
        app1 = b"\xff\xe1" + (len(payload) + 2).to_bytes(2, "big") + payload
        whole = main[:2] + app1 + main[2:]
        np.testing.assert_array_equal(  # The segment is skipped in decoding.
            decode_rgb(tf.constant(whole)).numpy(),
            decode_rgb(tf.constant(main)).numpy())
        check_encoded_image(tf.constant(whole), "whole.jpg")
        check_encoded_image(tf.constant(whole + b"trailer"), "whole.jpg")
        for cut in (len(main[:2] + app1) + 40,  # In the image data.
                    len(main[:2] + app1) + 2,   # Before its first segment.
                    len(main[:2]) + 30):        # Inside the thumbnail.
            with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                        "empty or truncated(.|\\n)*cut.jpg"):
                check_encoded_image(tf.constant(whole[:cut]), "cut.jpg")
        # Headers that are no plain segment chain (stray bytes, which
        # libjpeg skips), or a chain of more than 64 segments, fall back
        # to looking for the marker anywhere: such a file is not refused.
        # (The trailer sends each through the search.)
        odd = main[:2] + b"\x00\x00" + main[2:] + b"trailer"
        comments = b"\xff\xfe\x00\x04ab" * 70
        many = main[:2] + comments + main[2:] + b"trailer"
        stray = main[:20] + b"\xff\x00" + main[20:] + b"\0"  # After APP0.
        # Headers past the first 256 KiB (four 64 KiB comments) are not
        # followed; a trailer of 1 MiB is not read by the walk.
        comment = b"\xff\xfe\xff\xff" + bytes(65533)
        long_headers = main[:2] + comment * 4 + main[2:] + b"trailer"
        big_trailer = main + bytes(1 << 20)
        for data in (odd, many, stray, long_headers, big_trailer):
            check_encoded_image(tf.constant(data), "odd.jpg")
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "empty or truncated"):  # Cut to FFD8.
            check_encoded_image(tf.constant(main[:2]), "cut")
        with self.assertRaisesRegex(tf.errors.InvalidArgumentError,
                                    "empty or truncated"):
            check_encoded_image(tf.constant(many[:len(many) // 2]), "cut")

    def test_class_folder_without_images_is_named(self):
        from balpoe_keras.data.image_folder import load_image_folder

        root, _ = self._folder("1.jpg", _jpeg(3))
        os.makedirs(os.path.join(root, "train", "emu"))
        with self.assertRaisesRegex(ValueError, "hold no images.*emu"):
            load_image_folder(root, "train")


class ListAndIdxFaultTest(TestCase):
    def test_list_naming_missing_or_empty_images(self):
        from balpoe_keras.data.list_files import read_list_file

        root = self.get_temp_dir()
        names = [f"img{k}.jpg" for k in range(250)]
        for name in names:
            _write(os.path.join(root, name), b"x")
        os.remove(os.path.join(root, "img137.jpg"))  # Not in a 1/100 sample.
        listing = os.path.join(root, "list.txt")
        with open(listing, "w") as f:
            f.writelines(f"{name} {k % 3}\n" for k, name in enumerate(names))
        with self.assertRaisesRegex(FileNotFoundError,
                                    r"1 of 250 .* missing.*img137.jpg"):
            read_list_file(listing, root)
        _write(os.path.join(root, "img137.jpg"), b"")
        with self.assertRaisesRegex(ValueError, r"empty \(0 bytes\).*img137"):
            read_list_file(listing, root)
        # "sample": 100 evenly spaced files, the first and last among them
        # (every other file of 250 before: 125); img137 is not one.
        read_list_file(listing, root, check_files="sample")
        os.remove(os.path.join(root, "img249.jpg"))
        with self.assertRaisesRegex(FileNotFoundError,
                                    r"1 of 100 .*img249.jpg"):
            read_list_file(listing, root, check_files="sample")

    def test_idx_with_a_wrong_magic_number_is_named(self):
        path = os.path.join(self.get_temp_dir(), "train-images-idx3-ubyte")
        _write(path, b"\x01\x02\x08\x03" + b"\0" * 12)
        with self.assertRaisesRegex(ValueError,
                                    f"{path} is not an IDX file"):
            idx.read_idx(path)
