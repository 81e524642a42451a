"""JavaScript argument strings made values, as BFCL's js_type_converter makes them, in linear time.

The ideas, the quirks and the reason for scans instead of BFCL's patterns: bfcl_typed.py (whose type
table and scanning helper this uses). The one pattern here that backtracks exponentially in BFCL is the
array of arrays (`_js_array_2d`).
"""
from __future__ import annotations

import re
from typing import Any

from toolace_r.evaluation.bfcl_typed import INT_PATTERN, JS_TYPES, int_float_or_text, Scan

_JS_FLOAT = re.compile(r"^-?\d+(\.\d+)?$")
_JS_BIGINT = re.compile(r"^-?\d+n$")
_JS_ARRAY_1D = re.compile(r"\[(.*?)\]|\bnew\s+Array\((.*?)\)")  # anchored at 0: one linear scan
_JS_NEW_ARRAY_2D = re.compile(r"\bnew\s+Array\(\s*\[")
_JS_DICT = re.compile(r"\{(.*?)\}")


def js_value(value: str, type_name: str, nested: str | None = None) -> Any:
    """BFCL's JavaScript conversion of the argument string `value` for schema type `type_name` (element
    type `nested` for arrays). Unknown types raise ValueError, as BFCL's do."""
    if type_name not in JS_TYPES:
        raise ValueError(f"Unsupported type: {type_name}")
    if type_name == "String":
        quoted = (value.startswith('"') and value.endswith('"')) or (value.startswith("'") and value.endswith("'"))
        return value[1:-1] if quoted else str(value)
    if type_name == "integer":
        return int(value) if INT_PATTERN.match(value) else str(value)
    if type_name == "float":
        return float(value) if _JS_FLOAT.match(value) else str(value)
    if type_name == "Bigint":
        return int(value[:-1]) if _JS_BIGINT.match(value) else str(value)
    if type_name == "Boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "dict":
        return _js_dict(value.strip())
    if type_name == "array":
        return _js_array(value.strip(), nested)
    return str(value)  # any


def js_literal(text: str) -> Any:
    """A JavaScript literal whose type nobody gave: boolean, quoted string, then int, float, or the text."""
    text = text.strip()
    if text == "true":
        return True
    if text == "false":
        return False
    if (text.startswith('"') and text.endswith('"')) or (text.startswith("'") and text.endswith("'")):
        return text[1:-1]
    return int_float_or_text(text)


def _js_array(code: str, nested: str | None) -> Any:
    try:
        whole = _js_array_2d(code)
        if whole is not None:
            rows = []
            for idx, inner in enumerate(_findall_brackets(whole)):
                inner = inner.strip()
                if idx == 0 and inner.startswith("["):
                    inner = inner[1:]
                rows.append([js_literal(e.strip()) for e in inner.split(",")])
            return rows
        m = _JS_ARRAY_1D.match(code)
        if m is None:
            return code
        inside = m.group(1) if m.group(1) is not None else m.group(2)
        inside = inside.strip() if inside is not None else ""
        elements = inside.split(",") if inside else []
        if not nested:
            return [js_literal(e.strip()) for e in elements]
        out = []
        for e in elements:
            e = e.strip()
            out.append(js_value(e, nested, "String") if e.startswith(("'", '"')) else js_value(e, nested))
        return out
    except Exception:  # noqa: BLE001 - BFCL keeps the text on any failure inside an array
        return code


def _js_dict(code: str) -> Any:
    if code == "{}":
        return {}
    m = _JS_DICT.match(code)
    if m is None:
        return code
    try:
        out: dict[str, Any] = {}
        for key, value in _findall_pairs(m.group(1)):
            key = key.strip().strip("'\"")
            value = value.strip()
            if value.startswith("[") and value.endswith("]"):
                out[key] = _js_array(value.strip(), None)
            elif value.startswith("{") and value.endswith("}"):
                out[key] = _js_dict(value.strip())
            else:
                out[key] = js_literal(value.strip("'\""))
        return out
    except Exception:  # noqa: BLE001 - BFCL keeps the text on any failure inside a dict
        return code


def _js_array_2d(code: str) -> str | None:
    """The whole match of BFCL's array-of-arrays pattern at the start of `code`, or None:
    `\\[\\s*\\[.*?\\]\\s*(,\\s*\\[.*?\\]\\s*)*\\]` or the same inside `new Array( ... )`.

    Backtracking tries, for each lazy `.*?\\]`, every later "]" on the line, and for each the rest:
    exponential. The first success in that order is found by working from the right: for every "]"
    the end of the first successful continuation after it (or None) is computed once."""
    n = len(code)
    if code.startswith("["):
        first = 1
        while first < n and code[first].isspace():
            first += 1
        if first >= n or code[first] != "[":
            return None
        start, last = first + 1, "]"
    else:
        m = _JS_NEW_ARRAY_2D.match(code)
        if m is None:
            return None
        start, last = m.end(), ")"
    skip = [n] * (n + 1)  # skip[k]: first non-space at or after k
    newline = [n] * (n + 1)  # newline[k]: first "\n" at or after k
    for k in range(n - 1, -1, -1):
        skip[k] = skip[k + 1] if code[k].isspace() else k
        newline[k] = k if code[k] == "\n" else newline[k + 1]
    after = [None] * n  # after[r] for a "]" at r: the match end when the lazy part ends there, or None
    good = [n] * (n + 1)  # good[k]: first "]" at or after k whose `after` is not None
    for r in range(n - 1, -1, -1):
        if code[r] == "]":
            q = skip[r + 1]
            end = None
            if q < n and code[q] == ",":  # one more ", [ ... ]" first (greedy star), then the close
                q2 = skip[q + 1]
                if q2 < n and code[q2] == "[":
                    r2 = good[q2 + 1]
                    if r2 < n and newline[q2 + 1] > r2:
                        end = after[r2]
            if end is None and q < n and code[q] == last:
                end = q + 1
            after[r] = end
        good[r] = r if code[r] == "]" and after[r] is not None else good[r + 1]
    r = good[start] if start <= n else n
    if r < n and newline[start] > r:
        return code[:after[r]]
    return None


def _findall_brackets(s: str) -> list[str]:
    """re.findall(r"\\[(.*?)\\]", s)."""
    out, pos, last_close, n = [], 0, -1, len(s)
    while pos < n:
        i = s.find("[", pos)
        if i < 0:
            break
        r = last_close if last_close >= i + 1 else s.find("]", i + 1)
        if r < 0:
            break
        last_close = r
        nl = s.find("\n", i + 1, r)
        if nl >= 0:
            pos = nl + 1
            continue
        out.append(s[i + 1:r])
        pos = r + 1
    return out


def _findall_pairs(content: str) -> list[tuple[str, str]]:
    """re.findall(r"([^:]+):\\s*(.*?)(?:,\\s*(?=[^,]+:)|$)", content) for a content without newlines
    (it comes from `\\{(.*?)\\}`): a key runs to the next ":", its value to the first "," after which
    (spaces skipped, or all but one) some ":" comes before any ",", else to the end."""
    scan = Scan(content)
    s, n = content, len(content)

    def colon_before_comma(a: int, b: int) -> bool:  # a ":" at >= a that comes before the first "," at >= b
        c = scan.next(":", a)
        comma = scan.next(",", b)
        return c >= 0 and (comma < 0 or c < comma)

    out, pos = [], 0
    while pos < n:
        c = scan.next(":", pos)
        if c < 0:
            break
        if c == pos:
            pos += 1
            continue
        v = scan.skip_ws(c + 1)
        e, end = scan.next(",", v), n
        while e >= 0:
            t = scan.skip_ws(e + 1)
            if colon_before_comma(t + 1, t):
                end = t
                break
            if t > e + 1 and colon_before_comma(t, t):
                end = t - 1
                break
            e = scan.next(",", e + 1)
        if e < 0:
            e = n
        out.append((s[pos:c], s[v:e]))
        pos = end
    return out
