"""The evaluation runner: predictions files, scoring with missing/unknown ids, BFCL aggregates, the
three output files, and `toolace-r eval`."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from toolace_r.calls import ParseResult, ToolCall
from toolace_r.cli import main
from toolace_r.data.example import Example, Gold
from toolace_r.evaluation import CategoryScore, aggregate, evaluate_predictions, load_predictions, write_outputs
from toolace_r.tools import normalize_tools

TOOL = {"name": "f", "description": "", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}},
                                                         "required": ["x"]}}


def ex(id_, category, kind="bfcl", x=1):
    gold = Gold(kind, bfcl=[{"f": {"x": [x]}}] if kind == "bfcl" else None)
    return Example(id_, [{"role": "user", "content": "q"}], normalize_tools([TOOL]), gold, category)


def write_lines(path: Path, rows) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


# --- predictions files --------------------------------------------------------------------------------

def test_load_predictions_accepts_text_and_decoded_calls(tmp_path):
    path = write_lines(tmp_path / "p.jsonl", [
        {"id": "a", "result": "[f(x=1)]", "latency": 0.3},
        "",
        {"id": "b", "result": [{"name": "f", "arguments": {"x": 1}}]},
        {"id": "c", "result": [{"f": {"x": 2}}]},
        {"id": "d", "result": [{"name": "f", "arguments": "{\"x\": 3}"}]},
        {"id": "e", "result": [{"f": "{not json"}]},
        {"id": 7, "result": []},
    ])
    preds = load_predictions(path)
    assert preds["a"] == "[f(x=1)]"
    assert preds["b"] == [ToolCall("f", {"x": 1})]
    assert preds["c"] == [ToolCall("f", {"x": 2})]
    assert preds["d"] == [ToolCall("f", {"x": 3})]
    assert isinstance(preds["e"], ParseResult) and "not valid JSON" in preds["e"].error
    assert preds["7"] == []


@pytest.mark.parametrize("line,message", [
    ("{not json", "p.jsonl line 2: not valid JSON"),
    (json.dumps([1]), "p.jsonl line 2: expected an object"),
    (json.dumps({"result": "x"}), "p.jsonl line 2: field 'id'"),
    (json.dumps({"id": "b"}), "p.jsonl line 2: field 'result': missing"),
    (json.dumps({"id": "a", "result": "x"}), "p.jsonl line 2: id 'a' already given on line 1"),
    (json.dumps({"id": "b", "result": 5}), "p.jsonl line 2: field 'result': expected a string or a list"),
    (json.dumps({"id": "b", "result": [{"a": 1, "b": 2}]}), "p.jsonl line 2: field 'result'[0]"),
])
def test_load_predictions_errors_name_file_line_and_field(tmp_path, line, message):
    path = write_lines(tmp_path / "p.jsonl", [{"id": "a", "result": "x"}, line])
    with pytest.raises(ValueError) as info:
        load_predictions(path)
    assert message in str(info.value)


# --- scoring --------------------------------------------------------------------------------------

def test_missing_and_unknown_ids_are_listed_and_missing_counts_wrong():
    examples = [ex("s1", "simple_python"), ex("s2", "simple_python"), ex("s3", "simple_python"),
                ex("r1", "rest", kind="unscored")]
    preds = {"s1": "[f(x=1)]", "s2": "[f(x=5)]", "zz": "[f(x=1)]", "r1": "[f(x=1)]"}
    result = evaluate_predictions(examples, preds)
    score = result.categories["simple_python"]
    assert (score.correct, score.total, score.missing_predictions) == (1, 3, 1)
    assert score.errors == {"value": 1, "missing_prediction": 1}
    assert result.missing_ids == ["s3"] and result.unknown_ids == ["zz"] and result.unscored_ids == ["r1"]
    assert result.categories["rest"].total == 0 and result.categories["rest"].unscored == 1
    by_id = {item.id: item for item in result.items}
    assert by_id["s3"].error_type == "missing_prediction" and not by_id["s3"].valid
    assert by_id["s1"].calls == [{"name": "f", "arguments": {"x": 1}}]
    assert by_id["s2"].bfcl_error_type == "value_error:others"


def _scores(**acc_and_total):
    out = {}
    for cat, (correct, total) in acc_and_total.items():
        out[cat] = CategoryScore(cat, correct=correct, total=total)
    return out


def test_aggregates_follow_bfcl_rules_over_present_categories():
    aggs = aggregate(_scores(simple_python=(80, 100), multiple=(30, 50), live_simple=(9, 10),
                             live_multiple=(10, 90), irrelevance=(9, 10), live_irrelevance=(5, 10),
                             exec_simple=(0, 10)))
    assert aggs["non_live"].accuracy == pytest.approx((0.8 + 0.6) / 2)  # unweighted
    assert aggs["non_live"].missing == ["parallel", "parallel_multiple"]
    assert aggs["live"].accuracy == pytest.approx(19 / 100)  # count-weighted, not (0.9 + 0.111) / 2
    assert aggs["irrelevance"].accuracy == pytest.approx(0.7)
    assert aggs["relevance"].accuracy is None and aggs["relevance"].missing == ["live_relevance"]
    # not every category of BFCL's (single-turn) overall: a partial mean, never named overall
    assert "overall" not in aggs
    assert aggs["partial_mean"].parts == ["non_live", "live", "irrelevance"]
    assert aggs["partial_mean"].accuracy == pytest.approx((0.7 + 0.19 + 0.7) / 3)
    assert aggs["partial_mean"].missing == ["parallel", "parallel_multiple", "live_parallel",
                                            "live_parallel_multiple"]


def test_overall_only_when_the_single_turn_python_scope_is_complete():
    from toolace_r.evaluation.runner import OVERALL_SCOPE

    full = {c: (1, 2) for c in OVERALL_SCOPE}
    aggs = aggregate(_scores(**full, live_relevance=(0, 5)))
    assert "partial_mean" not in aggs
    assert aggs["overall"].accuracy == pytest.approx(0.5) and aggs["overall"].missing == []
    assert aggs["overall"].parts == ["non_live", "live", "irrelevance"]  # relevance is not in BFCL v4's overall
    assert "multi_turn" in aggs["overall"].rule and "agentic" in aggs["overall"].rule
    del full["live_parallel"]
    aggs = aggregate(_scores(**full))
    assert "overall" not in aggs and aggs["partial_mean"].missing == ["live_parallel"]
    assert len(OVERALL_SCOPE) == 10


def test_aggregates_with_nothing_evaluated():
    aggs = aggregate({})
    assert all(a.accuracy is None for a in aggs.values())


# --- outputs ----------------------------------------------------------------------------------------

def test_write_outputs_writes_three_consistent_files(tmp_path):
    examples = [ex("s1", "simple_python"), ex("s2", "simple_python"), ex("i1", "irrelevance", kind="no_call")]
    result = evaluate_predictions(examples, {"s1": "[f(x=1)]", "i1": "I cannot.", "bogus": "[]"})
    paths = write_outputs(result, tmp_path / "out")
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["categories"]["simple_python"] == {
        "accuracy": 0.5, "correct": 1, "total": 2, "missing_predictions": 1, "unscored": 0,
        "errors": {"missing_prediction": 1}}
    assert metrics["aggregates"]["irrelevance"]["accuracy"] == 1.0
    assert "overall" not in metrics["aggregates"]
    assert metrics["aggregates"]["partial_mean"]["accuracy"] == pytest.approx(0.75)
    assert metrics["missing_prediction_ids"] == ["s2"] and metrics["unknown_prediction_ids"] == ["bogus"]
    rows = [json.loads(line) for line in paths["results"].read_text().splitlines()]
    assert [r["id"] for r in rows] == ["s1", "s2", "i1"]
    assert set(rows[0]) == {"id", "category", "valid", "error_type", "error", "bfcl_error_type", "calls"}
    report = paths["report"].read_text()
    assert "unweighted mean" in report and "count-weighted" in report
    assert "mean of scored parts (not BFCL overall): non_live, irrelevance" in report
    assert "| overall |" not in report
    assert "bogus" in report and "s2" in report and "missing_prediction" in report
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["metrics.json", "report.md", "results.jsonl"]


def test_results_jsonl_survives_values_json_cannot_hold(tmp_path):
    examples = [ex("s1", "simple_python")]
    result = evaluate_predictions(examples, {"s1": "[f(x=(1, 2), y={(1, 2): b'z'})]"})
    paths = write_outputs(result, tmp_path)
    row = json.loads(paths["results"].read_text())
    assert row["calls"][0]["arguments"]["x"] == [1, 2]
    assert row["calls"][0]["arguments"]["y"] == {"(1, 2)": "b'z'"}


# --- the command line ----------------------------------------------------------------------------------

@pytest.mark.skipif(importlib.util.find_spec("bfcl_eval") is None, reason="bfcl-eval (the BFCL data) is not installed")
def test_cli_eval_scores_bfcl_predictions(tmp_path, capsys):
    preds = write_lines(tmp_path / "preds.jsonl", [
        {"id": "simple_python_1", "result": "[math.factorial(number=5)]"},
        {"id": "simple_python_2", "result": "I don't know."},
        {"id": "not_an_id", "result": "[]"},
    ])
    out = tmp_path / "out"
    code = main(["eval", "--benchmark", "bfcl", "--categories", "simple_python", "--predictions", str(preds),
                 "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "simple_python" in printed and "not_an_id" in printed and "metrics.json" in printed
    metrics = json.loads((out / "metrics.json").read_text())
    cat = metrics["categories"]["simple_python"]
    assert (cat["correct"], cat["total"], cat["missing_predictions"]) == (1, 400, 398)
    assert cat["errors"]["decode_failure"] == 1
    assert len((out / "results.jsonl").read_text().splitlines()) == 400


@pytest.mark.parametrize("argv,message", [
    (["--benchmark", "nope", "--predictions", "PRED"], "unknown benchmark 'nope' (known: acebench, apibank, bfcl)"),
    (["--categories", "simple_pyton", "--predictions", "PRED"], "unknown BFCL category 'simple_pyton'"),
    ([], "--predictions is required"),
])
def test_cli_eval_user_errors(tmp_path, capsys, argv, message):
    preds = write_lines(tmp_path / "p.jsonl", [{"id": "x", "result": "[]"}])
    argv = [str(preds) if a == "PRED" else a for a in argv]
    assert main(["eval", "--out", str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_plain_copy_equals_its_json_read_back():
    import json

    from toolace_r.jsonvalues import plain

    value = {"a": (1, [2, b"x"]), 1: {True: None, None: 1.5}, 2.5: object}
    copy = plain(value)
    assert copy == json.loads(json.dumps(copy)) and copy["a"] == [1, [2, "b'x'"]]
    assert copy["1"] == {"true": None, "null": 1.5} and copy["2.5"] == repr(object)
