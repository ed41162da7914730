"""Sample-weighted metrics equal their NumPy definitions for any
non-negative weights: below 1, 1, above 1, and zeros."""

import numpy as np
from absl.testing import parameterized

from balpoe_keras.metrics import BalancedAccuracy
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import GroupAccuracy
from balpoe_keras.metrics import MaximumCalibrationError
from tests.test_case import TestCase

_BINS = 15
_COUNTS = [150, 60, 30, 10]  # many, medium, medium, few


def _data(n=200, seed=0):
    rng = np.random.default_rng(seed)
    logits = 3.0 * rng.standard_normal((n, 4)).astype("float32")
    probs = np.exp(logits - logits.max(-1, keepdims=True))
    probs /= probs.sum(-1, keepdims=True)
    labels = rng.integers(0, 4, n)
    return probs.astype("float32"), labels


def _bins(conf):
    return np.clip(np.ceil(conf * _BINS).astype(int) - 1, 0, _BINS - 1)


def _numpy_ece_mce(probs, labels, w):
    conf = probs.max(-1).astype(np.float64)
    hit = (probs.argmax(-1) == labels).astype(np.float64)
    bins = _bins(conf)
    total = w.sum()
    ece, mce = 0.0, 0.0
    for b in range(_BINS):
        wb = w[bins == b]
        if wb.sum() <= 0:
            continue
        gap = abs(np.sum(wb * (hit - conf)[bins == b])) / wb.sum()
        ece += wb.sum() / total * gap
        mce = max(mce, gap)
    return ece, mce


def _numpy_mean_recall(probs, labels, w, classes):
    pred = probs.argmax(-1)
    recalls = [np.sum(w[labels == c] * (pred[labels == c] == c))
               / w[labels == c].sum()
               for c in classes if w[labels == c].sum() > 0]
    return float(np.mean(recalls))


def _weights(kind, n, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "tenth":
        return np.full(n, 0.1)
    if kind == "ones":
        return np.ones(n)
    if kind == "large":
        return rng.uniform(1.0, 5.0, n)
    if kind == "random_below_one":
        return rng.uniform(0.0, 1.0, n)
    # "zeros": a third of the samples do not count.
    w = rng.uniform(0.05, 2.0, n)
    w[rng.random(n) < 1 / 3] = 0.0
    return w


def _update(metric, probs, labels, w):
    for lo in range(0, len(labels), 64):  # Several batches.
        hi = lo + 64
        metric.update_state(labels[lo:hi], probs[lo:hi],
                            sample_weight=w[lo:hi].astype("float32"))
    return float(metric.result())


class WeightedMetricsTest(TestCase):
    @parameterized.parameters("tenth", "ones", "large", "random_below_one",
                              "zeros")
    def test_equal_numpy(self, kind):
        probs, labels = _data()
        w = _weights(kind, len(labels))
        ece, mce = _numpy_ece_mce(probs, labels, w)
        self.assertAllClose(
            _update(ExpectedCalibrationError(), probs, labels, w), ece,
            atol=1e-5)
        self.assertAllClose(
            _update(MaximumCalibrationError(), probs, labels, w), mce,
            atol=1e-5)
        self.assertAllClose(
            _update(BalancedAccuracy(4), probs, labels, w),
            _numpy_mean_recall(probs, labels, w, range(4)), atol=1e-5)
        self.assertAllClose(
            _update(GroupAccuracy(_COUNTS, "medium"), probs, labels, w),
            _numpy_mean_recall(probs, labels, w, [1, 2]), atol=1e-5)

    def test_uniform_weight_changes_nothing(self):
        probs, labels = _data()
        for metric_fn in (ExpectedCalibrationError, MaximumCalibrationError,
                          lambda: BalancedAccuracy(4)):
            plain = metric_fn()
            plain.update_state(labels, probs)
            for value in (0.1, 1.0, 7.0):
                weighted = _update(metric_fn(), probs, labels,
                                   np.full(len(labels), value))
                self.assertAllClose(weighted, float(plain.result()),
                                    atol=1e-5)

    def test_zero_total_weight_gives_zero(self):
        probs, labels = _data(n=32)
        zeros = np.zeros(len(labels))
        for metric in (ExpectedCalibrationError(), MaximumCalibrationError(),
                       BalancedAccuracy(4)):
            self.assertEqual(_update(metric, probs, labels, zeros), 0.0)


class HalfPrecisionStateTest(TestCase):
    def test_counts_stay_exact_past_256_samples(self):
        import keras

        # State in the metric's dtype: a bfloat16 count stopped at 256, so
        # ECE and balanced accuracy drifted from the float32 figures.
        probs, labels = _data(n=1200)
        w = np.ones(len(labels))
        for make in (lambda d: ExpectedCalibrationError(dtype=d),
                     lambda d: MaximumCalibrationError(dtype=d),
                     lambda d: BalancedAccuracy(4, dtype=d),
                     lambda d: GroupAccuracy(_COUNTS, "medium", dtype=d)):
            exact = _update(make("float32"), probs, labels, w)
            for dtype in ("bfloat16", "float16"):
                metric = make(dtype)
                with self.subTest(metric=metric.name, dtype=dtype):
                    # The result is in the metric's dtype: within its
                    # rounding (bfloat16: 2**-9 relative) of float32's.
                    self.assertAllClose(_update(metric, probs, labels, w),
                                        exact, atol=1e-6, rtol=2.0**-8)
                    self.assertEqual(keras.backend.standardize_dtype(
                        metric.result().dtype), dtype)
                    # Every sample counted, exactly.
                    state = getattr(metric, "counts", None)
                    if state is None:
                        state = metric.total
                    counted = keras.ops.sum(keras.ops.cast(state, "float32"))
                    self.assertEqual(float(counted), len(labels))


class BadWeightsTest(TestCase):
    """NaN, inf or negative weights: an error eagerly, NaN when compiled
    (a negative weight pushed ECE outside [0, 1], a NaN one vanished)."""

    def _metrics(self):
        return (ExpectedCalibrationError(), MaximumCalibrationError(),
                BalancedAccuracy(4), GroupAccuracy(_COUNTS, "medium"))

    def test_eager_update_raises(self):
        probs, labels = _data(n=16)
        for bad in (np.nan, np.inf, -2.0):
            weights = np.ones(16, np.float32)
            weights[3] = bad
            for metric in self._metrics():
                with self.subTest(bad=bad, metric=metric.name):
                    with self.assertRaisesRegex(
                            ValueError, "sample_weight must be finite and "
                            ">= 0; 1 of 16 weights"):
                        metric.update_state(labels, probs,
                                            sample_weight=weights)

    def test_compiled_steps_give_nan(self):
        import keras

        probs, labels = _data(n=64)
        weights = np.ones(64, np.float32)
        weights[40] = -3.0
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Identity()(inputs))
        model.compile(loss="sparse_categorical_crossentropy",
                      weighted_metrics=list(self._metrics()))
        if keras.backend.backend() == "torch":  # Eager steps on the CPU.
            with self.assertRaisesRegex(ValueError, "sample_weight must"):
                model.evaluate(probs, labels, sample_weight=weights,
                               batch_size=16, verbose=0)
            return
        result = model.evaluate(probs, labels, sample_weight=weights,
                                batch_size=16, verbose=0, return_dict=True)
        for name in ("ece", "mce", "balanced_accuracy", "acc_medium"):
            self.assertTrue(np.isnan(result[name]), (name, result))
        clean = model.evaluate(probs, labels, batch_size=16, verbose=0,
                               return_dict=True)
        self.assertTrue(0.0 <= clean["ece"] <= 1.0)


class NotProbabilitiesTest(TestCase):
    def test_logits_without_from_logits_raise_eagerly(self):
        probs, labels = _data(n=16)
        logits = np.log(probs) * 3.0
        for metric in (ExpectedCalibrationError(), MaximumCalibrationError()):
            with self.assertRaisesRegex(ValueError, "from_logits=True"):
                metric.update_state(labels, logits)

    def test_logits_without_from_logits_give_nan_in_compiled_steps(self):
        import keras

        probs, labels = _data(n=64)
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(4)(inputs))
        model.compile(loss="sparse_categorical_crossentropy",
                      metrics=[ExpectedCalibrationError(),
                               ExpectedCalibrationError(from_logits=True,
                                                        name="ece_logits")])
        x = 10.0 * probs  # Dense outputs far outside [0, 1].
        if keras.backend.backend() == "torch":  # Eager steps on the CPU.
            with self.assertRaisesRegex(ValueError, "from_logits=True"):
                model.evaluate(x, labels, verbose=0)
            return
        result = model.evaluate(x, labels, verbose=0, return_dict=True)
        self.assertTrue(np.isnan(result["ece"]))
        self.assertTrue(0.0 <= result["ece_logits"] <= 1.0)

    def test_probabilities_pass(self):
        probs, labels = _data(n=16)
        metric = ExpectedCalibrationError()
        metric.update_state(labels, probs)
        self.assertTrue(0.0 <= float(metric.result()) <= 1.0)
