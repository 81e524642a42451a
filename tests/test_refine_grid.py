"""vote:N and refine_grid: the voting rule on scripted answers, and every policy of one shared run equal,
field by field, to separate refine runs on fresh engines (a scripted engine, then the real hf engine on
the tiny random model, whose prefix cache makes the cached/prompt split checkable)."""
from __future__ import annotations

import pytest

from test_refine import where
from toolace_r.engines.base import Completion, Engine, GenerationResult, SamplingParams
from toolace_r.prompts import render_prompt
from toolace_r.refine import Conversation, RefineConfig, get_policy, refine, vote_choice
from toolace_r.refine.grid import refine_grid
from toolace_r.tools import normalize_tools

TOOL = {"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}},
                                                         "required": ["x"]}}
TOOLS = normalize_tools([TOOL])


def conv(q: str) -> Conversation:
    return Conversation(q, TOOLS, [{"role": "user", "content": q}])


class VoteEngine(Engine):
    """Round r of question q answers script[q][r]; a request for n > 1 samples answers samples[q]
    (the first n). Usage is distinct per round and per sample; every request is recorded."""

    name = "scripted"

    def __init__(self, script, samples=None, tokenizer=None, max_context=None):
        self.script, self.samples = script, samples or {}
        self.tokenizer, self.max_context = tokenizer, max_context
        self.requests: list = []

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            self.requests.append(req)
            q, r = where(req)
            if req.params.n > 1:
                texts = self.samples[q][: req.params.n]
                out.append(GenerationResult([
                    Completion(t, [], "length" if j == 1 else "stop", prompt_tokens=7 if j == 0 else 0,
                               cached_tokens=50 if j == 0 else 57, completion_tokens=3 + j)
                    for j, t in enumerate(texts)]))
            else:
                text = self.script[q][r]
                out.append(GenerationResult([Completion(text, [], "stop", prompt_tokens=100 if r == 0 else 10 + r,
                                                        cached_tokens=100 * r, completion_tokens=len(text))]))
        return out




# --- the voting rule -----------------------------------------------------------------------------------

@pytest.mark.parametrize("texts, pick", [
    (["[f(x=1)]", "[f(x=2)]", "[f(x= 2)]"], 1),        # majority of samples; the first sample's text
    (["[f(x=1)]", "[f(x=2)]"], 0),                      # a tie the greedy answer is in: greedy
    (["[f(", "[f(x=2)]", "[f(x=3)]"], 1),               # greedy broken; a tie of samples: the first reached
    (["[g()]", "[g(x=1)]", "[f(x='a')]", "[f("], 0),    # nothing passes the check: greedy stands
    (["[f(x=1)]", "hello", "no idea"], 1),              # every text answer votes as one key, "no call"
    (["[f(x=1)]", "[g()]", "[g()]", "[f(x=1)]"], 0),    # schema-failing samples are dropped before counting
    (["no", "[f(x=4)]", "[f(x=4)]", "[f(x=5)]"], 1),    # calls outvote the greedy text answer
])
def test_vote_choice(texts, pick):
    assert vote_choice(texts, TOOLS) == pick


def test_vote_policy_round_one_is_the_vote_of_one_shared_prompt(chatml_tokenizer):
    script = {"a": ["[f(x=1)]"], "b": ["[f(x=1)]"], "c": ["[g()]"]}
    samples = {"a": ["[f(x=2)]", "[f(x=2)]", "[f(x=3)]"], "b": ["[f(x=2)]", "[g()]", "[f(x=1)]"],
               "c": ["[g(x=1)]", "[f(]", "[g()]"]}
    engine = VoteEngine(script, samples, chatml_tokenizer)
    cfg = RefineConfig(policy="vote:4", vote_seed=40, vote_temperature=0.5)
    result = refine([conv(q) for q in script], engine, cfg)
    t = {x.id: x for x in result.traces}
    assert [x.stop_reason for x in result.traces] == ["vote"] * 3
    assert [len(x.rounds) for x in result.traces] == [2, 2, 2]
    assert t["a"].rounds[0].answer == "[f(x=1)]" and t["a"].final == "[f(x=2)]"
    assert t["b"].final == "[f(x=1)]" and t["b"].rounds[1].finish_reason == "stop"  # greedy wins 2 to 1
    assert t["c"].final == "[g()]"  # no answer fits: the greedy one stands
    assert t["a"].rounds[1].finish_reason == "stop" and t["a"].rounds[1].parsed.is_call
    r1 = t["a"].rounds[1]
    # the samples request's prompt/cached tokens, and the sum of its 3 samples' completion tokens
    assert (r1.prompt_tokens, r1.cached_tokens, r1.completion_tokens) == (7, 50 + 57 + 57, 3 + 4 + 5)
    assert t["a"].rounds[0].prompt_tokens == 100
    votes = [r for r in engine.requests if r.params.n > 1]
    assert len(votes) == 3 and len(engine.requests) == 6
    first = [r for r in engine.requests if r.params.n == 1]
    assert [v.prompt for v in votes] == [r.prompt for r in first]  # the round-0 prompt again
    assert [v.params.seed for v in votes] == [40, 41, 42]
    assert {(v.params.n, v.params.temperature, v.params.top_p) for v in votes} == {(3, 0.5, 1.0)}
    # chunks keep the seeds by item position: a rerun in chunks of one draws the same
    engine2 = VoteEngine(script, samples, chatml_tokenizer)
    refine([conv(q) for q in script], engine2, RefineConfig(policy="vote:4", vote_seed=40, chunk_size=1))
    assert [r.params.seed for r in engine2.requests if r.params.n > 1] == [40, 41, 42]


def test_vote_one_is_a_single_pass_and_vote_needs_a_round():
    assert get_policy("vote:3").rounds == 1 and get_policy("vote:3").votes == 3
    assert get_policy("vote:1").rounds == 0
    engine = VoteEngine({"a": ["[f(x=1)]"]})
    (trace,) = refine([conv("a")], engine, RefineConfig(policy="vote:1")).traces
    assert trace.stop_reason == "single_pass" and len(trace.rounds) == 1 and len(engine.requests) == 1
    with pytest.raises(ValueError, match="raise max_rounds"):
        RefineConfig(policy="vote:2", max_rounds=0)
    for bad in ("vote", "vote:0", "vote:x"):
        with pytest.raises(ValueError, match="vote"):
            get_policy(bad)


# --- refine_grid equals separate runs ----------------------------------------------------------------------

POLICIES = ["none", "adaptive", "adaptive:exact", "checked", "fixed:1", "fixed:3", "vote:3"]


def assert_same(grid, separate):
    assert list(grid) == list(separate)
    for name in separate:
        got = [t.to_dict() for t in grid[name].traces]
        want = [t.to_dict() for t in separate[name].traces]
        assert got == want, name
        assert grid[name].answer_format == separate[name].answer_format
        assert grid[name].parse_format == separate[name].parse_format
        assert len(grid[name].round_seconds) == max(len(t.rounds) for t in grid[name].traces)


def test_grid_equals_separate_runs_on_scripted_answers(chatml_tokenizer):
    script = {
        "same": ["[f(x=1)]", "[f(x=1)]", "x", "x"],
        "respelled": ["[f(x=1)]", "[f(x=2)]", "[f( x = 2 )]", "[f(x=2)]"],
        "restless": ["a", "b", "c", "d"],
        "broken": ["[f(x='a')]", "[f(", "[f(x=3)]", "[f(x=3)]"],
        "unknown": ["[g()]", "[f(x=5)]", "[f(x=5)]", "[f(x=6)]"],
    }
    samples = {q: ["[f(x=5)]", "zzz"] for q in script}
    configs = {p: RefineConfig(policy=p, chunk_size=2) for p in POLICIES}
    configs["guarded"] = RefineConfig(policy="adaptive", guard="error", chunk_size=2)
    configs["capped"] = RefineConfig(policy="adaptive", max_rounds=1, chunk_size=2)
    items = [conv(q) for q in script]
    separate = {n: refine(items, VoteEngine(script, samples, chatml_tokenizer), c) for n, c in configs.items()}
    engine = VoteEngine(script, samples, chatml_tokenizer)
    grid = refine_grid(items, engine, configs)
    assert_same(grid, separate)
    reasons = {n: [t.stop_reason for t in r.traces] for n, r in grid.items()}
    assert reasons["adaptive"] == ["converged", "converged", "max_rounds", "converged", "converged"]
    assert reasons["guarded"][3] == "guard" and reasons["checked"][0] == "checked"
    assert set(reasons["vote:3"]) == {"vote"} and set(reasons["fixed:3"]) == {"fixed"}
    # round 0 ran once: 5 items, and not once per policy
    assert sum(where(r)[1] == 0 and r.params.n == 1 for r in engine.requests) == 5
    assert grid.seconds >= 0 and grid.round0_seconds <= grid.seconds


def test_grid_stops_for_context_as_separate_runs_do(chatml_tokenizer):
    q = "short"
    first = render_prompt(chatml_tokenizer, TOOLS, [{"role": "user", "content": q}])
    n0 = len(chatml_tokenizer(first, add_special_tokens=False)["input_ids"])
    script = {q: ["x" * 10, "y" * 30, "z", "z"], "long one": ["x" * 40, "w", "w", "w"]}
    params = SamplingParams(max_new_tokens=8)
    configs = {p: RefineConfig(policy=p, refine=params) for p in ("adaptive", "fixed:3", "fixed:1")}
    items = [conv(x) for x in script]
    limit = n0 + 140
    separate = {n: refine(items, VoteEngine(script, tokenizer=chatml_tokenizer, max_context=limit), c)
                for n, c in configs.items()}
    grid = refine_grid(items, VoteEngine(script, tokenizer=chatml_tokenizer, max_context=limit), configs)
    assert_same(grid, separate)
    assert "context" in [t.stop_reason for t in grid["fixed:3"].traces]


def test_grid_needs_one_round_zero():
    configs = {"a": RefineConfig(), "b": RefineConfig(round0=SamplingParams(max_new_tokens=9))}
    with pytest.raises(ValueError, match="round0"):
        refine_grid([conv("a")], VoteEngine({"a": ["x"]}), configs)
    assert dict(refine_grid([conv("a")], VoteEngine({"a": ["x"]}), {})) == {}


def _hf_grid_check(model, tokenizer, items, policies, max_new_tokens, chunk_size, **engine_kw):
    from toolace_r.engines import get_engine

    params = SamplingParams(max_new_tokens=max_new_tokens)
    configs = {p: RefineConfig(policy=p, round0=params, refine=params, chunk_size=chunk_size) for p in policies}
    separate = {}
    for name, c in configs.items():
        with get_engine("hf", model=model, tokenizer=tokenizer, **engine_kw) as engine:
            separate[name] = refine(items, engine, c)
    with get_engine("hf", model=model, tokenizer=tokenizer, **engine_kw) as engine:
        grid = refine_grid(items, engine, configs)
    assert_same(grid, separate)
    return grid


def test_grid_equals_separate_runs_with_the_hf_engine(tiny_model):
    model, tokenizer = tiny_model
    items = [conv(q) for q in ("hello", "add one", "what is the weather", "call f")]
    grid = _hf_grid_check(model, tokenizer, items, ["none", "adaptive", "checked", "fixed:1", "fixed:3", "vote:3"],
                          max_new_tokens=6, chunk_size=3, batch_size=4)
    for t in grid["vote:3"].traces:
        r1 = t.rounds[1]
        # the 2 samples reuse round 0's prompt KV: only the last prompt token is computed again
        prompt = t.rounds[0].prompt_tokens + t.rounds[0].cached_tokens
        assert (r1.prompt_tokens, r1.cached_tokens) == (1, 2 * prompt - 1)
    for t in grid["fixed:3"].traces:
        assert all(r.cached_tokens > r.prompt_tokens for r in t.rounds[1:])


@pytest.mark.slow
def test_grid_equals_separate_runs_with_the_embedded_model(embedded_model_dir):
    from toolace_r.models import load_model

    model, tokenizer = load_model(str(embedded_model_dir), dtype="float32", device="cpu")
    items = [conv(q) for q in ("Call f with x equal to 3", "what is f of 2?")]
    _hf_grid_check(model, tokenizer, items, ["none", "adaptive", "checked", "fixed:2", "vote:3"],
                   max_new_tokens=12, chunk_size=1, batch_size=8)


# --- the grid as a stage --------------------------------------------------------------------------------

def test_grid_stage_writes_each_policy_as_eval_stage_would(chatml_tokenizer, tmp_path, tiny_model_dir):
    import json

    from toolace_r.data.example import Example, Gold
    from toolace_r.evaluation.rounds import write_refine_outputs
    from toolace_r.stages import RunDir, grid_stage

    script = {"a": ["[f(x=1)]", "[f(x=2)]", "[f(x=2)]", "[f(x=2)]"], "b": ["hi", "hi", "x", "y"]}
    samples = {"a": ["[f(x=2)]", "[f(x=2)]"], "b": ["[f(x=3)]", "no"]}
    from toolace_r.calls import ToolCall

    items = [Example(q, [{"role": "user", "content": q}], TOOLS, Gold("calls", calls=[ToolCall("f", {"x": 2})]))
             for q in script]
    configs = {p: RefineConfig(policy=p) for p in ("none", "adaptive", "fixed:2", "vote:3", "checked")}
    made = []

    def make_engine():
        made.append(VoteEngine(script, samples, chatml_tokenizer))
        return made[-1]

    stage = grid_stage("eval/m", items, str(tiny_model_dir), configs, make_engine, {"engine": "scripted"},
                       {"arm": "m"})
    with RunDir(tmp_path) as rd:
        got = rd.run(stage)
        assert rd.run(stage) == got and len(made) == 1  # done: read back, nothing rerun
    d = tmp_path / "eval" / "m"
    assert set(got["policies"]) == set(configs) and got["grid"]["policies"] == list(configs)
    assert (d / "grid.done").exists() and got["grid"]["seconds"] >= 0
    for policy, cfg in configs.items():
        alone = refine(items, VoteEngine(script, samples, chatml_tokenizer), cfg)
        want = tmp_path / "alone" / policy
        write_refine_outputs(items, alone, want, {"arm": "m"}, "bfcl")
        slug = policy.replace(":", "_")
        assert (d / slug / "traces.jsonl").read_text() == (want / "traces.jsonl").read_text()
        assert (d / slug / "predictions.jsonl").read_text() == (want / "predictions.jsonl").read_text()
        m, w = (json.loads((p / "metrics.json").read_text())["refinement"] for p in (d / slug, want))
        assert m["all"]["tokens_per_example"] == w["all"]["tokens_per_example"]
        assert m["all"]["final_accuracy"] == w["all"]["final_accuracy"]
    multi = Example("mt", [{"role": "user", "content": "a"}], TOOLS, Gold("multi_turn", turns=[[]]))
    with pytest.raises(ValueError, match="single-turn items only"):
        grid_stage("eval/m", [*items, multi], str(tiny_model_dir), configs, make_engine, {}, {})
