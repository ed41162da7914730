"""ECE / MCE / reliability bins against hand-computed values."""

import numpy as np

from balpoe_keras import metrics
from tests.test_case import TestCase

# 10 bins, values away from edges:
# conf .91 right, .97 wrong -> bin 9: acc .5, conf .94, gap .44, weight 2/4
# conf .62 wrong            -> bin 6: gap .62, weight 1/4
# conf .55 right            -> bin 5: gap .45, weight 1/4
# ECE = .22 + .155 + .1125 = .4875 ; MCE = .62
Y_TRUE = np.array([1, 0, 1, 1])
Y_PRED = np.array([[.09, .91], [.03, .97], [.62, .38], [.45, .55]], "float32")

# 4 bins (edges .25, .5, .75 are exact in float32), bins are (l, u]:
# conf .5  right -> bin 1 (.25, .5]: gap .5
# conf .75 wrong -> bin 2 (.5, .75]: gap .75
# conf 1.  right -> bin 3 (.75, 1]:  gap 0
# ECE = (.5 + .75 + 0) / 3 = .416667 ; MCE = .75
# (With [l, u) bins, .5 and .75 would move up a bin and ECE would differ.)
EDGE_TRUE = np.array([0, 0, 1])
EDGE_PRED = np.array([[.5, .5], [.25, .75], [0., 1.]], "float32")


class CalibrationTest(TestCase):
    def test_streaming_equals_hand_computed_value(self):
        ece = metrics.ExpectedCalibrationError(num_bins=10)
        mce = metrics.MaximumCalibrationError(num_bins=10)
        for metric in (ece, mce):
            metric.update_state(Y_TRUE[:1], Y_PRED[:1])
            metric.update_state(Y_TRUE[1:], Y_PRED[1:])
        self.assertAllClose(ece.result(), 0.4875, atol=1e-6)
        self.assertAllClose(mce.result(), 0.62, atol=1e-6)

    def test_confidence_on_bin_edge_goes_to_lower_bin(self):
        ece = metrics.ExpectedCalibrationError(num_bins=4)
        ece.update_state(EDGE_TRUE, EDGE_PRED)
        self.assertAllClose(ece.counts, [0, 1, 1, 1])
        self.assertAllClose(ece.result(), 0.416667, atol=1e-6)
        bins = metrics.reliability_bins(EDGE_TRUE, EDGE_PRED, num_bins=4)
        self.assertAllClose(bins["count"], [0, 1, 1, 1])
        self.assertAllClose(bins["accuracy"], [0, 1, 0, 1])
        self.assertAllClose(bins["ece"], 0.416667, atol=1e-6)
        self.assertAllClose(bins["mce"], 0.75, atol=1e-6)

    def test_logits_soft_labels_and_sample_weight(self):
        logits = np.log(Y_PRED)
        soft = np.eye(2)[Y_TRUE] * 0.8 + 0.1
        ece = metrics.ExpectedCalibrationError(num_bins=10, from_logits=True)
        ece.update_state(soft, logits, sample_weight=[1, 1, 1, 1])
        self.assertAllClose(ece.result(), 0.4875, atol=1e-5)
        # Zero weight on the .62 sample: bins 9 (w 2/3, gap .44) and 5
        # (w 1/3, gap .45): ECE = .29333 + .15 = .443333
        ece.reset_state()
        ece.update_state(Y_TRUE, logits, sample_weight=[1, 1, 0, 1])
        self.assertAllClose(ece.result(), 0.443333, atol=1e-5)

    def test_reliability_bins_match_streaming_metric(self):
        rng = np.random.RandomState(0)
        logits = rng.randn(50, 5).astype("float32") * 3
        labels = rng.randint(0, 5, 50)
        ece = metrics.ExpectedCalibrationError(from_logits=True)
        mce = metrics.MaximumCalibrationError(from_logits=True)
        for chunk in np.array_split(np.arange(50), 3):
            ece.update_state(labels[chunk], logits[chunk])
            mce.update_state(labels[chunk], logits[chunk])
        bins = metrics.reliability_bins(labels, logits, from_logits=True)
        self.assertEqual(bins["count"].sum(), 50)
        self.assertAllClose(ece.result(), bins["ece"], atol=1e-6)
        self.assertAllClose(mce.result(), bins["mce"], atol=1e-6)
        self.assertEqual(len(bins["edges"]), 16)

    def test_empty_state_is_zero_not_nan(self):
        self.assertAllClose(metrics.ExpectedCalibrationError().result(), 0.0)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "num_bins >= 1"):
            metrics.ExpectedCalibrationError(num_bins=0)
        probs = np.array([[0.9, 0.1], [0.6, 0.4]], "float32")
        with self.assertRaisesRegex(ValueError, "num_bins >= 1"):
            metrics.reliability_bins([0, 1], probs, num_bins=0)
        # NaN probabilities used to drop out of the bins (ECE 0).
        nan = probs.copy()
        nan[0, 0] = np.nan
        with self.assertRaisesRegex(ValueError, "NaN or infinite"):
            metrics.reliability_bins([0, 1], nan)
        with self.assertRaisesRegex(ValueError, "not probabilities"):
            metrics.ExpectedCalibrationError().update_state([0, 1], nan)
        with self.assertRaisesRegex(ValueError, "not probabilities"):
            metrics.reliability_bins([0, 1], 2 * probs)
        with self.assertRaisesRegex(ValueError, r"class ids in \[0, 2\)"):
            metrics.reliability_bins([0, 2], probs)
        with self.assertRaisesRegex(ValueError, "ensemble 'logits'"):
            metrics.ExpectedCalibrationError().update_state(
                np.zeros(2), np.zeros((2, 3, 4))
            )

    def test_probabilities_given_as_logits_are_refused(self):
        # A softmax output with from_logits=True was softmaxed again: ECE
        # 0.380 instead of 0.069 on one example, without a word.
        import keras

        for metric in (metrics.ExpectedCalibrationError(from_logits=True),
                       metrics.MaximumCalibrationError(from_logits=True)):
            with self.assertRaisesRegex(ValueError,
                                        "create the metric with from_"
                                        "logits=False"):
                metric.update_state(Y_TRUE, Y_PRED)
        with self.assertRaisesRegex(ValueError, "from_logits=False"):
            metrics.reliability_bins(Y_TRUE, Y_PRED, from_logits=True)
        # Inside a compiled step the result turns NaN (PyTorch's steps run
        # eagerly: they raise).
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(
            2, activation="softmax")(inputs))
        model.compile(loss="sparse_categorical_crossentropy", metrics=[
            metrics.ExpectedCalibrationError(from_logits=True)])
        x = np.random.default_rng(0).random((8, 3)).astype("float32")

        def evaluate():
            return model.evaluate(x, np.arange(8) % 2, verbose=0,
                                  return_dict=True)

        if keras.backend.backend() == "torch":
            with self.assertRaisesRegex(ValueError, "from_logits=False"):
                evaluate()
        else:
            self.assertTrue(np.isnan(evaluate()["ece"]))
        # Logits pass, also a batch with one row that sums to 1.
        ece = metrics.ExpectedCalibrationError(from_logits=True)
        ece.update_state([0, 1], np.array([[0.3, 0.7], [2.0, -1.0]]))

    def test_config_round_trip(self):
        clone = self.run_serialization_test(
            metrics.ExpectedCalibrationError(num_bins=7, from_logits=True)
        )
        self.assertEqual(clone.num_bins, 7)
        self.run_serialization_test(metrics.MaximumCalibrationError())
