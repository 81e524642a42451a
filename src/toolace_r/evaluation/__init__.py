"""Evaluation with BFCL's semantics: `check` one answer, `evaluate_predictions` a file, write a report.

    from toolace_r.evaluation import check, evaluate_predictions, load_predictions, write_outputs
"""
from toolace_r.evaluation.checker import ERROR_TYPES, Verdict, check, clear_cache, coarse_error, matcher_for
from toolace_r.evaluation.runner import (
    AGGREGATES,
    Aggregate,
    CategoryScore,
    EvalResult,
    ItemResult,
    aggregate,
    evaluate_predictions,
    load_predictions,
    write_outputs,
)

__all__ = [
    "AGGREGATES", "Aggregate", "CategoryScore", "ERROR_TYPES", "EvalResult", "ItemResult", "Verdict", "aggregate",
    "check", "clear_cache", "coarse_error", "evaluate_predictions", "load_predictions", "matcher_for",
    "write_outputs",
]
