"""The iterative loop on a tiny random-weight model: iterations, growth/stop, resume after a kill."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.config import load_config
from toolace_r.engines import Engine, GenerationResult
from toolace_r.engines.base import Completion
from toolace_r.training import TrainConfig, run_training

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Time.", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}


def _call(name, **args):
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


# id -> (question, tools, gold assistant message, pythonic gold text)
ITEMS = {
    "w1": ("Q-w1 weather Oslo", [WEATHER], {"tool_calls": [_call("get_weather", city="Oslo")]},
           '[get_weather(city="Oslo")]'),
    "w2": ("Q-w2 time UTC", [TIME], {"tool_calls": [_call("get_time", zone="UTC")]}, '[get_time(zone="UTC")]'),
    "p1": ("Q-p1 weather Rome Nice", [WEATHER],
           {"tool_calls": [_call("get_weather", city="Rome"), _call("get_weather", city="Nice")]},
           '[get_weather(city="Rome"), get_weather(city="Nice")]'),
    "m1": ("Q-m1 time CET", [WEATHER, TIME], {"tool_calls": [_call("get_time", zone="CET")]},
           '[get_time(zone="CET")]'),
    "n1": ("Q-n1 tell a joke", [WEATHER], {"content": "No tool can do that."}, "No tool can do that."),
}


def write_data(path: Path) -> Path:
    with path.open("w") as fh:
        for i, (q, tools, answer, _) in ITEMS.items():
            msg = {"role": "assistant", "content": None, **answer}
            fh.write(json.dumps({"id": i, "messages": [{"role": "user", "content": q}, msg], "tools": tools}) + "\n")
    return path


class ScriptedEngine(Engine):
    """Answers gold for the ids solvable at this iteration, a wrong call otherwise."""

    def __init__(self, solvable, fail_after=None):
        self.solvable, self.fail_after, self.calls = solvable, fail_after, 0

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            self.calls += 1
            if self.fail_after is not None and self.calls > self.fail_after:
                raise RuntimeError("killed")
            item = next(i for i, v in ITEMS.items() if v[0] in req.prompt)
            text = ITEMS[item][3] if item in self.solvable else "[wrong_tool(x=1)]"
            out.append(GenerationResult([Completion(text, [], "stop") for _ in range(req.params.n)]))
        return out


def iteration_of(model_dir: str) -> int:
    p = Path(model_dir)
    return int(p.parent.name.split("_")[1]) + 1 if p.name == "model" and p.parent.name.startswith("iter_") else 0


SCRIPT = [{"w1"}, {"w1", "w2", "p1"}, {"w2", "p1"}, {"w1", "w2", "p1", "m1", "n1"}]


def scripted_factory(fail_at=None):
    def factory(model_dir, cfg):
        it = iteration_of(model_dir)
        return ScriptedEngine(SCRIPT[it], fail_after=1 if it == fail_at else None)
    return factory


def make_cfg(tiny_model_dir, data, **over):
    overrides = [
        f"model={tiny_model_dir}", f"data.train=jsonl:{data}", "prompt.system_prompt=Call tools.",
        "sampling.k=2", "sampling.max_new_tokens=8", "eval.max_new_tokens=8", "sampling.nll_batch_size=4",
        "sampling.engine_options={dtype: float32, device: cpu, batch_size: 8}",
        "selection.quotas={}", "selection.warmup.policy=nll", "selection.warmup.size=1",
        "sft.max_steps=1", "sft.batch_size=4", "sft.lora_r=4", "sft.lora_alpha=8", "sft.warmup=0",
        "sft.save_steps=1", "sft.num_threads=2", "loop.progress=false", "loop.max_iterations=5",
    ] + [f"{k}={v}" for k, v in over.items()]
    return load_config(TrainConfig, None, overrides)


@pytest.fixture
def data(tmp_path):
    return write_data(tmp_path / "train.jsonl")


def selections(root: Path):
    return [json.loads(p.read_text())["selected"] for p in sorted(root.glob("iter_*/selection.json"))]


def test_grow_selection_grows_then_stops(tiny_model_dir, data, tmp_path):
    root = tmp_path / "run"
    summary = run_training(make_cfg(tiny_model_dir, data), root, engine_factory=scripted_factory(), echo=lambda s: None)
    assert selections(root) == [["w1"], ["w1", "w2", "p1"], ["w1", "w2", "p1"]]
    assert summary["stop_reason"] == "selection_stopped_growing"
    assert [m["growth"] for m in summary["iterations"]] == [1, 2, 0]
    sel0 = json.loads((root / "iter_0/selection.json").read_text())
    assert len(sel0["warmup"]) == 1 and sel0["warmup_policy"] == "nll"  # the warm-up's items are recorded
    samples = [json.loads(line) for line in (root / "iter_0/samples.jsonl").read_text().splitlines()]
    assert {s["id"]: s["solve_rate"] for s in samples}["w1"] == 1.0
    assert all(isinstance(s["gold_nll"], float) for s in samples)
    # iteration 1 sampled from iteration 0's trained model; the stopped iteration trained nothing
    assert summary["iterations"][1]["model_in"] == str(root / "iter_0" / "model")
    assert not (root / "iter_2" / "train.done").exists()
    assert summary["final_model"] == str(root / "iter_1" / "model")
    corpus1 = [json.loads(line) for line in (root / "iter_1/corpus.jsonl").read_text().splitlines()]
    keeps = [r for r in corpus1 if r["kind"] == "keep"]
    assert {r["id"] for r in keeps} == {"w1", "w2", "p1"}
    assert all(r["completion"] == ITEMS[r["id"]][3] + "<|im_end|>" for r in keeps)
    for name in ("summary.json", "summary.png", "manifest.json", "config.yaml", "iter_1/metrics.json",
                 "iter_1/train.json"):
        assert (root / name).exists(), name
    manifest = json.loads((root / "manifest.json").read_text())
    assert manifest["iterations"][1]["phases"]["train"]["inputs"]["corpus"]
    # a finished run is not overwritten by accident
    with pytest.raises(ValueError, match="--resume"):
        run_training(make_cfg(tiny_model_dir, data), root, engine_factory=scripted_factory())


def test_max_iterations_and_min_growth(tiny_model_dir, data, tmp_path):
    s = run_training(make_cfg(tiny_model_dir, data, **{"loop.max_iterations": 2}), tmp_path / "a",
                     engine_factory=scripted_factory(), echo=lambda s: None)
    assert s["stop_reason"] == "max_iterations" and len(s["iterations"]) == 2
    s = run_training(make_cfg(tiny_model_dir, data, **{"loop.min_growth": 2}), tmp_path / "b",
                     engine_factory=scripted_factory(), echo=lambda s: None)
    assert s["stop_reason"] == "selection_stopped_growing" and len(s["iterations"]) == 2  # growth 2 <= 2


def test_kill_mid_phase_then_resume_gives_same_selection(tiny_model_dir, data, tmp_path, monkeypatch):
    reference = run_training(make_cfg(tiny_model_dir, data), tmp_path / "ref",
                             engine_factory=scripted_factory(), echo=lambda s: None)
    root = tmp_path / "run"
    # killed in the middle of iteration 1's sampling
    with pytest.raises(RuntimeError, match="killed"):
        run_training(make_cfg(tiny_model_dir, data), root, engine_factory=scripted_factory(fail_at=1),
                     echo=lambda s: None)
    assert (root / "iter_0/train.done").exists() and not (root / "iter_1/samples.jsonl").exists()
    model0 = (root / "iter_0/model/model.safetensors").stat().st_mtime_ns
    # killed in the middle of iteration 1's training, after a checkpoint was written
    from transformers import TrainerCallback

    from toolace_r.training import sft

    class Kill(TrainerCallback):
        def on_save(self, args, state, control, **kw):
            raise RuntimeError("killed in training")

    original = sft.build_trainer

    def killing_trainer(*a, **kw):
        trainer = original(*a, **kw)
        trainer.add_callback(Kill())
        return trainer

    monkeypatch.setattr(sft, "build_trainer", killing_trainer)
    with pytest.raises(RuntimeError, match="killed in training"):
        run_training(make_cfg(tiny_model_dir, data), root, resume=True, engine_factory=scripted_factory(),
                     echo=lambda s: None)
    assert (root / "iter_1/checkpoints").is_dir() and not (root / "iter_1/train.done").exists()
    monkeypatch.setattr(sft, "build_trainer", original)
    resumed = run_training(make_cfg(tiny_model_dir, data), root, resume=True, engine_factory=scripted_factory(),
                           echo=lambda s: None)
    assert resumed["final_selection"] == reference["final_selection"] == ["w1", "w2", "p1"]
    assert selections(root) == selections(tmp_path / "ref")
    assert (root / "iter_0/model/model.safetensors").stat().st_mtime_ns == model0  # finished phases kept
    train1 = json.loads((root / "iter_1/train.json").read_text())
    assert train1["resumed_from"].endswith("checkpoint-1") and train1["train_loss"] > 0


def test_changed_config_section_redoes_dependent_phases(tiny_model_dir, data, tmp_path):
    root = tmp_path / "run"
    run_training(make_cfg(tiny_model_dir, data, **{"loop.max_iterations": 1}), root,
                 engine_factory=scripted_factory(), echo=lambda s: None)
    samples = (root / "iter_0/samples.jsonl").stat().st_mtime_ns
    run_training(make_cfg(tiny_model_dir, data, **{"loop.max_iterations": 1, "corpus.max_keep_per_item": 0}),
                 root, resume=True, engine_factory=scripted_factory(), echo=lambda s: None)
    assert (root / "iter_0/samples.jsonl").stat().st_mtime_ns == samples  # sampling did not depend on it
    corpus = [json.loads(line) for line in (root / "iter_0/corpus.jsonl").read_text().splitlines()]
    assert not [r for r in corpus if r["kind"] == "keep"]
    # a section that changes no output of a phase reruns that phase only
    trained = (root / "iter_0/train.json").stat().st_mtime_ns
    run_training(make_cfg(tiny_model_dir, data, **{"loop.max_iterations": 1, "corpus.max_keep_per_item": 0,
                                                   "selection.warmup.when": "while_nothing_selected:3"}),
                 root, resume=True, engine_factory=scripted_factory(), echo=lambda s: None)
    assert (root / "iter_0/train.json").stat().st_mtime_ns == trained


def test_two_iterations_with_the_hf_engine(tiny_model_dir, data, tmp_path):
    root = tmp_path / "run"
    cfg = make_cfg(tiny_model_dir, data, **{"selection.policy": "all", "loop.max_iterations": 2,
                                            "loop.min_growth": -1, "data.eval": f"jsonl:{data}"})
    lines = []
    summary = run_training(cfg, root, echo=lines.append)
    assert len(summary["iterations"]) == 2 and summary["stop_reason"] == "max_iterations"
    for it in (0, 1):
        m = json.loads((root / f"iter_{it}/metrics.json").read_text())
        assert m["train_items"] == 5 and m["train_steps"] == 1 and m["train_loss"] > 0
        assert sum(m["solve_rate_hist"].values()) == 5 and 0.0 <= m["eval"] <= 1.0
        samples = [json.loads(line) for line in (root / f"iter_{it}/samples.jsonl").read_text().splitlines()]
        assert all(len(s["samples"]) == 2 for s in samples)
    assert (root / "iter_1/model/model.safetensors").exists()
    assert any("held-out accuracy" in line for line in lines)


def test_cli_train_runs_and_resumes(tiny_model_dir, data, tmp_path, monkeypatch):
    from toolace_r import cli
    from toolace_r.training import loop

    monkeypatch.setattr(loop.difficulty, "default_engine_factory", scripted_factory())
    cfg_path = tmp_path / "c.yaml"
    cfg_path.write_text(f"model: {tiny_model_dir}\ndata:\n  train: jsonl:{data}\nloop:\n  max_iterations: 1\n")
    args = ["train", "--config", str(cfg_path), "--output-dir", str(tmp_path / "run"), "prompt.system_prompt=S",
            "sampling.k=2", "sft.max_steps=1", "sft.num_threads=2", "selection.warmup.size=1", "loop.progress=false"]
    assert cli.main(args) == 0
    assert cli.main(args) == 2  # exists, no --resume
    assert cli.main(args + ["--resume"]) == 0
    saved = load_config(TrainConfig, tmp_path / "run/config.yaml")
    assert saved.sampling.k == 2 and saved.prompt.system_prompt == "S"


class HalfEngine(ScriptedEngine):
    """Sample 0 of a request is gold for the solvable ids, the others are gold only for `mastered` ids."""

    def __init__(self, solvable, mastered):
        super().__init__(solvable)
        self.mastered = mastered

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            item = next(i for i, v in ITEMS.items() if v[0] in req.prompt)
            texts = [ITEMS[item][3] if (item in self.mastered or (j == 0 and item in self.solvable))
                     else "[wrong_tool(x=1)]" for j in range(req.params.n)]
            out.append(GenerationResult([Completion(t, [], "stop") for t in texts]))
        return out


def test_window_policy_in_the_loop(tiny_model_dir, data, tmp_path):
    root = tmp_path / "run"
    cfg = make_cfg(tiny_model_dir, data, **{"selection.policy": "window", "selection.replay_share": 0.5,
                                            "selection.warmup.policy": "none", "loop.max_iterations": 1})
    run_training(cfg, root, engine_factory=lambda m, c: HalfEngine({"w1", "p1"}, {"w2", "m1"}), echo=lambda s: None)
    sel = json.loads((root / "iter_0/selection.json").read_text())
    window = {"w1", "p1"}  # s = 1/2; w2 and m1 are mastered (s = 1), n1 unreachable (s = 0)
    assert window <= set(sel["selected"])
    assert len(set(sel["selected"]) - window) == 1 and set(sel["selected"]) - window <= {"w2", "m1"}


def test_train_limit_takes_items_round_robin_over_categories(data):
    from toolace_r.training.items import load_items

    examples, targets, skipped = load_items(f"jsonl:{data}", 3, "no", None)
    assert len({e.category for e in examples}) == 3 and skipped == 0
    assert set(targets) == {e.id for e in examples}


def test_warmup_rounds_keep_an_unsolving_model_training(tiny_model_dir, data, tmp_path):
    root = tmp_path / "run"
    cfg = make_cfg(tiny_model_dir, data, **{"selection.warmup.when": "while_nothing_selected:2"})
    summary = run_training(cfg, root, engine_factory=lambda m, c: ScriptedEngine(set()), echo=lambda s: None)
    assert [m["warmup"] for m in summary["iterations"]] == [1, 1, 0]
    assert [m.get("train_steps") for m in summary["iterations"]] == [1, 1, None]
    assert summary["stop_reason"] == "selection_stopped_growing"
    assert summary["final_model"] == str(root / "iter_1" / "model")
