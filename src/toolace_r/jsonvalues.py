"""JSON-like values from strangers (dataset rows, requests, model output): what they may hold.

Python reads and writes integers of any size, but refuses to turn one of more than
`sys.get_int_max_str_digits()` digits into text, so such a number, once read, breaks every writer
later. These helpers say, without recursion and without converting, whether a value can be written
(`json_problem`, `int_too_long`), and give messages that never raise (`short`, `json_type`).
`plain` turns a decoded value (tuples, non-string keys, odd objects) into plain JSON data.
"""
from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
from typing import Any, Iterable

_LOG2_10 = math.log2(10)
# Python's digit limit is 0 (none) or >= 640 digits (> 2126 bits): ints shorter than this always print.
SAFE_INT_BITS = 2000


def max_int_digits() -> int:
    """Python's int-to-text digit limit (0: none), which `json.loads` and `json.dumps` both obey."""
    return sys.get_int_max_str_digits() if hasattr(sys, "get_int_max_str_digits") else 0


def int_too_long(value: int) -> bool:
    """Whether `str(value)` would exceed that limit, so no JSON writer here can write `value`."""
    limit = max_int_digits()
    if limit <= 0:
        return False
    bits = value.bit_length()  # a number of d digits has (d - 1) * log2(10) < bits <= d * log2(10) + 1
    if bits <= (limit - 1) * _LOG2_10:
        return False
    if bits > limit * _LOG2_10 + 1:
        return True
    try:  # the thin band where only converting tells
        str(value)
    except ValueError:
        return True
    return False


def number_problem(exc: ValueError) -> str:
    """Python's digit-limit message, without its advice to raise the limit."""
    text = str(exc)
    if "Exceeds the limit" in text:
        return f"a number with more than {max_int_digits()} digits"
    return text


def json_problem(value: Any, max_depth: int, *, only_depth: bool = False) -> str | None:
    """Why `value` is not data that `toolace_r.files.dumps` writes and this library walks safely, or None.

    Checks, without recursion: nesting within `max_depth`, numbers within Python's
    int-to-text digit limit, and only JSON types (tuples pass as lists, non-string keys as JSON
    writes them). Lone surrogates are fine: `files.dumps` escapes them. `only_depth`: just the
    nesting, for what `json.loads` produced (its numbers and types are JSON already).
    """
    limit = max_depth
    level, depth = [[value]], -1  # inside a list of its own, `value` is checked as any element is
    while level:  # one pass per nesting level, over the containers of that level
        below: list[Any] = []
        for item in level:
            if isinstance(item, dict):
                if not only_depth:
                    for key in item:
                        if not (key is None or isinstance(key, (str, int, float, bool))):
                            return f"an object key of type {type(key).__name__}, which JSON cannot hold"
                        if isinstance(key, int) and key.bit_length() > SAFE_INT_BITS and int_too_long(key):
                            return f"a number with more than {max_int_digits()} digits"
                values: Iterable[Any] = item.values()
            elif isinstance(item, (list, tuple)):
                values = item
            else:
                continue
            if depth >= limit:
                return f"nested more than {limit} levels deep"
            if only_depth:
                below.extend([v for v in values if isinstance(v, (dict, list))])
                continue
            for v in values:
                if isinstance(v, (dict, list, tuple)):
                    below.append(v)
                elif isinstance(v, int) and not isinstance(v, bool):
                    if v.bit_length() > SAFE_INT_BITS and int_too_long(v):
                        return f"a number with more than {max_int_digits()} digits"
                elif not (v is None or isinstance(v, (str, float, bool))):
                    return f"a {type(v).__name__} value, which JSON cannot hold"
        level, depth = below, depth + 1
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def replace_surrogates(value: Any) -> Any:
    """`value` with lone surrogates replaced by U+FFFD in every string, dict keys included (a str from
    JSON holds no valid pairs: json.loads joins them into one character). They are valid as JSON
    escapes but no tokenizer or UTF-8 request body can encode them; U+FFFD is what a UTF-8 decoder
    puts for bytes it cannot read. Recursive: callers bound the nesting first."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value) if _SURROGATE.search(value) else value
    if isinstance(value, dict):
        return {replace_surrogates(k): replace_surrogates(v) for k, v in value.items()}
    if isinstance(value, list):
        return [replace_surrogates(v) for v in value]
    return value


def json_type(value: Any) -> str:
    """The word for a JSON value's type used in error messages: str, list, object, int, null."""
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def short(value: Any, limit: int = 80) -> str:
    """A short rendering for messages; never raises (values may be deep, or numbers too long to print)."""
    try:
        text = json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError, RecursionError):
        try:
            text = repr(value)
        except (ValueError, RecursionError):
            text = f"<{json_type(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def plain(value: Any) -> Any:
    """A JSON-safe copy of a decoded value (parsed calls can hold tuples, bytes, non-string keys).

    Tuples become lists; a key that is not a string becomes the text JSON writes for it (1 -> "1",
    True -> "true", None -> "null"; anything else its repr), so the copy equals what reading its JSON
    back gives; a value of no JSON type becomes its repr.
    """
    if isinstance(value, dict):
        return {_plain_key(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return repr(value)


def _plain_key(key: Any) -> str:
    if isinstance(key, str):
        return key
    if key is None or isinstance(key, (int, float, bool)):
        return json.dumps(key)  # non-finite floats as "NaN"/"Infinity", as json.dumps writes such keys
    return repr(key)


def check_tool_bounds(tools: list[Any], max_depth: int, max_nodes: int, numbered: bool) -> None:
    """ValueError unless every tool is JSON data within `max_depth` and, together, `max_nodes` values.

    Iterative (one pass per nesting level), so that it is safe on any input; everything after it may
    recurse on the schema. An already normalised tool (a dataclass) is walked through its fields.
    """
    nodes = 0
    for i, tool in enumerate(tools):
        label = f"tool {i}: " if numbered else ""
        level, depth = [tool], 1
        while level:
            nodes += len(level)
            if nodes > max_nodes:
                raise ValueError(f"tools: more than {max_nodes} values in the tool schemas "
                                 "(the limit for one tool list)")
            below: list[Any] = []
            for value in level:
                kind = type(value)
                if kind in _JSON_SCALARS:  # the common case first: this walk runs on every tool list
                    continue
                if kind is dict and set(map(type, value)) <= _STR_ONLY:
                    below.extend(value.values())
                elif kind is list:
                    below.extend(value)
                elif kind is int:
                    if value.bit_length() > SAFE_INT_BITS and int_too_long(value):
                        raise ValueError(f"{label}a number with more than {max_int_digits()} digits")
                    continue
                else:
                    children = _children(value, label)
                    if children is None:
                        continue
                    below.extend(children)
                if depth > max_depth:
                    raise ValueError(f"{label}schema nested more than {max_depth} levels deep")
            level, depth = below, depth + 1


_JSON_SCALARS = frozenset({str, float, bool, type(None)})
_STR_ONLY = {str}


def _children(value: Any, label: str) -> list[Any] | None:
    """What `check_tool_bounds` walks below a value of a less common type (a normalised tool, a tuple,
    subclasses, non-string keys), None for a scalar; ValueError for what JSON cannot hold."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return [getattr(value, f.name) for f in dataclasses.fields(value)]
    if isinstance(value, dict):
        for key in value:
            if not isinstance(key, str):
                raise ValueError(f"{label}object keys must be strings, got {json_type(key)} {short(key, 40)}")
        return list(value.values())
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, int) and not isinstance(value, bool):
        if int_too_long(value):
            raise ValueError(f"{label}a number with more than {max_int_digits()} digits")
        return None
    if isinstance(value, (str, float, bool)):
        return None
    raise ValueError(f"{label}a {type(value).__name__} value, which JSON cannot hold")
