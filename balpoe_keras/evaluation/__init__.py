"""Evaluation of BalPoE models and reports (any backend; plots need matplotlib).

`evaluate_model` -> results dict; `write_report` -> `report.json`,
`report.md`, PNGs; `aggregate_reports` -> mean ± std over seeds.
"""

from balpoe_keras.evaluation.aggregate import aggregate_reports
from balpoe_keras.evaluation.aggregate import format_aggregate_markdown
from balpoe_keras.evaluation.evaluate import evaluate_balanced
from balpoe_keras.evaluation.evaluate import evaluate_model
from balpoe_keras.evaluation.evaluate import evaluate_test_agnostic
from balpoe_keras.evaluation.predict import predict_outputs
from balpoe_keras.evaluation.report import write_report

__all__ = [
    "aggregate_reports",
    "evaluate_balanced",
    "evaluate_model",
    "evaluate_test_agnostic",
    "format_aggregate_markdown",
    "predict_outputs",
    "write_report",
]
