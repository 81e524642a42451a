"""The validation slice (data.validation_limit): disjoint from the pool, round-robin over categories,
scored after every iteration that trained, and the best iteration chosen by it (docs/method.md#validation).
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from test_training_loop import ITEMS, ScriptedEngine, _call, iteration_of, make_cfg
from toolace_r.engines import GenerationResult
from toolace_r.engines.base import Completion
from toolace_r.training import run_training
from toolace_r.training.items import load_items, load_split, training_items, validation_items
from toolace_r.training.loop import best_iteration

WEATHER = ITEMS["w1"][1][0]
# beyond test_training_loop's five: one more item of each shape, for the validation slice to take
EXTRA = {
    "w3": ("Q-w3 weather Bern", [WEATHER], {"tool_calls": [_call("get_weather", city="Bern")]},
           '[get_weather(city="Bern")]'),
    "p2": ("Q-p2 weather Lyon Metz", [WEATHER],
           {"tool_calls": [_call("get_weather", city="Lyon"), _call("get_weather", city="Metz")]},
           '[get_weather(city="Lyon"), get_weather(city="Metz")]'),
    "n2": ("Q-n2 sing a song", [WEATHER], {"content": "No tool can do that."}, "No tool can do that."),
}
ALL = {**ITEMS, **EXTRA}


def write_all(path: Path) -> Path:
    with path.open("w") as fh:
        for i, (q, tools, answer, _) in ALL.items():
            msg = {"role": "assistant", "content": None, **answer}
            fh.write(json.dumps({"id": i, "messages": [{"role": "user", "content": q}, msg], "tools": tools}) + "\n")
    return path


@pytest.fixture
def data(tmp_path):
    return write_all(tmp_path / "train.jsonl")


def test_validation_slice_is_disjoint_round_robin_and_leaves_the_pool_as_it_was(data):
    pool, targets, skipped = load_items(f"jsonl:{data}", 5, "no", None)
    split = load_split(f"jsonl:{data}", 5, 3, "no", None)
    # the pool is exactly what it is without a validation slice
    assert [e.id for e in split.pool] == [e.id for e in pool] and split.targets == targets
    assert split.skipped == skipped == 0
    ids = [e.id for e in split.validation]
    assert not set(ids) & {e.id for e in pool}
    # 4 categories (single, parallel, multiple, no-call) in 8 items; the pool took one of each and then
    # a second single call, so what is left is one single, one parallel and one no-call item
    assert len({e.category for e in pool}) == 4
    assert sorted(ids) == ["n2", "p2", "w3"] and len({e.category for e in split.validation}) == 3
    assert set(split.validation_targets) == set(ids) and split.validation_targets["w3"] == ALL["w3"][3]
    # round-robin: 2 of the 3 left take one item from two categories, not two from one
    two = load_split(f"jsonl:{data}", 5, 2, "no", None).validation
    assert len({e.category for e in two}) == 2 and [e.id for e in two] == ids[:2]
    # deterministic
    assert [e.id for e in load_split(f"jsonl:{data}", 5, 3, "no", None).validation] == ids


def test_too_few_items_left_for_the_validation_slice(data):
    with pytest.raises(ValueError, match=r"validation_limit=4: only 3 trainable items .* left"):
        load_split(f"jsonl:{data}", 5, 4, "no", None)
    # no train_limit: the pool takes everything
    with pytest.raises(ValueError, match=r"validation_limit=1: only 0 trainable items"):
        load_split(f"jsonl:{data}", None, 1, "no", None)
    assert load_split(f"jsonl:{data}", None, 0, "no", None).validation == []


def test_config_level_split_and_the_pool_callers_see(tiny_model_dir, data):
    cfg = make_cfg(tiny_model_dir, data, **{"data.train_limit": 5, "data.validation_limit": 3})
    pool, _, _ = training_items(cfg)  # what the sampling workers and the control arm train on
    plain, _, _ = training_items(make_cfg(tiny_model_dir, data, **{"data.train_limit": 5}))
    assert [e.id for e in pool] == [e.id for e in plain]
    val, targets = validation_items(cfg)
    assert sorted(e.id for e in val) == ["n2", "p2", "w3"] and set(targets) == {"n2", "p2", "w3"}
    with pytest.raises(ValueError, match="validation_limit"):
        make_cfg(tiny_model_dir, data, **{"data.validation_limit": -1})


def test_best_iteration_rule():
    v = lambda acc: {"accuracy": acc, "items": 4, "by_category": {}}
    its = [{"iteration": 0, "train_steps": 1, "validation": v(0.5)},
           {"iteration": 1, "train_steps": 1, "validation": v(0.75)},
           {"iteration": 2, "train_steps": 1, "validation": v(0.75)},  # a tie: the earlier one wins
           {"iteration": 3, "stopped": "no growth"}]
    assert best_iteration(its) == {"best_iteration": 1, "best_by": "validation"}
    assert best_iteration([{**m, "validation": None} for m in its]) == {"best_iteration": 2, "best_by": "last"}
    assert best_iteration([{"iteration": 0, "stopped": "x"}]) == {"best_iteration": None, "best_by": "last"}


class ValEngine(ScriptedEngine):
    """ScriptedEngine over all eight items: gold for the ids in solvable[iteration of the model]."""

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            text = req.prompt if req.prompt is not None else json.dumps(req.messages)
            item = next(i for i, v in ALL.items() if v[0] in text)
            answer = ALL[item][3] if item in self.solvable else "[wrong_tool(x=1)]"
            out.append(GenerationResult([Completion(answer, [], "stop") for _ in range(req.params.n)]))
        return out


def val_factory(solvable, made=None):
    def factory(model_dir, cfg):
        if made is not None:
            made.append(model_dir)
        return ValEngine(solvable[iteration_of(model_dir)])
    return factory


def run_cfg(tiny_model_dir, data, **over):
    return make_cfg(tiny_model_dir, data, **{"data.train_limit": 5, "data.validation_limit": 3,
                                             "loop.max_iterations": 2, "loop.min_growth": -1, **over})


def test_loop_scores_validation_and_picks_the_best_iteration(tiny_model_dir, data, tmp_path):
    # base model, iter_0's model, iter_1's model: iter_0's solves 2 of 3 validation items, iter_1's 1
    solvable = [{"w1"}, {"w1", "w3", "n2"}, {"w1", "w2", "p2"}]
    root = tmp_path / "run"
    lines = []
    summary = run_training(run_cfg(tiny_model_dir, data, **{"loop.validate_base": "true"}), root,
                           engine_factory=val_factory(solvable), echo=lines.append)
    assert len(summary["iterations"]) == 2 and summary["stop_reason"] == "max_iterations"
    v0, v1 = (m["validation"] for m in summary["iterations"])
    assert v0["accuracy"] == pytest.approx(2 / 3) and v0["items"] == 3 and v1["accuracy"] == pytest.approx(1 / 3)
    assert set(v0["by_category"]) == {e.category for e in load_split(f"jsonl:{data}", 5, 3, "no", None).validation}
    assert sorted(v1["by_category"].values()) == [0.0, 0.0, 1.0]
    assert summary["best_iteration"] == 0 and summary["best_by"] == "validation"
    assert summary["best_model"] == str(root / "iter_0" / "model")
    assert summary["final_model"] == str(root / "iter_1" / "model")  # the last model is still recorded
    assert summary["base_validation"]["accuracy"] == 0.0  # the base model solves none of them
    on_disk = json.loads((root / "summary.json").read_text())
    assert on_disk["best_iteration"] == 0 and on_disk["iterations"][0]["validation"] == v0
    assert json.loads((root / "iter_0/validation.json").read_text()) == v0
    assert (root / "iter_0/validation/predictions.jsonl").exists() and (root / "iter_0/validate.done").exists()
    manifest = json.loads((root / "manifest.json").read_text())
    assert sorted(manifest["data"]["validation_ids"]) == ["n2", "p2", "w3"] and manifest["data"]["items"] == 5
    assert "validate" in manifest["iterations"][1]["phases"]
    # the validation items are never sampled or trained on
    for it in (0, 1):
        sampled = {json.loads(line)["id"] for line in (root / f"iter_{it}/samples.jsonl").read_text().splitlines()}
        trained = {json.loads(line)["id"] for line in (root / f"iter_{it}/corpus.jsonl").read_text().splitlines()}
        assert not (sampled | trained) & {"n2", "p2", "w3"}
    assert any("validation accuracy: 0.667 on 3 items" in line for line in lines)
    assert "best iteration by accuracy on a validation slice" in (root / "iter_0/model/README.md").read_text()
    assert "best iteration" not in (root / "iter_1/model/README.md").read_text()

    # resume: the finished validation stages are not redone (no engine is even made)...
    made: list = []
    again = run_training(run_cfg(tiny_model_dir, data, **{"loop.validate_base": "true"}), root, resume=True,
                         engine_factory=val_factory(solvable, made), echo=lambda s: None)
    assert made == [] and again["best_iteration"] == 0 and again["iterations"] == summary["iterations"]
    # ...and an unfinished one is, alone
    (root / "iter_1/validate.done").unlink()
    run_training(run_cfg(tiny_model_dir, data, **{"loop.validate_base": "true"}), root, resume=True,
                 engine_factory=val_factory(solvable, made), echo=lambda s: None)
    assert made == [str(root / "iter_1" / "model")]


def test_a_tie_goes_to_the_earlier_iteration_and_no_slice_means_the_last(tiny_model_dir, data, tmp_path):
    same = [set(), {"w1", "w3"}, {"w1", "p2"}]  # 1 of 3 validation items each: a tie
    summary = run_training(run_cfg(tiny_model_dir, data), tmp_path / "tie", engine_factory=val_factory(same),
                           echo=lambda s: None)
    assert [m["validation"]["accuracy"] for m in summary["iterations"]] == [pytest.approx(1 / 3)] * 2
    assert summary["best_iteration"] == 0 and summary["best_by"] == "validation"
    assert "base_validation" not in summary  # loop.validate_base is off by default
    plain = run_training(run_cfg(tiny_model_dir, data, **{"data.validation_limit": "null"}), tmp_path / "plain",
                         engine_factory=val_factory(same), echo=lambda s: None)
    assert all("validation" not in m for m in plain["iterations"])
    assert plain["best_iteration"] == 1 and plain["best_by"] == "last"
    assert not list((tmp_path / "plain").glob("iter_*/validate.done"))


def test_pipeline_scores_the_best_iteration_under_eval_policies(tiny_model_dir, data, tmp_path, monkeypatch):
    from test_pipeline import eval_factory, make_cfg as pipeline_cfg
    from toolace_r.pipeline import Pipeline, report

    seen = {}

    def fake_report(root, cfg, arms, examples, summary, *rest, **options):
        seen.update(arms=dict(arms), summary=summary, options=options)
        return {"grid": {}}

    monkeypatch.setattr(report, "write_report", fake_report)  # report.py's reading of it is tested there
    cfg = pipeline_cfg(tiny_model_dir, data, "training.data.train_limit=5", "training.data.validation_limit=3",
                       "training.loop.min_growth=-1", "eval.policies=[adaptive, checked]",
                       "eval.iteration_policies=[adaptive]")
    out = tmp_path / "demo"
    pipeline = Pipeline(cfg, out, echo=lambda s: None, engine_factory=eval_factory,
                        train_engine_factory=val_factory([{"w1"}, {"w1", "w3", "n2"}, {"w1", "w2", "p2"}]))
    pipeline.run()
    summary = json.loads((out / "toolace_r" / "summary.json").read_text())
    assert summary["best_iteration"] == 0 and summary["best_by"] == "validation" and len(summary["iterations"]) == 2
    assert pipeline.reported_arm == seen["options"]["reported"] == "toolace_r@0"
    assert list(seen["arms"]) == ["base", "toolace_r@0", "toolace_r@1", "control"]
    policies = lambda arm: sorted(p.name for p in (out / "eval" / arm).iterdir() if (p / "metrics.json").exists())
    assert policies("toolace_r@0") == ["adaptive", "checked", "none"]  # the reported arm: eval.policies
    assert policies("toolace_r@1") == ["adaptive", "none"]  # the last, not the best: eval.iteration_policies
    # the control trains on the pool alone, never on a validation item
    control_ids = {json.loads(line)["id"] for line in (out / "control" / "corpus.jsonl").read_text().splitlines()}
    assert control_ids and not control_ids & {"n2", "p2", "w3"}


def test_reported_arm_without_a_best_iteration_is_the_last_trained():
    from toolace_r.pipeline.run import reported_arm

    trained = {"toolace_r@0": "a", "toolace_r@2": "b"}
    assert reported_arm({"iterations": []}, trained) == "toolace_r@2"  # a summary from before best_iteration
    assert reported_arm({"best_iteration": 0}, trained) == "toolace_r@0"
    assert reported_arm({"best_iteration": None}, {}) is None
    with pytest.raises(ValueError, match="best_iteration 1 has no trained model"):
        reported_arm({"best_iteration": 1}, trained)



def test_an_item_repeated_in_the_source_never_lands_in_both(tmp_path, data):
    lines = data.read_text().splitlines()
    twice = tmp_path / "twice.jsonl"
    twice.write_text("\n".join(lines + lines) + "\n")  # every id twice
    split = load_split(f"jsonl:{twice}", 5, 3, "no", None)
    assert not {e.id for e in split.pool} & {e.id for e in split.validation}
