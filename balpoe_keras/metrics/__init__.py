"""Calibration, class-balanced accuracy and per-expert loss metrics
(keras.ops only)."""

from balpoe_keras.metrics.calibration import ExpectedCalibrationError
from balpoe_keras.metrics.calibration import MaximumCalibrationError
from balpoe_keras.metrics.calibration import reliability_bins
from balpoe_keras.metrics.expert_loss import ExpertLoss
from balpoe_keras.metrics.group_accuracy import BalancedAccuracy
from balpoe_keras.metrics.group_accuracy import GroupAccuracy

__all__ = [
    "BalancedAccuracy",
    "ExpectedCalibrationError",
    "ExpertLoss",
    "GroupAccuracy",
    "MaximumCalibrationError",
    "reliability_bins",
]
