"""Tool calls: one `ToolCall` type, parsing model output in several formats, rendering, equality.

CONTRACT (shared by every module):
- `ToolCall(name, arguments)` is immutable-by-convention; `arguments` is a plain JSON-like dict.
- `parse(text, fmt="auto") -> ParseResult` never raises on any input string and never evaluates it.
- `render(calls, fmt) -> str`; parse(render(c, f), f).calls == c.
- `canonical(calls)` gives a hashable value: equal for the same calls in any order (multiset) and
  any key order.

Formats live in a registry (`FORMATS`, keys "pythonic", "json", "hermes", "openai"); a new syntax
is one `register_format` call. Model output is untrusted: size, nesting and integers are bounded
(`MAX_INPUT_CHARS`, `MAX_DEPTH`, `pythonic.MAX_INT_BITS`) and a failure is data (`ParseResult.error`),
not an exception.
The pythonic syntax, including `decode_bfcl` (BFCL's exact decoder, without its eval), is built on
`toolace_r.pythonic`.
"""
from __future__ import annotations

import json
import keyword
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from toolace_r import pythonic, pythonic_fast, pythonic_render


@dataclass
class ToolCall:
    name: str
    arguments: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "arguments": self.arguments}


@dataclass
class ParseResult:
    """What a model's answer turned out to be.

    format: "pythonic" | "json" | "hermes" | "openai" | "text" (a plain non-call answer); on an error the
            format that was attempted (None only when the input was too long to try any).
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


# --- limits ---------------------------------------------------------------------------------------

MAX_INPUT_CHARS = 64 * 1024  # longer answers are an error, not a parse: bounds time and memory
MAX_DEPTH = 32  # nesting of lists, dicts and calls; deeper is an error, never a RecursionError


class _Bad(ValueError):
    """Internal: the text tried to be calls in some format but failed; becomes ParseResult.error."""


# --- the format registry --------------------------------------------------------------------------

@dataclass(frozen=True)
class CallFormat:
    """One call syntax: how to spot it, how to decode it, how to write it."""

    name: str
    looks_like: Callable[[str], bool]  # given the answer with fences and outer whitespace removed
    decode: Callable[[str], tuple[str, list[ToolCall]]]  # -> (format found, calls); raises _Bad
    render: Callable[[list[ToolCall]], str]


FORMATS: dict[str, CallFormat] = {}
# Auto detection tries formats in this order: hermes first because its blocks hold JSON;
# pythonic before json so that a bare "[]" counts as the pythonic empty call list.
AUTO_ORDER = ("hermes", "pythonic", "json")


def register_format(fmt: CallFormat) -> CallFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def get_format(name: str) -> CallFormat:
    if name not in FORMATS:
        raise ValueError(f"unknown call format {name!r}; known: {', '.join(sorted(FORMATS))}")
    return FORMATS[name]


# --- parse ----------------------------------------------------------------------------------------

def parse(text: str, fmt: str = "auto") -> ParseResult:
    """Decode a model's answer. Never raises on any string and never evaluates it.

    fmt="auto" detects the format; a named format only decodes that one (other text is plain
    text). Only an unknown `fmt` raises (ValueError), a programming error.
    """
    candidates = AUTO_ORDER if fmt == "auto" else (get_format(fmt).name,)
    if not isinstance(text, str):
        raise TypeError(f"parse() needs a str, got {type(text).__name__}")
    if len(text) > MAX_INPUT_CHARS:
        return ParseResult(format=None, error=f"answer longer than {MAX_INPUT_CHARS} characters")
    text = _without_bom(text)
    core = strip_fences(text)
    for name in candidates:
        call_format = FORMATS[name]
        try:
            if not call_format.looks_like(core):
                continue
            found, calls = call_format.decode(core)
            return ParseResult(format=found, calls=calls)
        except _Bad as e:
            return ParseResult(format=name, error=str(e))
        except Exception as e:  # a bug of ours must still not escape into the caller's loop
            return ParseResult(format=name, error=f"internal parser error: {type(e).__name__}: {e}")
    return ParseResult(format="text", text=text.strip())


def decode_bfcl(text: str) -> ParseResult:
    """Decode exactly as BFCL's prompt-mode decoder does (without its eval); format "pythonic".

    No fence handling beyond BFCL's own strip, no names with spaces, values kept as BFCL keeps them
    (tuples, bytes, non-string dict keys). Failure is an error result, never an exception. Plain call
    lists and sure syntax errors take a regex fast path (`pythonic_fast`); the rest `decode_bfcl_ast`.
    """
    if not isinstance(text, str):
        raise TypeError(f"decode_bfcl() needs a str, got {type(text).__name__}")
    fast = pythonic_fast.decode(text)
    if fast is None:
        return decode_bfcl_ast(text)
    if type(fast) is str:
        return ParseResult(format="pythonic", error=fast)
    return ParseResult(format="pythonic", calls=[ToolCall(n, a) for n, a in fast])


def decode_bfcl_ast(text: str) -> ParseResult:
    """`decode_bfcl` through `ast.parse` for every input: the reference the fast path is tested against."""
    if not isinstance(text, str):
        raise TypeError(f"decode_bfcl() needs a str, got {type(text).__name__}")
    if len(text) > MAX_INPUT_CHARS:
        return ParseResult(format="pythonic", error=f"answer longer than {MAX_INPUT_CHARS} characters")
    try:
        pairs = pythonic.decode(pythonic.bfcl_source(text), strict=False, max_depth=MAX_DEPTH)
    except pythonic.DecodeError as e:
        return ParseResult(format="pythonic", error=str(e))
    except Exception as e:
        return ParseResult(format="pythonic", error=f"internal parser error: {type(e).__name__}: {e}")
    return ParseResult(format="pythonic", calls=[ToolCall(n, a) for n, a in pairs])


def _without_bom(text: str) -> str:
    """The text without a byte order mark (U+FEFF) at its start, after any whitespace.

    Text read from a file saved as "UTF-8 with BOM" starts with one; it is no part of the answer.
    `decode_bfcl` keeps it, as BFCL does: there it makes the source a syntax error.
    """
    s = text.lstrip()
    return s[1:] if s.startswith("\ufeff") else text


def strip_fences(text: str) -> str:
    """Remove outer whitespace and one Markdown code fence (```json, ```python, ```) around it."""
    s = text.strip()
    if s.startswith("```"):
        newline = s.find("\n")
        tag = s[3:newline] if newline >= 0 else None
        # A first line like "```json" is a language tag; "```[f(a=1)]" is code on the fence line.
        s = s[newline + 1:] if tag is not None and _FENCE_TAG.fullmatch(tag) else s[3:]
        s = s.rstrip()
        if s.endswith("```"):
            s = s[:-3]
    return s.strip()


_FENCE_TAG = re.compile(r"[\w+\-.]*\s*")


# --- pythonic -------------------------------------------------------------------------------------

# `[name(`, `[]`, or an unbracketed call: a dotted identifier right before "(", or a looser name
# whose "(" opens an argument list (`Get Weather(city=...`); prose rarely starts like either.
_PY_BRACKETED = re.compile(rf"\[\s*(?:\]\s*$|{pythonic.NAME_PATTERN.pattern}\s*\()")
_PY_DOTTED = re.compile(r"[^\W\d]\w*(?:\.[^\W\d]\w*)*\(")
_PY_LOOSE = re.compile(rf"{pythonic.NAME_PATTERN.pattern}\s*\(\s*(?:\)|{pythonic.NAME_PATTERN.pattern}\s*=(?!=))")


def _looks_pythonic(core: str) -> bool:
    if _PY_BRACKETED.match(core) or _PY_DOTTED.match(core):
        return True
    # A loose name must end the answer with the call and not be code such as `def f():`.
    return (bool(_PY_LOOSE.match(core)) and core.endswith((")", "]"))
            and not keyword.iskeyword(core.split(maxsplit=1)[0]))


def _decode_pythonic(core: str) -> tuple[str, list[ToolCall]]:
    # Same normalisation and resolver as BFCL's decoder; names that are not identifiers pass
    # through placeholders (see pythonic.rewrite_names) and values must be JSON-like.
    source, names = pythonic.rewrite_names(pythonic.bfcl_source(core))
    try:
        pairs = pythonic.decode(source, strict=True, max_depth=MAX_DEPTH, names=names)
    except pythonic.DecodeError as e:
        raise _Bad(str(e)) from None
    return "pythonic", [ToolCall(n, a) for n, a in pairs]


def _render_pythonic(calls: list[ToolCall]) -> str:
    return pythonic_render.render([(c.name, c.arguments) for c in calls])


register_format(CallFormat("pythonic", _looks_pythonic, _decode_pythonic, _render_pythonic))


# --- json and openai ------------------------------------------------------------------------------

def _looks_json(core: str) -> bool:
    return core.startswith("{") or bool(re.match(r"\[\s*[{\]]", core))


def _load_json(text: str, what: str) -> Any:
    depth = json_depth(text)
    if depth > MAX_DEPTH:
        raise _Bad(f"{what} nested deeper than {MAX_DEPTH} levels")
    try:
        return json.loads(text, parse_int=_json_int)
    except (ValueError, RecursionError) as e:  # _json_int's _Bad included
        raise _Bad(f"invalid {what}: {e}") from None


def _json_int(digits: str) -> int:
    """A JSON integer, bounded as pythonic literals are (`pythonic.check_int_literals`): a larger
    one could not be written back as text.

    d digits are at least 10**(d-1) > 2**(3*(d-1)), so a longer text is refused unconverted
    (converting a long digit run costs time quadratic in its length).
    """
    if len(digits) <= pythonic.MAX_INT_BITS // 3 + 2:
        value = int(digits)
        if value.bit_length() <= pythonic.MAX_INT_BITS:
            return value
    raise _Bad(f"integer larger than {pythonic.MAX_INT_BITS} bits")


_JSON_SPECIAL = re.compile(r'[\[\]{}"]')
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.S)


def json_depth(text: str) -> int:
    """Deepest bracket nesting outside JSON strings, found without recursion."""
    depth = deepest = 0
    i = 0
    while (m := _JSON_SPECIAL.search(text, i)) is not None:
        c = m.group(0)
        if c == '"':
            s = _JSON_STRING.match(text, m.start())
            if s is None:
                break  # unterminated string: json.loads will say so
            i = s.end()
            continue
        depth = depth + 1 if c in "[{" else max(depth - 1, 0)
        deepest = max(deepest, depth)
        i = m.end()
    return deepest


def _decode_json(core: str) -> tuple[str, list[ToolCall]]:
    value = _load_json(core, "JSON")
    fmt = "json"
    if isinstance(value, dict) and "tool_calls" in value:
        value, fmt = value["tool_calls"], "openai"
        if not isinstance(value, list):
            raise _Bad('"tool_calls" must be a list')
    items = value if isinstance(value, list) else [value]
    calls = []
    for item in items:
        if not isinstance(item, dict):
            raise _Bad(f"a call must be a JSON object, got {type(item).__name__}")
        if isinstance(item.get("function"), dict):  # OpenAI tool_call object
            item, fmt = item["function"], "openai"
        calls.append(_call_from_object(item))
    return fmt, calls


def _call_from_object(obj: dict) -> ToolCall:
    name = obj.get("name")
    if not isinstance(name, str):
        raise _Bad('a call object needs a string "name"')
    args = obj["arguments"] if "arguments" in obj else obj.get("parameters")
    if isinstance(args, str):  # OpenAI sends arguments as a JSON string ("" when there are none)
        args = _load_json(args, "arguments JSON") if args.strip() else {}
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise _Bad(f'"arguments" of {name!r} must be an object, got {type(args).__name__}')
    return ToolCall(name, args)


def _render_json(calls: list[ToolCall]) -> str:
    return json.dumps([c.to_dict() for c in calls], ensure_ascii=False)


def _render_openai(calls: list[ToolCall]) -> str:
    return json.dumps([
        {"id": f"call_{i}", "type": "function",
         "function": {"name": c.name, "arguments": json.dumps(c.arguments, ensure_ascii=False)}}
        for i, c in enumerate(calls)
    ], ensure_ascii=False)


register_format(CallFormat("json", _looks_json, _decode_json, _render_json))
register_format(CallFormat("openai", _looks_json, _decode_json, _render_openai))


# --- hermes ---------------------------------------------------------------------------------------

# A block left open at the end (a generation cut short) runs to the end of the text.
_HERMES_BLOCK = re.compile(r"<tool_call>(.*?)(?:</tool_call>|\Z)", re.S)


def _looks_hermes(core: str) -> bool:
    return "<tool_call>" in core


def _decode_hermes(core: str) -> tuple[str, list[ToolCall]]:
    calls: list[ToolCall] = []
    for block in _HERMES_BLOCK.findall(core):
        value = _load_json(strip_fences(block), "JSON in <tool_call>")
        for item in value if isinstance(value, list) else [value]:
            if not isinstance(item, dict):
                raise _Bad(f"a call must be a JSON object, got {type(item).__name__}")
            calls.append(_call_from_object(item))
    return "hermes", calls


def _render_hermes(calls: list[ToolCall]) -> str:
    return "\n".join(
        f"<tool_call>\n{json.dumps(c.to_dict(), ensure_ascii=False)}\n</tool_call>" for c in calls)


register_format(CallFormat("hermes", _looks_hermes, _decode_hermes, _render_hermes))


# --- render ---------------------------------------------------------------------------------------

def render(calls: list[ToolCall], fmt: str = "pythonic") -> str:
    """Write calls in a registered format; `parse(render(c, f), f).calls == c`.

    JSON formats write tuples as lists and non-string dict keys as strings. Hermes writes no call
    as "" (which parses as an empty text answer). Values JSON cannot hold raise ValueError/TypeError.
    """
    return get_format(fmt).render(list(calls))


# --- equality -------------------------------------------------------------------------------------

def _normal(v: Any) -> Any:
    """A JSON-ready copy in which different Python values stay different (1, 1.0, True)."""
    if v is None or isinstance(v, (bool, int, float, str)):
        return v
    if isinstance(v, (list, tuple)):
        return [_normal(x) for x in v]
    if isinstance(v, dict):
        return {(k if isinstance(k, str) else f"\x00{type(k).__name__}:{k!r}"): _normal(x)
                for k, x in v.items()}
    return {f"\x00{type(v).__name__}": repr(v)}  # bytes, complex from decode_bfcl


def _call_key(call: ToolCall) -> str:
    return json.dumps({"name": call.name, "arguments": _normal(call.arguments)},
                      sort_keys=True, ensure_ascii=False)


def canonical(calls: list[ToolCall]) -> tuple[str, ...]:
    """Hashable form: same for the same calls in any order and key order; tuples count as lists."""
    return tuple(sorted(_call_key(c) for c in calls))


def same_calls(a: list[ToolCall], b: list[ToolCall]) -> bool:
    """Multiset equality of two call lists, types kept apart (1 != 1.0 != True)."""
    return canonical(a) == canonical(b)


def canonical_answer(result: ParseResult) -> tuple:
    """Hashable form of a whole answer, for the refinement stop test.

    Calls compare by `canonical` whatever format wrote them; a text answer by its stripped text;
    a failed parse by its format and error message.
    """
    if result.is_call:
        return ("calls", canonical(result.calls or []))
    if result.format == "text":
        return ("text", (result.text or "").strip())
    return ("error", result.format, result.error)
