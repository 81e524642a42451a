"""The BFCL multi-turn inference loop (evaluation/multi_turn_loop.py): turns, steps, tool results, the
step cap, miss_func tools, parse failures, refinement per step, the prefix cache, and `eval` end to end."""
from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from toolace_r.calls import ToolCall
from toolace_r.engines.base import Completion, Engine, GenerationResult
from toolace_r.evaluation.multi_turn_loop import ADDITIONAL_FUNCTION_PROMPT, run_multi_turn
from toolace_r.evaluation.multi_turn_report import multi_turn_metrics, render_multi_turn_markdown
from toolace_r.prompts import DEFAULT_REFINE_INSTRUCTION
from toolace_r.refine import RefineConfig

TOOLS = [
    {"name": "ls", "description": "List files.", "parameters": {"type": "dict", "properties": {
        "a": {"type": "boolean", "description": "all"}}, "required": []}},
    {"name": "cd", "description": "Change directory.", "parameters": {"type": "dict", "properties": {
        "folder": {"type": "string", "description": "where"}}, "required": ["folder"]}},
]
MKDIR = {"name": "mkdir", "description": "Make a directory.", "parameters": {"type": "dict", "properties": {
    "dir_name": {"type": "string", "description": "name"}}, "required": ["dir_name"]}}


def item(turns, id="multi_turn_base_0", missed=None, held=None, tools=TOOLS):
    """An example as the multi-turn loader writes one (only what the loop reads)."""
    meta = {"turns": turns, "involved_classes": ["GorillaFileSystem"], "initial_config": {}}
    if missed is not None:
        meta["missed_function"], meta["held_out_tools"] = missed, held
    return SimpleNamespace(id=id, category=id.rsplit("_", 1)[0], tools=list(tools), messages=list(turns[0]),
                           metadata=meta, gold=SimpleNamespace(kind="multi_turn"))


class FakeState:
    """Records the calls it is asked to run; answers each with a line naming it."""

    def __init__(self):
        self.calls: list[list[ToolCall]] = []

    def execute(self, calls):
        self.calls.append(list(calls))
        return [f"ran {c.name} {json.dumps(c.arguments, sort_keys=True)}" for c in calls]


class Scripted(Engine):
    """Chat-message requests (no tokenizer): answers with script(messages), records every request."""

    name = "scripted"

    def __init__(self, script):
        self.script, self.requests, self.batches = script, [], []

    def generate(self, requests, progress=False):
        self.batches.append(len(requests))
        out = []
        for req in requests:
            self.requests.append(req.messages)
            text = self.script(req.messages)
            out.append(GenerationResult([Completion(text, [], "stop", prompt_tokens=10, completion_tokens=3)]))
        return out


def last_user(messages):
    return next(m["content"] for m in reversed(messages) if m["role"] == "user")


def run(examples, script, policy="none", **kw):
    states = {}

    def factory(ex):
        states[ex.id] = FakeState()
        return states[ex.id]

    engine = Scripted(script)
    result = run_multi_turn(examples, engine, RefineConfig(policy=policy), state_factory=factory, **kw)
    return result, states, engine


def two_turns(messages):
    """Turn 0: ls, then an answer; turn 1: cd, then an answer."""
    last = messages[-1]
    if last["role"] == "tool":
        return "Done."
    return "[ls()]" if "list" in last_user(messages) else "[cd(folder='docs')]"


def test_two_turns_with_tool_results():
    ex = item([[{"role": "user", "content": "list my files"}], [{"role": "user", "content": "go to docs"}]])
    result, states, engine = run([ex], two_turns)
    t = result.trajectories[0]
    assert t.stop_reason == "completed"
    assert t.calls() == [[[ToolCall("ls", {})]], [[ToolCall("cd", {"folder": "docs"})]]]
    assert states[ex.id].calls == [[ToolCall("ls", {})], [ToolCall("cd", {"folder": "docs"})]]
    assert [turn.end for turn in t.turns] == ["answered", "answered"]
    assert [[s.text for s in turn.steps] for turn in t.turns] == [["[ls()]", "Done."], ["[cd(folder='docs')]", "Done."]]
    assert t.turns[0].steps[0].results == ['ran ls {}']
    # The last prompt holds the whole conversation: each result as a tool message after its call.
    last = engine.requests[-1]
    roles = [m["role"] for m in last]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user", "assistant", "tool"]
    assert last[3] == {"role": "tool", "name": "ls", "content": "ran ls {}"}
    assert last[2]["content"] == "[ls()]"
    # Each prompt extends the previous one (the conversation only grows).
    for a, b in zip(engine.requests, engine.requests[1:]):
        assert b[:len(a)] == a
    assert result.predictions() == [{"id": ex.id, "result": [["[ls()]", "Done."], ["[cd(folder='docs')]", "Done."]]}]
    json.dumps(t.to_dict())  # JSON-ready


def test_items_waiting_for_the_model_are_batched():
    a = item([[{"role": "user", "content": "list my files"}]], id="multi_turn_base_0")
    b = item([[{"role": "user", "content": "go to docs"}], [{"role": "user", "content": "list it"}]],
             id="multi_turn_base_1")
    result, states, engine = run([a, b], two_turns)
    # wave 1: both items; wave 2: both answer; wave 3..4: b's second turn alone
    assert engine.batches == [2, 2, 1, 1]
    assert result.engine_calls == 4
    assert [t.stop_reason for t in result.trajectories] == ["completed", "completed"]

    # In groups of one, each item runs to its end before the next starts.
    grouped, _, engine = run([a, b], two_turns, group_size=1)
    assert engine.batches == [1, 1, 1, 1, 1, 1] and grouped.engine_calls == 6
    assert [t.to_dict() for t in grouped.trajectories] == [t.to_dict() for t in result.trajectories]


def test_step_cap_force_quits_the_item():
    ex = item([[{"role": "user", "content": "list my files"}], [{"role": "user", "content": "go to docs"}]])
    result, states, _ = run([ex], lambda m: "[ls()]", max_steps=2)
    t = result.trajectories[0]
    assert t.stop_reason == "step_cap" and len(t.turns) == 1  # the second turn never runs
    assert len(t.turns[0].steps) == 3 and t.turns[0].end == "step_cap"  # BFCL: count > limit after 3 steps
    assert len(states[ex.id].calls) == 3


def test_parse_failure_ends_the_turn():
    ex = item([[{"role": "user", "content": "list my files"}], [{"role": "user", "content": "go to docs"}]])
    result, states, _ = run([ex], lambda m: "[ls(a=" if "list" in last_user(m) else "Nothing to do.")
    t = result.trajectories[0]
    assert [turn.end for turn in t.turns] == ["decode_error", "answered"]
    assert t.turns[0].steps[0].calls is None and t.turns[0].steps[0].decode_error
    assert t.calls() == [[], []] and states[ex.id].calls == []


def test_miss_func_turn_adds_the_held_out_tools():
    turns = [[{"role": "user", "content": "list my files"}], [], [{"role": "user", "content": "make dir x"}]]
    ex = item(turns, missed={1: ["mkdir"]}, held={1: [MKDIR]})  # as the loader writes them

    def script(messages):
        if messages[-1]["role"] == "tool":
            return "ok"
        user = last_user(messages)
        if ADDITIONAL_FUNCTION_PROMPT in user:
            return "[mkdir(dir_name='x')]"
        return "[ls()]"

    result, states, engine = run([ex], script, policy="checked")
    t = result.trajectories[0]
    assert [turn.added_tools for turn in t.turns] == [[], ["mkdir"], []]
    opened = t.turns[1].messages[0]["content"]
    assert opened.endswith("\n" + ADDITIONAL_FUNCTION_PROMPT) and '"name": "mkdir"' in opened
    # The system prompt never lists mkdir (pythonic: it comes in the user turn, as BFCL's prompting handlers)...
    assert all('"mkdir"' not in req[0]["content"] for req in engine.requests)
    assert '"ls"' in engine.requests[0][0]["content"]
    # ...but the schema check knows it: the checked policy found nothing to refine in the mkdir call.
    mkdir_step = t.turns[1].steps[0]
    assert mkdir_step.calls == [ToolCall("mkdir", {"dir_name": "x"})]
    assert mkdir_step.trace.stop_reason == "checked" and mkdir_step.trace.rounds[0].problems == []
    assert states[ex.id].calls[1] == [ToolCall("mkdir", {"dir_name": "x"})]


def test_refinement_runs_per_step_before_execution():
    ex = item([[{"role": "user", "content": "list my files"}]])

    def script(messages):
        if messages[-1]["role"] == "tool":
            return "Done."
        if messages[-1]["content"].startswith(DEFAULT_REFINE_INSTRUCTION):
            previous = messages[-2]["content"]
            return "[ls()]" if previous == "[ls(a=true)]" else previous  # fix round 0, then keep
        return "[ls(a=true)]"  # round 0

    result, states, engine = run([ex], script, policy="adaptive")
    step = result.trajectories[0].turns[0].steps[0]
    assert [r.text for r in step.trace.rounds] == ["[ls(a=true)]", "[ls()]", "[ls()]"]
    assert step.trace.stop_reason == "converged"
    assert states[ex.id].calls == [[ToolCall("ls", {})]]  # the refined calls ran, not round 0's
    # The history keeps the final answer only, then the tool result.
    last = engine.requests[-1]
    assert [m["role"] for m in last] == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert last[2]["content"] == "[ls()]" and last[3]["role"] == "tool"
    m = multi_turn_metrics([ex], result, {ex.id: True})
    assert [s.trace.refinements for s in result.trajectories[0].steps] == [2, 1]
    assert m["all"]["steps_refined"] == 2 and m["all"]["steps_changed_by_refinement"] == 1
    assert m["all"]["accuracy"] == 1.0 and m["all"]["steps"] == 2 and m["all"]["executed_calls"] == 1
    assert "## Multi-turn" in render_multi_turn_markdown(m)


def test_the_prefix_cache_hits_across_steps_and_turns(tiny_model_dir):
    from toolace_r.engines import get_engine

    turns = [[{"role": "user", "content": "list my files"}], [{"role": "user", "content": "now go to docs"}]]
    engine = get_engine("hf", model=str(tiny_model_dir), dtype="float32", device="cpu")
    cfg = RefineConfig.from_options("none", max_new_tokens=6)
    result = run_multi_turn([item(turns)], engine, cfg, state_factory=lambda ex: FakeState())
    steps = result.trajectories[0].steps
    assert len(steps) == 2  # random text: each turn ends at its first step
    first, second = steps[0].trace.rounds[0], steps[1].trace.rounds[0]
    assert first.cached_tokens == 0 and first.prompt_tokens > 100
    # Turn 1's prompt is turn 0's prompt + answer + the new user turn: only the new part is prefilled.
    assert second.cached_tokens >= first.prompt_tokens and second.prompt_tokens < 40
    assert engine.prefix_cache.hits >= 1
    assert result.prefix_cache["hits"] >= 1 and result.prefix_cache["lookups"] >= result.prefix_cache["hits"]
    assert multi_turn_metrics([], result)["prefix_cache"] == result.prefix_cache


# --- eval end to end -------------------------------------------------------------------------------

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "bfcl_multi_turn_loop"


class MathEngine(Engine):
    """Answers the fixture's questions right: the call, then a sentence once the result is back."""

    name = "math"
    ANSWERS = {"Add 2 and 3.": "[add(a=2, b=3)]", "What is the absolute value of -4?": "[absolute_value(number=-4)]",
               "Add 1 and 1.": "[add(a=1, b=2)]", "Area of 2 by 3 in m?": "[calc_area(w=2, h=3)]"}

    def generate(self, requests, progress=False):
        out = []
        for req in requests:
            m = req.messages
            if m[-1]["content"].startswith(DEFAULT_REFINE_INSTRUCTION):
                text = m[-2]["content"]  # keep the answer
            else:
                text = "Here you are." if m[-1]["role"] == "tool" else self.ANSWERS[last_user(m)]
            out.append(GenerationResult([Completion(text, [], "stop", prompt_tokens=20, completion_tokens=5)]))
        return out


@pytest.fixture
def math_engine(monkeypatch):
    import toolace_r.engines

    monkeypatch.setattr(toolace_r.engines, "engine_from_args", lambda args, **kw: MathEngine())


def test_cli_eval_multi_turn_scores_by_execution(math_engine, tmp_path, capsys):
    from toolace_r.cli import main

    out = tmp_path / "run"
    assert main(["eval", "--categories", "multi_turn_base", "--data-dir", str(FIXTURES), "--model", "m",
                 "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "multi-turn: policy adaptive per step" in printed
    results = {r["id"]: r for r in map(json.loads, (out / "results.jsonl").read_text().splitlines())}
    assert results["multi_turn_base_0"]["valid"] is True
    assert results["multi_turn_base_1"]["valid"] is False  # add(a=1, b=2): the result differs from the truth's
    assert results["multi_turn_base_1"]["error_type"] in ("state_mismatch", "response_mismatch")
    m = json.loads((out / "metrics.json").read_text())
    assert m["categories"]["multi_turn_base"]["correct"] == 1 and "refinement" not in m
    mt = m["multi_turn"]["all"]
    assert mt["turns"] == 3 and mt["executed_calls"] == 3 and mt["stop_reasons"] == {"completed": 2}
    trajectories = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    first = trajectories[0]["turns"][0]["steps"]
    assert first[0]["calls"] == [{"name": "add", "arguments": {"a": 2, "b": 3}}]
    assert first[0]["results"] == ['{"result": 5}'] and first[1]["text"] == "Here you are."
    preds = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert preds[0]["result"] == [["[add(a=2, b=3)]", "Here you are."],
                                  ["[absolute_value(number=-4)]", "Here you are."]]
    assert "## Multi-turn" in (out / "report.md").read_text()
    assert json.loads((out / "config.json").read_text())["multi_turn"] == {"max_steps": 20}
    assert m["aggregates"]["multi_turn"]["accuracy"] == 0.5
    assert m["aggregates"]["multi_turn"]["missing"] == ["multi_turn_miss_func", "multi_turn_miss_param",
                                                        "multi_turn_long_context"]

    # The saved predictions (BFCL's multi-turn result shape) re-score to the same verdicts.
    again = tmp_path / "again"
    assert main(["eval", "--categories", "multi_turn_base", "--data-dir", str(FIXTURES),
                 "--predictions", str(out / "predictions.jsonl"), "--out", str(again)]) == 0
    rescored = {r["id"]: r["valid"] for r in map(json.loads, (again / "results.jsonl").read_text().splitlines())}
    assert rescored == {"multi_turn_base_0": True, "multi_turn_base_1": False}


def test_cli_eval_mixes_single_and_multi_turn(math_engine, tmp_path):
    from toolace_r.cli import main

    out = tmp_path / "run"
    assert main(["eval", "--categories", "simple_python,multi_turn_base", "--data-dir", str(FIXTURES),
                 "--model", "m", "--out", str(out), "--refine", "none"]) == 0
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["categories"]) == {"simple_python", "multi_turn_base"}
    assert m["refinement"]["categories"].keys() == {"simple_python"}  # rounds: the single-turn items
    assert m["multi_turn"]["all"]["examples"] == 2
    assert len((out / "traces.jsonl").read_text().splitlines()) == 1
    assert len((out / "trajectories.jsonl").read_text().splitlines()) == 2
    assert (out / "rounds.png").is_file()


def test_cli_eval_multi_turn_refuses_export(math_engine, tmp_path, capsys):
    from toolace_r.cli import main

    assert main(["eval", "--categories", "multi_turn_base", "--data-dir", str(FIXTURES), "--model", "m",
                 "--out", str(tmp_path / "run"), "--export-bfcl", str(tmp_path / "x")]) == 2
    assert "--export-bfcl" in capsys.readouterr().err and not (tmp_path / "run").exists()


def test_cli_eval_multi_turn_on_the_tiny_hf_model(tiny_model_dir, tmp_path):
    from toolace_r.cli import main

    out = tmp_path / "run"
    assert main(["eval", "--categories", "multi_turn_base", "--data-dir", str(FIXTURES), "--limit", "1",
                 "--model", str(tiny_model_dir), "--max-new-tokens", "6", "--out", str(out)]) == 0
    (t,) = [json.loads(line) for line in (out / "trajectories.jsonl").read_text().splitlines()]
    assert t["id"] == "multi_turn_base_0" and t["stop_reason"] in ("completed", "step_cap", "context")
    assert len(t["turns"]) >= 1 and t["turns"][0]["steps"][0]["rounds"][0]["prompt_tokens"] > 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["counts"]["scored"] == 1 and m["multi_turn"]["all"]["examples"] == 1


def test_refine_command_refuses_multi_turn_data(tmp_path, capsys):
    from toolace_r.cli import main

    assert main(["refine", "--model", "m", "--data", f"bfcl:multi_turn_base@{FIXTURES}",
                 "--out", str(tmp_path / "p.jsonl")]) == 2
    assert "multi-turn" in capsys.readouterr().err


def test_a_single_turn_item_with_a_multi_turn_result_is_wrong_not_a_crash():
    from toolace_r.data import load
    from toolace_r.evaluation.benchmarks import score

    ex = load(f"bfcl:simple_python@{FIXTURES}")[0]
    assert score(ex, [["[calc_area(w=2, h=3)]"]]).valid is False


def test_native_miss_func_tools_join_the_template_tool_list(hermes_tokenizer):
    turns = [[{"role": "user", "content": "list my files"}], []]
    ex = item(turns, missed={1: ["mkdir"]}, held={1: [MKDIR]})
    prompts = []

    class Native(Engine):
        tokenizer = hermes_tokenizer

        def generate(self, requests, progress=False):
            prompts.extend(r.prompt for r in requests)
            return [GenerationResult([Completion("No.", [], "stop")]) for _ in requests]

    cfg = RefineConfig(policy="none", prompt=__import__("toolace_r.prompts", fromlist=["PromptConfig"]).PromptConfig(
        answer_format="native"))
    result = run_multi_turn([ex], Native(), cfg, state_factory=lambda ex: FakeState())
    assert result.answer_format == "native"
    assert [t.added_tools for t in result.trajectories[0].turns] == [[], ["mkdir"]]
    assert '"mkdir"' not in prompts[0] and '"mkdir"' in prompts[1]
    assert prompts[1].rstrip().count(ADDITIONAL_FUNCTION_PROMPT) == 1


def test_the_training_loops_eval_stage_scores_multi_turn_items(tmp_path):
    """`data.eval` may name BFCL multi-turn categories: the held-out eval runs them through the loop."""
    from toolace_r.data import load
    from toolace_r.stages import RunDir, eval_stage

    examples = load(f"bfcl:simple_python,multi_turn_base@{FIXTURES}")
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    stage = eval_stage("iter_0", examples, str(model_dir), RefineConfig(policy="none"), MathEngine, {}, {}, "bfcl",
                       subdir="eval", summary_file="eval.json")
    summary = RunDir(tmp_path / "run").run(stage)
    assert summary["items"] == 3 and summary["accuracy"] == pytest.approx(1 / 3)
    assert summary["by_category"] == {"multi_turn_base": 0.5, "simple_python": 0.0}
    assert (tmp_path / "run" / "iter_0" / "eval" / "trajectories.jsonl").is_file()
