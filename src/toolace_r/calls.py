"""Tool calls: one `ToolCall` type, parsing model output in several formats, rendering, equality.

CONTRACT (shared by every module; the parser/renderer bodies are filled in by the calls work):
- `ToolCall(name, arguments)` is immutable-by-convention; `arguments` is a plain JSON-like dict.
- `parse(text, fmt="auto") -> ParseResult` never raises on any input string and never evaluates it.
- `render(calls, fmt) -> str`; parse(render(c, f), f).calls == c.
- `canonical(calls)` gives a hashable value: equal for the same calls in any order (multiset) and
  any key order.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass
class ParseResult:
    """What a model's answer turned out to be.

    format: "pythonic" | "json" | "hermes" | "openai" | "text" (a plain non-call answer) | None on error.
    calls:  the decoded calls (possibly empty: "[]" is a call list with no calls), None for text/error.
    text:   the plain answer when it is not a call, else None.
    error:  a message when the text looked like calls in `format` but could not be decoded, else None.
    """

    format: str | None
    calls: list[ToolCall] | None = None
    text: str | None = None
    error: str | None = None

    @property
    def is_call(self) -> bool:
        return self.calls is not None and self.error is None

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "calls": None if self.calls is None else [c.to_dict() for c in self.calls],
            "text": self.text,
            "error": self.error,
        }
