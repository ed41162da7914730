"""Tests for balpoe_keras.data.tfdata.pipeline."""

import numpy as np
import pytest
import tensorflow as tf

from balpoe_keras.data.source import ImageSource
from balpoe_keras.data.tfdata.pipeline import make_eval_dataset
from balpoe_keras.data.tfdata.pipeline import make_train_dataset
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only


def _source(n=20, num_classes=4, size=8):
    rng = np.random.RandomState(0)
    images = rng.randint(0, 256, (n, size, size, 3)).astype(np.uint8)
    return ImageSource(np.arange(n) % num_classes,
                       [str(c) for c in range(num_classes)], images=images)


def _batches(ds):
    return list(ds.as_numpy_iterator())


class TrainDatasetTest(TestCase):
    def test_one_epoch_int_labels(self):
        source = _source()
        batches = _batches(make_train_dataset(
            source, global_batch_size=8, recipe="none", seed=1,
            deterministic=True))
        self.assertEqual([len(b[0]) for b in batches], [8, 8, 4])
        images, labels = batches[0]
        self.assertEqual((labels.shape, labels.dtype), ((8,), np.int32))
        self.assertEqual(images.dtype, np.float32)
        # recipe "none": each image is a source image / 255, label matches.
        flat = source.images.reshape(20, -1) / 255.0
        seen = []
        for images, labels in batches:
            for x, y in zip(images, labels):
                match = np.flatnonzero(
                    np.abs(flat - x.reshape(-1)).max(-1) < 1e-6)
                self.assertEqual(source.labels[match[0]], y)
                seen.append(match[0])
        self.assertEqual(sorted(seen), list(range(20)))  # a permutation

    def test_deterministic_and_resumable(self):
        kwargs = dict(global_batch_size=6, recipe="cifar_standard", seed=5,
                      deterministic=True, mixup_alpha=0.4)
        source = _source()
        first = _batches(make_train_dataset(source, **kwargs))
        again = _batches(make_train_dataset(source, **kwargs))
        stream = make_train_dataset(source, repeat=True, **kwargs)
        two_epochs = _batches(stream.take(8))  # 4 batches per epoch (6,6,6,2)
        resumed = _batches(make_train_dataset(source, epoch=1, **kwargs))
        for a, b in zip(first + resumed, two_epochs):
            self.assertAllClose(a[0], b[0])
            self.assertAllClose(a[1], b[1])
        self.assertAllClose(first[0][0], again[0][0])
        self.assertFalse(np.allclose(first[0][0], resumed[0][0]))

    def test_mixup_blends_partner_images_with_the_label_weights(self):
        # One image per class, so a soft label names the two images of a
        # mix and their weights. Mixing leaves the order alone: the same
        # seed without Mixup gives each row's own image (int labels).
        source = _source(n=20, num_classes=20)
        kwargs = dict(global_batch_size=8, recipe="none", seed=4,
                      deterministic=True, drop_remainder=True)
        plain = _batches(make_train_dataset(source, **kwargs))
        mixed = _batches(make_train_dataset(source, mixup_alpha=0.4,
                                            **kwargs))
        self.assertLen(mixed, 2)
        lams = []
        for (own, labels), (images, soft) in zip(plain, mixed):
            # Mixup off: the unmixed batch, source images and int labels.
            self.assertEqual(labels.dtype, np.int32)
            self.assertAllClose(own, source.images[labels] / 255.0)
            self.assertEqual((soft.shape, soft.dtype), ((8, 20), np.float32))
            lam = soft[np.arange(8), labels]
            others = soft.copy()
            others[np.arange(8), labels] = -1
            partner_label = np.where(lam < 1 - 1e-6, others.argmax(-1),
                                     labels)
            partner = np.array([np.flatnonzero(labels == c)[0]
                                for c in partner_label])
            self.assertEqual(sorted(partner), list(range(8)))
            eye = np.eye(20)
            for i in range(8):
                # Soft label lam e_i + (1 - lam) e_j, image lam x_i +
                # (1 - lam) x_j, with the lam read from the label.
                self.assertAllClose(
                    soft[i], lam[i] * eye[labels[i]]
                    + (1 - lam[i]) * eye[partner_label[i]], atol=1e-6)
                self.assertAllClose(
                    images[i], lam[i] * own[i] + (1 - lam[i]) * own[
                        partner[i]], atol=1e-5)
            moved = partner != np.arange(8)
            self.assertAllClose(lam[moved], np.full(moved.sum(),
                                                    lam[moved][0]))
            lams.append(float(lam[moved][0]))
        # Seed 4 really mixes: lam is well inside (0, 1) in both batches
        # (Beta(0.4, 0.4) draws near 0 or 1 hide a missing blend).
        self.assertTrue(all(0.05 < v < 0.95 for v in lams), lams)

    def test_resample_balanced(self):
        # 360 images of class 0, 40 of class 1 (pixels: the image index).
        labels = np.repeat(np.arange(2), [360, 40])
        index = np.arange(400)
        images = np.stack([index // 256, index % 256], -1).astype(np.uint8)
        source = ImageSource(labels, "ab", images=images[:, None, None])
        out = _batches(make_train_dataset(
            source, global_batch_size=400, recipe="none", seed=0,
            resample="balanced"))
        x, y = out[0]
        drawn = np.round(x[:, 0, 0] * 255).astype(int) @ [256, 1]
        np.testing.assert_array_equal(labels[drawn], y)
        # 400 draws at p = 0.5: sd sqrt(400 / 4) = 10; 4.5 sd = 45 around
        # 200. Uniform over images would draw ~40 (sd 6) of class 1.
        self.assertBetween(int((y == 1).sum()), 155, 245)
        # Within class 1, the draws spread over its 40 images (~200 draws:
        # all but ~0.3 of them expected).
        self.assertGreaterEqual(len(np.unique(drawn[y == 1])), 36)

    def test_streamed_folder_pairs_each_image_with_its_own_label(self):
        # An image folder read from its files (paths, decoded in the
        # pipeline) gives the batches of the same folder in memory, and
        # each image's label is its class folder's: pixel (0, 0, 0) holds
        # 50 * class + index.
        from balpoe_keras.data.image_folder import load_image_folder

        root = self.get_temp_dir()
        rng = np.random.default_rng(0)
        for c, (name, count) in enumerate(zip("xyz", (7, 4, 2))):
            folder = f"{root}/train/{name}"
            tf.io.gfile.makedirs(folder)
            for k in range(count):
                image = rng.integers(0, 256, (6, 5, 3), np.uint8)
                image[0, 0, 0] = 50 * c + k
                tf.io.write_file(f"{folder}/{k}.png",
                                 tf.io.encode_png(image))
        streamed = load_image_folder(root, "train", in_memory=False)
        in_memory = load_image_folder(root, "train")
        self.assertIsNotNone(streamed.paths)
        for kwargs in ({}, {"resample": "balanced"},
                       {"mixup_alpha": 0.4, "num_classes": 3},
                       {"num_processes": 2, "process_index": 1,
                        "drop_remainder": True}):
            with self.subTest(**kwargs):
                args = dict(global_batch_size=4, recipe="none", seed=3,
                            deterministic=True, **kwargs)
                got = _batches(make_train_dataset(streamed, **args))
                want = _batches(make_train_dataset(in_memory, **args))
                self.assertEqual(len(got), len(want))
                for (x, y), (x_want, y_want) in zip(got, want):
                    np.testing.assert_array_equal(x, x_want)
                    np.testing.assert_array_equal(y, y_want)
                    if "mixup_alpha" not in kwargs:
                        values = np.round(x[:, 0, 0, 0] * 255).astype(int)
                        np.testing.assert_array_equal(values // 50, y)

    def test_bad_batch_sizes(self):
        with self.assertRaisesRegex(ValueError, "num_replicas=4"):
            make_train_dataset(_source(), global_batch_size=6,
                               num_replicas=4)
        with self.assertRaisesRegex(ValueError, "global_batch_size >= 1"):
            make_eval_dataset(_source(), global_batch_size=0)


class EvalDatasetTest(TestCase):
    def test_order_and_cache(self):
        source = _source()
        batches = _batches(make_eval_dataset(
            source, global_batch_size=8, cache=True))
        images = np.concatenate([b[0] for b in batches])
        labels = np.concatenate([b[1] for b in batches])
        self.assertAllClose(images, source.images / 255.0)
        np.testing.assert_array_equal(labels, source.labels)
        self.assertEqual(labels.dtype, np.int32)

    def test_paths_source_with_imagenet_eval(self):
        root = self.get_temp_dir()
        paths = []
        for i in range(3):
            paths.append(f"{root}/{i}.png")
            image = np.full((20 + i, 30, 3), 40 * i, np.uint8)
            tf.io.write_file(paths[-1], tf.io.encode_png(image))
        source = ImageSource([0, 1, 1], "ab", paths=np.asarray(paths))
        batch = _batches(make_eval_dataset(
            source, global_batch_size=3, recipe="imagenet_standard",
            image_size=16))[0]
        self.assertEqual(batch[0].shape, (3, 16, 16, 3))
        self.assertAllClose(batch[0][2], np.full((16, 16, 3), 80 / 255.0))


class FitTest(TestCase):
    @pytest.mark.large
    def test_fit_balpoe_resnet32_one_epoch(self):
        from balpoe_keras.models import build_balpoe_classifier

        source = _source(n=16, size=32)
        model = build_balpoe_classifier("resnet8", source.class_counts)
        model.compile(optimizer="sgd")
        ds = make_train_dataset(source, global_batch_size=8, seed=0,
                                mixup_alpha=0.4)
        self.assertEqual(int(ds.cardinality()), 2)
        history = model.fit(ds, epochs=1, verbose=0, shuffle=False)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        self.assertEqual(int(model.optimizer.iterations), 2)  # both batches
