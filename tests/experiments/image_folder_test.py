"""`--dataset=image_folder`: a user's own folder of images, end to end."""

import contextlib
import io
import json
import os
import subprocess
import sys
from unittest import mock

import keras
import numpy as np
import pytest

from balpoe_keras.data import long_tail
from balpoe_keras.experiments import inputs
from balpoe_keras.experiments.config import ConfigError
from tests.experiments.flags_util import FLAGFILE_DIR
from tests.experiments.flags_util import parse
from tests.test_case import TestCase


def write_folder(root, train_counts, test_per_class=3, sides=(30, 34),
                 grayscale=False, seed=0, splits=("train", "test")):
    """Writes `root/<split>/<class>/*.png|jpg` of random images whose
    height and width are drawn from `sides` (inclusive); class `c` is
    named `class_<c>` and brighter for larger `c`. Returns the names."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    names = [f"class_{c}" for c in range(len(train_counts))]
    for split in splits:
        for c, name in enumerate(names):
            folder = os.path.join(root, split, name)
            os.makedirs(folder, exist_ok=True)
            count = train_counts[c] if split == "train" else test_per_class
            for k in range(count):
                h, w = rng.integers(sides[0], sides[1] + 1, 2)
                shape = (h, w) if grayscale else (h, w, 3)
                pixels = rng.normal(40 + 60 * c, 25, shape)
                image = Image.fromarray(pixels.clip(0, 255).astype("uint8"))
                ext = "png" if k % 2 else "jpg"
                image.save(os.path.join(folder, f"{k:04d}.{ext}"))
    return names


def folder_config(root, *overrides, workdir="unused"):
    return parse("--dataset=image_folder", f"--data_dir={root}",
                 f"--workdir={workdir}", *overrides)


class FolderSettingsTest(TestCase):
    """Sizes, channels and defaults come from the images."""

    def test_small_grayscale_folder(self):
        root = self.get_temp_dir()
        write_folder(root, [6, 4, 2], sides=(27, 29), grayscale=True)
        config = folder_config(root)
        self.assertEqual((config.image_size, config.channels), (28, 1))
        self.assertEqual((config.architecture, config.recipe),
                         ("resnet32", "cifar_standard"))
        self.assertEqual(config.imbalance_ratio, 0.0)
        self.assertEqual(config.spec.export_preprocess, "resize")
        forced = folder_config(root, "--channels=3", "--image_size=40")
        self.assertEqual((forced.image_size, forced.channels), (40, 3))

    def test_large_images_stream_at_224_on_resnet50(self):
        root = self.get_temp_dir()
        write_folder(root, [2, 2], sides=(90, 110), grayscale=True)
        config = folder_config(root)
        self.assertEqual((config.image_size, config.channels), (224, 3))
        self.assertEqual((config.architecture, config.recipe),
                         ("resnet50", "imagenet_standard"))
        self.assertEqual(config.spec.export_preprocess, "resize_center_crop")
        self.assertEqual(folder_config(root, "--image_size=96").architecture,
                         "resnet32")

    def test_the_flagfile_reads_any_folder(self):
        root = self.get_temp_dir()
        write_folder(root, [6, 2], sides=(32, 32))
        path = os.path.join(FLAGFILE_DIR, "image_folder.flags")
        config = parse(f"--flagfile={path}", f"--data_dir={root}",
                       "--workdir=unused")
        self.assertEqual((config.dataset, config.image_size,
                          config.architecture), ("image_folder", 32,
                                                 "resnet32"))
        self.assertEqual(np.mean(config.lambdas), 0.0)
        with open(path) as f:
            self.assertIn("Command:  python -m balpoe_keras.experiments.run "
                          "--flagfile=experiments/image_folder.flags "
                          "--data_dir=DIR", f.read())

    def test_a_recorded_run_resumes_after_its_folder_moved(self):
        from balpoe_keras.experiments.config import ExperimentConfig

        root = self.get_temp_dir()
        write_folder(root, [6, 4], sides=(30, 30), grayscale=True)
        config = folder_config(root)
        path = os.path.join(self.get_temp_dir(), "config.json")
        with open(path, "w") as f:
            f.write(config.to_json())
        os.rename(os.path.join(root, "train"), os.path.join(root, "moved"))
        self.assertEqual(ExperimentConfig.from_json(path), config)
        with self.assertRaisesRegex(ConfigError, "No folder"):
            folder_config(root)

    def test_a_run_does_not_resume_on_changed_data(self):
        # Images added to the folder between a stop and a resume would
        # change the class prior mid-run, silently.
        import shutil

        from balpoe_keras.experiments import runner
        from balpoe_keras.experiments.workdir import WorkdirError
        from balpoe_keras.training.run_folder import RunFolder

        root, workdir = self.get_temp_dir(), self.get_temp_dir()
        write_folder(root, [6, 4], sides=(8, 8))
        flags = ("--architecture=resnet8", "--batch_size=4",
                 "--notest_distributions")

        def dry_run():
            with contextlib.redirect_stdout(io.StringIO()):
                runner.run_experiment(
                    folder_config(root, *flags, workdir=workdir),
                    dry_run=True)

        dry_run()
        with open(os.path.join(workdir, "data.json")) as f:
            recorded = json.load(f)
        self.assertEqual(recorded, {"class_names": ["class_0", "class_1"],
                                    "train_counts": [6, 4],
                                    "test_counts": [3, 3]})
        os.makedirs(os.path.join(workdir, "checkpoints"))  # A trained run.
        open(os.path.join(workdir, "checkpoints", "ckpt-0001.keras"),
             "w").close()
        dry_run()  # The same data resumes.
        class_1 = os.path.join(root, "train", "class_1")
        shutil.copy(os.path.join(class_1, "0000.jpg"),
                    os.path.join(class_1, "0009.jpg"))
        with self.assertRaisesRegex(
                WorkdirError, r"trained on other data.*train 'class_1': "
                r"4 -> 5 images.*--overwrite"):
            dry_run()
        RunFolder(workdir).remove_outputs()
        self.assertFalse(os.path.exists(os.path.join(workdir, "data.json")))

    def test_bad_folders_fail_before_training_naming_the_fix(self):
        def case(name, build, pattern, *flags):
            root = self.get_temp_dir()
            build(root)
            with self.subTest(name), self.assertRaisesRegex(ConfigError,
                                                            pattern):
                folder_config(root, *flags)

        def corrupt(root):
            write_folder(root, [3, 3])
            with open(os.path.join(root, "train", "class_1", "bad.jpg"),
                      "wb") as f:
                f.write(b"not an image")

        def empty_class(root):
            write_folder(root, [3, 3])
            os.makedirs(os.path.join(root, "train", "class_2"))
            os.makedirs(os.path.join(root, "test", "class_2"))

        def other_test_classes(root):
            write_folder(root, [3, 3])
            os.rename(os.path.join(root, "test", "class_1"),
                      os.path.join(root, "test", "dog"))

        def nfd_test_names(root):
            import unicodedata

            write_folder(root, [3, 3])
            for split, form in (("train", "NFC"), ("test", "NFD")):
                os.rename(os.path.join(root, split, "class_1"),
                          os.path.join(root, split,
                                       unicodedata.normalize(form, "blü")))

        case("no train folder", lambda r: None, r"No folder .*train")
        case("names in two Unicode forms", nfd_test_names,
             r"differ only in their Unicode form")
        case("one class", lambda r: write_folder(r, [3]),
             r"1 class folder\(s\) \['class_0'\].*at least 2")
        case("empty class", empty_class,
             r"hold no images.*class_2.*remove the folders")
        case("unreadable file", corrupt, r"not readable images.*bad\.jpg")
        case("class sets differ", other_test_classes,
             r"missing from test: \['class_1'\]; not in train: \['dog'\]")
        case("no test split",
             lambda r: write_folder(r, [3, 3], splits=("train",)),
             r"no test/ or val/ folder.*--holdout_per_class=N")
        case("hold-out leaves no training image",
             lambda r: write_folder(r, [5, 2], splits=("train",)),
             r"class 'class_1' has 2 training images",
             "--holdout_per_class=2")
        case("hold-out beside a test folder",
             lambda r: write_folder(r, [3, 3]),
             r"has a test/ folder.*drop the flag", "--holdout_per_class=1")
        case("tiny images", lambda r: write_folder(r, [3, 3], sides=(6, 6)),
             r"typically 6 px.*--image_size=8")
        case("a size too small", lambda r: write_folder(r, [3, 3]),
             r"--image_size: 4 px is too small; use >= 8", "--image_size=4")
        case("bad ratio", lambda r: write_folder(r, [3, 3]),
             r"--imbalance_ratio: must be 0", "--imbalance_ratio=0.5")
        case("a ratio the counts cannot give",
             lambda r: write_folder(r, [5, 5, 5]),
             r"--imbalance_ratio: .*leaves the last class no image",
             "--imbalance_ratio=10")
        case("streamed images with a recipe that does not resize",
             lambda r: write_folder(r, [3, 3]),
             r"--recipe: cifar_standard does not resize.*--image_size=96.*"
             r"imagenet_standard.*--image_size <= 64",
             "--image_size=96", "--recipe=cifar_standard")
        with self.assertRaisesRegex(ConfigError, r"--data_dir=DIR"):
            parse("--dataset=image_folder", "--workdir=w")
        with self.assertRaisesRegex(ConfigError, r"--image_size.*applies "
                                    "to --dataset=image_folder"):
            parse("--dataset=cifar10_lt", "--workdir=w", "--image_size=64")


class FolderDataTest(TestCase):
    """What the runner reads from a folder."""

    def setUp(self):
        super().setUp()
        cache = self.get_temp_dir()
        patch = mock.patch.dict(os.environ, {"BALPOE_KERAS_CACHE": cache})
        patch.start()
        self.addCleanup(patch.stop)

    def test_counts_as_they_are_and_resized_pixels(self):
        from PIL import Image

        root = self.get_temp_dir()
        names = write_folder(root, [7, 4, 2], sides=(20, 40))
        data = inputs.load_data(folder_config(root, "--image_size=24"))
        self.assertEqual(data.train.class_names, tuple(names))
        self.assertEqual(data.class_counts, [7, 4, 2])
        self.assertEqual(data.test.class_counts, (3, 3, 3))
        self.assertEqual(data.train.images.shape, (13, 24, 24, 3))
        # Each file is its bilinear, antialiased resize (Pillow "F").
        path = os.path.join(root, "train", "class_2", "0001.png")
        with Image.open(path) as image:
            pixels = np.asarray(image, np.float32)
        expected = np.stack([np.asarray(
            Image.fromarray(pixels[..., c], "F").resize((24, 24),
                                                        Image.BILINEAR))
            for c in range(3)], -1)
        np.testing.assert_array_equal(data.train.images[-1],
                                      np.round(expected.clip(0, 255)))

    def test_nested_images_count_and_hidden_files_do_not(self):
        # As torchvision's ImageFolder: a class's sub-folders are its
        # images too (predict reads them); macOS' "._x.png" resource forks
        # and hidden folders are skipped, not refused as unreadable.
        import shutil

        root = self.get_temp_dir()
        write_folder(root, [4, 3], sides=(20, 24))
        class_0 = os.path.join(root, "train", "class_0")
        os.makedirs(os.path.join(class_0, "more", "deeper"))
        for k, sub in enumerate(("more", os.path.join("more", "deeper"))):
            shutil.copy(os.path.join(class_0, "0000.jpg"),
                        os.path.join(class_0, sub, f"n{k}.jpg"))
        os.makedirs(os.path.join(class_0, ".thumbnails"))
        for junk in ("._0000.jpg", os.path.join(".thumbnails", "t.png")):
            with open(os.path.join(class_0, junk), "wb") as f:
                f.write(b"not an image")
        # A linked folder is followed (a loop back to the class once);
        # a broken link is left out.
        os.symlink(os.path.join(root, "test", "class_1"),
                   os.path.join(class_0, "linked"))
        os.symlink(class_0, os.path.join(class_0, "more", "loop"))
        os.symlink(os.path.join(root, "gone.jpg"),
                   os.path.join(class_0, "broken.jpg"))
        data = inputs.load_data(folder_config(root, "--image_size=24"))
        self.assertEqual(data.class_counts, [9, 3])
        for copy in (7, 8):  # more/deeper/n1.jpg, more/n0.jpg (sorted,
            # after linked/0000-0002).
            np.testing.assert_array_equal(data.train.images[copy],
                                          data.train.images[0])

    def test_image_types_not_read_are_counted_in_a_warning(self):
        from balpoe_keras.data.image_folder import scan_image_folder

        root = self.get_temp_dir()
        write_folder(root, [3, 2], sides=(8, 8))
        for split, name in (("train", "a.TIF"), ("train", "b.heic"),
                            ("test", "c.tiff"), ("train", "notes.txt")):
            with open(os.path.join(root, split, "class_1", name), "wb") as f:
                f.write(b"\0")
        with self.assertLogs(level="WARNING") as logs:
            layout = scan_image_folder(root)
        self.assertEqual(layout.train_counts, (3, 2))
        self.assertRegex(logs.output[0],
                         r"leaving out 3 image file\(s\).*\(1 \.heic, 1 "
                         r"\.tif, 1 \.tiff\).*Convert them")

    def test_a_test_split_takes_train_classes_from_python(self):
        # load_image_folder(root, "test") labels by the train folders: a
        # test split missing a class would shift every later class id.
        import shutil

        from balpoe_keras.data import get_source
        from balpoe_keras.data.image_folder import load_image_folder

        root = self.get_temp_dir()
        names = write_folder(root, [3, 2, 2], test_per_class=2, sides=(8, 8))
        test = load_image_folder(root, "test")
        self.assertEqual(test.class_names, tuple(names))
        np.testing.assert_array_equal(test.labels, [0, 0, 1, 1, 2, 2])
        shutil.rmtree(os.path.join(root, "test", "class_1"))
        for load in (lambda: load_image_folder(root, "test"),
                     lambda: get_source("image_folder", "test", root)):
            with self.assertRaisesRegex(
                    ValueError, r"hold different classes \(missing from "
                    r"test: \['class_1'\]; not in train: \[\]\)"):
                load()
        # Given class names, the split is read as told.
        test = load_image_folder(root, "test",
                                 class_names=["class_0", "class_2"])
        np.testing.assert_array_equal(test.labels, [0, 0, 1, 1])

    def test_grayscale_at_native_size_is_exact(self):
        from PIL import Image

        root = self.get_temp_dir()
        write_folder(root, [3, 3], sides=(28, 28), grayscale=True)
        data = inputs.load_data(folder_config(root))
        with Image.open(os.path.join(root, "train", "class_0",
                                     "0001.png")) as image:
            expected = np.asarray(image)[..., None]
        np.testing.assert_array_equal(data.train.images[1], expected)

    def test_a_bad_file_outside_the_header_sample_fails_before_training(
            self):
        from balpoe_keras.data import image_folder

        for side, stage in ((30, "decoding"), (80, "the header check")):
            root = self.get_temp_dir()
            write_folder(root, [6, 4], sides=(side, side))
            bad = os.path.join(root, "train", "class_1", "0002.png")
            with open(bad, "wb") as f:
                f.write(b"\x89PNG\r\n\x1a\n truncated")
            with self.subTest(stage), mock.patch.object(
                    image_folder, "HEADER_SAMPLE", 2), self.assertRaisesRegex(
                    ConfigError, r"--data_dir: 1 .*0002\.png.*Replace|"
                    r"--data_dir: 1 .*0002\.png.*Delete or replace"):
                inputs.load_data(folder_config(root))

    def test_holdout_is_balanced_seeded_and_disjoint(self):
        root = self.get_temp_dir()
        write_folder(root, [9, 6, 4], splits=("train",))
        config = folder_config(root, "--holdout_per_class=2")
        self.assertIn('"holdout_per_class": 2', config.to_json())
        first, again = inputs.load_data(config), inputs.load_data(config)
        self.assertEqual(first.test.class_counts, (2, 2, 2))
        self.assertEqual(first.class_counts, [7, 4, 2])
        np.testing.assert_array_equal(first.test.images, again.test.images)
        train = {im.tobytes() for im in first.train.images}
        self.assertFalse(train & {im.tobytes() for im in first.test.images})
        self.assertEqual(first.test.split, "holdout")

    def test_imbalance_ratio_keeps_the_largest_exponential_tail(self):
        root = self.get_temp_dir()
        write_folder(root, [20, 20, 20, 12], sides=(8, 8))
        data = inputs.load_data(folder_config(root, "--imbalance_ratio=10"))
        # Class 3 (12 images) bounds the head: 12 / 10**-1 = 120 > 20.
        self.assertEqual(data.class_counts,
                         long_tail.long_tail_counts(4, 20, 10.0))
        tail = long_tail.largest_long_tail_counts([20, 20, 20, 1], 10)
        self.assertEqual(tail, long_tail.long_tail_counts(4, 10, 10.0))

    def test_long_tail_profiles_follow_the_folder_counts_not_names(self):
        # class_0 has the fewest images: ranked by count, the profile's
        # head is class_2 (20 images), 20 * 5**-0.5 = 8.9 -> 8, then 4.
        root = self.get_temp_dir()
        write_folder(root, [4, 12, 20], test_per_class=10, sides=(8, 8))
        data = inputs.load_data(folder_config(root, "--imbalance_ratio=5"))
        self.assertEqual(data.class_counts, [4, 8, 20])
        labels = data.test.labels
        forward = np.bincount(labels[data.test_distributions["forward5"]],
                              minlength=3)
        backward = np.bincount(
            labels[data.test_distributions["backward5"]], minlength=3)
        # "forward" is long-tailed like the training set: most of class_2.
        np.testing.assert_array_equal(forward, [2, 4, 10])
        np.testing.assert_array_equal(backward, [10, 4, 2])

    def test_cifar_archive_as_folders_equals_the_archive_source(self):
        from balpoe_keras.data.image_folder import extract_archive
        from tests.cifar_archive import write_cifar_archive

        archive_dir = self.get_temp_dir()
        write_cifar_archive(archive_dir, train_per_class=12,
                            test_per_class=3)
        root = extract_archive(os.path.join(archive_dir,
                                            "cifar10-jpeg.tar.gz"),
                               self.get_temp_dir())
        folder = inputs.load_data(folder_config(root, "--imbalance_ratio=6"))
        archive = inputs.load_data(parse(
            "--dataset=cifar10_lt_folder", f"--data_dir={archive_dir}",
            "--workdir=unused", "--imbalance_ratio=6"))
        self.assertEqual(folder.class_counts, archive.class_counts)
        self.assertEqual(folder.class_counts[0] / folder.class_counts[-1], 6)
        for split in ("train", "test"):
            ours, theirs = getattr(folder, split), getattr(archive, split)
            self.assertEqual(ours.class_names, theirs.class_names)
            np.testing.assert_array_equal(ours.labels, theirs.labels)
            np.testing.assert_array_equal(ours.images, theirs.images)


def _run(config):
    from balpoe_keras.experiments import runner

    stdout = io.StringIO()
    with contextlib.redirect_stdout(stdout):
        result = runner.run_experiment(config)
    return result, stdout.getvalue()


@pytest.mark.large
class FolderRunTest(TestCase):
    """A tiny run from a folder on this backend: report and model."""

    def setUp(self):
        super().setUp()
        patch = mock.patch.dict(os.environ,
                                {"BALPOE_KERAS_CACHE": self.get_temp_dir()})
        patch.start()
        self.addCleanup(patch.stop)

    def _short(self, root, *flags):
        workdir = self.get_temp_dir()
        return folder_config(
            root, "--epochs=1", "--warmup_epochs=1", "--lr_step_epochs=1",
            "--max_train_steps_per_epoch=2", "--batch_size=8",
            "--eval_batch_size=16", "--notest_distributions",
            "--architecture=resnet8", *flags,
            workdir=workdir)

    def test_in_memory_grayscale_with_holdout(self):
        root = self.get_temp_dir()
        names = write_folder(root, [30, 10, 3], sides=(26, 30),
                             grayscale=True, splits=("train",))
        config = self._short(root, "--holdout_per_class=2", "--noexport")
        results, out = _run(config)
        self.assertIn("many/medium/few classes: 0/1/2", out)
        self.assertEqual(results["num_classes"], 3)
        with open(os.path.join(config.workdir, "config.json")) as f:
            self.assertEqual(json.load(f)["holdout_per_class"], 2)
        with open(os.path.join(config.workdir, "report",
                               "report.md")) as f:
            self.assertIn("few 2 (fewer than 20)", f.read())
        model = keras.saving.load_model(os.path.join(config.workdir,
                                                     "model.keras"))
        self.assertEqual(tuple(model.class_names), tuple(names))
        self.assertEqual(model.input_shape[1:],
                         (config.image_size, config.image_size, 1))

    def test_large_images_stream_from_the_files(self):
        pytest.importorskip("tensorflow")
        root = self.get_temp_dir()
        write_folder(root, [6, 4], test_per_class=2, sides=(70, 90))
        config = self._short(root, "--image_size=72", "--noexport")
        self.assertFalse(inputs.load_data(config).train.in_memory)
        results, out = _run(config)
        self.assertIn("input tfdata", out)
        self.assertEqual(results["num_classes"], 2)


@pytest.mark.large
@pytest.mark.tf_only
class EvaluateFolderTest(TestCase):
    """`experiments.evaluate` of a saved model on an image folder."""

    def _evaluate(self, *flags):
        from balpoe_keras.experiments import evaluate

        values = evaluate.FLAGS
        values.unparse_flags()
        self.addCleanup(values.unparse_flags)
        values(["evaluate.py", *flags])
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                evaluate.main(["evaluate.py"])
            except SystemExit as e:
                return e.code, err.getvalue()
        return 0, out.getvalue()

    def test_classes_and_input_size_come_from_the_model(self):
        from balpoe_keras.experiments import runner

        root = self.get_temp_dir()
        names = write_folder(root, [6, 4, 3], test_per_class=2,
                             sides=(30, 34))
        config = folder_config(root, "--architecture=resnet8",
                               workdir=self.get_temp_dir())
        data = inputs.load_data(config)
        model = runner.build_model(config, data.class_counts, 1,
                                   class_names=data.train.class_names)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)

        side = config.image_size
        self.assertEqual(model.input_shape[1:], (side, side, 3))
        # Other images, larger: read at the model's size.
        bigger = self.get_temp_dir()
        write_folder(bigger, [5, 5, 5], test_per_class=2, sides=(40, 44),
                     seed=1)
        report = os.path.join(self.get_temp_dir(), "report")
        code, out = self._evaluate(
            f"--model={path}", "--dataset=image_folder",
            f"--data_dir={bigger}", f"--report_dir={report}",
            "--notest_distributions")
        self.assertEqual(code, 0, out)
        with open(os.path.join(report, "report.json")) as f:
            self.assertEqual(json.load(f)["config"]["image_size"], side)

        # A renamed class folder reorders the classes: refused.
        for split in ("train", "test"):
            os.rename(os.path.join(bigger, split, names[0]),
                      os.path.join(bigger, split, "z_last"))
        code, err = self._evaluate(
            f"--model={path}", "--dataset=image_folder",
            f"--data_dir={bigger}", f"--report_dir={report}",
            "--notest_distributions")
        self.assertEqual(code, 2)
        self.assertRegex(err, r"not the model's.*0: model 'class_0', data "
                         r"'class_1'.*name them as in the training folder")

        # A run directory takes where the data is now from the flags, and
        # refuses flags that would describe another run.
        run_dir = config.workdir
        model.save(os.path.join(run_dir, "model.keras"))
        with open(os.path.join(run_dir, "config.json"), "w") as f:
            f.write(config.to_json())
        moved = os.path.join(self.get_temp_dir(), "moved")
        os.rename(root, moved)
        code, out = self._evaluate(
            f"--model={run_dir}", f"--data_dir={moved}",
            "--eval_batch_size=7", "--notest_distributions",
            f"--report_dir={report}")
        self.assertEqual(code, 0, out)
        with open(os.path.join(report, "report.json")) as f:
            recorded = json.load(f)["config"]
        self.assertEqual((recorded["data_dir"], recorded["eval_batch_size"]),
                         (moved, 7))
        code, err = self._evaluate(f"--model={run_dir}", "--lambdas=1,-1",
                                   f"--data_dir={moved}")
        self.assertEqual(code, 2)
        self.assertIn("is a run directory: its config.json holds the "
                      "settings it was trained with, and --lambdas", err)
        # A report folder that cannot be made, and a file that is no
        # model: one-line errors (exit 2) before any evaluation.
        blocker = os.path.join(self.get_temp_dir(), "a_file")
        open(blocker, "w").close()
        code, err = self._evaluate(f"--model={run_dir}",
                                   f"--data_dir={moved}",
                                   f"--report_dir={blocker}/report")
        self.assertEqual(code, 2)
        self.assertIn("--report_dir: cannot create", err)
        code, err = self._evaluate(f"--model={blocker}",
                                   "--dataset=image_folder",
                                   f"--data_dir={moved}")
        self.assertEqual(code, 2)
        self.assertIn("cannot be loaded", err)
        os.rename(moved, root)

        # Flags that contradict the model's input: refused, naming both.
        code, err = self._evaluate(
            f"--model={path}", "--dataset=image_folder",
            f"--data_dir={root}", "--image_size=28",
            f"--report_dir={report}", "--notest_distributions")
        self.assertEqual(code, 2)
        self.assertIn(f"takes ({side}, {side}, 3) inputs, the flags give "
                      "(28, 28, 3)", err)


_CHILD_RUN = """
import sys
from balpoe_keras.experiments import runner
from tests.experiments.image_folder_test import folder_config
root, workdir = sys.argv[1:]
runner.run_experiment(folder_config(
    root, "--architecture=resnet8", "--batch_size=8", "--eval_batch_size=4",
    "--epochs=1", "--warmup_epochs=0", "--max_train_steps_per_epoch=1",
    "--notest_distributions", "--noexport", workdir=workdir))
"""


@pytest.mark.large
@pytest.mark.skipif(keras.backend.backend() != "jax",
                    reason="runs once, in the JAX suite")
class MultiDeviceEvaluationTest(TestCase):
    def test_two_devices_score_a_test_set_of_odd_size(self):
        # 9 test images at batch 4: the last batch of 1 cannot be split
        # over 2 devices; the evaluation failed after the whole training.
        root, workdir = self.get_temp_dir(), self.get_temp_dir()
        write_folder(root, [8, 8, 8], test_per_class=3, sides=(8, 8))
        repo = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.abspath(__file__))))
        env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=repo,
                   XLA_FLAGS="--xla_force_host_platform_device_count=2")
        done = subprocess.run(
            [sys.executable, "-c", _CHILD_RUN, root, workdir], cwd=repo,
            env=env, capture_output=True, text=True, timeout=600)
        self.assertEqual(done.returncode, 0, done.stderr[-3000:])
        self.assertIn("2 device(s)", done.stdout)
        with open(os.path.join(workdir, "report", "report.json")) as f:
            self.assertEqual(json.load(f)["balanced"]["num_examples"], 9)
