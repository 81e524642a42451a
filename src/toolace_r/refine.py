"""Adaptive self-refinement at inference: answer, then refine the answer until it stops changing.

    result = refine(examples, engine, RefineConfig(policy="adaptive", max_rounds=3))
    for trace in result.traces: print(trace.id, trace.stop_reason, trace.final)

Round 0 is the model's first answer. Each refinement round continues the conversation with that
answer and the refine instruction (prompts.render_prompt with `previous_answers`, the rendering the
training corpus uses), so a round's prompt extends the previous one and the hf engine's prefix cache
reuses its KV. Two ideas:

- The stop decision is a *policy* chosen by name (`STOP_POLICIES`): `adaptive` stops when the
  refined answer equals the previous one (parsed calls compared canonically; `adaptive:exact`
  compares the text), `fixed:N` runs exactly N refinement rounds, `none` keeps round 0. Every
  policy obeys the round cap `max_rounds`; `fixed:N` with N above the cap is a config error rather
  than a silent truncation. `checked` (ours, beyond the paper) refines only answers that do not fit
  their tool list (`schema_check.answer_problems`: calls that fail the schema, or broken call syntax; plain
  text fits), tells the model in the refine turn what the check found, and also stops when an answer
  repeats any earlier one (an oscillation); `checked:silent` does the same without telling.
- Rounds run over *chunks* of items (all rounds of one chunk, then the next chunk): the prefix cache
  holds a bounded number of finished sequences, and a chunk keeps round r-1's KV in it for round r.

Each item keeps a `Trace`: every round's raw text, what it parsed to, the tokens prefilled, reused and
generated, whether the guard kept the previous answer, and why the item stopped. The optional guard
keeps the previous answer when a refined one does not parse (`guard="error"`: a decode error;
`guard="call"`: anything but calls, once the previous answer was calls); adaptive then stops.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from toolace_r.calls import ParseResult, ToolCall, canonical_answer, parse, render
from toolace_r.engines.base import Engine, GenerationRequest, SamplingParams
from toolace_r.jsonvalues import plain
from toolace_r.progress import progress_bar
from toolace_r.prompts import PromptConfig, build_messages, render_prompt
from toolace_r.schema_check import answer_problems, feedback_text

GUARDS = ("off", "error", "call")


# --- stop policies -------------------------------------------------------------------------------

@dataclass(frozen=True)
class StopPolicy:
    """When to stop refining one item.

    name: the key it was built from ("adaptive", "fixed:3", ...).
    rounds: refinement rounds to run at most (None: up to the round cap).
    compare: "canonical" or "exact" to stop as soon as an answer repeats; None never stops early.
    """

    name: str
    rounds: int | None
    compare: str | None
    # [ours] schema-checked refinement: an answer that fits its tool list ends the item (`check`), the
    # refine turn says what the check found (`feedback`), and an answer that repeats any earlier one
    # ends it (`cycle`: A -> B -> A stops at A instead of oscillating to the cap).
    check: bool = False
    feedback: bool = False
    cycle: bool = False

    def refinements(self, max_rounds: int) -> int:
        """Refinement rounds this policy may run under the cap."""
        return max_rounds if self.rounds is None else self.rounds


def _adaptive(arg: str | None) -> StopPolicy:
    if arg in (None, "", "canonical"):
        return StopPolicy("adaptive", None, "canonical")
    if arg == "exact":
        return StopPolicy("adaptive:exact", None, "exact")
    raise ValueError(f"unknown adaptive comparison {arg!r}; known: adaptive, adaptive:exact")


def _fixed(arg: str | None) -> StopPolicy:
    try:
        n = int(arg or "")
    except ValueError:
        raise ValueError(f"fixed needs a number of refinement rounds, e.g. fixed:3 (got {arg!r})") from None
    if n < 0:
        raise ValueError(f"fixed:N needs N >= 0, got {n}")
    return StopPolicy(f"fixed:{n}", n, None)


def _none(arg: str | None) -> StopPolicy:
    if arg:
        raise ValueError(f"the none policy takes no argument (got none:{arg})")
    return StopPolicy("none", 0, None)


def _checked(arg: str | None) -> StopPolicy:
    if arg in (None, ""):
        return StopPolicy("checked", None, "canonical", check=True, feedback=True, cycle=True)
    if arg == "silent":
        return StopPolicy("checked:silent", None, "canonical", check=True, feedback=False, cycle=True)
    raise ValueError(f"unknown checked variant {arg!r}; known: checked, checked:silent")


# key (before the colon) -> (factory taking the text after the colon, how the key is written)
STOP_POLICIES: dict[str, tuple[Callable[[str | None], StopPolicy], tuple[str, ...]]] = {
    "adaptive": (_adaptive, ("adaptive", "adaptive:exact")),
    "checked": (_checked, ("checked", "checked:silent")),
    "fixed": (_fixed, ("fixed:N",)),
    "none": (_none, ("none",)),
}


def register_policy(key: str, factory: Callable[[str | None], StopPolicy], spellings: Sequence[str] = ()) -> None:
    """Add a stop policy: `factory(arg)` gets the text after "key:" (None without a colon)."""
    STOP_POLICIES[key] = (factory, tuple(spellings) or (key,))


def known_policies() -> list[str]:
    return [s for _, spellings in STOP_POLICIES.values() for s in spellings]


def get_policy(name: str) -> StopPolicy:
    """The policy a key names; an unknown key is a ValueError listing the known ones."""
    key, sep, arg = str(name).strip().partition(":")
    if key not in STOP_POLICIES:
        raise ValueError(f"unknown stop policy {name!r}; known: {', '.join(known_policies())}")
    return STOP_POLICIES[key][0](arg if sep else None)


# --- config --------------------------------------------------------------------------------------

def _default_sampling() -> SamplingParams:
    # Greedy and short: a tool call is one line, and an untrained model's prose would otherwise run
    # to the limit every round (docs/method.md#stop-string).
    return SamplingParams(max_new_tokens=128)


@dataclass
class RefineConfig:
    """Settings of the refine loop.

    policy: a stop policy key (`known_policies()`). max_rounds: the cap on refinement rounds.
    guard: "off", "error" (keep the previous answer when a refined one is a decode error) or "call"
        (keep it when the previous answer was calls and the refined one is not).
    round0 / refine: sampling of the first answer and of refinement rounds (n must be 1).
    chunk_size: items taken through every round together (bounded by the engine's prefix cache).
    prompt: how prompts are rendered. parse_format: the call format the stop test parses with.
    """

    policy: str = "adaptive"
    max_rounds: int = 3
    guard: str = "off"
    round0: SamplingParams = field(default_factory=_default_sampling)
    refine: SamplingParams = field(default_factory=_default_sampling)
    chunk_size: int = 32
    prompt: PromptConfig = field(default_factory=PromptConfig)
    parse_format: str = "auto"

    def __post_init__(self) -> None:
        policy = get_policy(self.policy)
        if self.max_rounds < 0:
            raise ValueError(f"RefineConfig.max_rounds must be >= 0, got {self.max_rounds}")
        if policy.rounds is not None and policy.rounds > self.max_rounds:
            raise ValueError(f"policy {policy.name} runs {policy.rounds} refinement rounds, more than "
                             f"max_rounds={self.max_rounds}; raise max_rounds")
        if self.guard not in GUARDS:
            raise ValueError(f"unknown guard {self.guard!r}; known: {', '.join(GUARDS)}")
        if self.chunk_size < 1:
            raise ValueError(f"RefineConfig.chunk_size must be >= 1, got {self.chunk_size}")
        for name in ("round0", "refine"):
            if getattr(self, name).n != 1:
                raise ValueError(f"RefineConfig.{name}.n must be 1: each round continues one answer")

    @classmethod
    def from_options(cls, policy: str = "adaptive", max_rounds: int | None = None, *, max_new_tokens: int = 128,
                     stop: Sequence[str] = (), **fields: Any) -> "RefineConfig":
        """The config a command line asks for: one token budget and stop list for every round, and a
        round cap that defaults to 3, or to N for `fixed:N` with N above 3."""
        if max_rounds is None:
            max_rounds = max(3, get_policy(policy).rounds or 0)
        params = SamplingParams(max_new_tokens=max_new_tokens, stop=tuple(stop))
        return cls(policy=policy, max_rounds=max_rounds, round0=params, refine=params, **fields)

    @property
    def stop_policy(self) -> StopPolicy:
        return get_policy(self.policy)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("round0", "refine"):  # tuples read back from YAML/JSON as lists
            out[name]["stop"] = list(out[name]["stop"])
        return out


# --- traces --------------------------------------------------------------------------------------

@dataclass
class Round:
    """One round of one item. `text` is what the model wrote and `parsed` what that parsed to;
    `answer` is the answer the round leaves (the previous one when `kept_previous`, by the guard)."""

    index: int
    text: str
    parsed: ParseResult
    answer: str
    kept_previous: bool = False
    prompt_tokens: int = 0
    cached_tokens: int = 0
    completion_tokens: int = 0
    finish_reason: str | None = None
    problems: list[str] | None = None  # what the schema check found in `answer` (None: not checked)

    def to_dict(self) -> dict[str, Any]:
        out = {"round": self.index, "text": self.text, "parsed": plain(self.parsed.to_dict()),
               "answer": self.answer, "kept_previous": self.kept_previous,
               "prompt_tokens": self.prompt_tokens, "cached_tokens": self.cached_tokens,
               "completion_tokens": self.completion_tokens, "finish_reason": self.finish_reason}
        if self.problems is not None:
            out["problems"] = list(self.problems)
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Round":
        p = d.get("parsed") or {}
        calls = p.get("calls")
        parsed = ParseResult(p.get("format"), None if calls is None else
                             [ToolCall(c["name"], dict(c.get("arguments") or {})) for c in calls],
                             p.get("text"), p.get("error"))
        return cls(int(d["round"]), d["text"], parsed, d.get("answer", d["text"]), bool(d.get("kept_previous")),
                   int(d.get("prompt_tokens", 0)), int(d.get("cached_tokens", 0)),
                   int(d.get("completion_tokens", 0)), d.get("finish_reason"),
                   None if d.get("problems") is None else [str(x) for x in d["problems"]])


# Why an item stopped.
STOP_REASONS = {
    "converged": "adaptive: the refined answer equals the previous one",
    "checked": "checked: the answer fits its tool list (calls that validate, or plain text)",
    "cycle": "checked: the refined answer repeats an earlier one (an oscillation)",
    "guard": "adaptive: the guard kept the previous answer, so it did not change",
    "max_rounds": "the round cap was reached before the answer stopped changing",
    "fixed": "the fixed number of refinement rounds was run",
    "single_pass": "policy none: round 0 only",
    "context": "the next round's prompt would not fit the model's context",
}


@dataclass
class Trace:
    id: str
    rounds: list[Round]
    stop_reason: str

    @property
    def refinements(self) -> int:
        return len(self.rounds) - 1

    @property
    def final(self) -> str:
        return self.rounds[-1].answer

    def answer_after(self, r: int) -> str:
        """The answer had we stopped after round r (an item that stopped earlier keeps its last one)."""
        return self.rounds[min(r, len(self.rounds) - 1)].answer

    def tokens(self, upto: int | None = None) -> dict[str, int]:
        """Tokens prefilled, reused from the cache and generated over rounds 0..upto (all by default)."""
        rounds = self.rounds if upto is None else self.rounds[: upto + 1]
        return {"prompt": sum(r.prompt_tokens for r in rounds), "cached": sum(r.cached_tokens for r in rounds),
                "completion": sum(r.completion_tokens for r in rounds)}

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "stop_reason": self.stop_reason, "refinements": self.refinements,
                "final": self.final, "rounds": [r.to_dict() for r in self.rounds]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trace":
        return cls(str(d["id"]), [Round.from_dict(r) for r in d["rounds"]], d["stop_reason"])


@dataclass
class RefineResult:
    """The traces in item order, the config, and wall seconds spent generating each round (over chunks)."""

    traces: list[Trace]
    config: RefineConfig
    round_seconds: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def predictions(self) -> list[dict[str, Any]]:
        """BFCL-format predictions: {"id", "result": the final answer text}."""
        return [{"id": t.id, "result": t.final} for t in self.traces]


# --- the loop ------------------------------------------------------------------------------------

@dataclass
class Conversation:
    """What the loop refines: a tool list and the messages before the answer (an `Example` works too)."""

    id: str
    tools: list[Any]
    messages: list[dict[str, Any]]


def as_conversation(item: Any, index: int) -> Conversation:
    if isinstance(item, Conversation):
        return item
    if isinstance(item, dict):
        return Conversation(str(item.get("id", index)), list(item.get("tools") or []), list(item["messages"]))
    return Conversation(str(getattr(item, "id", index)), list(item.tools), list(item.messages))


def engine_tokenizer(engine: Engine) -> Any:
    """The tokenizer an engine renders with (hf: its own; vllm: the LLM's), else None (chat messages)."""
    tokenizer = getattr(engine, "tokenizer", None)
    if tokenizer is None and hasattr(getattr(engine, "llm", None), "get_tokenizer"):
        tokenizer = engine.llm.get_tokenizer()
    return tokenizer


def refine(
    items: Sequence[Any],
    engine: Engine,
    config: RefineConfig | None = None,
    *,
    tokenizer: Any = None,
    first_answers: Sequence[str] | None = None,
    progress: bool = False,
) -> RefineResult:
    """Answer each item, then refine under `config`'s stop policy; one `Trace` per item, in order.

    items: `Example`s, `Conversation`s or {"id", "tools", "messages"} dicts.
    tokenizer: renders prompts (default: the engine's); without one, requests carry chat messages.
    first_answers: round-0 answers given instead of generated (e.g. sampled ones, for training).
    """
    cfg = config or RefineConfig()
    convs = [as_conversation(item, i) for i, item in enumerate(items)]
    if first_answers is not None and len(first_answers) != len(convs):
        raise ValueError(f"first_answers has {len(first_answers)} entries for {len(convs)} items")
    loop = _Loop(engine, cfg, tokenizer if tokenizer is not None else engine_tokenizer(engine))
    bar = progress_bar(progress, len(convs), f"refine {cfg.stop_policy.name}")
    start = time.perf_counter()
    traces: list[Trace] = []
    try:
        for lo in range(0, len(convs), cfg.chunk_size):
            chunk = convs[lo: lo + cfg.chunk_size]
            given = None if first_answers is None else list(first_answers[lo: lo + cfg.chunk_size])
            traces += loop.run_chunk(chunk, given, bar)
    finally:
        if bar is not None:
            bar.close()
    return RefineResult(traces, cfg, loop.round_seconds, time.perf_counter() - start)


class _Loop:
    """The round-by-round work for one config; engines only generate, prompts only render."""

    def __init__(self, engine: Engine, cfg: RefineConfig, tokenizer: Any) -> None:
        self.engine, self.cfg, self.tokenizer = engine, cfg, tokenizer
        self.policy = cfg.stop_policy
        self.cap = self.policy.refinements(cfg.max_rounds)
        self.round_seconds: list[float] = []

    def run_chunk(self, convs: list[Conversation], given: list[str] | None, bar) -> list[Trace]:
        rounds: list[list[Round]] = [[] for _ in convs]
        reasons: list[str | None] = [None] * len(convs)
        active = list(range(len(convs)))
        for r in range(self.cap + 1):
            if bar is not None:
                bar.set_postfix_str(f"round {r}: {len(active)} of this chunk's {len(convs)} items")
            if r == 0 and given is not None:
                new = [self._make_round(0, text, None, {}, None, c.tools) for c, text in zip(convs, given)]
            else:
                fitting = self._fitting(convs, rounds, active, reasons, r)
                if bar is not None and len(fitting) < len(active):
                    bar.update(len(active) - len(fitting))
                active = fitting
                new = self._generate(convs, rounds, active, r)
            still = []
            for i, rnd in zip(active, new):
                rounds[i].append(rnd)
                reasons[i] = self._stop_reason(rounds[i], r)
                if reasons[i] is None:
                    still.append(i)
                elif bar is not None:
                    bar.update(1)
            active = still
            if not active:
                break
        return [Trace(c.id, rs, reason or "max_rounds") for c, rs, reason in zip(convs, rounds, reasons)]

    def _generate(self, convs, rounds, active: list[int], r: int) -> list[Round]:
        if not active:
            return []
        params = self.cfg.round0 if r == 0 else self.cfg.refine
        requests = [self._request(convs[i], rounds[i], params) for i in active]
        start = time.perf_counter()
        results = self.engine.generate(requests)
        while len(self.round_seconds) <= r:
            self.round_seconds.append(0.0)
        self.round_seconds[r] += time.perf_counter() - start
        out = []
        for i, result in zip(active, results):
            c = result.completions[0]
            usage = {"prompt_tokens": c.prompt_tokens, "cached_tokens": c.cached_tokens,
                     "completion_tokens": c.completion_tokens}
            out.append(self._make_round(r, c.text, rounds[i][-1] if rounds[i] else None, usage, c.finish_reason,
                                        convs[i].tools))
        return out

    def _request(self, conv: Conversation, rounds: list[Round], params: SamplingParams) -> GenerationRequest:
        answers, feedback = [x.answer for x in rounds], self._feedback(rounds)
        if self.tokenizer is None:  # a chat-only endpoint renders the conversation itself
            return GenerationRequest(messages=build_messages(conv.tools, conv.messages, answers, self.cfg.prompt,
                                                             feedback=feedback), params=params)
        return GenerationRequest(prompt=self._prompt(conv, rounds), params=params)

    def _feedback(self, rounds: list[Round]) -> list[str | None]:
        if not self.policy.feedback:
            return []
        return [feedback_text(x.problems) for x in rounds]

    def _prompt(self, conv: Conversation, rounds: list[Round]) -> str:
        return render_prompt(self.tokenizer, conv.tools, conv.messages, [x.answer for x in rounds], self.cfg.prompt,
                             feedback=self._feedback(rounds))

    def _fitting(self, convs, rounds, active: list[int], reasons: list, r: int) -> list[int]:
        """Stop items whose next refinement prompt plus its answer would not fit the model's context."""
        limit = getattr(self.engine, "max_context", None)
        if r == 0 or not limit or self.tokenizer is None:
            return active
        keep = []
        for i in active:
            ids = self.tokenizer(self._prompt(convs[i], rounds[i]),
                                 add_special_tokens=False)["input_ids"]
            if len(ids) + self.cfg.refine.max_new_tokens > limit:
                reasons[i] = "context"
            else:
                keep.append(i)
        return keep

    def _make_round(self, r: int, text: str, previous: Round | None, usage: dict, finish: str | None,
                    tools: Sequence[Any]) -> Round:
        parsed = parse(text, self.cfg.parse_format)
        keep = previous is not None and self._guard_fires(previous, parsed)
        answer = previous.answer if keep else text
        problems = None
        if self.policy.check or self.policy.feedback:
            problems = list(previous.problems or []) if keep else answer_problems(answer, tools, self.cfg.parse_format)
        return Round(r, text, parsed, answer, keep, finish_reason=finish, problems=problems, **usage)

    def _guard_fires(self, previous: Round, parsed: ParseResult) -> bool:
        guard = self.cfg.guard
        if guard == "error":
            return parsed.error is not None
        if guard == "call":
            return self._parsed_answer(previous).is_call and not parsed.is_call
        return False

    def _parsed_answer(self, rnd: Round) -> ParseResult:
        return parse(rnd.answer, self.cfg.parse_format) if rnd.kept_previous else rnd.parsed

    def _stop_reason(self, rounds: list[Round], r: int) -> str | None:
        policy = self.policy
        if r == 0 and self.cap == 0:
            return "single_pass" if policy.rounds == 0 else "max_rounds"
        if r > 0 and policy.compare is not None:
            current = rounds[-1]
            if current.kept_previous:
                return "guard"
            if same_answer(rounds[-2].answer, current.answer, policy.compare, self.cfg.parse_format):
                return "converged"
            if policy.cycle and any(same_answer(x.answer, current.answer, policy.compare, self.cfg.parse_format)
                                    for x in rounds[:-2]):
                return "cycle"
        if policy.check and not rounds[-1].problems:
            return "checked"
        if r >= self.cap:
            return "fixed" if policy.rounds is not None else "max_rounds"
        return None


def answer_key(text: str, compare: str = "canonical", fmt: str = "auto") -> tuple:
    """What the stop test compares: the text itself ("exact"), or its parsed calls in canonical form
    ("canonical"; plain text by its stripped text; a failed parse by its raw text, since two different
    broken answers can fail with the same message)."""
    if compare == "exact":
        return ("exact", text)
    result = parse(text, fmt)
    if result.error is not None:
        return ("error", text.strip())
    return canonical_answer(result)


def same_answer(a: str, b: str, compare: str = "canonical", fmt: str = "auto") -> bool:
    return answer_key(a, compare, fmt) == answer_key(b, compare, fmt)


def describe_round(rnd: Round) -> str:
    """A few lines for a person: the round's cost, the model's text and what it parsed to."""
    p = rnd.parsed
    if p.is_call:
        try:
            what = "calls: " + render(p.calls or [])
        except (TypeError, ValueError):  # values pythonic cannot write (bytes...): show them as JSON
            what = "calls: " + json.dumps(plain([c.to_dict() for c in p.calls or []]), ensure_ascii=False)
    elif p.format == "text":
        what = "plain text, no call"
    else:
        what = f"not decodable as {p.format} calls: {p.error}"
    if rnd.kept_previous:
        what += " -> the guard kept the previous answer"
    return (f"round {rnd.index}  (prefilled {rnd.prompt_tokens}, reused {rnd.cached_tokens}, generated "
            f"{rnd.completion_tokens} tokens, {rnd.finish_reason})\n{rnd.text}\n  => {what}")


# --- files ---------------------------------------------------------------------------------------

def _write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    from toolace_r.files import write_jsonl

    path = Path(path)
    write_jsonl(path, rows)
    return path


def prediction_rows(traces: Iterable[Trace]) -> Iterator[dict[str, Any]]:
    """BFCL-format predictions ({"id", "result"}), readable by `toolace-r eval --predictions`."""
    return ({"id": t.id, "result": t.final} for t in traces)


def write_predictions(traces: Iterable[Trace], path: str | Path) -> Path:
    return _write_jsonl(path, prediction_rows(traces))


def write_traces(traces: Iterable[Trace], path: str | Path) -> Path:
    return _write_jsonl(path, (t.to_dict() for t in traces))


def read_traces(path: str | Path) -> list[Trace]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(Trace.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: not a refinement trace ({exc})") from None
    return out
