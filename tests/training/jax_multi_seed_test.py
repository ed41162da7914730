"""Several seeds in one vmapped program == each seed's own `fit`."""

import keras
import numpy as np
import pytest

from balpoe_keras.training.run_folder import RunFolder
from tests.test_case import TestCase

pytestmark = pytest.mark.skipif(keras.backend.backend() != "jax",
                                reason="vmapped multi-seed training is JAX")


def _build(seed):
    del seed  # The caller seeds Keras' RNG; the init then follows it.
    from balpoe_keras import models
    from balpoe_keras import training

    model = models.build_balpoe_classifier(
        "resnet8", [10, 6, 5, 3], (1.0, 0.0, -1.0), input_shape=(8, 8, 3))
    schedule = training.WarmupStepSchedule(0.1, 3, warmup_epochs=1,
                                           step_epochs=(2,))
    model.compile(optimizer=training.TorchSGD(schedule), jit_compile=True)
    return model


def _data():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (24, 8, 8, 3), np.uint8)
    labels = np.repeat(np.arange(4), [10, 6, 5, 3])
    return images, labels


def _dataset_fn(seed):
    from balpoe_keras.data.arrays import dataset

    images, labels = _data()
    return dataset.make_train_dataset_fn(
        images, labels, global_batch_size=8, seed=seed, num_classes=4,
        mixup_alpha=0.8, max_degrees=15.0, padding=2)


class MultiSeedTest(TestCase):
    def test_each_seed_equals_its_single_seed_fit(self):
        from balpoe_keras import training
        from balpoe_keras.training import jax_multi_seed

        seeds = [3, 7]
        fns = [_dataset_fn(s) for s in seeds]
        workdir = self.get_temp_dir()
        trainer = jax_multi_seed.MultiSeedTrainer(_build, seeds, fns[0](0)[0])
        jax_multi_seed.fit_multi_seed(trainer, fns, epochs=2,
                                      workdir=workdir, verbose=False)
        for index, seed in enumerate(seeds):
            keras.utils.set_random_seed(seed)
            single = _build(seed)
            training.fit(single, fns[index], epochs=2,
                         workdir=self.get_temp_dir(), steps_per_epoch=3,
                         verbose=0, tensorboard=False)
            seed_model = trainer.seed_model(index)
            for a, b in zip(seed_model.weights, single.weights):
                self.assertAllClose(a, b, atol=2e-5, rtol=2e-5)
        # The two seeds trained different models.
        a = trainer.state[0][0]
        self.assertGreater(float(np.abs(a[0] - a[1]).max()), 1e-3)

    def test_resume_and_refuse_other_seeds(self):
        from balpoe_keras.training import jax_multi_seed

        fns = [_dataset_fn(s) for s in (1, 2)]
        workdir = self.get_temp_dir()
        trainer = jax_multi_seed.MultiSeedTrainer(_build, [1, 2],
                                                  fns[0](0)[0])
        jax_multi_seed.fit_multi_seed(trainer, fns, epochs=1,
                                      workdir=workdir, verbose=False)
        again = jax_multi_seed.MultiSeedTrainer(_build, [1, 2], fns[0](0)[0])
        start, _ = jax_multi_seed.fit_multi_seed(again, fns, epochs=2,
                                                 workdir=workdir,
                                                 verbose=False)
        self.assertEqual(start, 1)
        with open(f"{workdir}/train_log.csv") as f:
            header, *rows = f.read().strip().splitlines()
        self.assertEqual(len(rows), 2)
        self.assertIn("seed1/loss", header)
        self.assertIn("seed2/loss", header)
        other = jax_multi_seed.MultiSeedTrainer(_build, [1, 5], fns[0](0)[0])
        with self.assertRaisesRegex(ValueError, "holds seeds \\[1, 2\\]"):
            other.restore(RunFolder(workdir).checkpoint_dir)

    def test_a_diverged_seed_stops_before_its_epoch_is_saved(self):
        # A seed whose loss turned NaN trained on and reported NaN.
        import os
        from unittest import mock

        from balpoe_keras.training import jax_multi_seed
        from balpoe_keras.training.guards import NonFiniteLossError

        fns = [_dataset_fn(s) for s in (1, 2)]
        workdir = self.get_temp_dir()
        trainer = jax_multi_seed.MultiSeedTrainer(_build, [1, 2],
                                                  fns[0](0)[0])
        logs = {"loss": np.array([0.5, np.nan])}
        with mock.patch.object(trainer, "train_epoch", return_value=logs):
            with self.assertRaisesRegex(NonFiniteLossError,
                                        r"seed\(s\) \[2\] became nan in "
                                        r"epoch 1.*no checkpoint"):
                jax_multi_seed.fit_multi_seed(trainer, fns, epochs=1,
                                              workdir=workdir, verbose=False)
        folder = RunFolder(workdir)
        self.assertFalse(folder.has_training_state())
        self.assertFalse(os.path.exists(folder.log_path))

    def test_needs_distinct_seeds(self):
        from balpoe_keras.training import jax_multi_seed

        with self.assertRaisesRegex(ValueError, "distinct seeds"):
            jax_multi_seed.MultiSeedTrainer(_build, [1, 1], None)
