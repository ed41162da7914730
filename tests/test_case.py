"""Shared test helpers: `TestCase` with closeness and serialization checks."""

import os
import tempfile

import keras
import numpy as np
from absl.testing import parameterized


class TestCase(parameterized.TestCase):
    """`parameterized.TestCase` plus Keras-aware assertions."""

    def setUp(self):
        super().setUp()
        keras.utils.set_random_seed(1337)

    def assertAllClose(self, actual, expected, atol=1e-6, rtol=1e-6):
        np.testing.assert_allclose(
            _to_numpy(actual), _to_numpy(expected), atol=atol, rtol=rtol
        )

    def get_temp_dir(self):
        tmp = tempfile.mkdtemp()
        self.addCleanup(_rmtree, tmp)
        return tmp

    def run_serialization_test(self, obj):
        """`obj` survives `get_config` -> `from_config` and keras serialize."""
        config = obj.get_config()
        clone = obj.__class__.from_config(config)
        self.assertEqual(clone.get_config(), config)
        revived = keras.saving.deserialize_keras_object(
            keras.saving.serialize_keras_object(obj)
        )
        self.assertEqual(revived.get_config(), config)
        return clone

    def run_keras_save_load_test(self, model, x, atol=1e-5):
        """Saves `model` as `.keras`, reloads it and compares predictions."""
        path = os.path.join(self.get_temp_dir(), "model.keras")
        model.save(path)
        reloaded = keras.saving.load_model(path)
        expected = model.predict(x, verbose=0)
        actual = reloaded.predict(x, verbose=0)
        keras.tree.map_structure(
            lambda a, b: self.assertAllClose(a, b, atol=atol), actual, expected
        )
        return reloaded


def _to_numpy(x):
    if isinstance(x, (list, tuple)):
        return np.asarray([_to_numpy(v) for v in x])
    return np.asarray(keras.ops.convert_to_numpy(x))


def _rmtree(path):
    import shutil

    shutil.rmtree(path, ignore_errors=True)
