import io
import os
import subprocess
import sys
import tarfile
import textwrap
from unittest import mock

import numpy as np
import pytest
from PIL import Image

from balpoe_keras.data import archive as sources
from balpoe_keras.data import long_tail
from tests.test_case import TestCase

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..",
                                    ".."))


def _png(value, size=4):
    buffer = io.BytesIO()
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(
        buffer, format="PNG")
    return buffer.getvalue()


def _write_archive(path, files):
    """`files`: {member name: bytes}, written in reverse name order."""
    with tarfile.open(path, "w:gz") as tar:
        for name in sorted(files, reverse=True):
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))


class ReadImageArchiveTest(TestCase):
    def setUp(self):
        super().setUp()
        self.dir = self.get_temp_dir()
        self.archive = os.path.join(self.dir, sources.CIFAR10_ARCHIVE)
        # Pixel value encodes (split, class, file) so the order is visible.
        _write_archive(self.archive, {
            "train/dog/0001.png": _png(21), "train/dog/0000.png": _png(20),
            "train/cat/0000.png": _png(10), "test/cat/0000.png": _png(110),
            "test/dog/0000.png": _png(120), "README.txt": b"not an image",
        })

    def test_sorted_paths_and_alphabetical_labels(self):
        arrays = sources.read_image_archive(self.archive)
        self.assertEqual(arrays["class_names"].tolist(), ["cat", "dog"])
        self.assertEqual(arrays["train_images"].shape, (3, 4, 4, 3))
        self.assertEqual(arrays["train_images"].dtype, np.uint8)
        self.assertEqual(arrays["train_images"][:, 0, 0, 0].tolist(),
                         [10, 20, 21])
        self.assertEqual(arrays["train_labels"].tolist(), [0, 1, 1])
        self.assertEqual(arrays["test_labels"].tolist(), [0, 1])

    def test_given_class_order_sets_labels(self):
        arrays = sources.read_image_archive(self.archive, ("dog", "cat"))
        self.assertEqual(arrays["train_labels"].tolist(), [1, 0, 0])

    def test_a_class_folder_outside_the_given_classes_is_named(self):
        # Its images were left out silently (a renamed CIFAR-10 folder).
        with self.assertRaisesRegex(ValueError, r"class folders \['cat'\] "
                                    r"that are not among its 1 classes"):
            sources.read_image_archive(self.archive, ("dog",))

    def test_corrupt_files_are_listed(self):
        bad = os.path.join(self.dir, "bad.tar.gz")
        _write_archive(bad, {"train/cat/0.png": _png(1),
                             "train/cat/1.jpg": b"garbage",
                             "train/dog/2.jpg": b"\xff\xd8junk"})
        with self.assertRaisesRegex(ValueError,
                                    "2 image file.*1.jpg.*2.jpg"):
            sources.read_image_archive(bad)

    def test_cache_is_written_and_reused(self):
        cache = os.path.join(self.dir, "cache")
        first = sources.load_cifar10_arrays(self.dir, cache_dir=cache)
        (cached,) = os.listdir(cache)
        self.assertTrue(cached.endswith(".npz"))
        again = sources.load_cifar10_arrays(os.path.join(cache, cached))
        for key in first:
            np.testing.assert_array_equal(first[key], again[key])
        # CIFAR-10 class order: cat = 3, dog = 5.
        self.assertEqual(first["train_labels"].tolist(), [3, 5, 5])

    def test_two_runs_filling_one_cache_at_once_both_succeed(self):
        # Runs started together (two seeds) write the same cache: while
        # one writes, the other writes and renames in full. With one
        # temporary name for both, the first rename found its file gone.
        path = os.path.join(self.get_temp_dir(), "arrays.npz")
        real_savez = np.savez
        pids = iter([111, 222])
        calls = []

        def interleaved(file, **arrays):
            real_savez(file, **arrays)
            calls.append(file)
            if len(calls) == 1:  # The other run writes, meanwhile.
                sources.save_arrays(path, {"x": np.ones(2)})

        with mock.patch.object(sources.os, "getpid", lambda: next(pids)), \
                mock.patch.object(sources.np, "savez", interleaved):
            sources.save_arrays(path, {"x": np.zeros(3)})
        with np.load(path) as data:
            np.testing.assert_array_equal(data["x"], np.zeros(3))
        self.assertEqual(os.listdir(os.path.dirname(path)), ["arrays.npz"])

    def test_missing_archive_names_searched_folders(self):
        # A given data_dir is the only place looked in: no silent fallback.
        with self.assertRaisesRegex(FileNotFoundError,
                                    "'/nowhere' does not exist"):
            sources.find_cifar10_archive("/nowhere")
        empty = self.get_temp_dir()
        with mock.patch.dict(os.environ, {"BALPOE_KERAS_DATA": self.dir}):
            with self.assertRaisesRegex(FileNotFoundError,
                                        f"not found in \\['{empty}'\\]"):
                sources.find_cifar10_archive(empty)
            self.assertEqual(sources.find_cifar10_archive(), self.archive)


class MakeLongTailedTest(TestCase):
    def test_counts_follow_exponential_profile(self):
        labels = np.repeat(np.arange(3), 10)
        images = np.arange(30, dtype=np.uint8).reshape(30, 1, 1, 1)
        x, y, counts = long_tail.make_long_tailed(images, labels, 3, 10)
        # n_c = int(10 * 0.1**(c/2)): 10, int(3.162) = 3, 1.
        self.assertEqual(counts, [10, 3, 1])
        self.assertEqual(y.tolist(), [0] * 10 + [1] * 3 + [2])
        np.testing.assert_array_equal(labels[x[:, 0, 0, 0]], y)


@pytest.mark.large
def test_arrays_path_imports_and_runs_without_tensorflow(tmp_path):
    """Simulates the GPU image: `import tensorflow` raises ImportError."""
    stub = tmp_path / "tensorflow"
    stub.mkdir()
    (stub / "__init__.py").write_text("raise ImportError('no TF here')\n")
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from balpoe_keras.data.archive import load_cifar10_arrays
        from balpoe_keras.data.arrays import ArrayDataset
        from balpoe_keras.data import long_tail, test_distributions
        from balpoe_keras import evaluation, models, optimizers, training
        from balpoe_keras.training import fit, checkpoint
        images = np.zeros((6, 8, 8, 3), np.uint8)
        ds = ArrayDataset((images, np.arange(6) % 2), global_batch_size=4,
                          num_classes=2, mixup_alpha=0.8, max_degrees=15.0)
        x, y = ds[1]
        assert tuple(x.shape) == (2, 8, 8, 3), x.shape
        assert test_distributions.make_test_distributions(
            np.repeat(np.arange(2), 10), 2)["uniform"].size == 20
        assert "tensorflow" not in sys.modules
        print("OK")
    """)
    env = dict(os.environ, KERAS_BACKEND="jax",
               PYTHONPATH=f"{tmp_path}{os.pathsep}{ROOT}")
    proc = subprocess.run([sys.executable, "-c", code], env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "OK" in proc.stdout, proc.stderr[-3000:]
