"""The command line's error boundary: a careless or hostile input is one line on stderr and exit status 2,
and nothing already written is lost or mixed with half of a new run."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from toolace_r.cli import main
from toolace_r.data import Example, Gold
from toolace_r.evaluation import evaluate_predictions, write_outputs
from toolace_r.files import dumps, write_files
from toolace_r.tools import normalize_tools


def write_lines(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"toolace-r {command}: error: "), err
    assert "Traceback" not in err[0]
    return err[0]


def read_only_dir() -> Path:
    # Permission bits do not stop root (CI runs as root); a read-only system folder does.
    for candidate in (Path("/sys/kernel"), Path("/proc/sys")):
        if candidate.is_dir() and not os.access(candidate, os.W_OK):
            return candidate
        try:
            fd = os.open(candidate / ".toolace-r-probe", os.O_CREAT | os.O_WRONLY, 0o600)
        except OSError:
            return candidate
        os.close(fd)
        os.unlink(candidate / ".toolace-r-probe")
    pytest.skip("no read-only folder on this machine")


# --- strict JSON ------------------------------------------------------------------------------------

def test_dumps_writes_strict_json_that_reads_back():
    value = {"nan": float("nan"), "inf": [float("inf"), -float("inf")], "s": "a\ud800b\udfffc", "k": "é"}
    text = dumps(value)
    assert "NaN" not in text and "Infinity" not in text
    text.encode("utf-8")  # lone surrogates escaped: the text can be written as UTF-8
    back = json.loads(text)
    assert back == {"nan": None, "inf": [None, None], "s": "a\ud800b\udfffc", "k": "é"}
    assert "é" in text  # readable, not \u00e9


def test_metrics_hold_no_bare_nan(tmp_path):
    example = Example(id="i1", messages=[{"role": "user", "content": "hi"}],
                      tools=normalize_tools([{"name": "f", "parameters": {"type": "object", "properties": {
                          "x": {"type": "number"}}}}]),
                      gold=Gold(kind="bfcl", bfcl=[{"f": {"x": [1.0]}}]), category="simple_python")
    result = evaluate_predictions([example], {"i1": "[f(x=1e999)]"})  # decodes to inf, as BFCL decodes it
    paths = write_outputs(result, tmp_path)
    for path in paths.values():
        text = path.read_text(encoding="utf-8")
        assert "Infinity" not in text and "NaN" not in text
    row = json.loads(paths["results"].read_text(encoding="utf-8"))
    assert row["calls"][0]["arguments"]["x"] is None


# --- outputs as one unit ----------------------------------------------------------------------------

def test_write_files_changes_nothing_when_one_file_fails(tmp_path):
    (tmp_path / "a.txt").write_text("old a")
    (tmp_path / "b.txt").write_text("old b")
    (tmp_path / "c").mkdir()
    with pytest.raises(IsADirectoryError):
        write_files({tmp_path / "a.txt": "new a", tmp_path / "b.txt": "new b", tmp_path / "c": "x"})
    assert (tmp_path / "a.txt").read_text() == "old a" and (tmp_path / "b.txt").read_text() == "old b"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.txt", "c"]  # no temporary left


def test_a_failing_second_eval_leaves_the_first_run_whole(tmp_path, monkeypatch):
    example = Example(id="i1", messages=[{"role": "user", "content": "hi"}], tools=[],
                      gold=Gold(kind="no_call"), category="irrelevance")
    out = tmp_path / "out"
    write_outputs(evaluate_predictions([example], {"i1": "no call"}), out)
    before = {p.name: p.read_text() for p in out.iterdir()}

    import toolace_r.evaluation.report as report

    def broken(result):
        raise ValueError("rendering failed")

    monkeypatch.setattr(report, "render_markdown", broken)
    with pytest.raises(ValueError, match="rendering failed"):
        write_outputs(evaluate_predictions([example], {"i1": "[f(a=1)]"}), out)
    assert {p.name: p.read_text() for p in out.iterdir()} == before


# --- one line, exit 2 ---------------------------------------------------------------------------------

@pytest.fixture
def preds(tmp_path) -> Path:
    return write_lines(tmp_path / "preds.jsonl", [{"id": "x", "result": "[]"}])


def eval_argv(preds: Path, out: Path) -> list[str]:
    return ["eval", "--categories", "simple_python", "--limit", "1", "--predictions", str(preds), "--out", str(out)]


def test_out_that_is_a_file(tmp_path, preds, capsys):
    (tmp_path / "file").write_text("x")
    assert main(eval_argv(preds, tmp_path / "file")) == 2
    assert "is a file, expected a directory" in one_error_line(capsys, "eval")
    assert (tmp_path / "file").read_text() == "x"


def test_out_under_a_file(tmp_path, preds, capsys):
    (tmp_path / "file").write_text("x")
    assert main(eval_argv(preds, tmp_path / "file" / "sub")) == 2
    assert "is a file, not a directory" in one_error_line(capsys, "eval")


def test_out_read_only(preds, capsys):
    target = read_only_dir() / "toolace-r-out"
    assert main(eval_argv(preds, target)) == 2
    line = one_error_line(capsys, "eval")
    assert str(target) in line
    assert not target.exists()


def test_predictions_that_is_a_directory(tmp_path, capsys):
    (tmp_path / "p.jsonl").mkdir()
    assert main(eval_argv(tmp_path / "p.jsonl", tmp_path / "out")) == 2
    assert "a directory, not a regular file" in one_error_line(capsys, "eval")


@pytest.mark.parametrize("line,message", [
    ("[" * 100_000 + "]" * 100_000, " line 1: not readable JSON (nested more than"),
    ('{"id": "x", "result": ' + "9" * 5000 + "}", " line 1: not readable JSON (a number with more than"),
    (b'{"id": "x", "result": "\xff\xfe"}', " line 1: not UTF-8 text"),
])
def test_predictions_lines_that_cannot_be_read_name_their_line(tmp_path, capsys, line, message):
    path = tmp_path / "p.jsonl"
    path.write_bytes(line if isinstance(line, bytes) else line.encode())
    assert main(eval_argv(path, tmp_path / "out")) == 2
    assert f"{path}{message}" in one_error_line(capsys, "eval")


def test_deep_arguments_in_a_prediction_are_the_models_error(tmp_path):
    from toolace_r.evaluation import load_predictions

    deep = {"a": 1}
    for _ in range(50):  # past the parser's bound (32), within the file reader's (100)
        deep = {"a": deep}
    path = write_lines(tmp_path / "p.jsonl", [{"id": "x", "result": [{"name": "f", "arguments": deep}]}])
    prediction = load_predictions(path)["x"]
    assert "nested deeper than" in prediction.error


@pytest.mark.parametrize("command", [["data", "show", "bfcl:simple_python"],
                                     ["eval", "--predictions", "P", "--out", "O"],
                                     ["refine", "--model", "m", "--data", "bfcl:simple_python", "--out", "O"]])
def test_negative_limit_is_an_error(tmp_path, capsys, command):
    argv = [str(tmp_path / a) if a in ("P", "O") else a for a in command]
    with pytest.raises(SystemExit) as exc:
        main([*argv, "--limit", "-1"])
    assert exc.value.code == 2
    assert "--limit: must be >= 0, got -1" in capsys.readouterr().err


def test_data_convert_into_a_directory(tmp_path, capsys):
    (tmp_path / "out.jsonl").mkdir()
    assert main(["data", "convert", "bfcl:simple_python", str(tmp_path / "out.jsonl"), "--limit", "1"]) == 2
    assert "is a directory, expected a file name" in one_error_line(capsys, "data")


def test_data_convert_into_a_read_only_folder(capsys):
    target = read_only_dir() / "out.jsonl"
    assert main(["data", "convert", "bfcl:simple_python", str(target), "--limit", "1"]) == 2
    assert str(target.parent) in one_error_line(capsys, "data")


def test_parse_prints_lone_surrogates_as_json_escapes(capsys):
    assert main(["parse", '[f(a="x\\ud800")]']) == 0  # an escape in the model's text
    assert json.loads(capsys.readouterr().out)["calls"] == [{"name": "f", "arguments": {"a": "x\ud800"}}]
    assert main(["parse", '{"name": "f", "arguments": {"a": "\\ud800"}}']) == 0
    assert json.loads(capsys.readouterr().out)["calls"] == [{"name": "f", "arguments": {"a": "\ud800"}}]
    # A raw surrogate (argv bytes that are not UTF-8 arrive so) cannot reach Python's parser: an error value.
    assert main(["parse", '[f(a="x\udced")]']) == 0
    printed = capsys.readouterr().out
    assert "surrogates not allowed" in json.loads(printed)["error"]


def test_dumps_writes_non_finite_keys_as_json_would():
    assert json.loads(dumps({float("inf"): 1, float("nan"): [float("-inf")]})) == {"Infinity": 1, "NaN": [None]}


def test_a_negative_limit_in_a_config_is_an_error_too():
    from toolace_r.data.select import benchmark_slice

    with pytest.raises(ValueError, match="limit must be >= 0"):
        benchmark_slice("bfcl", "simple_python", limit=-2)


def test_train_without_a_pool_names_the_sources(tmp_path, capsys):
    # No default pool: the old one was BFCL's own categories, the benchmark the runs are scored on.
    out = tmp_path / "run"
    assert main(["train", "--output-dir", str(out), "model=no-such-model"]) == 2
    line = one_error_line(capsys, "train")
    assert "data.train is not set" in line
    for form in ("bfcl:<category>", "jsonl:<path>", "mix:<source>", "toolace:<path|hub id>", "xlam:<path|hub id>"):
        assert form in line
    assert "data.train=toolace:Team-ACE/ToolACE" in line
    assert not (out / "config.yaml").exists()  # refused before the run starts or a model loads
