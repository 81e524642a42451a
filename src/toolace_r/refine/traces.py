"""What the refine loop records per item: its rounds and why it stopped, and their JSON form."""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from toolace_r.calls import ParseResult, ToolCall, render
from toolace_r.jsonvalues import plain

if TYPE_CHECKING:
    from toolace_r.refine.config import RefineConfig


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


# Why an item stopped: the reasons the built-in policies and the loop give.
STOP_REASONS = {
    "converged": "adaptive: the refined answer equals the previous one",
    "checked": "checked: the answer fits its tool list (calls that validate, or plain text)",
    "cycle": "checked: the refined answer repeats an earlier one (an oscillation)",
    "guard": "adaptive: the guard kept the previous answer, so it did not change",
    "max_rounds": "the round cap was reached before the answer stopped changing",
    "fixed": "the fixed number of refinement rounds was run",
    "single_pass": "policy none: round 0 only",
    "context": "the next round's prompt would not fit the model's context",
    "vote": "vote:N: round 1 is the majority vote among the greedy answer and N-1 samples",
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
    answer_format: str = "pythonic"  # the resolved answer format of the run (prompts.AnswerFormat.name)
    parse_format: str = "auto"  # what its answers were parsed with; native answers are scored so too

    def predictions(self) -> list[dict[str, Any]]:
        """BFCL-format predictions: {"id", "result": the final answer text}."""
        return [{"id": t.id, "result": t.final} for t in self.traces]


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
