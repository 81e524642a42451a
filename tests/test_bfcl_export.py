"""--export-bfcl: predictions written where and as `bfcl evaluate` reads them (evaluation/bfcl_export.py),
checked against bfcl-eval's own path helpers and reader."""
from __future__ import annotations

import json
from pathlib import Path

import toolace_r.engines
from toolace_r.calls import ParseResult, ToolCall
from toolace_r.cli import main
from toolace_r.data.example import Example, Gold
from toolace_r.engines.base import Completion, Engine, GenerationResult
from toolace_r.evaluation.bfcl_export import DEFAULT_MODEL_NAME, export_bfcl, result_path, result_text
from toolace_r.tools import normalize_tools

FIXTURES = Path(__file__).parent / "fixtures" / "bfcl"


def ex(id_, category):
    tools = normalize_tools([{"name": "f", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}}}}])
    return Example(id_, [{"role": "user", "content": "q"}], tools, Gold("no_call"), category)


def read_lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_result_paths_are_bfcls_own(bfcl_handler_utils, tmp_path):
    import bfcl_eval.utils as bu
    from bfcl_eval.constants.eval_config import RESULT_FILE_PATTERN

    for category in ("simple_python", "multiple", "parallel", "parallel_multiple", "irrelevance", "live_simple",
                     "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance", "live_relevance"):
        expected = (tmp_path / "Team-ACE_ToolACE-2-8B" / bu.get_directory_structure_by_category(category)
                    / bu.get_file_name_by_category(category, is_result_file=True))
        got = result_path(tmp_path, DEFAULT_MODEL_NAME, category)
        assert got == expected
        assert bu.extract_test_category(got) == category and got.match(RESULT_FILE_PATTERN)
    assert result_path(tmp_path, DEFAULT_MODEL_NAME, "exec_simple") is None  # BFCL scores no exec set


def test_export_writes_lines_bfcls_reader_loads(bfcl_handler_utils, tmp_path):
    import bfcl_eval.utils as bu
    from bfcl_eval.constants.eval_config import RESULT_FILE_PATTERN

    examples = [ex("simple_python_1", "simple_python"), ex("simple_python_0", "simple_python"),
                ex("live_simple_3", "live_simple"), ex("irrelevance_0", "irrelevance"), ex("exec_simple_0", "exec_simple"),
                ex("multiple_9", "multiple")]
    preds = {"simple_python_0": "[f(x=1)]", "simple_python_1": [ToolCall("f", {"x": 2})],
             "live_simple_3": ParseResult(format="json", error="bad"), "irrelevance_0": "I cannot.",
             "exec_simple_0": "[f(x=1)]"}
    paths = export_bfcl(examples, preds, tmp_path / "res")
    assert set(paths) == {"simple_python", "live_simple", "irrelevance"}  # no exec, no line without a prediction
    model_dir = tmp_path / "res" / "Team-ACE_ToolACE-2-8B"
    assert sorted(model_dir.rglob(RESULT_FILE_PATTERN)) == sorted(paths.values())  # what bfcl evaluate globs
    rows = bu.load_file(paths["simple_python"], sort_by_id=True)
    assert rows == [{"id": "simple_python_0", "result": "[f(x=1)]"}, {"id": "simple_python_1", "result": "[f(x=2)]"}]
    assert read_lines(paths["live_simple"]) == [{"id": "live_simple_3", "result": ""}]
    assert read_lines(paths["irrelevance"]) == [{"id": "irrelevance_0", "result": "I cannot."}]


def test_native_answers_are_exported_as_their_decoded_calls():
    assert result_text("<tool_call>{...}</tool_call>", [{"name": "a.b", "arguments": {"x": [1]}}]) == "[a.b(x=[1])]"
    assert result_text("prose", None) == "prose"


def test_cli_eval_predictions_export(tmp_path, capsys):
    preds = tmp_path / "p.jsonl"
    preds.write_text(json.dumps({"id": "simple_python_0", "result": "[calc_area(w=2, h=3)]"}) + "\n"
                     + json.dumps({"id": "irrelevance_0", "result": [{"name": "f", "arguments": "{}"}]}) + "\n")
    out, export = tmp_path / "out", tmp_path / "bfcl"
    assert main(["eval", "--categories", "simple_python,irrelevance", "--data-dir", str(FIXTURES),
                 "--predictions", str(preds), "--out", str(out), "--export-bfcl", str(export),
                 "--bfcl-model-name", "Qwen/Qwen2.5-7B-Instruct"]) == 0
    assert "bfcl evaluate --model Qwen/Qwen2.5-7B-Instruct" in capsys.readouterr().out
    root = export / "Qwen_Qwen2.5-7B-Instruct"
    assert read_lines(root / "non_live" / "BFCL_v4_simple_python_result.json") == [
        {"id": "simple_python_0", "result": "[calc_area(w=2, h=3)]"}]
    assert read_lines(root / "non_live" / "BFCL_v4_irrelevance_result.json") == [
        {"id": "irrelevance_0", "result": "[f()]"}]
    assert (out / "metrics.json").exists()


def test_cli_bfcl_model_name_needs_export(tmp_path, capsys):
    assert main(["eval", "--predictions", "p", "--out", str(tmp_path / "o"), "--bfcl-model-name", "x"]) == 2
    assert "give --export-bfcl DIR too" in capsys.readouterr().err


class _Scripted(Engine):
    def generate(self, requests, progress=False):
        return [GenerationResult([Completion("[say.hello(name='Ann')]", [], "stop", 5, 0, 1)]) for _ in requests]


def test_cli_eval_model_export(monkeypatch, tmp_path, capsys):
    seen = {}

    def from_args(args, **defaults):
        seen.update(prompt=args.instruction)
        return _Scripted()

    monkeypatch.setattr(toolace_r.engines, "engine_from_args", from_args)
    export = tmp_path / "bfcl"
    assert main(["eval", "--categories", "simple_python", "--data-dir", str(FIXTURES), "--model", "m",
                 "--refine", "none", "--out", str(tmp_path / "run"), "--export-bfcl", str(export),
                 "--instruction", "bfcl"]) == 0
    assert seen == {"prompt": "bfcl"}
    lines = read_lines(export / "Team-ACE_ToolACE-2-8B" / "non_live" / "BFCL_v4_simple_python_result.json")
    assert lines == [{"id": "simple_python_0", "result": "[say.hello(name='Ann')]"},
                     {"id": "simple_python_1", "result": "[say.hello(name='Ann')]"}]
    m = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert m["categories"]["simple_python"]["correct"] == 1
