"""BFCL's V4 and V3 leaderboard scores (evaluation/bfcl_scores.py), checked against BFCL's own helper.

tests/fixtures/bfcl_leaderboard_official.json holds hand-built category tables and the figures BFCL's
generate_leaderboard_csv computed from them (benchmarks/bfcl_scores_agreement.py --fixture).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.evaluation.bfcl_scores import leaderboard
from toolace_r.evaluation.runner import CategoryScore, aggregate

FIXTURE = Path(__file__).parent / "fixtures" / "bfcl_leaderboard_official.json"
V4_PARTS = ("non_live", "live", "irrelevance", "multi_turn", "agentic")


def test_scores_are_bfcls_float_for_float():
    data = json.loads(FIXTURE.read_text())
    assert len(data["tables"]) == len(data["bfcl"]) >= 20
    for table, bfcl in zip(data["tables"], data["bfcl"]):
        ours = leaderboard({c: tuple(v) for c, v in table.items()})
        assert ours["v4"]["complete"] and ours["v3"]["complete"]
        assert ours["v4"]["overall"] == bfcl["v4"]["overall"]  # exact: same operations in the same order
        assert [ours["v4"]["scores"][p]["accuracy"] for p in V4_PARTS] == bfcl["v4"]["parts"]
        assert ours["v3"]["overall"] == bfcl["v3"]["overall"]
        assert [ours["v3"]["scores"][p]["accuracy"] for p in ("live", "non_live", "multi_turn")] == bfcl["v3"]["parts"]


def _single_turn(**overrides):
    cats = {c: (1, 2) for c in ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel",
                                "parallel_multiple", "irrelevance", "live_simple", "live_multiple", "live_parallel",
                                "live_parallel_multiple", "live_irrelevance", "live_relevance")}
    cats.update(overrides)
    return {c: v for c, v in cats.items() if v is not None}


def test_a_score_is_computed_only_from_complete_parts():
    board = leaderboard(_single_turn(simple_java=None, live_simple=(3, 4), live_multiple=(1, 4)))
    v4 = board["v4"]
    assert v4["overall"] is None and not v4["complete"]
    assert v4["scores"]["simple"]["accuracy"] is None and v4["scores"]["simple"]["missing"] == ["simple_java"]
    assert v4["scores"]["non_live"]["accuracy"] is None and v4["scores"]["non_live"]["missing"] == ["simple_java"]
    assert v4["scores"]["live"]["accuracy"] == pytest.approx((0.75 * 4 + 0.25 * 4 + 0.5 * 2 + 0.5 * 2) / 12)
    assert v4["scores"]["irrelevance"]["accuracy"] == 0.5
    assert v4["scores"]["multi_turn"]["missing"] == ["multi_turn_base", "multi_turn_miss_func",
                                                     "multi_turn_miss_param", "multi_turn_long_context"]
    assert v4["not_run"] and "web-search" in v4["not_run"][0]  # agentic is never run here: said so
    assert set(v4["scores"]["overall"]["missing"]) >= {"simple_java", "web_search_base", "memory_rec_sum"}
    assert board["v3"]["overall"] is None and board["v3"]["not_run"] == []


def test_v3_is_complete_without_agentic_and_v4_never_is_offline():
    cats = _single_turn(**{c: (1, 4) for c in ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                                                "multi_turn_long_context")})
    board = leaderboard(cats)
    assert board["v3"]["complete"] and board["v3"]["overall"] == pytest.approx((0.5 + 0.5 + 0.25) / 3)
    assert not board["v4"]["complete"] and board["v4"]["overall"] is None
    assert board["v4"]["scores"]["non_live"]["accuracy"] == 0.5 and board["v4"]["scores"]["agentic"]["accuracy"] is None


def _scores(**cats):
    return {c: CategoryScore(c, correct=k, total=n) for c, (k, n) in cats.items()}


def test_runner_non_live_averages_the_simple_languages_first():
    aggs = aggregate(_scores(simple_python=(8, 10), simple_java=(2, 10), multiple=(6, 10)))
    assert aggs["non_live"].accuracy == pytest.approx(((0.8 + 0.2) / 2 + 0.6) / 2)
    assert aggs["non_live"].parts == ["simple_python", "simple_java", "multiple"]
    assert aggs["non_live"].missing == ["parallel", "parallel_multiple"]
    java_only = aggregate(_scores(simple_java=(1, 4)))
    assert java_only["non_live"].accuracy == 0.25 and "simple_python" not in java_only["non_live"].missing


def test_metrics_and_report_carry_the_leaderboard(tmp_path):
    from toolace_r.data import load
    from toolace_r.evaluation.runner import evaluate_predictions, write_outputs

    examples = load("bfcl:simple_java", limit=3)
    result = evaluate_predictions(examples, {examples[0].id: "[x()]"})
    paths = write_outputs(result, tmp_path)
    metrics = json.loads(paths["metrics"].read_text())
    board = metrics["bfcl_leaderboard"]
    assert board["v4"]["overall"] is None and board["v4"]["scores"]["simple"]["missing"] == ["simple_python",
                                                                                             "simple_javascript"]
    report = paths["report"].read_text()
    assert "## BFCL leaderboard overall" in report and "BFCL V4 overall: not computed" in report
    assert "web-search API key" in report
