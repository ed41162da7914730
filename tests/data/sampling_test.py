"""Tests for balpoe_keras.data.sampling: realised class frequencies."""

import numpy as np
import pytest
import tensorflow as tf

from balpoe_keras.data.sampling import class_sampling_probs
from balpoe_keras.data.tfdata.sampling import class_aware_resample
from balpoe_keras.data.tfdata.sampling import make_resample_fn
from tests.test_case import TestCase

pytestmark = pytest.mark.tf_only

_COUNTS = np.array([400, 100, 25, 0, 9])
_LABELS = np.repeat(np.arange(5), _COUNTS)


def _assert_frequencies(test, labels, probs):
    n = labels.size
    got = np.bincount(labels, minlength=probs.size)
    # 4.5 binomial standard deviations sqrt(n p (1-p)) per class.
    tolerance = 4.5 * np.sqrt(n * probs * (1 - probs)) + 1e-9
    test.assertTrue(np.all(np.abs(got - n * probs) <= tolerance),
                    msg=f"{got} vs {n * probs}")


class SamplingTest(TestCase):
    def test_probs(self):
        # sqrt: (20, 10, 5, 0, 3) / 38; balanced over the 4 present classes.
        self.assertAllClose(class_sampling_probs(_COUNTS, "sqrt"),
                            np.array([20, 10, 5, 0, 3]) / 38)
        self.assertAllClose(class_sampling_probs(_COUNTS, "balanced"),
                            [0.25, 0.25, 0.25, 0, 0.25])
        with self.assertRaisesRegex(ValueError, "Unknown resample mode"):
            class_sampling_probs(_COUNTS, "cube")

    def test_resample_fn_frequencies(self):
        for mode in ("balanced", "sqrt"):
            fn = make_resample_fn(_LABELS, 5, mode, num_samples=4000)
            idx = fn(tf.constant([0, 1], tf.int64)).numpy()
            self.assertTrue(np.all((idx >= 0) & (idx < _LABELS.size)))
            _assert_frequencies(self, _LABELS[idx],
                                class_sampling_probs(_COUNTS, mode))
        # Within a class, all its images are reachable (9 tail images).
        idx = make_resample_fn(_LABELS, 5, "balanced", 4000)([2, 3]).numpy()
        self.assertLen(np.unique(idx[_LABELS[idx] == 4]), 9)

    def test_dataset_transform_frequencies(self):
        ds = tf.data.Dataset.from_tensor_slices((_LABELS * 10, _LABELS))
        out = class_aware_resample(ds, _COUNTS, "balanced", seed=3)
        labels = np.array([y for _, y in out.take(600).as_numpy_iterator()])
        _assert_frequencies(self, labels,
                            class_sampling_probs(_COUNTS, "balanced"))
