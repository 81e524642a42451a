"""Per-round metrics of a refinement run (exact figures on hand-made traces), the run directory it
writes (metrics, report, plot, predictions that re-score the same), and `toolace-r eval --model`."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

import toolace_r.engines
from toolace_r.calls import parse
from toolace_r.cli import main
from toolace_r.data.example import Example, Gold
from toolace_r.data.select import benchmark_slice, examples_digest
from toolace_r.engines.base import Completion, Engine, GenerationResult
from toolace_r.evaluation.rounds import plot_rounds, round_metrics, write_refine_outputs
from toolace_r.refine import RefineConfig, RefineResult, Round, Trace
from toolace_r.tools import normalize_tools

FIXTURES = Path(__file__).parent / "fixtures" / "bfcl"
TOOL = {"name": "f", "description": "", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}},
                                                         "required": ["x"]}}


def example(id_: str, category: str) -> Example:
    gold = {"simple_python": Gold("bfcl", bfcl=[{"f": {"x": [1]}}]), "irrelevance": Gold("no_call"),
            "rest": Gold("unscored")}[category]
    return Example(id_, [{"role": "user", "content": id_}], normalize_tools([TOOL]), gold, category)


def trace(id_: str, answers: list[str], stop: str) -> Trace:
    """Round r costs 100 prefilled tokens at r=0, else 10 prefilled and 100 cached; 5 generated."""
    rounds = [Round(r, a, parse(a), a, False, 100 if r == 0 else 10, 0 if r == 0 else 100, 5, "stop")
              for r, a in enumerate(answers)]
    return Trace(id_, rounds, stop)


RIGHT, WRONG = "[f(x=1)]", "[f(x=2)]"
CASES = [
    ("s1", "simple_python", [WRONG, RIGHT, RIGHT], "converged"),                    # fixed in round 1
    ("s2", "simple_python", [RIGHT, "[f(x=3)]", "[f(x=3)]"], "converged"),           # broken in round 1
    ("s3", "simple_python", [RIGHT, RIGHT], "converged"),                            # right, stops early
    ("s4", "simple_python", ["nope", "[f(x=5)]", RIGHT, "[f(x = 1)]"], "max_rounds"),  # fixed in round 2
    ("i1", "irrelevance", ["I cannot help.", "I cannot help."], "converged"),
    ("i2", "irrelevance", [RIGHT, "No function fits.", "No function fits."], "converged"),  # fixed in round 1
    ("u1", "rest", ["whatever"], "single_pass"),                                     # unscored: left out
]


@pytest.fixture
def handmade():
    examples = [example(i, c) for i, c, _, _ in CASES]
    traces = [trace(i, a, s) for i, _, a, s in CASES]
    return examples, traces


def test_round_metrics_exact(handmade):
    m = round_metrics(*handmade)
    assert m["rounds"] == [0, 1, 2, 3]
    sp = m["categories"]["simple_python"]
    assert sp["examples"] == 4
    assert sp["correct_by_round"] == [2, 2, 3, 3]
    assert sp["accuracy_by_round"] == [0.5, 0.5, 0.75, 0.75]
    assert (sp["single_pass_accuracy"], sp["final_accuracy"]) == (0.5, 0.75)
    assert sp["fixes_by_round"] == [0, 1, 1, 0] and sp["breaks_by_round"] == [0, 1, 0, 0]
    assert sp["examples_run_by_round"] == [4, 4, 3, 1]
    assert (sp["average_refinements"], sp["average_generations"]) == (2.0, 3.0)
    assert sp["stop_reasons"] == {"converged": 3, "max_rounds": 1}
    tok = sp["tokens_per_example"]
    assert tok["single_pass"] == {"prompt": 100, "cached": 0, "completion": 5, "compute": 105, "processed": 105}
    assert tok["refined"] == {"prompt": 120, "cached": 200, "completion": 15, "compute": 135, "processed": 335}
    assert tok["compute_ratio"] == pytest.approx(135 / 105) and tok["processed_ratio"] == pytest.approx(335 / 105)
    assert sp["tokens_per_example_by_round"][1] == {"prompt": 110, "cached": 100, "completion": 10,
                                                    "compute": 120, "processed": 220}

    irr = m["categories"]["irrelevance"]
    assert irr["correct_by_round"] == [1, 2, 2, 2]
    assert irr["fixes_by_round"] == [0, 1, 0, 0] and irr["breaks_by_round"] == [0, 0, 0, 0]
    assert irr["examples_run_by_round"] == [2, 2, 1, 0] and irr["average_refinements"] == 1.5
    assert "rest" not in m["categories"]

    pooled = m["all"]
    assert pooled["examples"] == 6 and pooled["correct_by_round"] == [3, 4, 5, 5]
    assert pooled["fixes_by_round"] == [0, 2, 1, 0] and pooled["breaks_by_round"] == [0, 1, 0, 0]
    assert pooled["average_refinements"] == pytest.approx(11 / 6)

    s = m["summary_by_round"]
    assert s["non_live"] == [0.5, 0.5, 0.75, 0.75]
    assert s["irrelevance"] == [0.5, 1.0, 1.0, 1.0]
    assert s["partial_mean"] == [0.5, 0.75, 0.875, 0.875] and "overall" not in s
    assert s["live"] == [None] * 4


def test_round_metrics_needs_a_trace_per_example(handmade):
    examples, traces = handmade
    with pytest.raises(ValueError, match="1 example\\(s\\) have no refinement trace"):
        round_metrics(examples, traces[:-1])


def test_refine_outputs_directory(handmade, tmp_path):
    examples, traces = handmade
    result = RefineResult(traces, RefineConfig(), [1.0, 0.5, 0.25, 0.1], 2.0)
    report = write_refine_outputs(examples, result, tmp_path, {"model": "m"})
    names = {p.name for p in report.paths.values()}
    assert names == {"predictions.jsonl", "traces.jsonl", "config.json", "metrics.json", "results.jsonl",
                     "report.md", "rounds.png"}
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    # The final answers' scores (as eval --predictions writes them) and the per-round block agree.
    assert metrics["categories"]["simple_python"]["correct"] == 3
    assert metrics["refinement"]["categories"]["simple_python"]["final_accuracy"] == 0.75
    assert metrics["refinement"]["policy"] == "adaptive" and metrics["refinement"]["wall_seconds_by_round"][0] == 1.0
    assert metrics["counts"]["unscored"] == 1
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model"] == "m" and config["refine"]["max_rounds"] == 3
    assert config["examples_sha256"] == examples_digest(examples) != examples_digest(examples[:-1])
    md = (tmp_path / "report.md").read_text()
    assert "## Refinement by round" in md and "| simple_python | 50.00 | 50.00 | 75.00 | 75.00 | 75.00 |" in md
    assert (tmp_path / "rounds.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    preds = [json.loads(line) for line in (tmp_path / "predictions.jsonl").read_text().splitlines()]
    assert preds[3] == {"id": "s4", "result": "[f(x = 1)]"}


def test_plot_with_a_single_round(tmp_path, handmade):
    examples, _ = handmade
    traces = [trace(i, a[:1], "single_pass") for i, _, a, _ in CASES]
    m = round_metrics(examples, traces)
    assert m["rounds"] == [0] and m["all"]["tokens_per_example"]["compute_ratio"] == 1.0
    assert plot_rounds(m, tmp_path / "one.png").stat().st_size > 1000


def test_benchmark_slice_limits_each_category():
    got = benchmark_slice("bfcl", "simple_python,irrelevance,parallel", str(FIXTURES), limit=1)
    assert [e.id for e in got] == ["simple_python_0", "irrelevance_0", "parallel_0"]
    assert len(benchmark_slice("bfcl", "simple_python", str(FIXTURES))) == 2


# --- toolace-r eval --model ----------------------------------------------------------------------------

SCRIPT = {
    "Area of 2 by 3 in m?": ["[calc_area(w=2, h=4, opts={'round': True})]", "[calc_area(w=2, h=3, opts={'round': True})]",
                             "[calc_area(w=2.0, h=3.0, opts={'round': True})]",
                             "[calc_area(w=2.0, h=3.0, opts={'round': True})]"],
    "Say hello to Ann.": ["[say.hello(name='Ann')]", "[say.hello(name='Ann')]"],
    "What is the capital of France?": ["Paris.", "[calc_area(w=1, h=1)]", "[calc_area(w=1, h=1)]"],
    "Say hello to Ann and Bob.": ["[say.hello(name='Ann')]", "[say.hello(name='Bob'), say.hello(name='Ann')]",
                                  "[say.hello(name='Ann'), say.hello(name='Bob')]"],
}


class ScriptedEngine(Engine):
    """Answers the question's round r with SCRIPT[question][r] (chat-message requests: no tokenizer)."""

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            q = req.messages[1]["content"]
            r = sum(m["role"] == "assistant" for m in req.messages)
            text = SCRIPT[q][min(r, len(SCRIPT[q]) - 1)]  # past the script: repeat its last answer
            out.append(GenerationResult([Completion(text, [], "stop", 50 if r == 0 else 7, 0 if r == 0 else 60, 4)]))
        return out


@pytest.fixture
def scripted(monkeypatch):
    seen = {}

    def from_args(args, **defaults):
        seen.update(defaults, engine=args.engine)
        return ScriptedEngine()

    monkeypatch.setattr(toolace_r.engines, "engine_from_args", from_args)
    return seen


def test_cli_eval_model_with_adaptive_refinement(scripted, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["eval", "--benchmark", "bfcl", "--categories", "simple_python,irrelevance,parallel",
                 "--data-dir", str(FIXTURES), "--model", "scripted-model", "--refine", "adaptive", "--out", str(out)])
    assert code == 0
    assert scripted == {"model": "scripted-model", "engine": "hf"}
    printed = capsys.readouterr().out
    assert "accuracy % had we stopped after each round" in printed and "rounds.png" in printed
    m = json.loads((out / "metrics.json").read_text())
    r = m["refinement"]
    assert r["rounds"] == [0, 1, 2, 3]
    assert r["categories"]["simple_python"]["correct_by_round"] == [1, 2, 2, 2]
    assert r["categories"]["irrelevance"]["correct_by_round"] == [1, 0, 0, 0]
    assert r["categories"]["parallel"]["correct_by_round"] == [0, 1, 1, 1]
    assert r["all"]["fixes_by_round"] == [0, 2, 0, 0] and r["all"]["breaks_by_round"] == [0, 1, 0, 0]
    assert r["all"]["average_refinements"] == (3 + 1 + 2 + 2) / 4
    assert r["all"]["stop_reasons"] == {"converged": 4}
    assert m["categories"]["simple_python"]["correct"] == 2 and m["categories"]["irrelevance"]["correct"] == 0
    traces = [json.loads(line) for line in (out / "traces.jsonl").read_text().splitlines()]
    assert [len(t["rounds"]) for t in traces] == [4, 2, 3, 3]
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "scripted-model" and config["refine"]["policy"] == "adaptive"
    assert config["refine"]["round0"]["max_new_tokens"] == 128

    # The saved predictions re-score to the same final figures.
    again = tmp_path / "again"
    assert main(["eval", "--categories", "simple_python,irrelevance,parallel", "--data-dir", str(FIXTURES),
                 "--predictions", str(out / "predictions.jsonl"), "--out", str(again)]) == 0
    rescored = json.loads((again / "metrics.json").read_text())
    assert rescored["categories"] == m["categories"]


def test_cli_eval_model_options_reach_the_config(scripted, tmp_path):
    out = tmp_path / "run"
    assert main(["eval", "--categories", "simple_python", "--data-dir", str(FIXTURES), "--limit", "1",
                 "--model", "x", "--refine", "fixed:5", "--max-new-tokens", "9", "--stop", "\\n\\n",
                 "--guard", "error", "--chunk-size", "2", "--out", str(out)]) == 0
    config = json.loads((out / "config.json").read_text())["refine"]
    assert (config["policy"], config["max_rounds"], config["guard"], config["chunk_size"]) == ("fixed:5", 5, "error", 2)
    assert config["refine"]["max_new_tokens"] == 9 and config["refine"]["stop"] == ["\n\n"]
    assert json.loads((out / "metrics.json").read_text())["counts"]["examples"] == 1


@pytest.mark.parametrize("argv,message", [
    (["--predictions", "p.jsonl", "--model", "m"], "not both"),
    (["--model", "m", "--refine", "fixed:4", "--max-rounds", "2"], "more than max_rounds=2"),
    ([], "--predictions is required"),
])
def test_cli_eval_model_user_errors(scripted, tmp_path, capsys, argv, message):
    assert main(["eval", "--categories", "simple_python", "--data-dir", str(FIXTURES), "--out",
                 str(tmp_path / "o"), *argv]) == 2
    assert message in capsys.readouterr().err


def test_cli_eval_model_on_the_tiny_hf_model(tiny_model_dir, tmp_path):
    out = tmp_path / "run"
    assert main(["eval", "--categories", "simple_python,irrelevance", "--data-dir", str(FIXTURES), "--limit", "1",
                 "--model", str(tiny_model_dir), "--refine", "fixed:1", "--max-new-tokens", "4", "--out", str(out)]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["refinement"]["rounds"] == [0, 1] and m["refinement"]["all"]["examples"] == 2
    assert m["refinement"]["all"]["examples_run_by_round"] == [2, 2]
    tok = m["refinement"]["all"]["tokens_per_example"]
    assert tok["refined"]["cached"] > 0 and tok["compute_ratio"] > 1
    assert (out / "rounds.png").exists() and (out / "traces.jsonl").exists()
