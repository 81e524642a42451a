"""The refine loop: round 0, then refinement rounds until each item's stop policy ends it.

Rounds run over *chunks* of items (all rounds of one chunk, then the next chunk): the prefix cache
holds a bounded number of finished sequences, and a chunk keeps round r-1's KV in it for round r
(docs/method.md#kv-reuse). The loop owns the round cap, the context limit and the guard
(docs/method.md#guard); the policy decides everything else (docs/method.md#stop-policies).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any, Sequence

from toolace_r.calls import ParseResult, parse
from toolace_r.engines.base import Engine, GenerationRequest, SamplingParams
from toolace_r.progress import progress_bar
from toolace_r.prompts import answer_format, build_messages, render_prompt
from toolace_r.refine.config import RefineConfig
from toolace_r.refine.policies import vote_choice
from toolace_r.refine.traces import RefineResult, Round, Trace
from toolace_r.schema_check import answer_problems


@dataclass
class Conversation:
    """What the loop refines: a tool list and the messages before the answer (an `Example` works too)."""

    id: str
    tools: list[Any]
    messages: list[dict[str, Any]]
    # Tools the conversation introduced after the system prompt (BFCL's miss_func turn lists them in a
    # user message): the schema check knows them, the system prompt does not list them.
    later_tools: list[Any] = field(default_factory=list)


def as_conversation(item: Any, index: int) -> Conversation:
    if isinstance(item, Conversation):
        return item
    if isinstance(item, dict):
        return Conversation(str(item.get("id", index)), list(item.get("tools") or []), list(item["messages"]))
    return Conversation(str(getattr(item, "id", index)), list(item.tools), list(item.messages))


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
    loop = _Loop(engine, cfg, tokenizer if tokenizer is not None else engine.tokenizer)
    bar = progress_bar(progress, len(convs), f"refine {loop.policy.name}")
    start = time.perf_counter()
    traces: list[Trace] = []
    try:
        for lo in range(0, len(convs), cfg.chunk_size):
            chunk = convs[lo: lo + cfg.chunk_size]
            given = None if first_answers is None else list(first_answers[lo: lo + cfg.chunk_size])
            traces += loop.run_chunk(chunk, given, bar, offset=lo)
    finally:
        if bar is not None:
            bar.close()
    return RefineResult(traces, cfg, loop.round_seconds, time.perf_counter() - start, loop.fmt.name,
                        loop.parse_format)


class _Loop:
    """The round-by-round work for one config; engines only generate, prompts only render."""

    def __init__(self, engine: Engine, cfg: RefineConfig, tokenizer: Any) -> None:
        self.engine, self.cfg, self.tokenizer = engine, cfg, tokenizer
        # Answers parse as the run's answer format writes them (RefineConfig.parse_format "auto": native
        # answers with the parser the template's own calls need, pythonic ones with any known format).
        self.fmt = answer_format(tokenizer, cfg.prompt)
        self.parse_format = (self.fmt.parser if self.fmt.native else "auto") if cfg.parse_format == "auto" \
            else cfg.parse_format
        self.policy = cfg.stop_policy
        self.cap = self.policy.refinements(cfg.max_rounds)
        self.round_seconds: list[float] = []

    def run_chunk(self, convs: list[Conversation], given: list[str | Round] | None, bar,
                  offset: int = 0) -> list[Trace]:
        """All rounds of one chunk; `offset` is the position of its first item among all items (vote seeds).

        given: round-0 answers instead of generated ones: texts, or `Round`s of a run already made (their
        tokens and finish reason are kept, refine/grid.py)."""
        rounds: list[list[Round]] = [[] for _ in convs]
        reasons: list[str | None] = [None] * len(convs)
        active = list(range(len(convs)))
        for r in range(self.cap + 1):
            if bar is not None:
                bar.set_postfix_str(f"round {r}: {len(active)} of this chunk's {len(convs)} items")
            if r == 0 and given is not None:
                new = [self._given_round(c, g) for c, g in zip(convs, given)]
            elif r == 1 and self.policy.votes > 1:  # round 0's prompt again: it fits, no context check
                new = self._vote(convs, rounds, active, offset)
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
                                        [*convs[i].tools, *convs[i].later_tools]))
        return out

    def _given_round(self, conv: Conversation, given: str | Round) -> Round:
        tools = [*conv.tools, *conv.later_tools]
        if isinstance(given, Round):
            usage = {"prompt_tokens": given.prompt_tokens, "cached_tokens": given.cached_tokens,
                     "completion_tokens": given.completion_tokens}
            return self._make_round(0, given.text, None, usage, given.finish_reason, tools)
        return self._make_round(0, given, None, {}, None, tools)

    def _vote(self, convs, rounds, active: list[int], offset: int) -> list[Round]:
        """vote:N's round 1 (docs/method.md#vote): N-1 samples on each item's round-0 prompt, one request
        per item, and the round that records the voted answer."""
        if not active:
            return []
        base = self.cfg.round0
        requests = [self._request(convs[i], [], replace(base, n=self.policy.votes - 1,
                                                        temperature=self.cfg.vote_temperature, top_p=1.0,
                                                        seed=self.cfg.vote_seed + offset + i))
                    for i in active]
        start = time.perf_counter()
        results = self.engine.generate(requests)
        while len(self.round_seconds) <= 1:
            self.round_seconds.append(0.0)
        self.round_seconds[1] += time.perf_counter() - start
        out = []
        for i, result in zip(active, results):
            greedy = rounds[i][0]
            texts = [greedy.answer, *(c.text for c in result.completions)]
            pick = vote_choice(texts, [*convs[i].tools, *convs[i].later_tools], self.parse_format)
            text = texts[pick]
            finish = greedy.finish_reason if pick == 0 else result.completions[pick - 1].finish_reason
            out.append(Round(1, text, parse(text, self.parse_format), text, False,
                             prompt_tokens=result.prompt_tokens, cached_tokens=result.cached_tokens,
                             completion_tokens=result.completion_tokens, finish_reason=finish))
        return out

    def _request(self, conv: Conversation, rounds: list[Round], params: SamplingParams) -> GenerationRequest:
        if self.tokenizer is None:  # a chat-only endpoint renders the conversation itself
            return GenerationRequest(messages=build_messages(conv.tools, conv.messages, [x.answer for x in rounds],
                                                             self.cfg.prompt, fmt=self.fmt,
                                                             feedback=self.policy.notes(rounds)),
                                     params=params)
        return GenerationRequest(prompt=self._prompt(conv, rounds), params=params)

    def _prompt(self, conv: Conversation, rounds: list[Round]) -> str:
        return render_prompt(self.tokenizer, conv.tools, conv.messages, [x.answer for x in rounds], self.cfg.prompt,
                             feedback=self.policy.notes(rounds))

    def _fitting(self, convs, rounds, active: list[int], reasons: list, r: int) -> list[int]:
        """Stop items whose next refinement prompt plus its answer would not fit the model's context."""
        limit = self.engine.max_context
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
        parsed = parse(text, self.parse_format)
        keep = previous is not None and self._guard_fires(previous, parsed)
        answer = previous.answer if keep else text
        problems = None
        if self.policy.check or self.policy.feedback:
            problems = list(previous.problems or []) if keep else answer_problems(answer, tools, self.parse_format)
        return Round(r, text, parsed, answer, keep, finish_reason=finish, problems=problems, **usage)

    def _guard_fires(self, previous: Round, parsed: ParseResult) -> bool:
        guard = self.cfg.guard
        if guard == "error":
            return parsed.error is not None
        if guard == "call":
            return self._parsed_answer(previous).is_call and not parsed.is_call
        return False

    def _parsed_answer(self, rnd: Round) -> ParseResult:
        return parse(rnd.answer, self.parse_format) if rnd.kept_previous else rnd.parsed

    def _stop_reason(self, rounds: list[Round], r: int) -> str | None:
        if self.cap == 0:  # no refinement round may run: round 0 is final whatever the policy would say
            return self.policy.cap_reason()
        reason = self.policy.stop_reason(rounds, self.parse_format)
        if reason is None and r >= self.cap:
            return self.policy.cap_reason()
        return reason
