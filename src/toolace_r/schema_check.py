"""Checking a tool call against its tool schemas: what is wrong with it, as data, never raised.

The call usually comes from a model, so every problem is a value (`Problem`) and the messages are
short enough to show the model in a refine turn (`answer_problems`, `feedback_text`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from toolace_r.calls import ToolCall, parse
from toolace_r.jsonvalues import json_type, short
from toolace_r.tools import Tool, normalize_tools

PROBLEM_KINDS = ("unknown_function", "missing_required", "unknown_parameter", "wrong_type", "not_in_enum")


@dataclass
class Problem:
    kind: str  # one of PROBLEM_KINDS
    param: str | None
    message: str


def validate(call: ToolCall, tools: list[Tool]) -> list[Problem]:
    """Everything wrong with `call` against the schemas in `tools` (empty list: the call fits).

    Type rules follow BFCL: an int is a valid float, a bool is not an int, tuple and list are
    interchangeable. Nested arrays and objects are checked as deep as their schema goes.
    """
    tool = next((t for t in tools if t.name == call.name), None)
    if tool is None:
        known = ", ".join(t.name for t in tools) or "none"
        return [Problem("unknown_function", None, f"no tool named {call.name!r} (tools: {known})")]
    problems = []
    args = call.arguments if isinstance(call.arguments, dict) else {}
    for name in tool.required:
        if name not in args:
            problems.append(Problem("missing_required", name, f"{call.name}: required parameter {name!r} is missing"))
    props = tool.properties
    for name, value in args.items():
        if name not in props:
            problems.append(Problem("unknown_parameter", name, f"{call.name}: no parameter {name!r} "
                                    f"(known: {', '.join(props) or 'none'})"))
            continue
        problems.extend(_check_value(value, props[name], name, call.name))
    return problems


def answer_problems(text: str, tools: Any, fmt: str = "auto", limit: int = 4) -> list[str]:
    """What a check of an answer against its tool list finds, as short messages (empty: it fits).

    Plain text (a no-call answer) fits; text in call syntax that does not decode is one problem; calls
    are checked with `validate`. At most `limit` messages: they are shown to a model in a prompt.
    """
    parsed = parse(text, fmt)
    if parsed.error is not None:
        return [f"not valid function-call syntax ({parsed.error})"]
    if not parsed.is_call:
        return []
    try:
        known = normalize_tools(tools)
    except ValueError:
        return []  # a tool list we cannot read: nothing to check the answer against
    out = [p.message for call in parsed.calls or [] for p in validate(call, known)]
    return out[:limit]


def feedback_text(problems: list[str] | None) -> str | None:
    """The check's findings as the one line a refine turn shows (None: nothing to say)."""
    return "; ".join(problems) if problems else None


def _check_value(value: Any, schema: Any, path: str, fn: str) -> list[Problem]:
    if not isinstance(schema, dict):
        return []
    t = schema.get("type", "any")
    if value is None:
        # None passes only where the schema itself offers it.
        if t == "any" or schema.get("default", 0) is None or schema.get("nullable") is True:
            return []
        return [Problem("wrong_type", path, f"{fn}: {path} is None, expected {t}")]
    if not _type_ok(value, t):
        return [Problem("wrong_type", path, f"{fn}: {path} is {json_type(value)} {short(value)}, expected {t}")]
    enum = schema.get("enum")
    if isinstance(enum, list) and enum:
        # On an array the enum lists what each element may be (BFCL's live data writes it so).
        members = value if t in ("array", "tuple") and not _in_enum(value, enum) else [value]
        outside = [v for v in members if not _in_enum(v, enum)]
        if outside:
            return [Problem("not_in_enum", path, f"{fn}: {path}={short(value)} is not one of {short(enum)}")]
    problems: list[Problem] = []
    if t in ("array", "tuple") and isinstance(schema.get("items"), dict):
        for i, item in enumerate(value):
            problems.extend(_check_value(item, schema["items"], f"{path}[{i}]", fn))
    elif t == "dict" and isinstance(schema.get("properties"), dict) and schema["properties"]:
        props = schema["properties"]
        for key in schema.get("required") or []:
            if key not in value:
                problems.append(Problem("missing_required", f"{path}.{key}", f"{fn}: {path}.{key} is missing"))
        for key, item in value.items():
            if key in props:
                problems.extend(_check_value(item, props[key], f"{path}.{key}", fn))
            elif schema.get("additionalProperties") is False:
                problems.append(Problem("unknown_parameter", f"{path}.{key}", f"{fn}: {path} has no key {key!r}"))
    return problems


def _type_ok(value: Any, t: str) -> bool:
    if t == "any":
        return True
    if t == "boolean":
        return isinstance(value, bool)
    if isinstance(value, bool):  # bool subclasses int in Python; not here
        return False
    if t == "integer":
        return isinstance(value, int)
    if t == "float":
        return isinstance(value, (int, float))
    if t == "string":
        return isinstance(value, str)
    if t in ("array", "tuple"):
        return isinstance(value, (list, tuple))
    if t == "dict":
        return isinstance(value, dict)
    return True  # a type this module never produces: do not invent problems


def _in_enum(value: Any, enum: list[Any]) -> bool:
    # `True == 1` in Python; an enum of numbers must not accept a bool, nor an enum of bools a number.
    return any(value == e and isinstance(value, bool) == isinstance(e, bool) for e in enum)
