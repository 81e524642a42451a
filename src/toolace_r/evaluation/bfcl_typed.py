"""Java and JavaScript argument strings made values, as BFCL's type converters make them, in linear time.

This module: the type tables, the scanning helper, Java's converter; JavaScript's is in bfcl_typed_js.py.

In BFCL's simple_java and simple_javascript categories every argument is written as a string in the
language's own syntax ("5L", "new int[]{1, 2}", "{key: 'v'}"); before the usual value checks, BFCL
converts each one by the type its schema names (`java_value`, `js_value` here). A string that does not
look like the type stays the string, and then fails the type check, or is compared as is for `any`.

Two ideas:

- Same values, quirks included: the results equal those of BFCL's converters for every input
  (`tests/test_bfcl_java_js.py` compares them on thousands of generated strings). Some quirks worth
  knowing: a Java `char` is always left a string; Java `Array` elements of type String keep their
  quotes (only `ArrayList` ones lose them); only the first call-like collection in the text is read; a
  JavaScript array of arrays ignores the element type.
- Linear time. BFCL finds collections with regular expressions that backtrack badly (a JavaScript array
  of arrays that does not close takes time exponential in its length; a Java HashMap, cubic). Here each
  pattern is matched by a scan that settles the same leftmost-first match: the lazy parts end at the
  first place the rest can match, which precomputed "next occurrence" positions give in O(1).
  The anchored number patterns are plain regular expressions without backtracking, used as they are.
"""
from __future__ import annotations

import bisect
import re
from typing import Any

JAVA_TYPES: dict[str, type] = {
    "byte": int, "short": int, "integer": int, "float": float, "double": float, "long": int,
    "boolean": bool, "char": str, "Array": list, "ArrayList": list, "Set": set, "HashMap": dict,
    "Hashtable": dict, "Queue": list, "Stack": list, "String": str, "any": str,
}
JS_TYPES: dict[str, type] = {
    "String": str, "integer": int, "float": float, "Bigint": int, "Boolean": bool, "dict": dict,
    "array": list, "any": str,
}
# Types whose schema names an element type that the conversion uses (BFCL's list).
NESTED_TYPES = frozenset({"Array", "ArrayList", "array"})

INT_PATTERN = re.compile(r"^-?\d+$")
_JAVA_FLOAT = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?[fF]$")
_JAVA_DOUBLE = re.compile(r"^-?\d+(\.\d+)?([eE][+-]?\d+)?$")
_JAVA_LONG = re.compile(r"^-?\d+[lL]$")
_F_SUFFIX = re.compile(r"[fF]$")
_L_SUFFIX = re.compile(r"[lL]$")

# Deterministic prefixes (no choice the rest could undo); the lazy parts after them are scanned.
_AL_ASLIST = re.compile(r"new\s+ArrayList<\w*>\(Arrays\.asList\(")
_AL_BRACES = re.compile(r"new\s+ArrayList<\w*>\(\)\s*\{\{")
_AL_EMPTY = re.compile(r"new\s+ArrayList<\w*>\(\)")
_ARRAY = re.compile(r"new\s+\w+\[\]\s*\{")
_HASHMAP = re.compile(r"new\s+HashMap<")
_HASHMAP_CLOSE = re.compile(r">\s*\(\)\s*\{")
_HASHMAP_EMPTY_CLOSE = re.compile(r">\s*\(\)")


class Scan:
    """A text with "where is the next X at or after k" answered from precomputed positions."""

    __slots__ = ("s", "n", "_found")

    def __init__(self, s: str):
        self.s = s
        self.n = len(s)
        self._found: dict[str, list[int]] = {}

    def positions(self, sub: str) -> list[int]:
        found = self._found.get(sub)
        if found is None:
            found, s, k = [], self.s, self.s.find(sub)
            while k >= 0:
                found.append(k)
                k = s.find(sub, k + 1)
            self._found[sub] = found
        return found

    def next(self, sub: str, k: int) -> int:
        """The first index >= k where `sub` starts, or -1."""
        found = self.positions(sub)
        i = bisect.bisect_left(found, k)
        return found[i] if i < len(found) else -1

    def has_newline(self, a: int, b: int) -> bool:
        """Whether s[a:b] holds a newline (what `.` without DOTALL cannot cross)."""
        k = self.next("\n", a)
        return 0 <= k < b

    def skip_ws(self, k: int) -> int:
        s, n = self.s, self.n
        while k < n and s[k].isspace():  # `\s` of a str pattern is str.isspace
            k += 1
        return k


# --- Java -----------------------------------------------------------------------------------------

def java_value(value: str, type_name: str, nested: str | None = None) -> Any:
    """BFCL's Java conversion of the argument string `value` for schema type `type_name` (element type
    `nested` for Array and ArrayList). Unknown types raise ValueError, Set/Hashtable/Queue/Stack
    NotImplementedError, as BFCL's do (its data has none of them)."""
    if type_name not in JAVA_TYPES:
        raise ValueError(f"Unsupported type: {type_name}")
    if type_name in ("byte", "short", "integer"):
        return int(value) if INT_PATTERN.match(value) else str(value)
    if type_name == "float":
        return float(_F_SUFFIX.sub("", value)) if _JAVA_FLOAT.match(value) else str(value)
    if type_name == "double":
        return float(value) if _JAVA_DOUBLE.match(value) else str(value)
    if type_name == "long":
        return int(_L_SUFFIX.sub("", value)) if _JAVA_LONG.match(value) else str(value)
    if type_name == "boolean":
        return value == "true" if value in ("true", "false") else str(value)
    if type_name == "ArrayList":
        return _java_arraylist(value, nested)
    if type_name == "Array":
        return _java_array(value, nested)
    if type_name == "HashMap":
        return _java_hashmap(value)
    if type_name in ("Set", "Hashtable", "Queue", "Stack"):
        raise NotImplementedError(f"{type_name} conversion is not implemented")
    return str(value)  # String, any, and char (BFCL's char pattern can never match)


def java_literal(text: str) -> Any:
    """A Java literal whose type nobody gave: boolean, "string", 5L, 1.5f, then int, float, or the text."""
    if text == "true":
        return True
    if text == "false":
        return False
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1]
    if _JAVA_LONG.match(text):
        return int(text[:-1])
    if _JAVA_FLOAT.match(text):
        return float(_F_SUFFIX.sub("", text))
    return int_float_or_text(text)


def int_float_or_text(text: str) -> Any:
    try:
        return int(text)
    except ValueError:
        try:
            return float(text)
        except ValueError:
            return text


def _java_element(text: str, nested: str | None, strip_quotes: bool) -> Any:
    if strip_quotes and nested in ("char", "String"):
        return text[1:-1]
    return java_value(text, nested) if nested else java_literal(text)


def _java_arraylist(s: str, nested: str | None) -> Any:
    scan = Scan(s)
    group = _first_lazy(scan, _AL_ASLIST, "))", min_len=1)
    if group is not None:
        return [_java_element(e.strip(), nested, True) for e in group.split(",")]
    group = _braces_group(scan)
    if group is not None:
        return [_java_element(v.strip(), nested, True) for v in _findall_add(group)]
    if _AL_EMPTY.search(s):
        return []
    return s


def _java_array(s: str, nested: str | None) -> Any:
    group = _first_lazy(Scan(s), _ARRAY, "}", min_len=0)
    if group is None:
        return s
    return [java_value(x.strip(), nested) if nested else java_literal(x.strip()) for x in group.split(",") if x.strip()]


def _java_hashmap(s: str) -> Any:
    scan = Scan(s)
    group = _hashmap_group(scan)
    if group is not None:
        out: dict[str, Any] = {}
        if group.strip():
            for key, value in _findall_put(group):
                out[key] = java_literal(value.strip())
        return out
    if _hashmap_empty(scan):
        return {}
    return s


def _first_lazy(scan: Scan, prefix: re.Pattern, stop: str, min_len: int) -> str | None:
    """Group 1 of `prefix(.{min_len,}?)stop` searched leftmost-first, `.` without DOTALL: the first start
    whose shortest run up to `stop` holds no newline."""
    s, pos = scan.s, 0
    while True:
        m = prefix.search(s, pos)
        if m is None:
            return None
        j = m.end()
        q = scan.next(stop, j + min_len)
        if q < 0:
            return None  # later starts have later runs: none can reach a stop either
        if not scan.has_newline(j, q):
            return s[j:q]
        pos = m.start() + 1


def _braces_group(scan: Scan) -> str | None:
    """Group 1 of `new\\s+ArrayList<\\w*>\\(\\)\\s*\\{\\{\\s*(.+?)\\s*\\}\\}` (DOTALL), searched."""
    m = _AL_BRACES.search(scan.s)
    if m is None:
        return None
    s, a0 = scan.s, m.end()
    a = scan.skip_ws(a0)
    u = scan.next("}}", a + 1)
    if u >= 0:  # the group ends where the whitespace before the first "}}" after it begins
        e = u
        while e > a + 1 and s[e - 1].isspace():
            e -= 1
        return s[a:e]
    if a > a0 and s.startswith("}}", a):  # give one space back to the group: " " then "}}"
        return s[a - 1:a]
    return None  # a later start lies later still: no "}}" after it either


def _findall_add(s: str) -> list[str]:
    """re.findall(r"add\\((.+?)\\)", s)."""
    out, pos, last_close, n = [], 0, -1, len(s)
    while pos < n:
        i = s.find("add(", pos)
        if i < 0:
            break
        j = i + 4
        r = last_close if last_close >= j + 1 else s.find(")", j + 1)
        if r < 0:
            break
        last_close = r
        nl = s.find("\n", j, r)
        if nl >= 0:  # every "add(" before this newline reaches the same ")" across it
            pos = nl + 1
            continue
        out.append(s[j:r])
        pos = r + 1
    return out


def _hashmap_group(scan: Scan) -> str | None:
    """Group 1 of `new\\s+HashMap<.*?>\\s*\\(\\)\\s*\\{\\s*\\{?\\s*(.*?)\\s*\\}?\\s*\\}` (DOTALL), searched.

    Only the leftmost start can match (a later one's first fitting ">" would be the leftmost's too), and
    with the greedy choices the group ends before the whitespace that precedes the first "}" after it."""
    m = _HASHMAP.search(scan.s)
    if m is None:
        return None
    s, n = scan.s, scan.n
    g = scan.next(">", m.end())
    while g >= 0:
        close = _HASHMAP_CLOSE.match(s, g)
        if close is not None:
            break
        g = scan.next(">", g + 1)
    else:
        return None
    k = scan.skip_ws(close.end())
    if k < n and s[k] == "{":
        k = scan.skip_ws(k + 1)
    b = scan.next("}", k)
    if b < 0:
        return None
    e = b
    while e > k and s[e - 1].isspace():
        e -= 1
    return s[k:e]


def _hashmap_empty(scan: Scan) -> bool:
    """Whether `new\\s+HashMap<.*?>\\s*\\(\\)` (no DOTALL) is found."""
    s = scan.s
    closers = [g for g in scan.positions(">") if _HASHMAP_EMPTY_CLOSE.match(s, g)]
    pos = 0
    while True:
        m = _HASHMAP.search(s, pos)
        if m is None:
            return False
        j = m.end()
        i = bisect.bisect_left(closers, j)
        if i == len(closers):
            return False
        if not scan.has_newline(j, closers[i]):
            return True
        pos = m.start() + 1


def _findall_put(s: str) -> list[tuple[str, str]]:
    """re.findall(r'put\\("(.*?)",\\s*(.*?)\\)', s): the key ends at the first '",' after which a value
    reaches a ")" on its line."""
    scan = Scan(s)
    good = []  # '",' positions after which the value part matches, with where the value starts and ends
    for q in scan.positions('",'):
        t = scan.skip_ws(q + 2)
        r = scan.next(")", t)
        if r >= 0 and not scan.has_newline(t, r):
            good.append((q, t, r))
    starts = [q for q, _, _ in good]
    out, pos = [], 0
    while True:
        i = s.find('put("', pos)
        if i < 0:
            return out
        j = i + 5
        g = bisect.bisect_left(starts, j)
        if g < len(good) and not scan.has_newline(j, good[g][0]):
            q, t, r = good[g]
            out.append((s[j:q], s[t:r]))
            pos = r + 1
        else:
            pos = i + 1
