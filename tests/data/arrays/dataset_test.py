import keras
import numpy as np

from balpoe_keras.data.arrays import augment
from balpoe_keras.data.arrays import dataset
from balpoe_keras.models import add_balpoe_heads
from tests.test_case import TestCase


def _np(x):
    return keras.ops.convert_to_numpy(x)


def _data(n=10, size=4, num_classes=3):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, size, size, 3), dtype=np.uint8)
    return images, np.arange(n) % num_classes


class ArrayDatasetTest(TestCase):
    def test_epoch_covers_every_image_and_keeps_last_batch(self):
        ds = dataset.ArrayDataset(_data(), global_batch_size=4, seed=1)
        # 10 images, batch 4 -> 4 + 4 + 2.
        self.assertEqual(len(ds), 3)
        sizes = [len(ds.batch_indices(i)) for i in range(3)]
        self.assertEqual(sizes, [4, 4, 2])
        seen = np.concatenate([ds.batch_indices(i) for i in range(3)])
        self.assertEqual(sorted(seen.tolist()), list(range(10)))
        x, y = ds[2]
        self.assertEqual(tuple(x.shape), (2, 4, 4, 3))
        dropped = dataset.ArrayDataset(_data(), global_batch_size=4,
                                       drop_remainder=True)
        self.assertEqual(len(dropped), 2)

    def test_batches_depend_only_on_seed_and_epoch(self):
        data = dataset.DeviceImages(*_data())
        kwargs = dict(global_batch_size=4, seed=5, num_classes=3,
                      mixup_alpha=0.8, max_degrees=15.0)
        a = dataset.ArrayDataset(data, epoch=3, **kwargs)
        b = dataset.ArrayDataset(data, epoch=3, **kwargs)
        # Random access order does not matter (resumption, workers).
        self.assertAllClose(a[1][0], b[1][0])
        self.assertAllClose(a[0][1], b[0][1])
        other = dataset.ArrayDataset(data, epoch=4, **kwargs)
        self.assertFalse(np.array_equal(a.order, other.order))

    def test_no_augment_no_shuffle_gives_float_images_and_labels(self):
        images, labels = _data()
        ds = dataset.ArrayDataset((images, labels), global_batch_size=4,
                                  shuffle=False, augment=False)
        x, y = ds[0]
        self.assertAllClose(x, images[:4] / 255.0)
        self.assertEqual(tuple(y.shape), (4,))
        self.assertAllClose(y, labels[:4])

    def test_batch_matches_augment_functions_with_its_params(self):
        images, labels = _data()
        ds = dataset.ArrayDataset((images, labels), global_batch_size=4,
                                  seed=2, num_classes=3, mixup_alpha=0.8,
                                  max_degrees=15.0)
        x, y = ds[1]
        p, idx = ds.batch_params(1), ds.batch_indices(1)
        crops = augment.apply_crop_flip(images[idx], p["offsets"],
                                        p["flips"], p["rotations"])
        self.assertAllClose(p["rotations"],
                            augment.rotation_matrices(p["angles"], 4, 4))
        want_x, want_y = augment.apply_mixup(crops, labels[idx], p["lam"],
                                             p["perm"], 3)
        self.assertAllClose(x, want_x, atol=1e-6)
        self.assertAllClose(y, want_y, atol=1e-6)
        self.assertAllClose(_np(y).sum(axis=1), np.ones(4), atol=1e-6)

    def test_params_ranges(self):
        rng = np.random.default_rng(0)
        p = dataset.draw_params_numpy(rng, 256, padding=4, max_degrees=15.0,
                                      mixup_alpha=0.8)
        self.assertEqual(p["offsets"].min(), 0)
        self.assertEqual(p["offsets"].max(), 8)
        # Flips ~ Bernoulli(0.5): 256 draws, mean within 5 sigma (0.16).
        self.assertLess(abs(p["flips"].mean() - 0.5), 0.16)
        self.assertTrue(np.all(np.abs(p["angles"]) <= 15.0))
        self.assertTrue(0.0 <= p["lam"] <= 1.0)
        self.assertEqual(sorted(p["perm"].tolist()), list(range(256)))

    def test_make_train_dataset_fn_shares_device_images(self):
        fn = dataset.make_train_dataset_fn(*_data(), global_batch_size=4,
                                           seed=0)
        self.assertIs(fn(0).data, fn(1).data)
        self.assertEqual(fn(1).epoch, 1)

    def test_bad_inputs_raise(self):
        images, labels = _data()
        with self.assertRaisesRegex(ValueError, "uint8"):
            dataset.ArrayDataset((images / 255.0, labels),
                                 global_batch_size=4)
        with self.assertRaisesRegex(ValueError, "num_classes"):
            dataset.ArrayDataset((images, labels), global_batch_size=4,
                                 mixup_alpha=0.8)
        with self.assertRaisesRegex(ValueError, "no batch"):
            dataset.ArrayDataset((images, labels), global_batch_size=16,
                                 drop_remainder=True)
        with self.assertRaisesRegex(ValueError, "labels"):
            dataset.DeviceImages(images, labels[:3])
        with self.assertRaisesRegex(IndexError, "out of range"):
            dataset.ArrayDataset((images, labels), global_batch_size=4)[3]

    def test_fit_consumes_the_dataset(self):
        images, labels = _data(n=8, num_classes=2)
        inputs = keras.Input((4, 4, 3))
        flat = keras.layers.Flatten()(inputs)
        model = add_balpoe_heads(keras.Model(inputs, flat), [4, 4], (0.0,))
        model.compile(optimizer="sgd")
        ds = dataset.ArrayDataset((images, labels), global_batch_size=4,
                                  num_classes=2, mixup_alpha=0.8)
        history = model.fit(ds, epochs=1, verbose=0)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        # Every batch of the epoch was a training step (8 images / 4).
        self.assertEqual(int(model.optimizer.iterations), len(ds))
        self.assertEqual(len(ds), 2)
