"""Turning a dataset's answer (a call string, a list of call objects, plain text) into a `Gold`.

Shared by the loaders whose gold is an assistant message, so that "which answers count as calls" is
decided once: a text that decodes to at least one call is a call answer, anything that is plainly
not a call (prose, or an empty call list) is a no-call answer, and a text that tries to be calls
but cannot be decoded is a bad record rather than a silent no-call.
"""
from __future__ import annotations

from typing import Any

from toolace_r.calls import ToolCall
from toolace_r.data.example import Example, Gold
from toolace_r.jsonvalues import json_type
from toolace_r.data.registry import DatasetError
from toolace_r.schema_check import validate
from toolace_r.tools import Tool


def gold_from_text(text: str, fmt: str, where: str, field: str) -> Gold:
    """Gold from an assistant's text answer, parsed as `fmt` ("pythonic", "auto", ...)."""
    from toolace_r.calls import parse

    result = parse(text, fmt)
    if result.is_call and result.calls:
        return Gold(kind="calls", calls=list(result.calls))
    if result.is_call or result.format == "text":
        return Gold(kind="no_call", text=text)
    raise DatasetError(where, f"looks like a {result.format or 'call'} answer but cannot be decoded "
                              f"({result.error}): {text[:80]!r}", field=field)


def gold_from_call_objects(calls: Any, where: str, field: str) -> Gold:
    """Gold from `[{"name": ..., "arguments": {...}}]` (xLAM answers); [] means no call."""
    if not isinstance(calls, list):
        raise DatasetError(where, f"expected a list of calls, got {json_type(calls)}", field=field)
    out = []
    for i, call in enumerate(calls):
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            raise DatasetError(where, f"call {i}: expected {{\"name\": str, \"arguments\": object}}, "
                                      f"got {json_type(call)}", field=field)
        args = call.get("arguments", call.get("parameters")) or {}
        if not isinstance(args, dict):
            raise DatasetError(where, f"call {i}: 'arguments' must be an object, got {json_type(args)}", field=field)
        out.append(ToolCall(call["name"], dict(args)))
    return Gold(kind="calls", calls=out) if out else Gold(kind="no_call")


def gold_problems(gold: Gold, tools: list[Tool]) -> list[str]:
    """Schema problems of a call gold (unknown function, missing required, ...): data-quality flags."""
    if gold.kind != "calls" or not gold.calls:
        return []
    return [p.message for call in gold.calls for p in validate(call, tools)]


def flag_problems(example: Example) -> Example:
    """Record the gold's schema problems in `metadata["gold_problems"]` (kept, not dropped: callers decide)."""
    problems = gold_problems(example.gold, example.tools)
    if problems:
        example.metadata["gold_problems"] = problems
    return example
