"""The resume mechanism every stage of the loop and the pipeline goes through (toolace_r.stages): skip
on unchanged inputs, rerun on a changed one, marker dropped before the work and written after complete,
atomic outputs, timing, the manifest entry, a crash mid-stage rerun, one process per run directory."""
from __future__ import annotations

import json

import pytest

from toolace_r.stages import RunDir, RunDirLocked, Stage, read_json


class Work:
    """A stage function that counts its calls and can be told to fail or to check its marker is gone."""

    def __init__(self, rd: RunDir, outputs=None, fail: bool = False):
        self.rd, self.calls, self.fail, self.marker_seen = rd, 0, fail, []
        self.outputs = outputs

    def __call__(self, d, inputs):
        self.calls += 1
        self.marker_seen.append(self.rd.marker_path("s", "count").exists())
        if self.fail:
            raise RuntimeError("crash mid-stage")
        return self.outputs if self.outputs is not None else {"out.json": {"calls": self.calls}}


def stage(work, value=1, **kw) -> Stage:
    return Stage("count", "s", ["out.json"], work, config={"value": value, "section": {"a": value}},
                 read=read_json("out.json"), **kw)


def test_skipped_when_inputs_are_unchanged_and_read_back(tmp_path):
    rd = RunDir(tmp_path)
    work = Work(rd)
    assert rd.run(stage(work)) == {"calls": 1}
    assert rd.run(stage(work)) == {"calls": 1} and work.calls == 1
    marker = rd.marker("s", "count")
    assert marker["inputs"]["value"] == 1 and marker["inputs"]["section"] != {"a": 1}  # sections are hashed
    assert set(marker["outputs"]) == {"out.json"}


def test_rerun_when_a_config_value_or_an_input_file_changes(tmp_path):
    rd = RunDir(tmp_path)
    work = Work(rd)
    rd.run(stage(work))
    rd.run(stage(work, value=2))
    assert work.calls == 2
    (tmp_path / "s").mkdir(exist_ok=True)
    (tmp_path / "s" / "in.txt").write_text("one")
    with_file = lambda: Stage("count", "s", ["out.json"], work, config={"value": 2}, files={"in": "in.txt"},
                              read=read_json("out.json"))
    rd.run(with_file())
    rd.run(with_file())
    assert work.calls == 3
    (tmp_path / "s" / "in.txt").write_text("two")
    assert rd.run(with_file()) == {"calls": 4}


def test_rerun_when_an_output_is_gone(tmp_path):
    rd = RunDir(tmp_path)
    work = Work(rd)
    rd.run(stage(work))
    (tmp_path / "s" / "out.json").unlink()
    assert rd.run(stage(work)) == {"calls": 2}


def test_marker_is_cleared_before_the_work_and_written_after_it(tmp_path):
    rd = RunDir(tmp_path)
    work = Work(rd)
    rd.run(stage(work))
    rd.run(stage(work, value=2))
    assert work.marker_seen == [False, False]  # the first run's marker was gone when the second one worked
    assert rd.marker("s", "count")["inputs"]["value"] == 2


def test_a_crash_mid_stage_leaves_it_unfinished_and_the_next_run_redoes_it(tmp_path):
    rd = RunDir(tmp_path)
    rd.run(stage(Work(rd)))
    crashing = Work(rd, fail=True)
    with pytest.raises(RuntimeError, match="crash mid-stage"):
        rd.run(stage(crashing, value=2))
    assert rd.marker("s", "count") is None
    assert json.loads((tmp_path / "s" / "out.json").read_text()) == {"calls": 1}  # the old output, untouched
    again = Work(rd)
    assert rd.run(stage(again, value=2)) == {"calls": 1} and again.calls == 1


def test_outputs_are_written_together_or_not_at_all(tmp_path):
    rd = RunDir(tmp_path)
    two = lambda work: Stage("count", "s", ["a.json", "b.jsonl"], work, config={"value": 1})
    rd.run(two(Work(rd, outputs={"a.json": {"x": 1}, "b.jsonl": [{"y": 1}, {"y": 2}]})))
    assert (tmp_path / "s" / "a.json").read_text() == '{\n "x": 1\n}\n'
    assert (tmp_path / "s" / "b.jsonl").read_text() == '{"y": 1}\n{"y": 2}\n'
    broken = Work(rd, outputs={"a.json": {"x": 2}, "b.jsonl": [object()]})  # b cannot be written as JSON
    with pytest.raises(TypeError):
        rd.run(Stage("count", "s", ["a.json", "b.jsonl"], broken, config={"value": 2}))
    assert json.loads((tmp_path / "s" / "a.json").read_text()) == {"x": 1}  # a was not replaced either
    assert rd.marker("s", "count") is None
    assert not [p.name for p in (tmp_path / "s").iterdir() if p.name.endswith(".tmp")]


def test_a_stage_that_leaves_an_output_missing_is_not_finished(tmp_path):
    rd = RunDir(tmp_path)
    with pytest.raises(RuntimeError, match="left no out.json"):
        rd.run(stage(Work(rd, outputs={})))
    assert rd.marker("s", "count") is None


def test_timing_and_the_manifest_entry_are_recorded_when_the_stage_runs(tmp_path):
    lines = []
    rd = RunDir(tmp_path, manifest="stages.json", echo=lines.append)
    work = Work(rd)
    record = lambda result, seconds: {"calls": result["calls"], "seconds": seconds}
    rd.run(stage(work, key="counting", record=record, note="counting now"))
    seconds = rd.marker("s", "count")["seconds"]
    assert isinstance(seconds, float) and seconds >= 0
    entry = rd.manifest()["counting"]
    assert entry["calls"] == 1 and entry["seconds"] >= 0
    rd.run(stage(work, key="counting", record=lambda r, s: {"calls": "skipped"}, note="counting now"))
    assert rd.manifest()["counting"]["calls"] == 1 and lines == ["counting now"]  # skipped: no entry, no note


def test_one_process_per_run_directory(tmp_path):
    with RunDir(tmp_path):
        with pytest.raises(RunDirLocked, match="in use"):
            with RunDir(tmp_path):
                pass
    with RunDir(tmp_path):  # released on exit
        pass
