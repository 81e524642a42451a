"""BFCL multi-turn scoring: a whole trajectory is right when executing it leaves BFCL's verdict "valid".

`check_multi_turn(example, turns)` takes the calls a model made, `turns[t][s]` being the calls of
step s of user turn t, replays them on fresh instances of the simulated APIs and the ground truth on
others (multi_turn_exec.py), and applies BFCL's rules turn by turn (docs/bfcl_multi_turn.md):

1. as many turns as the ground truth, else `force_terminated`;
2. steps with no call are dropped (BFCL's decoder drops them, and steps it cannot decode);
3. per turn: the model's steps run, then the turn's ground truth; where the ground truth has calls,
   - the model has none this turn -> `empty_turn`;
   - some instance differs from its ground-truth twin in a public attribute -> `state_mismatch`;
   - some ground-truth result (a string, counted with multiplicity) is not among the results of
     all the model's calls so far, this turn and earlier ones -> `response_mismatch`;
   a turn whose ground truth is empty (the request cannot be done) is not checked, but its calls
   still run, so that later turns see their effect.

`decode_step(text)` decodes one model answer as BFCL's multi-turn decoder does; `decode_trajectory`
a whole BFCL result (per turn, the text of each step).
"""
from __future__ import annotations

import ast
import inspect
from typing import Any

from toolace_r.calls import ParseResult, ToolCall, decode_bfcl
from toolace_r.data.bfcl_multi_turn import ground_truth
from toolace_r.evaluation.checker import Verdict
from toolace_r.evaluation.multi_turn_exec import MultiTurnState, load_class, render_call

__all__ = ["MULTI_TURN_ERRORS", "MultiTurnState", "check_multi_turn", "decode_step", "decode_trajectory",
           "gold_calls", "step_counts"]

# Verdict.error_type -> BFCL's error_type.
MULTI_TURN_ERRORS = {
    "force_terminated": "multi_turn:force_terminated",
    "empty_turn": "multi_turn:empty_turn_model_response",
    "state_mismatch": "multi_turn:instance_state_mismatch",
    "response_mismatch": "multi_turn:execution_response_mismatch",
}


def decode_step(text: str) -> ParseResult:
    """One model answer -> its calls, as BFCL's multi-turn decoding reads it.

    `result.calls` is the list of calls (empty for "[]": BFCL counts no step then); `result.error`
    says why the text is not calls (BFCL skips such a step: the model is chatting or broken). A
    call BFCL's decoder cannot turn back into text (an argument `{}`) fails the whole step too. An
    answer past `calls.MAX_INPUT_CHARS` (64 KiB) is an error here; BFCL would decode it.
    """
    result = decode_bfcl(text)
    if result.error is not None:
        return result
    for call in result.calls or []:
        if not step_renders(call):
            return ParseResult(format="pythonic", error=f"call {call.name!r} cannot be written as BFCL's execution "
                                                        "text (an argument {} does that)")
    return result


def decode_trajectory(result: list[list[str]]) -> list[list[list[ToolCall]]]:
    """A BFCL multi-turn result (per turn, the raw text of every step) -> `check_multi_turn`'s input:
    each step decoded by `decode_step`, the steps BFCL drops (undecodable, no call) left out."""
    turns = []
    for steps in result:
        decoded = (decode_step(text) for text in steps)
        turns.append([r.calls for r in decoded if r.error is None and r.calls])
    return turns


def step_renders(call: ToolCall) -> bool:
    try:
        render_call(call)
    except Exception:
        return False
    return True


def step_counts(calls: list[ToolCall] | None) -> bool:
    """Whether BFCL keeps a step with these calls: at least one, each renderable."""
    return bool(calls) and all(step_renders(c) for c in calls)


def check_multi_turn(example: Any, turns: list[list[list[ToolCall]]], *, model_name: str = "toolace_r") -> Verdict:
    """BFCL's multi-turn verdict for a trajectory (see the module docstring)."""
    truth = ground_truth(example)
    if len(turns) != len(truth):
        return Verdict(False, "force_terminated",
                       f"{len(turns)} turns answered, the conversation has {len(truth)}",
                       bfcl_error_type=MULTI_TURN_ERRORS["force_terminated"])
    model = MultiTurnState.for_example(example, model_name=f"{model_name}_eval")
    gold = MultiTurnState.for_example(example, model_name=f"{model_name}_ground_truth_eval")
    all_results: list[str] = []
    for t, (steps, gold_calls) in enumerate(zip(turns, truth)):
        kept = [s for s in steps if step_counts(s)]
        for step in kept:
            all_results.extend(model.execute(step))
        gold_results = gold.execute_source(gold_calls)
        if not gold_calls:
            continue
        if not kept:
            return _fail("empty_turn", f"turn {t}: no call, where the ground truth makes {len(gold_calls)}")
        mismatch = _state_difference(model, gold)
        if mismatch is not None:
            class_name, attrs = mismatch
            return _fail("state_mismatch", f"turn {t}: {class_name} differs from the ground truth in "
                                           f"{', '.join(attrs)}")
        missing = _missing(gold_results, all_results)
        if missing:
            return _fail("response_mismatch", f"turn {t}: {len(missing)} ground-truth result(s) not among the "
                                              f"model's, e.g. {missing[0][:200]!r}")
    return Verdict(True)


_ABSENT = object()


def _fail(kind: str, message: str) -> Verdict:
    return Verdict(False, kind, message, bfcl_error_type=MULTI_TURN_ERRORS[kind])


def _state_difference(model: MultiTurnState, gold: MultiTurnState) -> tuple[str, list[str]] | None:
    """The first class (in ground-truth order) whose public attributes differ, with those attributes."""
    for class_name, gold_instance in gold.instances.items():
        model_instance = model.instances[class_name]
        # An attribute only the ground truth's calls created is a difference (BFCL's getattr would raise).
        differing = [attr for attr in vars(gold_instance) if not attr.startswith("_")
                     and getattr(model_instance, attr, _ABSENT) != getattr(gold_instance, attr)]
        if differing:
            return class_name, differing
    return None


def _missing(expected: list[str], found: list[str]) -> list[str]:
    """Items of `expected` not matched one for one by items of `found`, in any order."""
    pool: dict[str, int] = {}
    for item in found:
        pool[item] = pool.get(item, 0) + 1
    missing = []
    for item in expected:
        if pool.get(item, 0) > 0:
            pool[item] -= 1
        else:
            missing.append(item)
    return missing


def gold_calls(example: Any) -> list[list[ToolCall]]:
    """The ground truth as keyword-only ToolCalls, one list per turn (training targets, prompts).

    The answer files use positional arguments in places (`sort('final_report.pdf')`); they are named
    here from the method's signature, which is what a model must write, since BFCL's decoder keeps
    only keyword arguments. Values are read with `ast.literal_eval` (literals only).
    """
    classes = [load_class(c) for c in example.metadata["involved_classes"]]
    out = []
    for turn in ground_truth(example):
        out.append([_keyword_call(text, classes) for text in turn])
    return out


def _keyword_call(text: str, classes: list[type]) -> ToolCall:
    node = ast.parse(text.strip(), mode="eval").body
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)):
        raise ValueError(f"not a plain call: {text[:80]!r}")
    name = node.func.id
    args = {kw.arg: ast.literal_eval(kw.value) for kw in node.keywords if kw.arg is not None}
    if node.args:
        owner = next((c for c in reversed(classes) if callable(getattr(c, name, None))), None)
        if owner is None:
            raise ValueError(f"{name!r} is no method of {', '.join(c.__name__ for c in classes)}")
        params = [p for p in inspect.signature(getattr(owner, name)).parameters.values()][1:]  # without self
        for param, value in zip(params, node.args):
            args[param.name] = ast.literal_eval(value)
    return ToolCall(name, args)
