"""Hand-computed checks of the NumPy scores (accuracy, groups, ECE, NLL, KL)."""

import numpy as np

from balpoe_keras.evaluation import scores
from tests.test_case import TestCase

# Training counts [200, 50, 10]: many = {0}, medium = {1}, few = {2}.
COUNTS = [200, 50, 10]
# Softmax of log-probabilities gives the probabilities back exactly.
PROBS = np.array(
    [
        [0.70, 0.20, 0.10],  # label 0, pred 0 right, conf .70 -> bin 10
        [0.40, 0.50, 0.10],  # label 0, pred 1 wrong, conf .50 -> bin 7
        [0.15, 0.75, 0.10],  # label 1, pred 1 right, conf .75 -> bin 11
        [0.62, 0.28, 0.10],  # label 2, pred 0 wrong, conf .62 -> bin 9
        [0.90, 0.05, 0.05],  # label 0, pred 0 right, conf .90 -> bin 13
    ]
)
LABELS = np.array([0, 0, 1, 2, 0])
LOGITS = np.log(PROBS)


class ClassificationMetricsTest(TestCase):
    def test_hand_computed_metrics(self):
        m = scores.compute_classification_metrics(
            LOGITS, LABELS, class_counts=COUNTS
        )
        # micro: 3 of 5 right = 0.6 (fractions, as the Keras metrics).
        self.assertAllClose(m["accuracy"], 0.6)
        # per class: c0 2/3, c1 1/1, c2 0/1 -> mean (2/3 + 1 + 0) / 3.
        self.assertAllClose(m["per_class_accuracy"], [2 / 3, 1.0, 0.0])
        self.assertAllClose(m["balanced_accuracy"], (2 / 3 + 1) / 3)
        self.assertAllClose(
            [m["acc_many"], m["acc_medium"], m["acc_few"]],
            [2 / 3, 1.0, 0.0],
        )
        # 15 bins of width 1/15, one sample per bin, weight 1/5 each:
        # gaps .30, .50, .25, .62, .10 -> ECE = 1.77 / 5 = .354; MCE = .62.
        self.assertAllClose(m["ece"], 0.354, atol=1e-6)
        self.assertAllClose(m["mce"], 0.62, atol=1e-6)
        self.assertAllClose(
            np.nonzero(m["reliability"]["count"])[0], [7, 9, 10, 11, 13]
        )
        # NLL = -(ln .7 + ln .4 + ln .75 + ln .1 + ln .9) / 5
        #     = (.356675 + .916291 + .287682 + 2.302585 + .105361) / 5.
        self.assertAllClose(m["nll"], 3.968594 / 5, atol=1e-5)

    def test_column_labels_and_one_hot_score_as_ids(self):
        # (N, 1) labels, as keras.datasets gives them, used to broadcast
        # against (N,) predictions: accuracy and NLL were silently wrong.
        ids = scores.compute_classification_metrics(
            LOGITS, LABELS, class_counts=COUNTS)
        for labels in (LABELS[:, None], np.eye(3)[LABELS]):
            other = scores.compute_classification_metrics(
                LOGITS, labels, class_counts=COUNTS)
            self.assertEqual(other, ids)
        self.assertAllClose(
            scores.compute_nll(LOGITS, LABELS[:, None]), 3.968594 / 5,
            atol=1e-5)

    def test_outputs_that_mean_nothing_are_refused(self):
        # A diverged model: NaN or +inf logits, or a row with no finite
        # value, used to score as confident and well calibrated (ECE 0).
        for bad in (np.nan, np.inf):
            logits = LOGITS.copy()
            logits[3, 1] = bad
            with self.assertRaisesRegex(ValueError,
                                        r"logits holds NaN or infinite "
                                        r"values in 1 of 5 rows.*\[3\]"):
                scores.compute_classification_metrics(
                    logits, LABELS, class_counts=COUNTS)
        logits = LOGITS.copy()
        logits[0] = -np.inf
        with self.assertRaisesRegex(ValueError, r"first rows \[0\]"):
            scores.compute_nll(logits, LABELS)
        # -inf beside finite logits is a probability of 0, not an error.
        logits = LOGITS.copy()
        logits[:, 2] = -np.inf
        self.assertAllClose(
            scores.compute_accuracy_summary(logits, LABELS, COUNTS)[
                "accuracy"], 0.6)
        with self.assertRaisesRegex(ValueError, "Expected 5 labels"):
            scores.compute_nll(LOGITS, LABELS[:4])
        with self.assertRaisesRegex(ValueError, "num_bins >= 1"):
            scores.compute_classification_metrics(
                LOGITS, LABELS, class_counts=COUNTS, num_bins=0)

    def test_empty_group_is_none_not_nan(self):
        # Counts [200, 150, 120]: every class is many-shot.
        m = scores.compute_classification_metrics(
            LOGITS, LABELS, class_counts=[200, 150, 120], details=False
        )
        self.assertIsNone(m["acc_medium"])
        self.assertIsNone(m["acc_few"])
        self.assertEqual(m["groups"]["few"]["num_classes"], 0)
        self.assertAllClose(m["acc_many"], m["balanced_accuracy"])

    def test_class_without_test_images_is_skipped(self):
        # Class 2 has no test image: per-class mean over classes 0 and 1 only
        # (c0 2/3, c1 1/1), few-shot group has nothing to evaluate.
        keep = LABELS != 2
        summary = scores.compute_accuracy_summary(
            LOGITS[keep], LABELS[keep], COUNTS
        )
        self.assertAllClose(summary["balanced_accuracy"], (2 / 3 + 1) / 2)
        self.assertIsNone(summary["acc_few"])
        self.assertEqual(summary["groups"]["few"]["num_classes"], 1)
        self.assertEqual(summary["groups"]["few"]["num_classes_evaluated"], 0)
        self.assertEqual(summary["num_classes_without_test_images"], 1)


class PriorMatchTest(TestCase):
    def test_expected_prior_is_normalised_power_of_prior(self):
        # pi = [.8, .2]; lambda = -1 -> [1.25, 5] / 6.25 = [.2, .8].
        self.assertAllClose(
            scores.compute_expected_prior([80, 20], -1.0), [0.2, 0.8]
        )

    def test_kl_of_known_case(self):
        # Uniform expected (lambda = 0) vs estimated [.75, .25]:
        # .5 ln(.5/.75) + .5 ln(.5/.25) = .5 (-.405465 + .693147) = .143841.
        logits = np.log(np.array([[0.75, 0.25], [0.75, 0.25]]))
        match = scores.compute_prior_match(logits, [80, 20], 0.0)
        self.assertAllClose(match["estimated"], [0.75, 0.25])
        self.assertAllClose(match["expected"], [0.5, 0.5])
        self.assertAllClose(match["kl"], 0.143841, atol=1e-6)

    def test_kl_is_zero_when_expert_matches_its_prior(self):
        # Logits lambda * log pi on every image: softmax is pi^lambda / Z.
        log_pi = np.log(np.array([0.7, 0.2, 0.1]))
        logits = np.tile(-1.0 * log_pi, (4, 1))
        match = scores.compute_prior_match(logits, [70, 20, 10], -1.0)
        self.assertAllClose(match["kl"], 0.0, atol=1e-9)
