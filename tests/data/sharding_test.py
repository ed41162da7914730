"""Per-process input shards: in process order, the processes' batches are
exactly the batch of a one-process run (both executors, mixing included)."""

import keras
import numpy as np
import pytest
from absl.testing import parameterized

from balpoe_keras.data import batching
from balpoe_keras.data.source import ImageSource
from tests.test_case import TestCase

_RNG = np.random.default_rng(0)
_LABELS = _RNG.integers(0, 5, 70)
_IMAGES = _RNG.integers(0, 256, (70, 32, 32, 3), np.uint8)


def _concat(batches):
    x = np.concatenate([b[0] for b in batches])
    y = np.concatenate([b[1] for b in batches])
    return x, y


class ProcessRowsTest(TestCase):
    def test_equal_contiguous_shares_and_errors(self):
        self.assertEqual(batching.process_rows(8, 1, 0), (0, 8))
        self.assertEqual([batching.process_rows(8, 4, p) for p in range(4)],
                         [(0, 2), (2, 4), (4, 6), (6, 8)])
        with self.assertRaisesRegex(ValueError, "not divisible by the 3"):
            batching.process_rows(8, 3, 0)
        with self.assertRaisesRegex(ValueError, "process_index=2"):
            batching.process_rows(8, 2, 2)


@pytest.mark.tf_only
class TfDataShardTest(TestCase):
    @parameterized.named_parameters(
        ("no_mixing", {}),
        ("mixup", dict(mixup_alpha=0.8)),
        ("per_sample_mixup", dict(mixup_alpha=0.4, per_sample_mixup=True)),
        ("cutmix", dict(cutmix_alpha=1.0)),
        ("mixup_cutmix", dict(mixup_alpha=0.4, cutmix_alpha=1.0)),
        ("resampled", dict(mixup_alpha=0.8, resample="balanced")),
    )
    def test_union_of_process_batches_is_the_global_batch(self, kwargs):
        from balpoe_keras.data.tfdata import make_train_dataset

        source = ImageSource(_LABELS, [f"c{i}" for i in range(5)],
                             images=_IMAGES)

        def batches(processes, index):
            ds = make_train_dataset(
                source, global_batch_size=16, recipe="cifar_standard",
                seed=3, epoch=1, deterministic=True,
                drop_remainder=True, num_processes=processes,
                process_index=index, **kwargs)
            return list(ds.as_numpy_iterator())

        whole = batches(1, 0)
        shards = [batches(2, p) for p in range(2)]
        quarters = [batches(4, p) for p in range(4)]
        self.assertLen(whole, 70 // 16)
        for step, (x, y) in enumerate(whole):
            for parts in (shards, quarters):
                got_x, got_y = _concat([part[step] for part in parts])
                np.testing.assert_array_equal(got_x, x)
                np.testing.assert_array_equal(got_y, y)
        self.assertEqual(shards[0][0][0].shape, (8, 32, 32, 3))

    def test_needs_full_batches(self):
        from balpoe_keras.data.tfdata import make_train_dataset

        source = ImageSource(_LABELS, [f"c{i}" for i in range(5)],
                             images=_IMAGES)
        with self.assertRaisesRegex(ValueError, "drop_remainder=True"):
            make_train_dataset(source, global_batch_size=16, num_processes=2,
                               process_index=0, seed=0)


class ArraysShardTest(TestCase):
    @parameterized.named_parameters(
        ("crop_flip_rotation", dict(max_degrees=15.0)),
        ("mixup", dict(max_degrees=15.0, mixup_alpha=0.8)),
        ("no_augmentation_mixup", dict(augment=False, mixup_alpha=0.4)),
    )
    def test_union_of_process_batches_is_the_global_batch(self, kwargs):
        from balpoe_keras.data.arrays import ArrayDataset

        def batches(processes, index):
            ds = ArrayDataset((_IMAGES, _LABELS), global_batch_size=16,
                              epoch=2, seed=5, num_classes=5,
                              drop_remainder=True,
                              num_processes=processes, process_index=index,
                              **kwargs)
            return [tuple(keras.ops.convert_to_numpy(t) for t in ds[k])
                    for k in range(len(ds))]

        whole = batches(1, 0)
        shards = [batches(2, p) for p in range(2)]
        self.assertLen(whole, 4)
        for step, (x, y) in enumerate(whole):
            got_x, got_y = _concat([part[step] for part in shards])
            np.testing.assert_array_equal(got_x, x)
            np.testing.assert_array_equal(got_y, y)
        self.assertEqual(shards[1][0][0].shape, (8, 32, 32, 3))
