"""The refine loop: stop policies, the round cap, the guard, traces, chunking, prompts, and `toolace-r refine`.

A scripted fake engine answers item q's round r with script[q][r], so every stop decision is known in
advance; a last test runs the loop on the tiny random model through the real hf engine.
"""
from __future__ import annotations

import json
import re

import pytest

from toolace_r.calls import ToolCall, parse
from toolace_r.cli import main
from toolace_r.data.example import Example, Gold
from toolace_r.engines.base import Completion, Engine, GenerationResult, SamplingParams
from toolace_r.prompts import DEFAULT_REFINE_INSTRUCTION, build_messages, refine_suffix, render_prompt
from toolace_r.refine import (
    Conversation,
    STOP_POLICIES,
    RefineConfig,
    StopPolicy,
    Trace,
    get_policy,
    known_policies,
    read_traces,
    refine,
    register_policy,
    same_answer,
    write_predictions,
    write_traces,
)
from toolace_r.tools import normalize_tools

TOOL = {"name": "f", "description": "d", "parameters": {"type": "dict", "properties": {"x": {"type": "integer"}},
                                                         "required": ["x"]}}
TOOLS = normalize_tools([TOOL])


def conv(q: str) -> Conversation:
    return Conversation(q, TOOLS, [{"role": "user", "content": q}])


def usage(r: int, text: str) -> dict[str, int]:
    """What the fake engine reports for round r: a distinct, checkable figure per field."""
    return {"prompt_tokens": 100 if r == 0 else 10 + r, "cached_tokens": 0 if r == 0 else 100 * r,
            "completion_tokens": len(text)}


class ScriptedEngine(Engine):
    """Answers question q's round r with script[q][r]; `calls` records (q, r) per generate call."""

    name = "scripted"

    def __init__(self, script: dict[str, list[str]], tokenizer=None, max_context: int | None = None):
        self.script, self.tokenizer, self.max_context = script, tokenizer, max_context
        self.calls: list[list[tuple[str, int]]] = []
        self.requests: list = []

    def generate(self, requests, progress=False):
        batch, out = [], []
        for req in requests:
            q, r = where(req)
            batch.append((q, r))
            self.requests.append(req)
            text = self.script[q][r]
            out.append(GenerationResult([Completion(text, [], "length" if r == 9 else "stop", **usage(r, text))]))
        self.calls.append(batch)
        return out


def where(req) -> tuple[str, int]:
    """(question, round) of a request, from its messages or its rendered ChatML prompt."""
    if req.messages is not None:
        return req.messages[1]["content"], sum(m["role"] == "assistant" for m in req.messages)
    q = re.search(r"<\|im_start\|>user\n(.*?)<\|im_end\|>", req.prompt, re.S).group(1)
    return q, req.prompt.count(DEFAULT_REFINE_INSTRUCTION)


def run(script, policy="adaptive", tokenizer=None, **cfg):
    engine = ScriptedEngine(script, tokenizer)
    result = refine([conv(q) for q in script], engine, RefineConfig(policy=policy, **cfg))
    return engine, {t.id: t for t in result.traces}, result


# --- policies and config ---------------------------------------------------------------------------

def test_policy_registry_and_errors():
    assert known_policies() == ["adaptive", "adaptive:exact", "checked", "checked:silent", "fixed:N", "none", "vote:N"]
    assert get_policy("adaptive").compare == "canonical" and get_policy("adaptive").rounds is None
    assert get_policy("adaptive:exact").compare == "exact"
    assert get_policy("fixed:2").rounds == 2 and get_policy("fixed:2").compare is None
    assert get_policy("none").rounds == 0
    assert get_policy("checked").check and get_policy("checked").feedback and get_policy("checked").cycle
    assert get_policy("checked:silent").check and not get_policy("checked:silent").feedback
    assert not get_policy("adaptive").check and not get_policy("adaptive").cycle
    with pytest.raises(ValueError, match="known: adaptive, adaptive:exact, checked, checked:silent, fixed:N, none, vote:N"):
        get_policy("greedy")
    for bad in ("fixed", "fixed:x", "fixed:-1", "adaptive:fuzzy", "none:1", "checked:loud"):
        with pytest.raises(ValueError):
            get_policy(bad)


def test_config_validation_and_cap_for_fixed():
    with pytest.raises(ValueError, match="more than max_rounds=3"):
        RefineConfig(policy="fixed:4")
    with pytest.raises(ValueError, match="unknown guard"):
        RefineConfig(guard="maybe")
    with pytest.raises(ValueError, match="n must be 1"):
        RefineConfig(refine=SamplingParams(n=2))
    with pytest.raises(ValueError, match="unknown stop policy"):
        RefineConfig(policy="nope")
    assert RefineConfig.from_options("fixed:5").max_rounds == 5
    assert RefineConfig.from_options("fixed:2").max_rounds == 3
    cfg = RefineConfig.from_options("adaptive", 2, max_new_tokens=16, stop=["\n\n"], guard="error")
    assert (cfg.max_rounds, cfg.round0.max_new_tokens, cfg.refine.stop, cfg.guard) == (2, 16, ("\n\n",), "error")
    # YAML/JSON-ready and back through the project's config loader.
    from toolace_r.config import from_dict

    again = from_dict(RefineConfig, json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg


class UntilCall(StopPolicy):
    """Refine until the answer calls the named function, however often the answer repeats."""

    def __init__(self, function: str) -> None:
        super().__init__(f"until:{function}")
        self.function = function

    def stop_reason(self, rounds, fmt):
        parsed = parse(rounds[-1].answer, fmt)
        return "called" if parsed.is_call and any(c.name == self.function for c in parsed.calls) else None


@pytest.fixture
def registered():
    """Registers policies for one test and removes them after it (the registry is module state)."""
    keys = []

    def add(key, policy, spellings=()):
        keys.append(key)
        register_policy(key, policy, spellings)

    yield add
    for key in keys:
        STOP_POLICIES.pop(key, None)


def test_a_registered_policy_adds_its_own_stop_rule_to_the_loop(registered):
    def until(arg):
        if not arg:
            raise ValueError("until needs a function name, e.g. until:book")
        return UntilCall(arg)

    registered("until", until, ("until:NAME",))
    assert known_policies()[-1] == "until:NAME" and get_policy("until:book").function == "book"
    with pytest.raises(ValueError, match="needs a function name"):
        RefineConfig(policy="until")
    script = {
        "later": ["[f(x=1)]", "[f(x=1)]", "[book(x=1)]", "unused"],  # adaptive would stop at round 1
        "at_once": ["[book(x=2)]", "unused", "unused", "unused"],
        "never": ["[f(x=1)]", "[f(x=1)]", "[f(x=1)]", "[f(x=1)]"],
    }
    engine, traces, _ = run(script, "until:book")
    assert {q: (t.stop_reason, t.refinements, t.final) for q, t in traces.items()} == {
        "later": ("called", 2, "[book(x=1)]"),
        "at_once": ("called", 0, "[book(x=2)]"),
        "never": ("max_rounds", 3, "[f(x=1)]"),  # the round cap still holds
    }
    assert engine.calls[1] == [("later", 1), ("never", 1)]
    # A policy object registers as it is; its key then takes no argument.
    registered("book_once", UntilCall("book"))
    assert run(script, "book_once")[1]["later"].stop_reason == "called"
    with pytest.raises(ValueError, match="takes no argument"):
        get_policy("book_once:x")


def test_register_policy_rejects_what_is_not_a_policy(registered):
    with pytest.raises(ValueError, match="without a colon"):
        register_policy("a:b", UntilCall("f"))
    with pytest.raises(TypeError, match="StopPolicy or a factory"):
        register_policy("odd", "adaptive")
    registered("broken", lambda arg: "adaptive")
    with pytest.raises(TypeError, match="not a StopPolicy"):
        get_policy("broken")


# --- stop policies on scripted answers --------------------------------------------------------------

SCRIPT = {
    "same": ["[f(x=1)]", "[f(x=1)]", "unused", "unused"],
    "respelled": ["[f(x=1)]", "[f(x=2)]", "[f( x = 2 )]", "[f(x=2)]"],
    "restless": ["a", "b", "c", "d"],
}


def test_adaptive_stops_when_parsed_calls_repeat_and_batches_only_active_items():
    engine, traces, result = run(SCRIPT)
    assert [len(t.rounds) for t in traces.values()] == [2, 3, 4]
    assert traces["same"].stop_reason == "converged" and traces["same"].refinements == 1
    assert traces["respelled"].stop_reason == "converged" and traces["respelled"].final == "[f( x = 2 )]"
    assert traces["restless"].stop_reason == "max_rounds" and traces["restless"].final == "d"
    # One generate call per round, carrying only the items still refining.
    assert engine.calls == [[("same", 0), ("respelled", 0), ("restless", 0)],
                            [("same", 1), ("respelled", 1), ("restless", 1)],
                            [("respelled", 2), ("restless", 2)],
                            [("restless", 3)]]
    assert len(result.round_seconds) == 4
    assert result.predictions() == [{"id": "same", "result": "[f(x=1)]"}, {"id": "respelled", "result": "[f( x = 2 )]"},
                                    {"id": "restless", "result": "d"}]


def test_adaptive_exact_needs_the_same_text():
    _, traces, _ = run(SCRIPT, "adaptive:exact")
    assert traces["same"].stop_reason == "converged"
    assert [r.text for r in traces["respelled"].rounds] == SCRIPT["respelled"]
    assert traces["respelled"].stop_reason == "max_rounds"


def test_adaptive_round_cap():
    engine, traces, _ = run(SCRIPT, max_rounds=1)
    assert traces["restless"].refinements == 1 and traces["restless"].stop_reason == "max_rounds"
    assert traces["same"].stop_reason == "converged"
    assert len(engine.calls) == 2
    _, traces, _ = run(SCRIPT, max_rounds=0)
    assert all(t.refinements == 0 and t.stop_reason == "max_rounds" for t in traces.values())


def test_fixed_runs_exactly_n_rounds_even_when_answers_repeat():
    engine, traces, _ = run(SCRIPT, "fixed:3")
    assert all(len(t.rounds) == 4 and t.stop_reason == "fixed" for t in traces.values())
    assert traces["same"].final == "unused"
    assert [len(c) for c in engine.calls] == [3, 3, 3, 3]
    _, traces, _ = run(SCRIPT, "fixed:1")
    assert all(t.refinements == 1 and t.stop_reason == "fixed" for t in traces.values())


def test_none_is_a_single_pass():
    engine, traces, _ = run(SCRIPT, "none")
    assert engine.calls == [[("same", 0), ("respelled", 0), ("restless", 0)]]
    assert all(t.refinements == 0 and t.stop_reason == "single_pass" for t in traces.values())


def test_broken_answers_compare_by_text_and_text_answers_by_stripped_text():
    a, b = "[f(x=1", "[g(y=2"
    assert parse(a).error == parse(b).error  # same message: comparing messages would stop wrongly
    assert not same_answer(a, b) and same_answer(a, a + "  ")
    assert same_answer("No tool fits.", "  No tool fits.\n") and not same_answer("No tool fits.", "No tool fits!")
    assert same_answer('[f(x=1)]', '[{"name": "f", "arguments": {"x": 1}}]')  # format does not matter
    assert not same_answer("[f(x=1)]", "[f(x=1.0)]")  # types do
    _, traces, _ = run({"broken": [a, b, b, "x"], "prose": ["No tool fits.", " No tool fits.", "x", "x"]})
    assert traces["broken"].refinements == 2 and traces["broken"].stop_reason == "converged"
    assert traces["prose"].refinements == 1 and traces["prose"].stop_reason == "converged"


# --- the guard ----------------------------------------------------------------------------------------

GUARD_SCRIPT = {"breaks": ["[f(x=1)]", "[f(x=", "[f(x=1)]", "[f(x=1)]"],
                "to_text": ["[f(x=1)]", "I need more information.", "[f(x=3)]", "[f(x=3)]"]}


def test_guard_off_keeps_the_broken_answer():
    _, traces, _ = run(GUARD_SCRIPT)
    assert traces["breaks"].rounds[1].answer == "[f(x=" and not traces["breaks"].rounds[1].kept_previous
    assert traces["breaks"].final == "[f(x=1)]" and traces["breaks"].refinements == 3


def test_guard_error_keeps_the_previous_answer_and_adaptive_stops():
    _, traces, _ = run(GUARD_SCRIPT, guard="error")
    t = traces["breaks"]
    assert t.stop_reason == "guard" and t.refinements == 1
    assert t.rounds[1].text == "[f(x=" and t.rounds[1].parsed.error and t.rounds[1].kept_previous
    assert t.final == "[f(x=1)]"
    # A plain-text answer parses (as text): the error guard lets it through.
    assert traces["to_text"].rounds[1].answer == "I need more information."


def test_guard_call_keeps_calls_over_text_and_fixed_goes_on_from_the_kept_answer():
    engine, traces, _ = run(GUARD_SCRIPT, "fixed:2", guard="call")
    t = traces["to_text"]
    assert t.rounds[1].kept_previous and t.rounds[1].answer == "[f(x=1)]" and t.stop_reason == "fixed"
    assert t.final == "[f(x=3)]"
    # Round 2 continues from the kept answer, not from the discarded text.
    round2 = [req for req in engine.requests if req.messages[1]["content"] == "to_text"][2]
    assert [m["content"] for m in round2.messages if m["role"] == "assistant"] == ["[f(x=1)]", "[f(x=1)]"]


# --- checked: refine only answers that do not fit the tool list -------------------------------------------

CHECKED_SCRIPT = {
    "fits": ["[f(x=1)]", "[f(x=2)]", "[f(x=2)]"],                      # valid at once: no refinement round
    "prose": ["Which x do you mean?", "[f(x=2)]", "[f(x=2)]"],       # plain text fits too (a no-call answer)
    "renamed": ["[g(x=1)]", "[f(x=1)]", "[f(x=3)]", "[f(x=3)]"],       # unknown function, then fixed
    "swinging": ["[f(y=1)]", "[f(z=1)]", "[f(y=1)]", "[f(z=1)]"],  # oscillates: stops on the repeat
    "stuck": ["[f()]", "[f( )]", "[f(x=1)]"],                 # repeats itself: converged, still wrong
    "restless": ["[f(x='a')]", "[f(q=1)]", "[f(w=1)]", "[f(v=1)]", "[f(x=1)]"],
}


def test_checked_refines_only_answers_that_do_not_fit_and_says_why():
    engine, traces, _ = run(CHECKED_SCRIPT, "checked")
    assert {q: (t.stop_reason, t.refinements, t.final) for q, t in traces.items()} == {
        "fits": ("checked", 0, "[f(x=1)]"),
        "prose": ("checked", 0, "Which x do you mean?"),
        "renamed": ("checked", 1, "[f(x=1)]"),
        "swinging": ("cycle", 2, "[f(y=1)]"),
        "stuck": ("converged", 1, "[f( )]"),
        "restless": ("max_rounds", 3, "[f(v=1)]"),
    }
    # Round 0 of every item, then only the items whose answer does not fit.
    assert sorted(engine.calls[1]) == [("renamed", 1), ("restless", 1), ("stuck", 1), ("swinging", 1)]
    renamed = traces["renamed"]
    assert renamed.rounds[0].problems == ["no tool named 'g' (tools: f)"] and renamed.rounds[1].problems == []
    # The refine turn carries what the check found, after the usual instruction.
    (req,) = [r for r in engine.requests if r.messages[1]["content"] == "renamed"][1:]
    assert req.messages[-1] == {"role": "user", "content": DEFAULT_REFINE_INSTRUCTION
                                + "\nA check of your answer against the function list found: "
                                  "no tool named 'g' (tools: f)"}
    last = [r for r in engine.requests if r.messages[1]["content"] == "restless"][-1].messages
    assert "x is str \"a\", expected integer" in last[3]["content"]
    assert "no parameter 'q' (known: x); f: required parameter 'x' is missing" not in last[3]["content"]
    assert "f: required parameter 'x' is missing; f: no parameter 'q' (known: x)" in last[5]["content"]


def test_checked_silent_gates_without_feedback_and_adaptive_never_checks():
    engine, traces, _ = run(CHECKED_SCRIPT, "checked:silent")
    assert traces["renamed"].final == "[f(x=1)]" and traces["fits"].refinements == 0
    assert all(m["content"] == DEFAULT_REFINE_INSTRUCTION for r in engine.requests for m in r.messages[2:]
               if m["role"] == "user")
    _, traces, _ = run(CHECKED_SCRIPT)  # the paper's adaptive: refines every answer, no checks
    assert traces["fits"].refinements == 2 and traces["fits"].final == "[f(x=2)]"
    assert traces["fits"].rounds[0].problems is None
    assert traces["swinging"].stop_reason == "max_rounds" and traces["swinging"].final == "[f(z=1)]"


def test_checked_feedback_is_rendered_into_the_prompt_and_round_trips(chatml_tokenizer, tmp_path):
    engine, traces, result = run(CHECKED_SCRIPT, "checked", tokenizer=chatml_tokenizer)
    prompts = [req.prompt for req in engine.requests if where(req)[0] == "renamed"]
    msgs = [{"role": "user", "content": "renamed"}]
    assert prompts[1] == render_prompt(chatml_tokenizer, TOOLS, msgs, ["[g(x=1)]"],
                                       feedback=["no tool named 'g' (tools: f)"])
    assert prompts[1].startswith(prompts[0] + "[g(x=1)]")  # still a continued conversation: the KV is reused
    write_traces(result.traces, tmp_path / "t.jsonl")
    assert [t.to_dict() for t in read_traces(tmp_path / "t.jsonl")] == [t.to_dict() for t in result.traces]


# --- traces, prompts, chunks ---------------------------------------------------------------------------

def test_traces_record_every_round_and_round_trip(tmp_path):
    _, traces, result = run(SCRIPT)
    t = traces["respelled"]
    assert [r.index for r in t.rounds] == [0, 1, 2]
    assert [r.text for r in t.rounds] == SCRIPT["respelled"][:3]
    assert t.rounds[1].parsed.calls == [ToolCall("f", {"x": 2})]
    for r in t.rounds:
        assert (r.prompt_tokens, r.cached_tokens, r.completion_tokens) == tuple(usage(r.index, r.text).values())
        assert r.finish_reason == "stop"
    assert t.tokens() == {"prompt": 100 + 11 + 12, "cached": 100 + 200, "completion": 8 + 8 + 12}
    assert t.tokens(0) == {"prompt": 100, "cached": 0, "completion": 8}
    assert [t.answer_after(r) for r in range(5)] == ["[f(x=1)]", "[f(x=2)]", "[f( x = 2 )]", "[f( x = 2 )]",
                                                     "[f( x = 2 )]"]
    write_traces(result.traces, tmp_path / "t.jsonl")
    again = read_traces(tmp_path / "t.jsonl")
    assert [x.to_dict() for x in again] == [x.to_dict() for x in result.traces]
    row = json.loads((tmp_path / "t.jsonl").read_text().splitlines()[1])
    assert row["stop_reason"] == "converged" and row["rounds"][1]["parsed"]["calls"] == [{"name": "f", "arguments": {"x": 2}}]
    write_predictions(result.traces, tmp_path / "p.jsonl")
    from toolace_r.evaluation import load_predictions

    assert load_predictions(tmp_path / "p.jsonl") == {"same": "[f(x=1)]", "respelled": "[f( x = 2 )]", "restless": "d"}
    (tmp_path / "bad.jsonl").write_text('{"id": "x"}\n')
    with pytest.raises(ValueError, match="bad.jsonl:1: not a refinement trace"):
        read_traces(tmp_path / "bad.jsonl")


def test_rounds_are_rendered_by_prompts_as_a_continued_conversation(chatml_tokenizer):
    engine, traces, _ = run(SCRIPT, tokenizer=chatml_tokenizer)
    assert traces["respelled"].refinements == 2
    prompts = [req.prompt for req in engine.requests if where(req)[0] == "respelled"]
    answers = SCRIPT["respelled"]
    msgs = [{"role": "user", "content": "respelled"}]
    for r, prompt in enumerate(prompts):
        assert prompt == render_prompt(chatml_tokenizer, TOOLS, msgs, answers[:r])
    suffix = refine_suffix(chatml_tokenizer)
    assert prompts[1] == prompts[0] + answers[0] + suffix  # the prefix the engine's KV cache reuses


def test_without_a_tokenizer_requests_carry_chat_messages():
    engine, _, _ = run({"q": ["[f(x=1)]", "[f(x=1)]"]})
    assert engine.requests[1].prompt is None
    assert engine.requests[1].messages == build_messages(TOOLS, [{"role": "user", "content": "q"}], ["[f(x=1)]"])


def test_an_engine_with_the_protocol_defaults_gets_chat_messages_and_no_context_stop():
    class Bare(Engine):  # only generate: tokenizer and max_context come from the base class
        def generate(self, requests, progress=False):
            return [GenerationResult([Completion("[f(x=1)]", [], "stop")]) for _ in requests]

    engine = Bare()
    assert engine.tokenizer is None and engine.max_context is None
    (trace,) = refine([conv("q")], engine).traces
    assert trace.stop_reason == "converged" and trace.refinements == 1


def test_chunks_take_a_few_items_through_every_round():
    script = {f"q{i}": ["a", "a" if i % 2 else "b", "b", "b"] for i in range(5)}
    engine, traces, _ = run(script, chunk_size=2)
    assert [[q for q, _ in c] for c in engine.calls] == [
        ["q0", "q1"], ["q0", "q1"], ["q0"],
        ["q2", "q3"], ["q2", "q3"], ["q2"],
        ["q4"], ["q4"], ["q4"],
    ]
    assert [t.refinements for t in traces.values()] == [2, 1, 2, 1, 2]


def test_first_answers_replace_round_zero_and_examples_work_as_items():
    items = [Example(q, [{"role": "user", "content": q}], TOOLS, Gold("no_call")) for q in SCRIPT]
    engine = ScriptedEngine(SCRIPT)
    result = refine(items, engine, RefineConfig(), first_answers=["[f(x=1)]", "[f(x=9)]", "z"])
    assert engine.calls[0] == [("same", 1), ("respelled", 1), ("restless", 1)]
    t = {x.id: x for x in result.traces}
    assert t["same"].rounds[0].text == "[f(x=1)]" and t["same"].rounds[0].prompt_tokens == 0
    assert t["same"].stop_reason == "converged" and t["respelled"].refinements == 2
    with pytest.raises(ValueError, match="first_answers has 1 entries for 3 items"):
        refine(items, engine, first_answers=["x"])


def test_items_whose_next_prompt_would_not_fit_stop_for_context(chatml_tokenizer):
    q = "short"
    first = render_prompt(chatml_tokenizer, TOOLS, [{"role": "user", "content": q}])
    n0 = len(chatml_tokenizer(first, add_special_tokens=False)["input_ids"])
    engine = ScriptedEngine({q: ["x" * 40, "y", "y"]}, chatml_tokenizer, max_context=n0 + 60)
    (trace,) = refine([conv(q)], engine, RefineConfig(refine=SamplingParams(max_new_tokens=8))).traces
    assert trace.refinements == 0 and trace.stop_reason == "context" and len(engine.calls) == 1


# --- the real hf engine on the tiny random model ----------------------------------------------------------

def test_refine_with_the_hf_engine_reuses_the_previous_round(tiny_model):
    from toolace_r.engines import get_engine

    model, tokenizer = tiny_model
    engine = get_engine("hf", model=model, tokenizer=tokenizer, batch_size=4)
    params = SamplingParams(max_new_tokens=6)
    cfg = RefineConfig(policy="fixed:2", round0=params, refine=params)
    result = refine([conv("hello"), conv("add one")], engine, cfg)
    for t in result.traces:
        assert len(t.rounds) == 3 and t.stop_reason == "fixed"
        for r in t.rounds:
            assert 1 <= r.completion_tokens <= 6 and r.finish_reason in ("stop", "length")
        # Round r's prompt extends round r-1's: most of it comes from the prefix cache.
        assert all(r.cached_tokens > r.prompt_tokens for r in t.rounds[1:])
    # Greedy and deterministic: the same run gives the same traces.
    again = refine([conv("hello"), conv("add one")], get_engine("hf", model=model, tokenizer=tokenizer), cfg)
    assert [t.final for t in again.traces] == [t.final for t in result.traces]


# --- the command line --------------------------------------------------------------------------------------

def test_cli_refine_one_query_shows_every_round(tiny_model_dir, tmp_path, capsys):
    tools = tmp_path / "tools.json"
    tools.write_text(json.dumps([TOOL]))
    code = main(["refine", "--model", str(tiny_model_dir), "--tools", str(tools), "What is f of 2?",
                 "--refine", "fixed:1", "--max-new-tokens", "4"])
    assert code == 0
    out = capsys.readouterr().out
    assert "round 0  (prefilled" in out and "round 1  (prefilled" in out and "round 2" not in out
    assert "stopped after 1 refinement round(s): fixed" in out


def test_cli_refine_data_writes_predictions_and_traces(tiny_model_dir, tmp_path, capsys):
    fixtures = __import__("pathlib").Path(__file__).parent / "fixtures" / "bfcl"
    out = tmp_path / "preds.jsonl"
    code = main(["refine", "--model", str(tiny_model_dir), "--data", f"bfcl:simple_python,parallel@{fixtures}",
                 "--out", str(out), "--refine", "none", "--max-new-tokens", "3"])
    assert code == 0
    preds = [json.loads(line) for line in out.read_text().splitlines()]
    assert [p["id"] for p in preds] == ["simple_python_0", "simple_python_1", "parallel_0"]
    traces = read_traces(tmp_path / "preds.traces.jsonl")
    assert [t.final for t in traces] == [p["result"] for p in preds]
    assert all(isinstance(t, Trace) and t.stop_reason == "single_pass" for t in traces)
    assert "3 examples" in capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--tools", "t.json"], "give --tools TOOLS.json"),
    (["--data", "bfcl:parallel"], "--data needs --out"),
    (["--tools", "[]", "q", "--refine", "sometimes"], "unknown stop policy 'sometimes'"),
])
def test_cli_refine_user_errors(argv, message, capsys):
    assert main(["refine", "--model", "nowhere", *argv]) == 2
    assert message in capsys.readouterr().err
