"""Writing calls in pythonic syntax: `[f(a=1, b="x"), g()]`, which `pythonic.decode` reads back to the
same values (floats stay floats, NaN and infinities included; strings escaped so that any text survives).
"""
from __future__ import annotations

import math
import re
from typing import Any, Mapping

from toolace_r.pythonic import NAME_PATTERN, Pair


def render(pairs: list[Pair]) -> str:
    """`[f(a=1, b="x"), g()]`: Python literal syntax that `decode` reads back to the same values."""
    return "[" + ", ".join(render_call(name, args) for name, args in pairs) + "]"


def render_call(name: str, args: Mapping[str, Any]) -> str:
    _check_name(name, "function")
    parts = []
    for key, value in args.items():
        _check_name(key, "argument")
        parts.append(f"{key}={render_value(value)}")
    return f"{name}({', '.join(parts)})"


def _check_name(name: Any, what: str) -> None:
    if not isinstance(name, str) or not NAME_PATTERN.fullmatch(name):
        raise ValueError(f"{what} name {name!r} cannot be written in pythonic syntax "
                         "(word characters, '.', '-' and single spaces between words only)")


def render_value(v: Any) -> str:
    if v is None or isinstance(v, bool):
        return repr(v)
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "(1e999 - 1e999)"  # no literal for NaN; inf - inf reads back as NaN
        if math.isinf(v):
            return "1e999" if v > 0 else "-1e999"
        return repr(v)  # always has '.', 'e': 1.0 stays a float
    if isinstance(v, str):
        return quote(v)
    if isinstance(v, list):
        return "[" + ", ".join(render_value(x) for x in v) + "]"
    if isinstance(v, tuple):
        inner = ", ".join(render_value(x) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{render_value(k)}: {render_value(x)}" for k, x in v.items()) + "}"
    raise ValueError(f"cannot render a {type(v).__name__} value in pythonic syntax")


# Quote and backslash, and everything outside printable ASCII, go through `_escape`.
_NEEDS_ESCAPE = re.compile(r'["\\]|[^ -~]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape(m: re.Match) -> str:
    ch = m.group(0)
    if ch in _SHORT_ESCAPES:
        return _SHORT_ESCAPES[ch]
    if ch.isprintable():  # non-ASCII letters, symbols: keep them readable
        return ch
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def quote(s: str) -> str:
    """A double-quoted Python string literal for `s`."""
    return '"' + _NEEDS_ESCAPE.sub(_escape, s) + '"'
