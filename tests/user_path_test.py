"""The path a Keras user takes: build the classifier, `compile()`,
`fit(x, y)` with plain labels, `evaluate`, save, load, `predict_proba`.

The reported numbers are checked against NumPy on the model's own
predictions, on every backend.
"""

import os

import keras
import numpy as np
import pytest

import balpoe_keras as bk
from tests.test_case import TestCase

_COUNTS = [150, 60, 30, 10]  # many, medium, medium, few (> 100, < 20)
_LAMBDAS = [1.0, 0.0, -1.0]


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((n, 16, 16, 3)).astype("float32")
    y = rng.integers(0, len(_COUNTS), n).astype("int32")
    return x, y


def _model(**kwargs):
    return bk.build_balpoe_classifier(
        "resnet8", _COUNTS, _LAMBDAS, input_shape=(16, 16, 3), **kwargs)


def _softmax(z):
    z = z - z.max(-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(-1, keepdims=True)


def _numpy_ece(probs, labels, num_bins=15):
    """Equal-width bins (lo, hi] over the top-1 confidence."""
    conf = probs.max(-1)
    hit = (probs.argmax(-1) == labels).astype(np.float64)
    bins = np.clip(np.ceil(conf * num_bins).astype(int) - 1, 0, num_bins - 1)
    ece = 0.0
    for b in range(num_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(hit[mask].mean() - conf[mask].mean())
    return ece


def _numpy_balanced_accuracy(pred, labels, num_classes):
    recalls = [np.mean(pred[labels == c] == c)
               for c in range(num_classes) if np.any(labels == c)]
    return float(np.mean(recalls))


def _numpy_expert_losses(expert_logits, labels, weights=None):
    """Each expert's mean gLA loss `CE(z_m + (1 - lambda_m) log pi)`;
    with `weights`, `sum(w * loss) / N` (Keras' loss reduction)."""
    log_prior = np.log(np.asarray(_COUNTS, np.float64) / sum(_COUNTS))
    losses = []
    for m, lam in enumerate(_LAMBDAS):
        z = expert_logits[:, m].astype(np.float64) + (1 - lam) * log_prior
        z = z - z.max(-1, keepdims=True)
        log_p = z - np.log(np.exp(z).sum(-1, keepdims=True))
        per_sample = -log_p[np.arange(len(labels)), labels]
        if weights is not None:
            per_sample = per_sample * weights
        losses.append(per_sample.mean())
    return np.asarray(losses)


class UserPathTest(TestCase):
    def test_compile_fit_evaluate_report_the_promised_metrics(self):
        x, y = _data()
        model = _model()
        model.compile()
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        expected = {"loss", "accuracy", "balanced_accuracy", "acc_many",
                    "acc_medium", "acc_few", "ece", "expert_0_loss",
                    "expert_1_loss", "expert_2_loss"}
        self.assertEqual(set(history.history), expected)
        result = model.evaluate(x, y, batch_size=16, verbose=0,
                                return_dict=True)
        self.assertEqual(set(result), expected)

        # The same numbers from NumPy on the model's own predictions.
        outputs = model.predict_outputs(x, batch_size=16)
        logits = outputs["logits"]
        probs = model.predict_proba(x, batch_size=16)
        self.assertAllClose(probs, _softmax(logits.astype(np.float64)),
                            atol=1e-6)
        pred = logits.argmax(-1)
        self.assertAllClose(result["accuracy"], np.mean(pred == y),
                            atol=1e-6)
        self.assertAllClose(result["balanced_accuracy"],
                            _numpy_balanced_accuracy(pred, y, 4), atol=1e-6)
        self.assertAllClose(result["ece"], _numpy_ece(probs, y), atol=1e-5)
        recall = [np.mean(pred[y == c] == c) for c in range(4)]
        self.assertAllClose(result["acc_many"], recall[0], atol=1e-6)
        self.assertAllClose(result["acc_medium"], np.mean(recall[1:3]),
                            atol=1e-6)
        self.assertAllClose(result["acc_few"], recall[3], atol=1e-6)
        expert = _numpy_expert_losses(outputs["expert_logits"], y)
        for m in range(3):
            self.assertAllClose(result[f"expert_{m}_loss"], expert[m],
                                rtol=1e-4, atol=1e-4)
        # BalPoELoss is the mean of the experts' gLA losses.
        self.assertAllClose(result["loss"], expert.mean(), rtol=1e-4,
                            atol=1e-4)

    def test_fit_takes_the_steps_train_on_batch_takes(self):
        # fit(x, y) trains: three steps of batch 16, the weights and the
        # reported loss those of three train_on_batch calls on the same
        # batches from the same initial weights.
        x, y = _data()
        model, stepped = _model(), _model()
        stepped.set_weights(model.get_weights())
        for m in (model, stepped):
            m.compile()
        start = [w.copy() for w in model.get_weights()]
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0,
                            shuffle=False)
        self.assertEqual(int(model.optimizer.iterations), 3)
        losses = [stepped.train_on_batch(x[k:k + 16], y[k:k + 16],
                                         return_dict=True)
                  for k in (0, 16, 32)]
        # fit reports the mean over the epoch's batches; train_on_batch
        # each batch's own.
        self.assertAllClose(history.history["loss"][0],
                            np.mean([r["loss"] for r in losses]), rtol=1e-5,
                            atol=1e-6)
        moved = False
        for a, b, before in zip(model.get_weights(), stepped.get_weights(),
                                start):
            self.assertAllClose(a, b, rtol=1e-4, atol=1e-5)
            moved = moved or not np.allclose(a, before)
        self.assertTrue(moved)

    def test_mixed_bfloat16_model_trains_and_reports_the_numpy_scores(self):
        # Under mixed_bfloat16 the backbone computes in bfloat16 and the
        # heads, loss and metrics in float32: fit steps stay finite and
        # evaluate's figures are the NumPy ones of the model's own outputs.
        from balpoe_keras.training import mixed_precision_scope

        x, y = _data()
        with mixed_precision_scope("mixed_bfloat16"):
            model = _model()
        self.assertEqual(model.backbone.compute_dtype, "bfloat16")
        model.compile()
        history = model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        self.assertEqual(int(model.optimizer.iterations), 3)
        self.assertTrue(np.isfinite(history.history["loss"][0]))
        result = model.evaluate(x, y, batch_size=48, verbose=0,
                                return_dict=True)
        outputs = model.predict_outputs(x, batch_size=48)
        self.assertEqual(outputs["logits"].dtype, np.float32)
        probs = _softmax(outputs["logits"].astype(np.float64))
        pred = outputs["logits"].argmax(-1)
        self.assertAllClose(result["balanced_accuracy"],
                            _numpy_balanced_accuracy(pred, y, 4), atol=1e-6)
        # evaluate and predict are separate programs: allow their bfloat16
        # rounding to differ a little (a wrong metric is off by far more).
        self.assertAllClose(result["ece"], _numpy_ece(probs, y), atol=1e-4)
        expert = _numpy_expert_losses(outputs["expert_logits"], y)
        self.assertAllClose(result["loss"], expert.mean(), rtol=1e-3,
                            atol=1e-3)

    def test_sample_weight_weights_loss_and_expert_losses_alike(self):
        # Keras' loss is sum(w * loss) / N; the expert losses too, so the
        # loss stays the mean of the experts' whatever the weights' mean.
        x, y = _data()
        weights = (np.arange(48) < 24).astype("float32") * 0.5
        model = _model()
        model.compile()
        result = model.evaluate(x, y, sample_weight=weights, batch_size=16,
                                verbose=0, return_dict=True)
        outputs = model.predict_outputs(x, batch_size=16)
        expert = _numpy_expert_losses(outputs["expert_logits"], y, weights)
        for m in range(3):
            self.assertAllClose(result[f"expert_{m}_loss"], expert[m],
                                rtol=1e-4, atol=1e-4)
        self.assertAllClose(result["loss"], expert.mean(), rtol=1e-4,
                            atol=1e-4)

    def test_one_hot_and_int_labels_score_the_same(self):
        x, y = _data()
        model = _model()
        model.compile()
        model.fit(x, keras.utils.to_categorical(y, 4), batch_size=16,
                  epochs=1, verbose=0)  # Soft/one-hot labels first.
        as_ids = model.evaluate(x, y, verbose=0, return_dict=True)
        as_onehot = model.evaluate(x, keras.utils.to_categorical(y, 4),
                                   verbose=0, return_dict=True)
        for key in as_ids:
            self.assertAllClose(as_ids[key], as_onehot[key], atol=1e-5)
        pred = model.predict(x, verbose=0).argmax(-1)
        self.assertAllClose(as_ids["accuracy"], np.mean(pred == y),
                            atol=1e-6)

    def test_mixup_soft_labels_train_and_metrics_use_the_argmax(self):
        x, y = _data()
        soft = 0.7 * keras.utils.to_categorical(y, 4) + (
            0.3 * keras.utils.to_categorical((y + 1) % 4, 4))
        model = _model()
        model.compile(metrics=["accuracy"])
        model.fit(x, soft, batch_size=16, epochs=1, verbose=0)
        result = model.evaluate(x, soft, verbose=0, return_dict=True)
        pred = model.predict(x, verbose=0).argmax(-1)
        self.assertAllClose(result["accuracy"], np.mean(pred == y),
                            atol=1e-6)

    def test_save_load_predict_proba(self):
        x, y = _data()
        model = _model(class_names=["a", "b", "c", "d"])
        model.compile()
        model.fit(x, y, batch_size=16, epochs=1, verbose=0)
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        loaded = keras.saving.load_model(path)
        self.assertIsInstance(loaded, bk.BalPoEClassifier)
        self.assertEqual(loaded.class_names, ["a", "b", "c", "d"])
        self.assertAllClose(loaded.predict_proba(x), model.predict_proba(x),
                            atol=1e-6)
        before = model.evaluate(x, y, verbose=0, return_dict=True)
        after = loaded.evaluate(x, y, verbose=0, return_dict=True)
        for key in before:
            self.assertAllClose(after[key], before[key], atol=1e-5)

    def test_plain_metric_list_applies_to_the_ensemble(self):
        x, y = _data()
        model = _model()
        model.compile(metrics=["accuracy", bk.BalancedAccuracy(4)])
        result = model.evaluate(x, y, verbose=0, return_dict=True)
        pred = model.predict(x, verbose=0).argmax(-1)
        self.assertAllClose(result["accuracy"], np.mean(pred == y),
                            atol=1e-6)
        self.assertAllClose(result["balanced_accuracy"],
                            _numpy_balanced_accuracy(pred, y, 4), atol=1e-6)

    def test_predict_outputs_and_expert_mean(self):
        x, _ = _data(n=8)
        model = _model()
        outputs = model.predict_outputs(x)
        self.assertEqual(outputs["expert_logits"].shape, (8, 3, 4))
        self.assertAllClose(model.predict(x, verbose=0),
                            outputs["expert_logits"].mean(1), atol=1e-5)
        self.assertAllClose(model.predict_on_batch(x), outputs["logits"],
                            atol=1e-5)

    def test_class_weight_refused_with_the_reason(self):
        x, y = _data()
        model = _model()
        model.compile()
        with self.assertRaisesRegex(ValueError, "class_weight.*balance"):
            model.fit(x, y, class_weight={0: 1.0, 1: 1.0, 2: 2.0, 3: 4.0},
                      verbose=0)

    def test_dict_compile_arguments_refused(self):
        model = _model()
        with self.assertRaisesRegex(ValueError, "not a dict per output"):
            model.compile(metrics={"logits": ["accuracy"]})
        with self.assertRaisesRegex(ValueError, "not a dict per output"):
            model.compile(loss={"expert_logits": bk.BalPoELoss(_COUNTS)})

    def test_clone_model_keeps_the_class(self):
        model = _model(class_names=["a", "b", "c", "d"])
        clone = keras.models.clone_model(model)
        self.assertIsInstance(clone, bk.BalPoEClassifier)
        self.assertEqual(clone.lambdas, model.lambdas)
        self.assertEqual(clone.class_counts, model.class_counts)
        self.assertEqual(clone.class_names, model.class_names)
        self.assertEqual(
            [tuple(w.shape) for w in clone.weights],
            [tuple(w.shape) for w in model.weights])


class LabelRangeTest(TestCase):
    """A label outside [0, C) never trains or scores silently."""

    def _bad(self):
        x, y = _data(n=32)
        y = y.copy()
        y[5] = 9  # C = 4
        return x, y

    def test_numpy_labels_refused_before_training(self):
        x, y = self._bad()
        model = _model()
        model.compile()
        before = [w.numpy() if hasattr(w, "numpy") else np.asarray(w)
                  for w in model.trainable_weights[:1]]
        with self.assertRaisesRegex(ValueError, r"\[0, 4\).*\[9\]"):
            model.fit(x, y, batch_size=16, verbose=0)
        with self.assertRaisesRegex(ValueError, r"\[0, 4\).*\[9\]"):
            model.evaluate(x, y, verbose=0)
        after = keras.ops.convert_to_numpy(model.trainable_weights[0])
        self.assertAllClose(after, before[0])  # No step was taken.

    def test_one_hot_rows_without_a_class_refused(self):
        # keras.ops.one_hot gives an all-zero row for an id outside [0, C):
        # as the id itself, it neither trains nor scores (it used to count
        # as class 0 with a loss of 0); a multi-hot row is refused too.
        x, y = self._bad()
        zero_row = np.eye(4, dtype="float32")[y % 4]
        zero_row[y >= 4] = 0.0  # one_hot of the id 9 on TensorFlow and JAX.
        multi_hot = np.eye(4, dtype="float32")[y % 4]
        multi_hot[3, 1] = 1.0
        for labels in (zero_row, multi_hot):
            model = _model()
            model.compile()
            with self.assertRaisesRegex(ValueError, r"\[0, 4\).*\[-1\]"
                                        r".*not distributions"):
                model.fit(x, labels, batch_size=16, verbose=0)
            with self.assertRaisesRegex(ValueError,
                                        r"\[0, 4\).*not distributions"):
                model.evaluate(self._stream(x, labels), steps=2, verbose=0)
            with self.assertRaisesRegex(ValueError, r"\[-1\]"):
                bk.BalPoELoss(_COUNTS)(labels, np.zeros((32, 3, 4)))
            with self.assertRaisesRegex(ValueError, r"\[-1\]"):
                bk.BalancedAccuracy(4).update_state(labels, labels)
        # Mixup rows (sums of 1) stay valid labels.
        mixed = 0.3 * np.eye(4)[y % 4] + 0.7 * np.eye(4)[(y + 1) % 4]
        model = _model()
        model.compile()
        model.fit(x, mixed.astype("float32"), batch_size=16, verbose=0)

    def test_float_ids_that_are_not_whole_numbers_refused(self):
        # A cast would truncate 2.7 to class 2: refused, on the host with
        # the values, in compiled steps as the -1 of the range check.
        x, y = _data(n=32)
        y = y.astype("float32")
        y[7] += 0.7
        model = _model()
        model.compile()
        with self.assertRaisesRegex(ValueError, r"whole class ids.*\.70"):
            model.fit(x, y, batch_size=16, verbose=0)
        with self.assertRaisesRegex(ValueError, r"whole class ids"):
            model.evaluate(x, y, verbose=0)
        with self.assertRaisesRegex(ValueError, r"\[0, 4\).*not whole "
                                    "numbers"):
            model.evaluate(self._stream(x, y), steps=2, verbose=0)
        with self.assertRaisesRegex(ValueError, r"\[-1\]"):
            bk.BalancedAccuracy(4).update_state(y, np.eye(4)[y.astype(int)])
        with self.assertRaisesRegex(ValueError, r"\[-1\]"):  # Losses too.
            bk.BalPoELoss(_COUNTS)(y, np.zeros((32, 3, 4), "float32"))
        ml_dtypes = pytest.importorskip("ml_dtypes")  # bf16: no np.floating.

        from balpoe_keras.labels import host_class_ids

        with self.assertRaisesRegex(ValueError, r"whole class ids.*2\.5"):
            host_class_ids(np.array([0, 2.5, 3], ml_dtypes.bfloat16), 4)
        model.fit(x, np.floor(y), batch_size=16, verbose=0)  # Whole: fine.

    def _stream(self, x, y):
        def batches():
            while True:
                for lo in range(0, len(y), 16):
                    yield x[lo:lo + 16], y[lo:lo + 16]
        return batches()

    def test_streamed_labels_raise_in_compiled_steps(self):
        x, y = self._bad()
        for labels in (y, np.where(np.arange(32) == 20, -1, y)):
            model = _model()
            model.compile()
            with self.assertRaisesRegex(ValueError, r"class ids in \[0, 4\)"):
                model.fit(self._stream(x, labels), steps_per_epoch=2,
                          epochs=1, verbose=0)
            with self.assertRaisesRegex(ValueError, r"class ids in \[0, 4\)"):
                model.evaluate(self._stream(x, labels), steps=2, verbose=0)

    def test_valid_stream_shows_no_count(self):
        x, y = _data(n=32)
        model = _model()
        model.compile()
        history = model.fit(self._stream(x, y), steps_per_epoch=2, epochs=1,
                            verbose=0)
        self.assertNotIn("invalid_labels", history.history)
        result = model.evaluate(self._stream(x, y), steps=2, verbose=0,
                                return_dict=True)
        self.assertNotIn("invalid_labels", result)

    def test_standalone_metrics_refuse_or_turn_nan(self):
        probs = np.full((4, 4), 0.25, "float32")
        for metric in (bk.BalancedAccuracy(4),
                       bk.GroupAccuracy(_COUNTS, "few"),
                       bk.ExpectedCalibrationError()):
            with self.assertRaisesRegex(ValueError, r"\[0, 4\)"):
                metric.update_state(np.array([0, 1, 4, 2]), probs)
            with self.assertRaisesRegex(ValueError, r"\[0, 4\)"):
                metric.update_state(np.array([0, -1, 3, 2]), probs)

    def test_one_hot_rows_of_another_width_refused(self):
        # A 3-wide one-hot row for a 4-class model was flattened into 3
        # labels (with one row no error at all: total [2, 1, 0, 0]).
        probs = np.full((1, 4), 0.25, "float32")
        three_wide = np.array([[0.0, 1.0, 0.0]], "float32")
        for metric in (bk.BalancedAccuracy(4),
                       bk.GroupAccuracy(_COUNTS, "few"),
                       bk.ExpectedCalibrationError()):
            with self.assertRaisesRegex(ValueError,
                                        r"\(B, 4\); received shape "
                                        r"\(1, 3\)"):
                metric.update_state(three_wide, probs)
        x, _ = _data(n=8)
        model = _model()
        model.compile()
        with self.assertRaisesRegex(ValueError, r"received shape \(8, 3\)"):
            model.fit(x, np.eye(3)[np.arange(8) % 3], verbose=0)
        # The expert logits (B, M, C) instead of the ensemble's.
        with self.assertRaisesRegex(ValueError, "ensemble 'logits'"):
            bk.BalancedAccuracy(4).update_state(
                np.array([0, 1]), np.zeros((2, 3, 4), "float32"))


class ImageRangeTest(TestCase):
    """Images the model would misread are refused on every path."""

    def test_uint8_and_0_255_floats_refused(self):
        x, y = _data(n=16)
        model = _model()
        model.compile()
        for images in ((x * 255).astype("uint8"), x * 255.0):
            for call in (lambda a: model.fit(a, y, verbose=0),
                         lambda a: model.evaluate(a, y, verbose=0),
                         lambda a: model.predict(a, verbose=0),
                         model.predict_proba,
                         model.predict_outputs):
                with self.assertRaisesRegex(ValueError, "/ 255"):
                    call(images)

    def test_streamed_0_255_images_refused(self):
        x, y = _data(n=32)

        def stream(with_labels):
            while True:
                for lo in range(0, 32, 16):
                    batch = x[lo:lo + 16] * 255.0
                    yield (batch, y[lo:lo + 16]) if with_labels else (batch,)

        model = _model()
        model.compile()
        with self.assertRaisesRegex(ValueError, "/ 255"):
            model.fit(stream(True), steps_per_epoch=2, verbose=0)
        with self.assertRaisesRegex(ValueError, "/ 255"):
            model.evaluate(stream(True), steps=2, verbose=0)
        with self.assertRaisesRegex(ValueError, "/ 255"):
            model.predict(stream(False), steps=2, verbose=0)

    def test_a_stream_wrong_throughout_stops_after_its_first_step(self):
        # A 0-255 stream (or a shifted label map) used to train a whole
        # epoch before the error; now the first step is the only one taken
        # (also with steps_per_execution > 1: its first execution), and an
        # evaluation scores one batch. Each step is counted by a callback.
        x, y = _data(n=32)

        def stream(scale, shift):
            while True:
                for lo in range(0, 32, 8):
                    yield (x[lo:lo + 8] * scale,
                           (y[lo:lo + 8] + shift).astype("int32"))

        class Steps(keras.callbacks.Callback):
            def __init__(self):
                super().__init__()
                self.train = self.test = 0

            def on_train_batch_end(self, batch, logs=None):
                self.train += 1

            def on_test_batch_end(self, batch, logs=None):
                self.test += 1

        # PyTorch's eager loss names the labels before the first update.
        eager = keras.backend.backend() == "torch"
        first = ("first step trained in epoch 1",
                 "first step of the evaluation")
        label_where = ("Found", "Found") if eager else first
        cases = ((255.0, 0, "/ 255", 1, first),
                 (1.0, 4, r"\[0, 4\)", 1, label_where),
                 (255.0, 0, "/ 255", 2, first))
        for scale, shift, message, per_execution, where in cases:
            if eager and per_execution > 1:
                continue  # Keras' PyTorch trainer takes 1 only.
            model = _model()
            model.compile(steps_per_execution=per_execution)
            steps = Steps()
            with self.assertRaisesRegex(
                    ValueError, f"(?=.*{message})(?=.*{where[0]})"):
                model.fit(stream(scale, shift), steps_per_epoch=8, epochs=3,
                          callbacks=[steps], verbose=0)
            self.assertLessEqual(steps.train, 1)
            with self.assertRaisesRegex(
                    ValueError, f"(?=.*{message})(?=.*{where[1]})"):
                model.evaluate(stream(scale, shift), steps=8, verbose=0,
                               callbacks=[steps])
            self.assertLessEqual(steps.test, 1)
        # A bad batch later in the epoch is still caught at its end.
        model = _model()
        model.compile()

        def late():
            yield x[:8], y[:8]
            while True:
                yield x[8:16] * 255.0, y[8:16]

        with self.assertRaisesRegex(ValueError, r"\) in epoch 1 had.*/ 255"):
            model.fit(late(), steps_per_epoch=4, verbose=0)
        # Also with validation_data, whose evaluation resets the counts
        # before the epoch ends (the error was lost there).
        with self.assertRaisesRegex(ValueError, r"\) in epoch 1 had.*/ 255"):
            model.fit(late(), steps_per_epoch=4, verbose=0,
                      validation_data=(x[:8], y[:8]))

    def test_non_finite_pixels_refused_before_they_reach_the_weights(self):
        x, y = _data(n=32)
        model = _model()
        model.compile()
        before = [w.copy() for w in model.get_weights()]
        for bad in (np.nan, np.inf):
            images = x.copy()
            images[3, 2, 1, 0] = bad
            for call in (lambda a: model.fit(a, y, verbose=0),
                         lambda a: model.evaluate(a, y, verbose=0),
                         model.predict_proba):
                with self.assertRaisesRegex(ValueError, "non-finite"):
                    call(images)
        for kept, now in zip(before, model.get_weights()):
            np.testing.assert_array_equal(kept, now)

        def stream():
            while True:
                batch = x[:16].copy()
                batch[5, 0, 0, 1] = np.nan
                yield batch, y[:16]

        with self.assertRaisesRegex(ValueError, r"not finite \(NaN"):
            model.fit(stream(), steps_per_epoch=2, verbose=0)

    def test_bad_sample_weights_refused_before_they_reach_the_weights(self):
        x, y = _data(n=32)
        model = _model()
        model.compile()
        before = [w.copy() for w in model.get_weights()]
        for bad in (np.nan, np.inf, -0.5):
            weights = np.ones(32, np.float32)
            weights[7] = bad
            for call in (model.fit, model.evaluate):
                with self.assertRaisesRegex(
                        ValueError, r"sample_weight must be finite and >= "
                        r"0; 1 of 32 values are not \(first at flat "
                        r"indices \[7\]"):
                    call(x, y, sample_weight=weights, verbose=0)
        for kept, now in zip(before, model.get_weights()):
            np.testing.assert_array_equal(kept, now)
        # Zeros (a sample left out) are fine.
        weights = np.asarray([0.0] * 16 + [2.0] * 16, np.float32)
        model.fit(x, y, sample_weight=weights, epochs=1, verbose=0)
        model.evaluate(x, y, sample_weight=weights, verbose=0)

    def test_streamed_bad_sample_weights_raise(self):
        # A (x, y, w) stream: Keras takes NaN and negative weights; the
        # guard names them after the first step (a negative weight in fit,
        # a NaN one in evaluate; one model, to keep compiles few).
        x, y = _data(n=32)

        def stream(bad):
            weights = np.ones(32, np.float32)
            weights[20] = bad
            while True:
                for lo in range(0, 32, 16):
                    yield x[lo:lo + 16], y[lo:lo + 16], weights[lo:lo + 16]

        model = _model()
        model.compile()
        message = "sample_weight must be finite and >= 0; 1 "
        with self.assertRaisesRegex(ValueError, message):
            model.fit(stream(-1.0), steps_per_epoch=2, verbose=0)
        with self.assertRaisesRegex(ValueError, message):
            model.evaluate(stream(np.nan), steps=2, verbose=0)
        logs = model.fit(  # Boolean weights (a mask) are fine.
            ((x[lo:lo + 16], y[lo:lo + 16], np.arange(16) % 3 > 0)
             for lo in (0, 16)), steps_per_epoch=2, verbose=0).history
        self.assertNotIn("invalid_weights", logs)
        self.assertTrue(np.isfinite(logs["loss"][0]))

    def test_bad_validation_data_refused_before_training(self):
        # Keras scores validation_data at the end of the first epoch: the
        # check must come before that epoch's steps, not after them.
        x, y = _data(n=32)
        xv, yv = _data(n=16, seed=1)
        model = _model()
        model.compile()
        before = [w.copy() for w in model.get_weights()]
        labels = yv.copy()
        labels[3] = 9
        weights = np.ones(16, np.float32)
        weights[2] = np.nan
        for validation, message in (
                ((xv, labels), r"\[0, 4\).*\[9\]"),
                ((xv * 255.0, yv), "/ 255"),
                ((xv, yv, weights), r"sample_weight must be finite")):
            with self.assertRaisesRegex(ValueError,
                                        "In validation_data: .*" + message):
                model.fit(x, y, epochs=1, verbose=0,
                          validation_data=validation)
        for kept, now in zip(before, model.get_weights()):
            np.testing.assert_array_equal(kept, now)
        history = model.fit(x, y, epochs=1, verbose=0,
                            validation_data=(xv, yv))
        self.assertIn("val_balanced_accuracy", history.history)

    def test_arguments_by_position_are_checked_and_passed_on(self):
        # fit(x, y, batch_size, epochs, verbose, callbacks, ...) and
        # evaluate(x, y, batch_size, verbose, sample_weight): the checks
        # find an argument wherever it is given.
        x, y = _data(n=32)
        model = _model()
        model.compile()
        weights = np.ones(32, np.float32)
        weights[1] = -1.0
        with self.assertRaisesRegex(ValueError, "sample_weight must be"):
            model.fit(x, y, 16, 1, 0, None, 0.0, None, True, None, weights)
        with self.assertRaisesRegex(ValueError, "sample_weight must be"):
            model.evaluate(x, y, 16, 0, weights)
        seen = []
        callback = keras.callbacks.LambdaCallback(
            on_epoch_end=lambda epoch, logs: seen.append(epoch))
        model.fit(x, y, 16, 2, 0, [callback])
        self.assertEqual(seen, [0, 1])
        with self.assertRaisesRegex(TypeError, "bogus"):
            model.fit(x, y, bogus=1)

    def test_on_batch_methods_check_their_batch_before_the_step(self):
        # train_on_batch took a label 9 (the metrics turned NaN but the
        # step ran) and 0-255 images silently.
        x, y = _data(n=16)
        model = _model()
        model.compile()
        before = [w.copy() for w in model.get_weights()]
        labels = y.copy()
        labels[3] = 9
        weights = np.ones(16, np.float32)
        weights[2] = np.nan
        tensor = keras.ops.convert_to_tensor
        for batch, message in (((x, labels), r"\[0, 4\).*\[9\]"),
                               ((tensor(x), tensor(labels)), r"\[9\]"),
                               ((x * 255.0, y), "/ 255"),
                               ((tensor(x * 255.0), y), "/ 255"),
                               ((x, y, weights), "sample_weight must be")):
            for call in (model.train_on_batch, model.test_on_batch):
                with self.assertRaisesRegex(ValueError, message):
                    call(*batch)
        with self.assertRaisesRegex(ValueError, "/ 255"):
            model.predict_on_batch(tensor(x * 255.0))
        with self.assertRaisesRegex(ValueError,
                                    "train_on_batch.. takes no class_"):
            model.train_on_batch(x, y, class_weight={0: 1.0, 1: 2.0})
        for kept, now in zip(before, model.get_weights()):
            np.testing.assert_array_equal(kept, now)
        logs = model.train_on_batch(x, y, return_dict=True)
        self.assertTrue(np.isfinite(logs["balanced_accuracy"]))
        self.assertEqual(model.predict_on_batch(tensor(x)).shape, (16, 4))

    def test_the_tolerance_is_the_same_for_arrays_and_streams(self):
        # float32(1.001) is 1.00100005 in float64: compared in the images'
        # dtype, as the in-graph count and the served model compare.
        model = _model()
        edge = np.full((2, 16, 16, 3), np.float32(1.001))
        self.assertEqual(model.predict_proba(edge).shape, (2, 4))
        with self.assertRaisesRegex(ValueError, "/ 255"):
            model.predict_proba(edge + np.float32(1e-3))
        # Standardised images are told the model normalises itself.
        with self.assertRaisesRegex(
                ValueError,
                r"pixels in \[-0.499.*standardised.*normalises them itself"):
            model.predict_proba(edge - np.float32(1.5))

    def test_a_batch_without_its_channel_axis_is_named(self):
        x, _ = _data(n=4)
        with self.assertRaisesRegex(ValueError, r"received shape \(4, 16, "
                                    r"16\).*images\[\.\.\., None\]"):
            _model().predict_proba(x[..., 0])

    def test_wrong_channel_count_refused(self):
        x, _ = _data(n=4)
        model = _model()
        with self.assertRaisesRegex(ValueError, "3 channel"):
            model.predict(x[..., :1], verbose=0)
        gray = bk.build_balpoe_classifier(
            "resnet8", _COUNTS, input_shape=(16, 16, 1), pixel_mean=(0.5,),
            pixel_std=(0.25,))
        with self.assertRaisesRegex(ValueError, "1 channel"):
            gray.predict(x, verbose=0)
        self.assertEqual(gray.predict(x[..., :1], verbose=0).shape, (4, 4))
