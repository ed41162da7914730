"""Tests for the per-epoch LR schedules (numbers from docs/reference.md §4)."""

import keras
import numpy as np

from balpoe_keras.optimizers import CosineEpochSchedule
from balpoe_keras.optimizers import WarmupStepSchedule
from tests.test_case import TestCase

_STEPS = 3  # Steps per epoch: tests query the first, middle and last step.


def _lr_per_epoch(schedule, num_epochs):
    """`(num_epochs, 3)` LR at the 3 steps of each 0-based epoch."""
    values = schedule(np.arange(num_epochs * _STEPS))  # Vectorised call.
    return np.reshape(keras.ops.convert_to_numpy(values), (num_epochs, -1))


class WarmupStepScheduleTest(TestCase):
    def test_cifar_standard(self):
        # LambdaLR factor for 0-based epoch e: (e+1)/5 for e < 5, 1 until
        # e = 159, 0.1 for 160 <= e < 180, 0.01 after; base lr 0.1.
        schedule = WarmupStepSchedule(0.1, _STEPS)
        lrs = _lr_per_epoch(schedule, 200)
        expected = np.concatenate(
            [
                [0.02, 0.04, 0.06, 0.08, 0.1],  # 1-based epochs 1-5
                np.full(155, 0.1),  # 6-160
                np.full(20, 0.01),  # 161-180
                np.full(20, 0.001),  # 181-200
            ]
        )
        self.assertAllClose(lrs, np.repeat(expected[:, None], 3, 1), 1e-8)

    def test_cifar_long(self):
        # Warm-up 10: 0.01, 0.02, ..., 0.1; drops after epochs 320 and 360.
        schedule = WarmupStepSchedule(
            0.1, _STEPS, warmup_epochs=10, step_epochs=(320, 360)
        )
        lrs = _lr_per_epoch(schedule, 400)[:, 0]
        self.assertAllClose(lrs[:10], np.arange(1, 11) * 0.01, 1e-8)
        self.assertAllClose(lrs[10:320], np.full(310, 0.1), 1e-8)
        self.assertAllClose(lrs[320:360], np.full(40, 0.01), 1e-8)
        self.assertAllClose(lrs[360:], np.full(40, 0.001), 1e-8)

    def test_no_warmup(self):
        schedule = WarmupStepSchedule(
            0.5, 1, warmup_epochs=0, step_epochs=(2,), gamma=0.5
        )
        self.assertAllClose([float(schedule(s)) for s in range(4)],
                            [0.5, 0.5, 0.25, 0.25])  # fmt: skip

    def test_serialization(self):
        schedule = WarmupStepSchedule(0.1, 85, 5, (160, 180), 0.1)
        clone = self.run_serialization_test(schedule)
        self.assertAllClose(float(clone(85 * 160)), 0.01, 1e-8)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "steps_per_epoch"):
            WarmupStepSchedule(0.1, 0)
        with self.assertRaisesRegex(ValueError, "strictly increasing"):
            WarmupStepSchedule(0.1, 10, step_epochs=(180, 160))
        with self.assertRaisesRegex(ValueError, "warmup_epochs"):
            WarmupStepSchedule(0.1, 10, warmup_epochs=-1)
        with self.assertRaisesRegex(ValueError, "base_lr"):
            WarmupStepSchedule(0.0, 10)


class CosineEpochScheduleTest(TestCase):
    def test_imagenet_standard(self):
        # 0.5 * 0.025 * (1 + cos(pi * e / 180)) for the 0-based epoch e:
        # e = 0 -> 0.025; e = 90 -> 0.0125; e = 179 -> 0.0125 * (1 +
        # cos(179 pi / 180)) = 0.0125 * 1.523e-4 = 1.9037e-6.
        schedule = CosineEpochSchedule(0.025, _STEPS, total_epochs=180)
        lrs = _lr_per_epoch(schedule, 180)
        self.assertAllClose(lrs[:, 0], lrs[:, 2])  # constant in an epoch
        self.assertAllClose(lrs[0, 0], 0.025, 1e-8)
        self.assertAllClose(lrs[90, 0], 0.0125, 1e-8)
        self.assertAllClose(lrs[179, 0], 1.9037e-6, atol=1e-9, rtol=1e-3)

    def test_eta_min(self):
        # eta_min + 0.5 (1 - eta_min)(1 + cos(pi e / 2)): e=1 -> 0.55.
        schedule = CosineEpochSchedule(1.0, 2, total_epochs=2, eta_min=0.1)
        self.assertAllClose(float(schedule(2)), 0.55)

    def test_serialization(self):
        schedule = CosineEpochSchedule(0.2, 855, 100, eta_min=0.0)
        clone = self.run_serialization_test(schedule)
        self.assertAllClose(float(clone(855 * 50)), 0.1, 1e-7)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "total_epochs"):
            CosineEpochSchedule(0.1, 10, total_epochs=0)
        with self.assertRaisesRegex(ValueError, "eta_min"):
            CosineEpochSchedule(0.1, 10, total_epochs=5, eta_min=1.0)
