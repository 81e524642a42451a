"""The fast path of `calls.decode_bfcl`: plain call lists read without `ast.parse`.

The full decoder (`calls.decode_bfcl_ast`) goes through `ast.parse`, which costs more than a whole
BFCL check, and the checker, the refine loop and the training sampler decode millions of answers. Most answers are
plain `[f(a='x', b=1.5, c=[1, 2], d={'k': True}, unit=celsius)]`: keyword arguments whose values are
string, number, True/False/None literals, bare names, lists, tuples and dicts of them (positional
arguments are read and dropped, as BFCL does). `fast_decode` reads
exactly those with a few regular expressions and returns the (name, arguments) pairs the full decoder would. Most
non-answers are recognised as sure syntax errors without parsing (prose, a fence's language tag
before the list, a JSON list, unbalanced brackets without strings), and a message is returned.
Anything else (escapes in strings, arithmetic, attributes, nested calls, comments, non-ASCII
names, ...) gives None, and the caller falls back to the full decoder. Each accepted form has one
meaning under Python's grammar, hence under BFCL's decoder; tests compare the two decoders on many
thousands of outputs.
"""
from __future__ import annotations

import json
import keyword
import re
from typing import Any


_MAX_CHARS = 64 * 1024  # longer answers take the slow path (which rejects them)
_MAX_DEPTH = 8  # deeper containers take the slow path

_WS = r"[ \t\n]*"  # Python's whitespace between tokens inside brackets (no CR, no Unicode spaces)
_NAME = r"[A-Za-z_][A-Za-z0-9_]*"
_CALL = re.compile(rf"{_WS}({_NAME}(?:\.{_NAME})*){_WS}\({_WS}")
_KWARG = re.compile(rf"({_NAME}){_WS}=(?!=){_WS}")
# One literal and the separator after it. Strings: no backslash, newline, CR, NUL or lone surrogate.
# Ints: at most 100 digits, far inside pythonic.MAX_INT_BITS and int()'s digit limit; longer ones
# (even zeros) take the slow path, which bounds them.
_STR_BODY = "[^{q}\\\\\\n\\r\\x00\\ud800-\\udfff]*"
_LITERAL_BODY = (
    "(?:'(" + _STR_BODY.format(q="'") + ")'"
    '|"(' + _STR_BODY.format(q='"') + ')"'
    r"|(-?(?:[0-9]+\.[0-9]*(?:[eE][+-]?[0-9]+)?|\.[0-9]+(?:[eE][+-]?[0-9]+)?|[0-9]+[eE][+-]?[0-9]+))(?![\w.])"
    r"|(-?(?:0{1,100}|[1-9][0-9]{0,99}))(?![\w.])"
    r"|(True|False|None)(?![\w.])"
    r"|([A-Za-z_][A-Za-z0-9_]*)(?![\w.]))"
    rf"{_WS}([,)\]}}:]?){_WS}"
)
_LITERAL = re.compile(_LITERAL_BODY)
# The common case in one match: `name = <literal> <separator>`.
_KEY_LITERAL = re.compile(rf"({_NAME}){_WS}=(?!=){_WS}" + _LITERAL_BODY)
_SEP = re.compile(rf"{_WS}([,)\]}}:]?){_WS}")
_SPACE = re.compile(_WS)
_CONSTANTS = {"True": True, "False": False, "None": None}
_KEYWORDS = frozenset(keyword.kwlist)
_BAD_KEYS = _KEYWORDS | {"__debug__"}  # f(__debug__=1) is a syntax error too


# Sure syntax errors, decided without parsing (prose and fenced code, the usual non-answers):
# - two names in a row at the start ("I cannot ...", "Sorry, the ...", "python\ndef f():"; the second
#   may be any keyword that cannot follow a value either), or a name then a string ("I'm ...");
# - a fence's language tag before a complete call list ("python\n[f(a=1)]"), whose "[" BFCL added
#   is then never closed;
# - brackets that do not balance in a text with no string or comment in it;
# - a statement keyword ("def", "import", ...) or a character such as "<" where the list begins.
# The reader below adds its own: an element that is no call, a wrong closing bracket, a missing value,
# an unterminated string, the end of the text inside brackets.
_CAN_FOLLOW_VALUE = frozenset({"if", "else", "for", "async", "in", "is", "and", "or", "not"})
_PROSE = re.compile(r"\[[ \t\n]*((?:[A-Za-z_]\w*[ \t\n]*,[ \t\n]*)*)([A-Za-z_]\w*)"
                    r"(?:[ \t\n]+([A-Za-z_]\w*)|([ \t\n]*)(['\"]))")
_STRING_PREFIXES = frozenset({"r", "u", "f", "b", "br", "rb", "fr", "rf"})
_PROSE_NAMES = re.compile(r"[A-Za-z_]\w*")
_FENCE_TAG = re.compile(r"\[([A-Za-z_]\w*)[ \t]*\n[ \t\n]*(?=\[)")
_VALUES = frozenset({"None", "True", "False"})
# Keywords that never begin an expression, and characters that never begin one (HTML-ish tags, ...).
_NEVER_FIRST = frozenset({
    "def", "class", "return", "import", "from", "if", "elif", "else", "while", "for", "try", "except",
    "finally", "with", "as", "pass", "break", "continue", "raise", "del", "global", "nonlocal", "assert",
    "in", "is", "and", "or", "async"})
_START = re.compile(r"\[[ \t\n]*(?:([A-Za-z_]\w*)(?!\w)|([<>;:=!?&|%^/@$`]))")


def _sure_syntax_error(src: str) -> str | None:
    m = _START.match(src)
    if m is not None and (m.group(2) or m.group(1) in _NEVER_FIRST):
        return f"syntax error: no expression starts with {m.group(0)[1:].strip()!r}"
    m = _PROSE.match(src)
    if m is not None:
        first, second, space, quote = m.group(2, 3, 4, 5)
        names_ok = (all(n not in _KEYWORDS for n in _PROSE_NAMES.findall(m.group(1)))
                    and (first not in _KEYWORDS or first in _VALUES))
        if second is not None and names_ok and (second not in _KEYWORDS or second not in _CAN_FOLLOW_VALUE):
            return f"syntax error: {first!r} followed by {second!r} (text, not calls)"
        # A name then a string ("I'm sorry"), unless the name is the string's prefix (r'...', f"...").
        if quote is not None and names_ok and (space or first.lower() not in _STRING_PREFIXES):
            return f"syntax error: {first!r} followed by a string (text, not calls)"
    m = _FENCE_TAG.match(src)
    if m is not None and m.group(1) not in _KEYWORDS:
        try:
            _calls(src[m.end():])
        except (_Slow, _Sure, IndexError):
            pass
        else:
            return f"syntax error: a code fence tag {m.group(1)!r} before the call list ('[' never closed)"
    if src[1:].lstrip(" \t\n")[:1] == "{":
        # A JSON list of objects ({"name": ..., "arguments": ...}): whether or not Python parses it,
        # none of its elements is a call.
        try:
            value = json.loads(src)
        except (ValueError, RecursionError):  # deep nesting: leave it to the bounded full decoder
            value = None
        if isinstance(value, list) and value:
            return "a JSON list, not calls"
    if "'" not in src and '"' not in src and "#" not in src and (
            src.count("(") != src.count(")") or src.count("[") != src.count("]")
            or src.count("{") != src.count("}")):
        return "syntax error: unbalanced brackets"
    return None


class _Slow(Exception):
    """Not a form this module reads: use the full decoder."""


class _Sure(Exception):
    """A syntax error met while reading valid tokens: the message says which."""


_CLOSERS = ")]}"


def _bad_separator(src: str, sep: str, pos: int) -> Exception:
    """After a value: a closer of the wrong kind or the end of the text is a sure error; else slow."""
    if sep and sep in _CLOSERS:
        return _Sure(f"syntax error: unexpected {sep!r} at column {pos}")
    if not sep and pos >= len(src):
        return _Sure("syntax error: the text ends inside brackets")
    return _Slow()


def decode(text: str) -> list[tuple[str, dict[str, Any]]] | str | None:
    """The (name, arguments) pairs `decode_bfcl_ast(text)` would give; a message (str) when decoding surely fails; None
    when the text needs the full decoder."""
    if len(text) > _MAX_CHARS:
        return None
    # BFCL's normalisation, step for step.
    src = text.strip("`\n ")
    if not src.startswith("["):
        src = "[" + src
    if not src.endswith("]"):
        src = src + "]"
    src = src.strip().strip("'")
    if not (src.startswith("[") and src.endswith("]")):
        return None
    try:
        return _calls(src)
    except _Sure as sure:
        return str(sure)
    except IndexError:  # valid tokens up to the end, brackets still open
        return "syntax error: the text ends inside brackets"
    except _Slow:
        return _sure_syntax_error(src)


def _calls(src: str) -> list[tuple[str, dict[str, Any]]]:
    end = len(src) - 1
    if src[1] in " \t\n]":
        m = _SEP.match(src, 1)
        if m.group(1) == "]" and m.end() == len(src):
            return []
    pos = 1
    out = []
    while True:
        m = _CALL.match(src, pos)
        if m is None:
            m = _LITERAL.match(src, pos)
            if m is not None and m.group(7) in (",", "]"):
                # "[get_weath", "[1, 2]": an element that is not a call fails BFCL's decoder either way
                raise _Sure("list element is not a call")
            raise _Slow
        name = m.group(1)
        if "." in name:
            if any(part in _KEYWORDS for part in name.split(".")):
                raise _Slow
        elif name in _KEYWORDS:
            raise _Slow
        args, pos = _arguments(src, m.end())
        out.append((name, args))
        sep = src[pos]
        if sep in " \t\n":
            m = _SEP.match(src, pos)
            sep, pos = m.group(1), m.end()
        else:
            pos += 1
            if sep == ",":
                pos = _SPACE.match(src, pos).end()  # whitespace before the next call
        if sep == "]":
            if pos != len(src):
                raise _Slow
            return out
        if sep != ",":
            raise _Slow
        if pos == end:  # "[f(),]": a trailing comma
            return out


def _arguments(src: str, pos: int) -> tuple[dict[str, Any], int]:
    """Keyword arguments from just after "(" to just after ")"."""
    args: dict[str, Any] = {}
    if src[pos] == ")":
        return args, pos + 1
    while True:
        m = _KEY_LITERAL.match(src, pos)
        if m is not None:
            key, sep = m.group(1), m.group(8)
            value: Any = _literal(*m.groups()[1:7])
            pos = m.end()
        else:
            m = _KWARG.match(src, pos)
            if m is not None:
                key = m.group(1)
                value, sep, pos = _value(src, m.end(), 1)
            elif args:  # a positional argument after a keyword one: a syntax error
                raise _Slow
            else:  # a positional argument: BFCL's decoder ignores it
                key = None
                _, sep, pos = _value(src, pos, 1)
        if key is not None:
            if key in args or key in _BAD_KEYS:  # syntax errors in Python: the slow path reports them
                raise _Slow
            args[key] = value
        if sep == ")":
            return args, pos
        if sep != ",":
            raise _bad_separator(src, sep, pos)
        if src[pos] == ")":  # f(a=1,)
            return args, pos + 1


def _value(src: str, pos: int, depth: int) -> tuple[Any, str, int]:
    """(value, the separator after it, position after the separator)."""
    m = _LITERAL.match(src, pos)
    if m is not None:
        return _literal(*m.groups()[:6]), m.group(7), m.end()
    opener = src[pos]
    if opener in ",)]}":
        raise _Sure(f"syntax error: a value is missing at column {pos}")
    if opener in "'\"" and src[pos:pos + 3] != opener * 3:
        end = src.find("\n", pos)
        rest = src[pos + 1:] if end < 0 else src[pos + 1:end]
        if opener not in rest and "\\" not in rest:
            raise _Sure(f"syntax error: unterminated string at column {pos}")
    if depth > _MAX_DEPTH or opener not in "[{(":
        raise _Slow
    start = _SPACE.match(src, pos + 1).end()
    if opener == "[":
        value, pos, _ = _sequence(src, start, depth + 1, "]")
    elif opener == "{":
        value, pos = _dict(src, start, depth + 1)
    else:
        items, pos, trailing_comma = _sequence(src, start, depth + 1, ")")
        # "(x)" is x itself; "()", "(x,)" and "(x, y)" are tuples
        value = items[0] if len(items) == 1 and not trailing_comma else tuple(items)
    m = _SEP.match(src, pos)
    return value, m.group(1), m.end()


def _sequence(src: str, pos: int, depth: int, close: str) -> tuple[list[Any], int, bool]:
    """Items up to `close`: (items, position after it, whether a comma came last)."""
    out: list[Any] = []
    if src[pos] == close:
        return out, pos + 1, False
    while True:
        value, sep, pos = _value(src, pos, depth)
        out.append(value)
        if sep == close:
            return out, pos, False
        if sep != ",":
            raise _bad_separator(src, sep, pos)
        if src[pos] == close:
            return out, pos + 1, True


def _dict(src: str, pos: int, depth: int) -> tuple[dict[Any, Any], int]:
    out: dict[Any, Any] = {}
    if src[pos] == "}":
        return out, pos + 1
    while True:
        m = _LITERAL.match(src, pos)  # keys: literals only (always hashable)
        if m is None or m.group(7) != ":":
            raise _Slow
        key, _, _ = _value(src, pos, depth)
        value, sep, pos = _value(src, m.end(), depth)
        out[key] = value
        if sep == "}":
            return out, pos
        if sep != ",":
            raise _bad_separator(src, sep, pos)
        if src[pos] == "}":
            return out, pos + 1


def _literal(s1: str | None, s2: str | None, flt: str | None, num: str | None,
             const: str | None, name: str | None) -> Any:
    """The value of one matched literal (exactly one group is set)."""
    if s1 is not None:
        return s1
    if s2 is not None:
        return s2
    if flt is not None:
        return float(flt)
    if num is not None:
        return int(num)
    if const is not None:
        return _CONSTANTS[const]
    if name in _KEYWORDS:
        raise _Slow
    return name  # BFCL reads a bare name as its spelling: unit=celsius -> "celsius"
