"""evaluate_model on a fixed-logits classifier: experts, post-hoc
correction."""

from unittest import mock

import keras
import numpy as np
import pytest
from keras import ops

from balpoe_keras import class_prior
from balpoe_keras.evaluation import evaluate
from tests.evaluation.scores_test import COUNTS
from tests.evaluation.scores_test import LABELS
from tests.evaluation.scores_test import LOGITS
from tests.test_case import TestCase


def build_logit_classifier(num_experts, class_counts, lambdas, names=None):
    """Stand-in BalPoE model, a `BalPoEClassifier` whose "images"
    `(B, M, C)` are expert logits: expert m's head is the identity on slice
    m. It knows its counts, lambdas and class names."""
    from balpoe_keras.models import BalPoEClassifier

    num_classes = len(class_counts)
    inputs = keras.Input((num_experts, num_classes))
    backbone = keras.Model(inputs, [inputs[:, m] for m in range(num_experts)])
    model = BalPoEClassifier(backbone, class_counts, lambdas, head="linear",
                             class_names=names)
    for head in model.expert_heads:
        head.set_weights([np.eye(num_classes, dtype="float32"),
                          np.zeros(num_classes, "float32")])
    return model


def build_logit_model(num_experts, num_classes):
    """The stand-in with placeholder counts and lambdas (uniform counts,
    lambdas averaging to 0), for tests that pass their own."""
    return build_logit_classifier(num_experts, [1] * num_classes,
                                  class_prior.spread_lambdas(num_experts))


def build_plain_logit_model(num_experts, num_classes):
    """The stand-in as a plain functional model with BalPoE's outputs (as
    saved before `BalPoEClassifier`): it stores no counts or lambdas."""
    inputs = keras.Input((num_experts, num_classes))
    expert_logits = keras.layers.Identity(name="expert_logits")(inputs)
    logits = ops.mean(expert_logits, axis=1)
    return keras.Model(
        inputs, {"logits": logits, "expert_logits": expert_logits}
    )


def expert_images(logits, num_experts=2):
    """Every expert gets the same logits, so the ensemble equals them."""
    return np.repeat(logits[:, None], num_experts, 1).astype("float32")


class EvaluateModelTest(TestCase):
    def setUp(self):
        super().setUp()
        self.model = build_logit_model(2, 3)
        self.images = expert_images(LOGITS)

    def test_ensemble_and_expert_views(self):
        results = evaluate.evaluate_model(
            self.model, (self.images, LABELS), class_counts=COUNTS,
            lambdas=[1.0, -1.0], batch_size=2,
        )
        self.assertAllClose(results["summary"]["test/accuracy"], 0.6, 1e-6)
        self.assertAllClose(results["summary"]["test/ece"], 0.354, atol=1e-5)
        self.assertEqual(results["taus"], [0.0, 2.0])
        head, tail = results["balanced"]["experts"]
        # tau = 0: the adjusted view is the raw view.
        self.assertEqual(head["raw"]["accuracy"], head["adjusted"]["accuracy"])
        # tau = 2 adds 2 log pi: class 0 beats class 1 by 2 ln 4 = 2.77 and
        # class 2 by 2 ln 20 = 5.99 more than before, which outweighs every
        # logit gap here (largest: ln(.75/.15) = 1.61), so all 5 images are
        # predicted as class 0 -> 3/5 right; many 1, medium 0, few 0.
        adjusted = tail["adjusted"]
        self.assertAllClose(adjusted["accuracy"], 0.6, atol=1e-6)
        self.assertAllClose(
            [adjusted["acc_many"], adjusted["acc_medium"], adjusted["acc_few"]],
            [1.0, 0.0, 0.0],
            atol=1e-6,
        )
        self.assertAllClose(tail["raw"]["accuracy"], 0.6, atol=1e-6)

    def test_each_expert_is_scored_on_its_own_logits(self):
        # Expert 0 sees LOGITS (3/5 right), expert 1 always says class 2
        # (1/5 right): swapped or shared experts would show.
        from balpoe_keras.evaluation import scores

        other = np.zeros_like(LOGITS)
        other[:, 2] = 3.0
        images = np.stack([LOGITS, other], 1).astype("float32")
        results = evaluate.evaluate_model(
            self.model, (images, LABELS), class_counts=COUNTS,
            lambdas=[1.0, -1.0])
        first, second = results["balanced"]["experts"]
        self.assertAllClose(first["raw"]["accuracy"], 0.6)
        self.assertAllClose(second["raw"]["accuracy"], 0.2)
        log_prior = np.log(class_prior.compute_prior(COUNTS))
        want = scores.compute_accuracy_summary(other + 2.0 * log_prior,
                                               LABELS, COUNTS)
        self.assertAllClose(second["adjusted"]["accuracy"], want["accuracy"])
        ensemble = scores.compute_accuracy_summary(images.mean(1), LABELS,
                                                   COUNTS)
        self.assertAllClose(results["balanced"]["ensemble"]["accuracy"],
                            ensemble["accuracy"])
        self.assertAllClose(
            results["balanced"]["ensemble"]["balanced_accuracy"],
            ensemble["balanced_accuracy"])

    def test_a_balpoe_classifier_brings_its_counts_lambdas_and_names(self):
        names = ["cat", "dog", "owl"]
        classifier = build_logit_classifier(2, COUNTS, [1.0, -1.0], names)
        results = evaluate.evaluate_model(classifier, (self.images, LABELS))
        expected = evaluate.evaluate_model(
            self.model, (self.images, LABELS), class_counts=COUNTS,
            lambdas=[1.0, -1.0], class_names=names)
        self.assertEqual(results, expected)
        self.assertEqual(results["class_counts"], COUNTS)
        self.assertEqual(results["class_names"], names)
        # Explicit values still win (here: other lambdas).
        other = evaluate.evaluate_model(
            classifier, (self.images, LABELS), lambdas=[0.5, -0.5])
        self.assertEqual(other["lambdas"], [0.5, -0.5])

    def test_index_subsets_and_batch_iterables_agree(self):
        subset = np.array([0, 2, 4])
        batches = [(self.images[:2], LABELS[:2]), (self.images[2:], LABELS[2:])]
        results = evaluate.evaluate_model(
            self.model,
            {"uniform": batches, "head": subset,
             "head_copy": (self.images[subset], LABELS[subset])},
            class_counts=COUNTS, lambdas=[1.0, -1.0],
        )
        self.assertEqual(results["balanced_test_set"], "uniform")
        agnostic = results["test_agnostic"]
        self.assertEqual(list(agnostic), ["uniform", "head", "head_copy"])
        self.assertEqual(agnostic["head"], agnostic["head_copy"])
        # Images 0, 2, 4 are all predicted right; class 2 has no image.
        self.assertAllClose(agnostic["head"]["plain"]["all"], 1.0)
        self.assertIsNone(agnostic["head"]["plain"]["few"])
        self.assertEqual(agnostic["head"]["num_classes_without_test_images"], 1)

    def test_bad_inputs(self):
        with self.assertRaisesRegex(ValueError, "one lambda per expert"):
            evaluate.evaluate_model(
                self.model, (self.images, LABELS), class_counts=COUNTS,
                lambdas=[1.0, 0.0, -1.0],
            )
        with self.assertRaisesRegex(ValueError, "Name it 'uniform'"):
            evaluate.evaluate_model(
                self.model, {"a": (self.images, LABELS), "b": np.arange(2)},
                class_counts=COUNTS, lambdas=[1.0, -1.0],
            )
        with self.assertRaisesRegex(ValueError,
                                    r"indices must lie in \[0, 5\)"):
            evaluate.evaluate_model(
                self.model, {"uniform": (self.images, LABELS),
                             "bad": np.array([7])},
                class_counts=COUNTS, lambdas=[1.0, -1.0],
            )

    def test_bad_inputs_fail_before_predicting(self):
        # A long test set is not predicted to find out its labels are
        # 1-based or its counts belong to another model.
        classifier = build_logit_classifier(2, COUNTS, [1.0, -1.0])
        cases = {
            r"Test set 'test': Labels must lie in \[0, 3\)": dict(
                test_sets=(self.images, LABELS + 1)),
            "has 5 images but 4 labels": dict(
                test_sets=(self.images, LABELS[:4])),
            r"indices must lie in \[0, 5\)": dict(
                test_sets={"uniform": (self.images, LABELS),
                           "bad": np.array([5])}),
            "class_counts": dict(test_sets=(self.images, LABELS),
                                 class_counts=[5, 3]),
            "one lambda per expert": dict(test_sets=(self.images, LABELS),
                                          lambdas=[1.0, 0.0, -1.0]),
            "Got 2 class_names for 3 classes": dict(
                test_sets=(self.images, LABELS), class_names=["a", "b"]),
        }
        for message, kwargs in cases.items():
            with self.subTest(message):
                with mock.patch.object(
                        classifier, "predict_outputs",
                        side_effect=AssertionError("predicted first")):
                    with self.assertRaisesRegex(ValueError, message):
                        evaluate.evaluate_model(classifier, **kwargs)

    def test_a_model_that_is_not_a_classifier_is_rejected(self):
        inputs = keras.Input((3,))
        model = keras.Model(inputs, keras.layers.Dense(3)(inputs))
        with self.assertRaisesRegex(ValueError, "Expected a BalPoEClassifier"):
            evaluate.evaluate_model(
                model, (np.zeros((2, 3), "float32"), np.array([0, 1])),
                class_counts=COUNTS, lambdas=[0.0],
            )
        # Nor a plain functional model with BalPoE's outputs.
        with self.assertRaisesRegex(ValueError, "Expected a BalPoEClassifier"
                                    ".*train it again"):
            evaluate.evaluate_model(
                build_plain_logit_model(2, 3), (self.images, LABELS),
                class_counts=COUNTS, lambdas=[1.0, -1.0],
            )

    @pytest.mark.tf_only
    def test_tf_data_dataset(self):
        import tensorflow as tf

        dataset = tf.data.Dataset.from_tensor_slices(
            (self.images, LABELS)
        ).batch(2)
        results = evaluate.evaluate_model(
            self.model, dataset, class_counts=COUNTS, lambdas=[1.0, -1.0]
        )
        self.assertAllClose(results["summary"]["test/accuracy"], 0.6, 1e-6)


class TestAgnosticTest(TestCase):
    def test_posthoc_correction_flips_a_known_prediction(self):
        # Test labels [0, 0, 0, 1] -> p_test = [.75, .25], ln 3 = 1.0986.
        # Image 0 (label 0) has logits [0, .5]: plain predicts 1 (wrong);
        # with log p_test: -.288 vs .5 - 1.386 = -.886 -> 0 (right).
        # Image 3 (label 1) [0, 2]: -.288 vs .614 -> still 1 (right).
        logits = np.array([[0, 0.5], [1, 0], [1, 0], [0, 2]], "float32")
        labels = np.array([0, 0, 0, 1])
        # Training counts [200, 10]: many = {0}, few = {1}, medium empty.
        result = evaluate.evaluate_test_agnostic(
            logits, labels, [200, 10], True)
        plain = result["plain"]
        self.assertEqual((plain["all"], plain["medium"], plain["few"]),
                         (0.75, None, 1.0))
        # The metrics' float32: 2/3 to 7 digits.
        self.assertAllClose(plain["many"], 2 / 3, atol=1e-7)
        self.assertEqual(
            result["posthoc"],
            {"all": 1.0, "many": 1.0, "medium": None, "few": 1.0},
        )

    def test_zero_count_class_gets_minus_inf_bias_without_nan(self):
        # Class 2 is absent: its bias is -inf, it is never predicted.
        logits = np.array([[0, 0, 5], [0, 1, 0]], "float32")
        result = evaluate.evaluate_test_agnostic(
            logits, np.array([0, 1]), COUNTS, True
        )
        self.assertEqual(result["num_classes_without_test_images"], 1)
        self.assertEqual(result["plain"]["all"], 0.5)
        self.assertEqual(result["posthoc"]["all"], 1.0)
        self.assertIsNone(result["posthoc"]["few"])
        self.assertNotIn("posthoc", evaluate.evaluate_test_agnostic(
            logits, np.array([0, 1]), COUNTS, False))


class SampleWeightTest(TestCase):
    def test_weighted_metrics_equal_the_kept_rows(self):
        # As in Keras, `metrics=` ignore sample_weight; the same metrics as
        # `weighted_metrics=` give the scores of the rows weighted 1.
        from balpoe_keras.models.compile_defaults import make_ensemble_metrics

        z = np.array([[2, 0], [2, 0], [0, 2], [2, 0]], "float32")
        x, y = np.repeat(z[:, None], 2, axis=1), np.array([0, 1, 1, 1])
        weights = np.array([1.0, 0.0, 1.0, 0.0])
        model = build_logit_classifier(2, [10, 5], [1.0, -1.0])
        model.compile(metrics=[],
                      weighted_metrics=make_ensemble_metrics([10, 5]))
        weighted = model.evaluate(x, y, sample_weight=weights, verbose=0,
                                  return_dict=True)
        kept = model.evaluate(x[[0, 2]], y[[0, 2]], verbose=0,
                              return_dict=True)
        for key in ("accuracy", "balanced_accuracy", "ece"):
            self.assertAllClose(weighted[key], kept[key], atol=1e-6)
        # Both kept rows are right at confidence sigmoid(2) = 0.8808.
        self.assertAllClose(kept["ece"], 1 - 0.880797, atol=1e-5)
