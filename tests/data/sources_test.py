"""Tests for the data sources: ImageSource, folders, lists, IDX, tfds."""

import os
from unittest import mock

import numpy as np
import pytest
import tensorflow as tf

from balpoe_keras.data import sources
from balpoe_keras.data.idx import write_idx
from balpoe_keras.data.image_folder import extract_archive
from balpoe_keras.data.image_folder import load_image_folder
from balpoe_keras.data.list_files import load_benchmark_list
from balpoe_keras.data.list_files import read_list_file
from balpoe_keras.data.source import ImageSource
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only


def _write_png(path, value, size=(6, 5)):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = np.full(size + (3,), value, np.uint8)
    tf.io.write_file(path, tf.io.encode_png(image))


def _make_folder(root, corrupt=False, empty_class=False):
    for c, name in enumerate(["cat", "ant", "bee"]):
        for i in range(c + 1):
            _write_png(os.path.join(root, "train", name, f"{i}.png"),
                       10 * c + i)
    if corrupt:
        with open(os.path.join(root, "train", "bee", "9.jpg"), "wb") as f:
            f.write(b"not a jpeg")
    if empty_class:
        os.makedirs(os.path.join(root, "train", "dog"))


class ImageSourceTest(TestCase):
    def test_counts_subset_long_tailed_and_errors(self):
        images = np.zeros((40, 2, 2, 1), np.uint8)
        source = ImageSource(np.repeat(np.arange(4), 10), "abcd",
                             images=images, name="toy", split="train")
        self.assertEqual(source.class_counts, (10, 10, 10, 10))
        # IR 10 over 4 classes: int(10 * 0.1**(c/3)) = 10, 4, 2, 1.
        lt = source.long_tailed(10)
        self.assertEqual(lt.class_counts, (10, 4, 2, 1))
        self.assertEqual(lt.split, "train_ir10")
        with self.assertRaisesRegex(ValueError, "labels must lie in"):
            ImageSource([0, 5], "ab", images=images[:2])
        with self.assertRaisesRegex(ValueError, "exactly one"):
            ImageSource([0], "ab")


class ImageFolderTest(TestCase):
    def test_sorted_classes_order_and_npz_cache(self):
        root, cache = self.get_temp_dir(), self.get_temp_dir()
        _make_folder(root)
        source = load_image_folder(root, "train", cache_dir=cache)
        self.assertEqual(source.class_names, ("ant", "bee", "cat"))
        self.assertEqual(source.class_counts, (2, 3, 1))
        self.assertEqual(source.images.shape, (6, 6, 5, 3))
        # Sorted paths: ant/0 (value 10), ant/1 (11), bee/0 (20), ...
        self.assertEqual(source.images[:, 0, 0, 0].tolist(),
                         [10, 11, 20, 21, 22, 0])
        self.assertLen([f for f in os.listdir(cache) if f.endswith(".npz")],
                       1)
        cached = load_image_folder(root, "train", cache_dir=cache)
        np.testing.assert_array_equal(cached.images, source.images)
        lazy = load_image_folder(root, "train", in_memory=False)
        self.assertTrue(lazy.paths[0].endswith(os.path.join("ant", "0.png")))

    def test_corrupt_file_is_reported_or_skipped(self):
        root = self.get_temp_dir()
        _make_folder(root, corrupt=True)
        with self.assertRaisesRegex(ValueError,
                                    r"could not be decoded.*9\.jpg"):
            load_image_folder(root, "train")
        with self.assertLogs(level="WARNING") as logs:
            source = load_image_folder(root, "train", skip_corrupt=True)
        self.assertIn("9.jpg", "".join(logs.output))
        self.assertEqual(source.class_counts, (2, 3, 1))

    def test_empty_class_and_missing_split(self):
        root = self.get_temp_dir()
        _make_folder(root, empty_class=True)
        with self.assertRaisesRegex(ValueError, r"hold no images.*dog"):
            load_image_folder(root, "train")
        with self.assertRaisesRegex(FileNotFoundError, "root/<split>"):
            load_image_folder(root, "test")

    def test_extract_archive_once_with_checksum(self):
        import tarfile

        root, cache = self.get_temp_dir(), self.get_temp_dir()
        _make_folder(root)
        archive = os.path.join(root, "toy.tar.gz")
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(os.path.join(root, "train"), arcname="train")
        with self.assertRaisesRegex(ValueError, "sha256"):
            extract_archive(archive, cache, sha256="0" * 64)
        target = extract_archive(archive, cache)
        self.assertEqual(target, os.path.join(cache, "toy"))
        self.assertTrue(os.path.isfile(os.path.join(target, "train", "ant",
                                                    "1.png")))


class ListFileTest(TestCase):
    def _write(self, root, lines, name="ImageNet_LT_val.txt"):
        path = os.path.join(root, name)
        with open(path, "w") as f:
            f.write("\n".join(lines) + "\n")
        return path

    def test_reads_paths_and_checks(self):
        root = self.get_temp_dir()
        _write_png(os.path.join(root, "val", "a.png"), 1)
        _write_png(os.path.join(root, "val", "b c.png"), 2)
        path = self._write(root, ["val/a.png 3", "val/b c.png 0"])
        source = read_list_file(path, root, num_classes=5)
        self.assertEqual(source.labels.tolist(), [3, 0])
        self.assertEqual(source.paths[1], os.path.join(root, "val", "b c.png"))
        found = load_benchmark_list("imagenet_lt", "val", root)
        self.assertEqual(found.num_classes, 1000)
        with self.assertRaisesRegex(ValueError, r"num_classes=3"):
            read_list_file(path, root, num_classes=3)
        bad = self._write(root, ["val/a.png three"], "bad.txt")
        with self.assertRaisesRegex(ValueError, "bad.txt:1"):
            read_list_file(bad, root)
        gone = self._write(root, ["val/missing.png 0"], "gone.txt")
        with self.assertRaisesRegex(FileNotFoundError, "missing.png"):
            read_list_file(gone, root)
        with self.assertRaisesRegex(FileNotFoundError, "ImageNet_LT_test"):
            load_benchmark_list("imagenet_lt", "test", root)
        with self.assertRaisesRegex(ValueError, "backward50"):
            load_benchmark_list("imagenet_lt", "backward99", root)
        # Without data_dir: $BALPOE_KERAS_DATA, else a missing-data error
        # naming the flag (the runner prints it in one line).
        with mock.patch.dict(os.environ, {"BALPOE_KERAS_DATA": root}):
            found = load_benchmark_list("imagenet_lt", "val", None)
        self.assertEqual(found.labels.tolist(), [3, 0])
        with mock.patch.dict(os.environ, {"BALPOE_KERAS_DATA": ""}):
            for benchmark, folder in (("imagenet_lt", "ImageNet_LT"),
                                      ("inaturalist2018", "iNaturalist18")):
                with self.assertRaisesRegex(
                        FileNotFoundError, "--data_dir=DIR.*"
                        f"BALPOE_KERAS_DATA.*data_txt/{folder}"):
                    sources.get_source(benchmark, "val")


class RegistryTest(TestCase):
    def test_fashion_mnist_from_idx_files(self):
        root = self.get_temp_dir()
        images = np.arange(3 * 28 * 28, dtype=np.uint8).reshape(3, 28, 28)
        write_idx(os.path.join(root, "t10k-images-idx3-ubyte.gz"), images)
        write_idx(os.path.join(root, "t10k-labels-idx1-ubyte.gz"),
                  np.array([9, 0, 9], np.uint8))
        source = sources.get_source("fashion_mnist", "test", data_dir=root)
        self.assertEqual(source.images.shape, (3, 28, 28, 1))
        self.assertEqual(source.class_counts[9], 2)
        self.assertEqual(source.class_names[9], "Ankle boot")

    def test_unprepared_tfds_offline_fails_fast_naming_the_flag(self):
        with mock.patch.object(sources, "_reachable", lambda host: False):
            with self.assertRaisesRegex(
                    FileNotFoundError, "not prepared.*--dataset="
                    "cifar10_lt_folder --data_dir"):
                sources.load_tfds("cifar10", "train", self.get_temp_dir())

    def test_missing_data_and_unknown_name(self):
        empty = self.get_temp_dir()
        with self.assertRaisesRegex(ValueError, "cifar10_folder"):
            sources.get_source("cifar1000")
        with mock.patch.dict(os.environ, {"BALPOE_KERAS_DATA": ""}):
            with self.assertRaisesRegex(FileNotFoundError,
                                        "dataset-fashion-mnist"):
                sources.load_fashion_mnist("train", empty, use_tfds=False)
            with self.assertRaisesRegex(FileNotFoundError,
                                        r"cifar10-jpeg.tar.gz not found"):
                sources.load_cifar10_folder("train", data_dir=empty,
                                            cache_dir=empty)

    def test_tfds_cifar_sorted_by_id(self):
        import tensorflow_datasets as tfds

        # mock_data stands in for the download (the host check is patched).
        with tfds.testing.mock_data(num_examples=12), \
                mock.patch.object(sources, "_reachable", lambda host: True):
            source = sources.get_source("cifar10", "train")
        self.assertEqual(source.images.shape, (12, 32, 32, 3))
        # Mocked records carry no label file; the CIFAR-10 names are used.
        self.assertEqual(source.class_names[0], "airplane")
        self.assertEqual(sum(source.class_counts), 12)
