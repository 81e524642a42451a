"""The one `Example` type every dataset loader yields.

CONTRACT:
- `messages` are OpenAI-style dicts ({"role": "system"|"user"|"assistant"|"tool", "content": str}),
  the context *before* the answer to predict (no system prompt carrying the tools: prompts.py adds it).
- `tools` the normalised tool list.
- `gold` what a right answer is: see `Gold`.

`to_dict`/`from_dict` give a JSON round trip (samples are cached on disk that way); `call_shape`
names the BFCL-style shape of an answer (simple, multiple, parallel, ...) so that sources without
categories of their own still get categories the checker and the selection quotas understand.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolace_r.calls import ToolCall
from toolace_r.tools import Tool

GOLD_KINDS = ("calls", "bfcl", "no_call", "any_call", "unscored", "multi_turn")


@dataclass
class Gold:
    """kind:
    - "calls":   exact calls expected (ToolACE, xLAM, jsonl); `calls` set.
    - "bfcl":    BFCL answer key: `bfcl` is the ground_truth list [{func_name: {param: [acceptable values]}}].
                 (BFCL's exec categories also set `calls`: the one call each answer string names.)
    - "no_call": a non-call answer is right (irrelevance, missing parameters); `text` may hold the gold text.
    - "any_call": at least one call is right, arguments unchecked (BFCL live_relevance).
    - "unscored": no call-level gold exists (BFCL rest: the gold is an execution result, kept in metadata).
    - "multi_turn": BFCL multi-turn; `turns` holds the ground-truth call strings, one list per user turn,
                 scored by executing them (evaluation/multi_turn.py), so no single call list is "the" answer.
    """

    kind: str
    calls: list[ToolCall] | None = None
    bfcl: list[dict[str, Any]] | None = None
    text: str | None = None
    turns: list[list[str]] | None = None

    def answer_calls(self, tools: list[Tool] | None = None) -> list[ToolCall] | None:
        """One concrete right answer as calls: [] for no_call, None where no single answer exists.

        A BFCL key lists acceptable values per parameter; the first one that is not "" is used, and a
        parameter whose only acceptable value is "" (may be omitted) is left out. Inside a dict
        parameter (or a list of dicts) BFCL keys again map each key to acceptable values; `tools`
        tells which parameters are such dicts, without it a dict whose values are all lists is taken
        to be one.
        """
        if self.kind in ("calls", "bfcl") and self.calls is not None:
            return [ToolCall(c.name, dict(c.arguments)) for c in self.calls]
        if self.kind == "bfcl" and self.bfcl is not None:
            return [_call_from_key(entry, tools) for entry in self.bfcl]
        if self.kind == "no_call":
            return []
        return None

    def describe(self) -> str:
        """A one-line summary for logs and tables, e.g. "2 calls: f, g" or "no call"."""
        if self.kind == "no_call":
            return "no call" + (f": {self.text[:60]!r}" if self.text else "")
        if self.kind == "any_call":
            return "any call"
        if self.kind == "unscored":
            return "unscored"
        if self.kind == "multi_turn":
            n = len(self.turns or [])
            return f"multi-turn, {n} turn{'s' if n != 1 else ''}"
        calls = self.answer_calls() or []
        names = ", ".join(c.name for c in calls)
        prefix = "BFCL key, " if self.kind == "bfcl" else ""
        return f"{prefix}{len(calls)} call{'s' if len(calls) != 1 else ''}: {names}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "calls": None if self.calls is None else [c.to_dict() for c in self.calls],
            "bfcl": self.bfcl,
            "text": self.text,
            **({"turns": self.turns} if self.turns is not None else {}),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Gold":
        kind = d.get("kind")
        if kind not in GOLD_KINDS:
            raise ValueError(f"gold kind {kind!r} unknown (known: {', '.join(GOLD_KINDS)})")
        calls = d.get("calls")
        return cls(
            kind=kind,
            calls=None if calls is None else [ToolCall(c["name"], dict(c.get("arguments") or {})) for c in calls],
            bfcl=d.get("bfcl"),
            text=d.get("text"),
            turns=d.get("turns"),
        )


_OMIT = object()  # marks "only '' is acceptable": leave the parameter out


def _call_from_key(entry: dict[str, Any], tools: list[Tool] | None) -> ToolCall:
    (name, params), = entry.items()
    tool = next((t for t in tools or [] if t.name == name), None)
    args = {}
    for param, values in params.items():
        value = _first_acceptable(values)
        if value is not _OMIT:
            schema = tool.properties.get(param) if tool is not None else None
            args[param] = _resolve_nested_key(value, schema, schema_known=tool is not None)
    return ToolCall(name, args)


def _first_acceptable(values: Any) -> Any:
    if not isinstance(values, list):
        return values
    chosen = [v for v in values if v != ""]
    return chosen[0] if chosen else _OMIT


def _resolve_nested_key(value: Any, schema: Any, schema_known: bool) -> Any:
    """Pick values inside a dict (or list of dicts) parameter, which BFCL keys one level deeper."""
    def as_key(d: Any) -> bool:
        return isinstance(d, dict) and bool(d) and all(isinstance(v, list) for v in d.values())

    if schema_known:
        t = schema.get("type") if isinstance(schema, dict) else None
        items = schema.get("items") if isinstance(schema, dict) else None
        item_t = items.get("type") if isinstance(items, dict) else None
        dict_mode = t == "dict" and isinstance(value, dict)
        list_mode = t in ("array", "tuple") and item_t == "dict" and isinstance(value, list)
    else:
        dict_mode = as_key(value)
        list_mode = isinstance(value, list) and bool(value) and all(as_key(v) for v in value)
    if dict_mode:
        return _pick_dict(value)
    if list_mode:
        return [_pick_dict(v) if isinstance(v, dict) else v for v in value]
    return value


def _pick_dict(key: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, values in key.items():
        value = _first_acceptable(values)
        if value is not _OMIT:
            out[k] = value
    return out


@dataclass
class Example:
    id: str
    messages: list[dict[str, Any]]
    tools: list[Tool]
    gold: Gold
    category: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready; tools in the BFCL shape (the lossless one)."""
        return {
            "id": self.id,
            "category": self.category,
            "messages": self.messages,
            "tools": [t.to_bfcl() for t in self.tools],
            "gold": self.gold.to_dict(),
            "metadata": self.metadata,
        }

    def answer_calls(self) -> list[ToolCall] | None:
        """The gold as one concrete list of calls (see `Gold.answer_calls`), using this example's tools."""
        return self.gold.answer_calls(self.tools)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Example":
        # Tools were written by `to_dict` from normalised Tools, so they are rebuilt as they stand.
        tools = [Tool(t["name"], t.get("description", ""), t["parameters"]) for t in d.get("tools", [])]
        return cls(
            id=str(d["id"]),
            messages=list(d.get("messages", [])),
            tools=tools,
            gold=Gold.from_dict(d["gold"]),
            category=d.get("category", ""),
            metadata=dict(d.get("metadata") or {}),
        )


def call_shape(gold: Gold, n_tools: int) -> str:
    """BFCL's shape names for an answer: irrelevance (no call), simple, multiple (one call, several
    tools offered), parallel (several calls, one tool), parallel_multiple (several calls and tools)."""
    calls = gold.answer_calls()
    if gold.kind == "no_call" or calls == []:
        return "irrelevance"
    if calls is None:
        if gold.kind == "multi_turn":
            return "multi_turn"
        return "relevance" if gold.kind == "any_call" else "unscored"
    several_calls = len(calls) > 1
    several_tools = n_tools > 1
    if several_calls:
        return "parallel_multiple" if several_tools else "parallel"
    return "multiple" if several_tools else "simple"
