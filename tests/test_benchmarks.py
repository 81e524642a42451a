"""Tests for evaluation/benchmarks.py: one runner, each benchmark scored by its own checker, through the
CLI, the refine loop and the prompts (fixture checkouts written here: tests/fixtures/acebench, apibank)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.calls import render
from toolace_r.cli import main
from toolace_r.data import load
from toolace_r.evaluation import acebench, apibank
from toolace_r.evaluation.benchmarks import benchmark_of, own_prompts, score

FIX = Path(__file__).parent / "fixtures"
ACE, APIBANK = FIX / "acebench", FIX / "apibank" / "checkout"
ACE_CATS = "normal_atom_bool,special_irrelevant,normal_multi_turn_user_adjust"


def _gold_text(ex) -> str:
    calls = ex.gold.answer_calls()
    return render(calls, "pythonic") if calls else (ex.gold.text or "")


def _write(path: Path, rows: dict[str, str]) -> Path:
    path.write_text("".join(json.dumps({"id": k, "result": v}) + "\n" for k, v in rows.items()))
    return path


def test_each_example_is_scored_by_its_benchmarks_checker():
    ace = load(f"acebench:{ACE_CATS}@{ACE}")
    bank = load(f"apibank:all@{APIBANK}")
    bfcl = load(f"bfcl:simple_python@{FIX / 'bfcl'}", limit=1)
    assert {benchmark_of(e) for e in ace} == {"acebench"} and {benchmark_of(e) for e in bank} == {"apibank"}
    assert benchmark_of(bfcl[0]) == "bfcl"
    for ex in ace:
        for text in (_gold_text(ex), "[nothing()]", "I cannot do that."):
            assert score(ex, text) == acebench.check(ex, text)
    for ex in bank:
        for text in ("API-Request: " + _gold_text(ex), "API-Request: [Nope()]"):
            assert score(ex, text) == apibank.check(ex, text)


def test_native_answers_reach_each_checker_as_their_calls():
    for ex in [*load(f"acebench:normal_atom_bool@{ACE}"), *load(f"apibank:level-1@{APIBANK}")]:
        calls = ex.gold.answer_calls()
        hermes = render(calls, "hermes")
        assert score(ex, hermes, "hermes").valid == score(ex, render(calls, "pythonic")).valid


def test_cli_eval_acebench_writes_results_metrics_and_its_own_summary(tmp_path, capsys):
    examples = load(f"acebench:{ACE_CATS}@{ACE}")
    rows = {ex.id: (_gold_text(ex) if i % 2 == 0 else "[wrong()]") for i, ex in enumerate(examples)}
    pred = _write(tmp_path / "pred.jsonl", rows)
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "acebench", "--data-dir", str(ACE), "--categories", ACE_CATS,
                 "--predictions", str(pred), "--out", str(out)]) == 0
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["id"] for r in results] == [ex.id for ex in examples]
    assert all({"id", "category", "valid", "error"} <= set(r) for r in results)
    assert [r["valid"] for r in results] == [acebench.check(ex, rows[ex.id]).valid for ex in examples]
    metrics = json.loads((out / "metrics.json").read_text())
    by_cat: dict[str, list] = {}
    for ex in examples:
        by_cat.setdefault(ex.category, []).append((ex.id, acebench.check(ex, rows[ex.id]).valid))
    assert metrics["summary"] == json.loads(json.dumps(acebench.aggregate(by_cat)))  # ACEBench's own figures
    assert metrics["aggregates"] == {}  # no BFCL summary scores over another benchmark's categories
    report = (out / "report.md").read_text()
    assert "## ACEBench summary" in report and "Summary scores" not in report


def test_cli_eval_apibank_reports_its_named_metric(tmp_path):
    examples = load(f"apibank:all@{APIBANK}")
    pred = _write(tmp_path / "pred.jsonl", {ex.id: "API-Request: " + _gold_text(ex) for ex in examples})
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "apibank", "--data-dir", str(APIBANK), "--predictions", str(pred),
                 "--out", str(out)]) == 0
    summary = json.loads((out / "metrics.json").read_text())["summary"]
    assert summary["metric"] == apibank.METRIC and summary["levels"]["all"]["accuracy"] == 1.0
    assert "not the official execution-based score" in (out / "report.md").read_text().lower()


def test_a_benchmark_without_its_checkout_says_what_to_give(tmp_path, capsys):
    assert main(["eval", "--benchmark", "acebench", "--predictions", str(_write(tmp_path / "p", {})),
                 "--out", str(tmp_path / "o")]) == 2
    assert "needs --data-dir" in capsys.readouterr().err


def test_refinement_on_acebench_scores_every_round_with_its_checker(tmp_path):
    from conftest import RecordingEngine
    from toolace_r.evaluation.rounds import write_refine_outputs
    from toolace_r.prompts import DEFAULT_REFINE_INSTRUCTION
    from toolace_r.refine import RefineConfig, refine

    examples = load(f"acebench:normal_atom_bool,special_irrelevant@{ACE}")
    gold = {ex.id: _gold_text(ex) for ex in examples}

    class Fixes(RecordingEngine):  # wrong first, the gold when asked to refine
        def answer(self, prompt, params):
            ex = next(e for e in examples if e.messages[-1]["content"] in prompt)
            return gold[ex.id] if DEFAULT_REFINE_INSTRUCTION in prompt else "[wrong()]"

    result = refine(examples, Fixes(), RefineConfig(policy="fixed:1", max_rounds=1))
    report = write_refine_outputs(examples, result, tmp_path / "eval", benchmark="acebench", lenient=True)
    pooled = report.rounds["all"]
    assert pooled["correct_by_round"][0] == sum(acebench.check(e, "[wrong()]").valid for e in examples)
    assert pooled["correct_by_round"][1] == sum(acebench.check(e, gold[e.id]).valid for e in examples)
    assert pooled["fixes_by_round"][1] == pooled["correct_by_round"][1] - pooled["correct_by_round"][0] > 0
    assert report.rounds["summary_by_round"] == {}
    metrics = json.loads((tmp_path / "eval" / "metrics.json").read_text())
    assert "summary" in metrics and metrics["lenient"]["categories"].keys() == metrics["summary"]["categories"].keys()


def test_instruction_benchmark_prompts_with_acebench_s_own_system_prompt(chatml_tokenizer):
    from toolace_r.evaluation.acebench_prompt import acebench_messages
    from toolace_r.prompts import TOOLACE_SYSTEM_PROMPT, PromptConfig, render_prompt

    [ex] = load(f"acebench:normal_atom_bool@{ACE}", limit=1)
    [own] = own_prompts("acebench", [ex], str(ACE))
    messages = acebench_messages(ex, ACE)
    assert own.messages == messages and messages[0]["role"] == "system"
    prompt = render_prompt(chatml_tokenizer, own.tools, own.messages, cfg=PromptConfig(instruction="benchmark"))
    assert prompt.startswith("<|im_start|>system\n" + messages[0]["content"] + "<|im_end|>")
    assert TOOLACE_SYSTEM_PROMPT not in prompt
    with pytest.raises(ValueError, match="no prompt of its own"):
        own_prompts("apibank", [ex], str(APIBANK))
    with pytest.raises(ValueError, match="answer_format: pythonic"):
        PromptConfig(instruction="benchmark", answer_format="native")


def test_examples_of_two_benchmarks_are_not_scored_together():
    from toolace_r.evaluation import evaluate_predictions

    mixed = [*load(f"acebench:normal_atom_bool@{ACE}", limit=1), *load(f"apibank:level-1@{APIBANK}", limit=1)]
    with pytest.raises(ValueError, match="several benchmarks"):
        evaluate_predictions(mixed, {})


def test_lenient_scores_are_reported_apart_from_the_compatible_ones(tmp_path):
    examples = load(f"acebench:{ACE_CATS}@{ACE}")
    rows = {ex.id: _gold_text(ex) for ex in examples}
    pred = _write(tmp_path / "pred.jsonl", rows)
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "acebench", "--data-dir", str(ACE), "--categories", ACE_CATS,
                 "--predictions", str(pred), "--out", str(out), "--lenient"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    lenient = metrics["lenient"]
    for cat in metrics["summary"]["categories"]:
        strict = [acebench.check(ex, rows[ex.id]).valid for ex in examples if ex.category == cat]
        loose = [acebench.check(ex, rows[ex.id], lenient=True).valid for ex in examples if ex.category == cat]
        assert metrics["categories"][cat]["correct"] == sum(strict)  # the compatible score is unchanged
        assert lenient["categories"][cat]["correct"] == sum(loose) >= sum(strict)
    assert main(["eval", "--benchmark", "apibank", "--data-dir", str(APIBANK), "--predictions", str(pred),
                 "--out", str(tmp_path / "o2"), "--lenient"]) == 2
