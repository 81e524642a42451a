"""BFCL multi-turn inference: every item's conversation runs turn by turn and step by step against its
own simulated API state, with one engine call per step over all items waiting for the model.

    result = run_multi_turn(examples, engine, RefineConfig(policy="none"))
    result.trajectories[0].calls()     # turns[t][s]: the calls executed at step s of turn t

The loop is BFCL's `inference_multi_turn_prompting` / `_FC` (bfcl_eval/model_handler/base_handler.py):
per user turn the turn's messages are appended, then the model steps: an answer that decodes to calls
is executed (`MultiTurnState.execute`, the only way a call touches state) and its results come back as
`tool` messages; an answer that does not decode, or decodes to no call, ends the turn. A turn that runs
past `max_steps` executed steps (BFCL's MAXIMUM_STEP_LIMIT, 20) force-quits the item: its later turns
never run, so BFCL's checker fails it. At a miss_func turn the held-out tools come back as BFCL does:
in a user message that lists them (pythonic, as its prompting handlers), or added to the template's
tool list (native, as its FC handlers), with BFCL's own sentence.

Two ideas:
- A step is one `refine()` call over the items that wait for the model, so each step's calls are
  refined under the run's stop policy before they are executed, exactly as a single-turn answer is
  (round 0, then refine turns continuing the conversation), and batching, the context stop and the
  round cap are the refine loop's.
- The conversation only grows: the next step's prompt is this step's prompt, its final answer (as the
  assistant message prompts.py shows answers in) and the tool results, so the engine's prefix cache
  reuses the KV of every earlier step. A refine exchange is not kept in the history (a served model
  returns only its final answer, and training data holds clean histories): after a refined step the
  reuse stops where the refine turn began, and starts again from there.

Decoding is what the checker executes: pythonic answers with BFCL's own multi-turn decoding
(`multi_turn.decode_step`), native ones with the run's parser; prose that is no call syntax ends a
turn as "answered", call syntax that does not decode as "decode_error". Trajectories are JSON-ready (`to_dict`);
multi_turn_report.py turns them into figures and report sections.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from toolace_r.calls import ParseResult, ToolCall, parse
from toolace_r.engines.base import Engine
from toolace_r.jsonvalues import plain
from toolace_r.progress import progress_bar
from toolace_r.prompts import answer_format, render_prompt, tools_json
from toolace_r.refine.config import RefineConfig
from toolace_r.refine.loop import Conversation, refine
from toolace_r.refine.traces import Trace
from toolace_r.tools import normalize_tools

# BFCL's MAXIMUM_STEP_LIMIT (bfcl_eval/constants/default_prompts.py): a turn force-quits once more
# steps than this have executed calls.
MAX_STEPS = 20
# BFCL's DEFAULT_USER_PROMPT_FOR_ADDITIONAL_FUNCTION_FC; the prompting form puts the tool list before it.
ADDITIONAL_FUNCTION_PROMPT = "I have updated some more functions you can choose from. What about now?"
# Why a turn ended, and why an item stopped.
TURN_ENDS = {
    "answered": "the model answered without a call (BFCL: empty decoded response)",
    "decode_error": "the answer did not decode as calls (BFCL: decode failure, next turn)",
    "step_cap": "more than max_steps steps executed calls in the turn (BFCL force-quits the item)",
    "context": "the next step's prompt and answer would not fit the model's context",
}
ITEM_STOPS = ("completed", "step_cap", "context")
GROUP_SIZE = 4  # items run to their end together (run_multi_turn)


def is_multi_turn(example: Any) -> bool:
    gold = getattr(example, "gold", None)
    return getattr(gold, "kind", None) == "multi_turn"


# --- what a run records ----------------------------------------------------------------------------

@dataclass
class Step:
    """One model step: its refine trace (round 0 = the first answer), what the final answer decoded to
    and what executing it returned. `calls` is None when the answer is no call (the turn ends there)."""

    index: int
    trace: Trace
    calls: list[ToolCall] | None
    results: list[str] = field(default_factory=list)
    decode_error: str | None = None

    @property
    def text(self) -> str:
        return self.trace.final

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.index, "text": self.text, "decode_error": self.decode_error,
                "calls": None if self.calls is None else [plain(c.to_dict()) for c in self.calls],
                "results": list(self.results), "stop_reason": self.trace.stop_reason,
                "refinements": self.trace.refinements, "rounds": [r.to_dict() for r in self.trace.rounds]}


@dataclass
class Turn:
    """One user turn: the messages that opened it, the held-out tools it added, its steps, why it ended."""

    index: int
    messages: list[dict[str, Any]]
    added_tools: list[str] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    end: str | None = None

    def calls(self) -> list[list[ToolCall]]:
        """The calls of each step that executed some (what BFCL's checker decodes from the turn)."""
        return [list(s.calls) for s in self.steps if s.calls]

    def to_dict(self) -> dict[str, Any]:
        return {"turn": self.index, "messages": self.messages, "added_tools": self.added_tools,
                "end": self.end, "steps": [s.to_dict() for s in self.steps]}


@dataclass
class Trajectory:
    """One item's whole run; `stop_reason` is one of ITEM_STOPS."""

    id: str
    category: str
    turns: list[Turn] = field(default_factory=list)
    stop_reason: str = "completed"

    def calls(self) -> list[list[list[ToolCall]]]:
        """turns[t][s] = the calls executed at step s of turn t: what `check_multi_turn` scores. A
        force-quit item holds fewer turns than its gold, which BFCL's checker fails."""
        return [t.calls() for t in self.turns]

    def responses(self) -> list[list[str]]:
        """The model's final text per step, per turn: BFCL's multi-turn result shape."""
        return [[s.text for s in t.steps] for t in self.turns]

    @property
    def steps(self) -> list[Step]:
        return [s for t in self.turns for s in t.steps]

    def tokens(self, first_round_only: bool = False) -> dict[str, int]:
        """Tokens prefilled, reused and generated over every step (round 0 of each step only, if asked)."""
        out = {"prompt": 0, "cached": 0, "completion": 0}
        for s in self.steps:
            t = s.trace.tokens(0 if first_round_only else None)
            for k in out:
                out[k] += t[k]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "stop_reason": self.stop_reason,
                "turns": [t.to_dict() for t in self.turns], "tokens": self.tokens()}


@dataclass
class MultiTurnResult:
    trajectories: list[Trajectory]
    config: RefineConfig
    max_steps: int = MAX_STEPS
    seconds: float = 0.0
    engine_calls: int = 0  # refine() calls (one per step wave of a group)
    answer_format: str = "pythonic"
    # The engine's prefix-cache counters over the run (hf: lookups, hits), when it has them.
    prefix_cache: dict[str, int] | None = None

    def by_id(self) -> dict[str, Trajectory]:
        return {t.id: t for t in self.trajectories}

    def predictions(self) -> list[dict[str, Any]]:
        """BFCL-shaped result rows: {"id", "result": [[step text, ...] per turn]}."""
        return [{"id": t.id, "result": t.responses()} for t in self.trajectories]


# --- the loop ------------------------------------------------------------------------------------

StateFactory = Callable[[Any], Any]


def default_state(example: Any) -> Any:
    from toolace_r.evaluation.multi_turn import MultiTurnState

    return MultiTurnState.for_example(example)


def run_multi_turn(
    examples: Sequence[Any],
    engine: Engine,
    config: RefineConfig | None = None,
    *,
    tokenizer: Any = None,
    max_steps: int = MAX_STEPS,
    group_size: int = GROUP_SIZE,
    state_factory: StateFactory | None = None,
    progress: bool = False,
) -> MultiTurnResult:
    """Run every multi-turn example to its end (see the module docstring); one Trajectory per item, in order.

    config: the refine settings of every step (policy "none": one answer per step).
    tokenizer: renders prompts (default: the engine's). state_factory: example -> an object with
    `execute(calls) -> list[str]` (default `MultiTurnState.for_example`).
    group_size: items run to their end together, then the next ones: each step reuses the KV of the
    item's previous step only while the engine's prefix cache holds every conversation of the group
    (a multi-turn prompt is thousands of tokens: SmolLM2 keeps ~230 MB of KV for 5,000 tokens, so the hf
    engine's default 1 GiB cache holds four), and a group's steps are batched together.
    """
    cfg = config or RefineConfig(policy="none")
    if max_steps < 0:
        raise ValueError(f"max_steps must be >= 0, got {max_steps}")
    if group_size < 1:
        raise ValueError(f"group_size must be >= 1, got {group_size}")
    tok = tokenizer if tokenizer is not None else engine.tokenizer
    fmt = answer_format(tok, cfg.prompt)
    make_state = state_factory or default_state
    bar = progress_bar(progress, len(examples), "multi-turn")
    start, calls = time.perf_counter(), 0
    before = _cache_counters(engine)
    trajectories: list[Trajectory] = []
    try:
        for lo in range(0, len(examples), group_size):
            items = [_Item(ex, make_state(ex), fmt, max_steps) for ex in examples[lo: lo + group_size]]
            calls += _run_group(items, engine, tok, cfg, bar, calls)
            trajectories += [it.trajectory for it in items]
    finally:
        if bar is not None:
            bar.close()
    after = _cache_counters(engine)
    counters = None if before is None or after is None else {k: after[k] - before[k] for k in after}
    return MultiTurnResult(trajectories, cfg, max_steps, time.perf_counter() - start, calls, fmt.name, counters)


def _cache_counters(engine: Any) -> dict[str, int] | None:
    cache = getattr(getattr(engine, "inner", engine), "prefix_cache", None)
    if cache is None or not hasattr(cache, "hits"):
        return None
    return {"lookups": int(cache.lookups), "hits": int(cache.hits)}


def _run_group(items: list["_Item"], engine: Engine, tok: Any, cfg: RefineConfig, bar, waves: int) -> int:
    """Step waves over the group's waiting items until every one is done; returns the waves run."""
    start = waves
    while True:
        waiting = [it for it in items if not it.done]
        if not waiting:
            return waves - start
        waiting = _fitting(waiting, engine, tok, cfg)
        if not waiting:
            continue
        if bar is not None:
            bar.set_postfix_str(f"step wave {waves}: {len(waiting)} item(s) waiting")
        result = refine([it.conversation() for it in waiting], engine, cfg, tokenizer=tok)
        waves += 1
        for it, trace in zip(waiting, result.traces):
            it.take(trace)
            if it.done and bar is not None:
                bar.update(1)


def _fitting(waiting: list["_Item"], engine: Engine, tokenizer: Any, cfg: RefineConfig) -> list["_Item"]:
    """Stop items whose next prompt plus its answer would not fit the model's context (the refine loop
    checks refinement rounds; round 0 of a step is checked here, since histories grow)."""
    limit = engine.max_context
    if not limit or tokenizer is None:
        return waiting
    keep = []
    for it in waiting:
        conv = it.conversation()
        prompt = render_prompt(tokenizer, conv.tools, conv.messages, (), cfg.prompt)
        if len(tokenizer(prompt, add_special_tokens=False)["input_ids"]) + cfg.round0.max_new_tokens > limit:
            it.stop("context")
        else:
            keep.append(it)
    return keep


class _Item:
    """One example's run in progress: its state, conversation, turn and step."""

    def __init__(self, example: Any, state: Any, fmt: Any, max_steps: int) -> None:
        self.example, self.state, self.fmt, self.max_steps = example, state, fmt, max_steps
        meta = getattr(example, "metadata", None) or {}
        turns = meta.get("turns")
        self.turn_messages: list[list[dict[str, Any]]] = [list(t) for t in turns] if turns is not None \
            else [list(example.messages)]
        self.missed = {str(k): list(v) for k, v in (meta.get("missed_function") or {}).items()}
        held = _held_out(meta.get("held_out_tools"))
        self.held_out = held
        # Tools the model is shown from the start: the example's, less any held out for a later turn.
        hidden = {n for names in self.missed.values() for n in names}
        self.tools = [t for t in example.tools if _tool_name(t) not in hidden]
        self.later_tools: list[Any] = []
        self.history: list[dict[str, Any]] = []
        self.trajectory = Trajectory(str(example.id), str(getattr(example, "category", "")))
        self.done = False
        self._open(0)

    # the conversation the next step answers
    def conversation(self) -> Conversation:
        return Conversation(self.trajectory.id, list(self.tools), list(self.history), list(self.later_tools))

    def _open(self, index: int) -> None:
        if index >= len(self.turn_messages):
            self.done = True
            return
        messages = [dict(m) for m in self.turn_messages[index]]
        added: list[str] = []
        if str(index) in self.missed:
            tools = [self._held_tool(name) for name in self.missed[str(index)]]
            added = [_tool_name(t) for t in tools]
            if self.fmt.native:  # BFCL's FC handlers: the tools join the tool list
                self.tools += tools
                text = ADDITIONAL_FUNCTION_PROMPT
            else:  # its prompting handlers: the tools are listed in the user message
                self.later_tools += tools
                text = tools_json(tools) + "\n" + ADDITIONAL_FUNCTION_PROMPT
            messages = [{"role": "user", "content": text}, *messages]
        self.history += messages
        self.trajectory.turns.append(Turn(index, messages, added))

    def _held_tool(self, name: str) -> Any:
        if name not in self.held_out:
            raise ValueError(f"{self.trajectory.id}: missed_function names {name!r}, which held_out_tools lacks")
        return self.held_out[name]

    def take(self, trace: Trace) -> None:
        """Record a step's trace, execute its calls, and move on (next step, next turn, or done)."""
        turn = self.trajectory.turns[-1]
        text = trace.final
        parsed = self._decode(text)
        self.history.append(self.fmt.assistant_message(text))
        if not (parsed.is_call and parsed.calls):
            turn.steps.append(Step(len(turn.steps), trace, None, [], parsed.error))
            turn.end = "decode_error" if parsed.error is not None else "answered"
            self._open(turn.index + 1)
            return
        calls = list(parsed.calls)
        results = [str(r) for r in self.state.execute(calls)]
        turn.steps.append(Step(len(turn.steps), trace, calls, results))
        for call, result in zip(calls, results):
            self.history.append({"role": "tool", "name": call.name, "content": result})
        if len(turn.steps) > self.max_steps:
            turn.end = "step_cap"
            self.stop("step_cap")

    def stop(self, reason: str) -> None:
        turn = self.trajectory.turns[-1]
        if turn.end is None:
            turn.end = reason
        self.trajectory.stop_reason = reason
        self.done = True

    def _decode(self, text: str) -> ParseResult:
        """The answer's calls; an error only for text in call syntax that does not decode (prose, which
        BFCL's decoder also rejects, is a no-call answer: the turn ends either way)."""
        from toolace_r.evaluation.multi_turn import decode_step, step_counts

        if self.fmt.native:
            decoded = parse(text, self.fmt.parser)
            if decoded.is_call and decoded.calls and not step_counts(decoded.calls):
                return ParseResult(format=decoded.format, error="a call has an argument BFCL cannot execute")
            return decoded
        decoded = decode_step(text)
        if decoded.error is not None and parse(text, "auto").format == "text":
            return ParseResult(format="text", text=text.strip())
        return decoded


def as_turns(answer: Any, fmt: str | None = None) -> list[list[list[ToolCall]]]:
    """What `check_multi_turn` scores, from a Trajectory, its `calls()`, or BFCL's result shape (step texts
    per turn, decoded as the loop decodes them: `fmt` None or "pythonic" with BFCL's decoding, else that
    parser). Anything else is no turns at all, which the checker fails as force-terminated."""
    from toolace_r.evaluation.multi_turn import decode_step, decode_trajectory, step_counts

    if isinstance(answer, Trajectory):
        return answer.calls()
    if not isinstance(answer, list) or not all(isinstance(turn, list) for turn in answer):
        return []
    pythonic = fmt in (None, "pythonic", "bfcl")
    if pythonic and all(isinstance(step, str) for turn in answer for step in turn):
        return decode_trajectory(answer)  # BFCL's result shape, decoded as BFCL's checker does
    turns = []
    for turn in answer:
        steps = []
        for step in turn:
            if isinstance(step, str):
                d = decode_step(step) if pythonic else parse(step, fmt)
                steps.append(list(d.calls) if d.is_call and d.calls and step_counts(d.calls) else [])
            elif isinstance(step, list) and all(isinstance(c, ToolCall) for c in step):
                steps.append(list(step))
            else:
                steps.append([])
        turns.append(steps)
    return turns


def _tool_name(tool: Any) -> str:
    return str(tool.get("name") if isinstance(tool, dict) else getattr(tool, "name", ""))


def _held_out(value: Any) -> dict[str, Any]:
    """metadata["held_out_tools"] ({turn: [BFCL docs]}, or a plain list) as Tools by name."""
    if not value:
        return {}
    tools = [t for group in value.values() for t in group] if isinstance(value, dict) else list(value)
    return {t.name: t for t in normalize_tools(tools)}
