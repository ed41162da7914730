"""`BalPoEClassifier.compile()` refuses arguments it would use wrongly."""

import keras
import numpy as np

from balpoe_keras.losses import BalPoELoss
from balpoe_keras.metrics import ExpectedCalibrationError
from balpoe_keras.metrics import MaximumCalibrationError
from balpoe_keras.models import BalPoEClassifier
from tests.test_case import TestCase

_COUNTS = [8, 4, 2, 1]


def _model():
    inputs = keras.Input((8, 8, 3))
    x = keras.layers.Conv2D(4, 3)(inputs)
    return BalPoEClassifier(keras.Model(inputs, x), _COUNTS)


class _UserLoss(keras.losses.Loss):
    """A user's loss on the expert logits (batch, M, C): mean CE."""

    def call(self, y_true, y_pred):
        return keras.ops.mean(keras.losses.sparse_categorical_crossentropy(
            keras.ops.expand_dims(y_true, 1) * keras.ops.ones_like(
                y_pred[..., 0]), y_pred, from_logits=True), axis=-1)


class CompileChecksTest(TestCase):
    def test_keras_builtin_losses_are_refused_with_the_fix(self):
        for loss in ("sparse_categorical_crossentropy",
                     keras.losses.SparseCategoricalCrossentropy(
                         from_logits=True),
                     keras.losses.categorical_crossentropy,
                     keras.losses.Huber(),
                     keras.losses.CategoricalCrossentropy,
                     [keras.losses.MeanSquaredError()]):
            with self.subTest(loss=loss):
                with self.assertRaisesRegex(
                        ValueError, r"expert logits \(batch, M, C\).*"
                        r"loss='auto'"):
                    _model().compile(loss=loss)

    def test_one_hot_metrics_are_refused_with_the_sparse_one(self):
        cases = [
            ("categorical_accuracy", "sparse_categorical_accuracy"),
            (keras.metrics.CategoricalAccuracy(),
             "sparse_categorical_accuracy"),
            (keras.metrics.TopKCategoricalAccuracy(2),
             r"SparseTopKCategoricalAccuracy\(k\)"),
            ("top_k_categorical_accuracy", "SparseTopKCategoricalAccuracy"),
            (keras.metrics.categorical_accuracy,
             "sparse_categorical_accuracy"),
            (keras.metrics.CategoricalCrossentropy(),
             r"SparseCategoricalCrossentropy\(from_logits=True\)"),
            ("binary_accuracy", "sparse_categorical_accuracy"),
            (keras.metrics.KLDivergence(), "a Sparse\\* metric"),
            # Classes, nested lists and config dicts, as Keras reads them.
            (keras.metrics.CategoricalAccuracy,
             "sparse_categorical_accuracy"),
            (["accuracy", [keras.metrics.TopKCategoricalAccuracy(3)]],
             "SparseTopKCategoricalAccuracy"),
            (keras.metrics.serialize(keras.metrics.CategoricalAccuracy()),
             "sparse_categorical_accuracy"),
        ]
        for metric, fix in cases:
            for key in ("metrics", "weighted_metrics"):
                with self.subTest(metric=metric, key=key):
                    with self.assertRaisesRegex(
                            ValueError, f"class ids.*one-hot.*{fix}"):
                        _model().compile(**{key: [metric]})

    def test_probability_metrics_without_from_logits_are_refused(self):
        for metric in (ExpectedCalibrationError(),
                       MaximumCalibrationError(num_bins=10),
                       keras.metrics.SparseCategoricalCrossentropy(),
                       "sparse_categorical_crossentropy", "crossentropy",
                       ExpectedCalibrationError):
            with self.subTest(metric=metric):
                with self.assertRaisesRegex(ValueError,
                                            "from_logits=True"):
                    _model().compile(metrics=[metric])

    def test_a_users_own_loss_and_metric_classes_are_theirs(self):
        # Subclasses of Keras' classes, and look-alike names, in the
        # user's module: not refused (their call decides what they take).
        class SparseCategoricalCrossentropy(keras.metrics.Mean):
            pass

        class ExpertCE(keras.losses.SparseCategoricalCrossentropy):
            def call(self, y_true, y_pred):
                return _UserLoss().call(y_true, y_pred)

        def expert_ce(y_true, y_pred):
            return _UserLoss().call(y_true, y_pred)

        wrapper = keras.losses.MeanSquaredError.__mro__[1]
        self.assertEqual(wrapper.__name__, "LossFunctionWrapper")
        for loss in (ExpertCE(from_logits=True), expert_ce,
                     wrapper(expert_ce)):
            with self.subTest(loss=loss):
                _model().compile(loss=loss,
                                 metrics=[SparseCategoricalCrossentropy()])
        with self.assertRaisesRegex(ValueError, "built-in loss"):
            _model().compile(loss=wrapper(keras.losses.mean_squared_error))

    def test_what_fits_class_ids_and_logits_is_accepted_and_scores(self):
        # The accepted spellings compile and score what NumPy says.
        model = _model()
        model.compile(
            loss=_UserLoss(),
            metrics=["accuracy", "sparse_categorical_accuracy",
                     keras.metrics.SparseTopKCategoricalAccuracy(2),
                     keras.metrics.SparseCategoricalCrossentropy(
                         from_logits=True),
                     ExpectedCalibrationError(from_logits=True)],
            weighted_metrics=[MaximumCalibrationError(from_logits=True)],
            jit_compile=False)
        rng = np.random.default_rng(0)
        x = rng.random((6, 8, 8, 3)).astype("float32")
        y = np.array([0, 1, 2, 3, 0, 1])
        logs = model.evaluate(x, y, verbose=0, return_dict=True)
        logits = np.asarray(model.predict(x, verbose=0))
        self.assertAllClose(logs["accuracy"],
                            np.mean(logits.argmax(-1) == y))
        self.assertAllClose(logs["sparse_categorical_accuracy"],
                            logs["accuracy"])
        top2 = np.argsort(-logits, axis=-1)[:, :2]
        self.assertAllClose(logs["sparse_top_k_categorical_accuracy"],
                            np.mean([t in row for t, row in zip(y, top2)]))
        shifted = logits - logits.max(-1, keepdims=True)
        log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
        self.assertAllClose(logs["sparse_categorical_crossentropy"],
                            -np.mean(log_probs[np.arange(6), y]), atol=1e-5)
        self.assertTrue(np.isfinite(logs["ece"]))

    def test_balpoe_loss_and_auto_are_accepted(self):
        _model().compile(loss=BalPoELoss(_COUNTS, [1.0, 0.0, -1.0]))
        _model().compile()
