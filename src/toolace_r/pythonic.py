"""Pythonic call syntax `[get_weather(city="Paris"), math.factorial(number=5)]`: decoding (writing is
`pythonic_render`).

Decoding follows BFCL's prompt-mode decoder value for value, because our checker must give BFCL's
verdicts, but it never evaluates anything: `ast.parse` builds a tree and one resolver (`_value`)
walks the node types BFCL accepts. Where BFCL calls `eval` (binary operations such as `2**10`) a
small bounded arithmetic walker computes the same number or string; anything it cannot compute is
an error, just as BFCL's `eval` of a name raises `NameError`.

The lenient parser (`calls.parse`) and the faithful BFCL decoder share that resolver. The lenient
one adds two things on top: `strict` values (only JSON-like values: no bytes, complex or tuple dict
keys) and a pre-pass (`rewrite_names`) that lets names that are not Python identifiers through.
ToolACE data writes function names with spaces (`[Get Weather(city="x")]`) and tools have
parameters called `from` or `first-name`; the pre-pass swaps each such name, where a call name or a
keyword-argument name must stand, for a placeholder identifier and the resolver maps it back.

This module knows nothing of `ToolCall`: it works on (name, arguments) pairs so that `calls.py`,
which owns the types and the format registry, can import it without a cycle.
"""
from __future__ import annotations

import ast
import keyword
import math
import operator
import re
import warnings
from typing import Any, Callable, Mapping

# Size bounds: BFCL would eval `10**10**9` and hang; we refuse results past these sizes. Int literals
# past MAX_INT_BITS are refused too (`check_int_literals`): no output could write them as text.
MAX_INT_BITS = 4096
MAX_STR_CHARS = 65536

Pair = tuple[str, dict[str, Any]]


class DecodeError(ValueError):
    """The text could not be decoded as calls; the message becomes `ParseResult.error`."""


# --- BFCL's text normalisation --------------------------------------------------------------------

def bfcl_source(text: str) -> str:
    """The expression source BFCL's prompt-mode decoder hands to `ast.parse`.

    It strips backticks, newlines and spaces (and only those) from both ends, wraps the text in
    brackets where one is missing, then strips whitespace and single quotes.
    """
    s = text.strip("`\n ")
    if not s.startswith("["):
        s = "[" + s
    if not s.endswith("]"):
        s = s + "]"
    return s.strip().strip("'")


def parse_expression(source: str) -> ast.expr:
    """`ast.parse(source, mode="eval").body`, every failure turned into a DecodeError."""
    try:
        with warnings.catch_warnings():
            # Invalid escapes like "\d" warn on stderr; model text is full of them.
            warnings.simplefilter("ignore")
            return ast.parse(source, mode="eval").body
    except SyntaxError as e:
        raise DecodeError(f"syntax error: {e.msg} (line {e.lineno}, column {e.offset})") from None
    except (MemoryError, RecursionError):
        # CPython's own guards against deep nesting; the text is hostile or broken, not a call.
        raise DecodeError("expression too deeply nested to parse") from None
    except ValueError as e:  # e.g. NUL bytes in the source
        raise DecodeError(f"cannot parse: {e}") from None


def check_int_literals(source: str, body: ast.expr) -> None:
    """DecodeError if any int literal in the tree (used, ignored or kept as text) exceeds MAX_INT_BITS.

    Python reads `0x` + 5000 hex digits without complaint, but such an int cannot be written back
    as decimal text (`str`, `json.dumps` refuse past 4300 digits), so no caller could report it.
    A literal that large needs a run of at least (MAX_INT_BITS + 1) / 4 digits (hexadecimal is the
    densest spelling), so the tree is walked only when the source holds such a run. The lookbehind
    tries each run once, from its start, rather than from every position inside it.
    """
    run = f"(?<![0-9A-Fa-f_])[0-9A-Fa-f_]{{{(MAX_INT_BITS + 4) // 4}}}"
    if re.search(run, source) is None:
        return
    for node in ast.walk(body):
        if (isinstance(node, ast.Constant) and type(node.value) is int
                and node.value.bit_length() > MAX_INT_BITS):
            raise DecodeError(f"integer literal larger than {MAX_INT_BITS} bits")


# --- the resolver ---------------------------------------------------------------------------------

def decode(source: str, *, strict: bool, max_depth: int,
           names: Mapping[str, str] | None = None) -> list[Pair]:
    """Decode an expression source (already normalised) into (name, arguments) pairs.

    strict=False reproduces BFCL's values exactly; strict=True also rejects values that are not
    JSON-like. `names` maps placeholders from `rewrite_names` back to the original names.
    """
    body = parse_expression(source)
    check_int_literals(source, body)
    walker = _Resolver(strict=strict, max_depth=max_depth, names=names or {})
    if isinstance(body, ast.Call):
        return [walker.call(body, depth=1)]
    elts = getattr(body, "elts", None)  # List, Tuple or Set, as BFCL reads `.elts`
    if elts is None:
        raise DecodeError(f"expected a call or a list of calls, got {type(body).__name__}")
    pairs = []
    for elt in elts:
        if not isinstance(elt, ast.Call):
            raise DecodeError(f"list element is {type(elt).__name__}, not a call")
        pairs.append(walker.call(elt, depth=2))
    return pairs


UNPACKED_KWARGS = "**"  # the argument name `f(**x)` decodes to in BFCL mode


class _Resolver:
    def __init__(self, strict: bool, max_depth: int, names: Mapping[str, str]):
        self.strict = strict
        self.max_depth = max_depth
        self.names = names

    def call(self, node: ast.Call, depth: int) -> Pair:
        """A call with keyword arguments: positional arguments are ignored, as in BFCL."""
        args: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                if self.strict:
                    raise DecodeError("'**' arguments are not allowed in a call")
                # BFCL keeps `f(**x)` as a call whose parameter is named None. "**" plays that part
                # here: it can never name a schema parameter, so the call is still a decoded call
                # (wrong for irrelevance) that fails the AST check, as in BFCL, yet stays JSON-safe.
                args[UNPACKED_KWARGS] = self.value(kw.value, depth + 1)
                continue
            args[self.names.get(kw.arg, kw.arg)] = self.value(kw.value, depth + 1)
        return self.call_name(node.func), args

    def call_name(self, func: ast.expr) -> str:
        parts = []
        while isinstance(func, ast.Attribute):
            parts.append(func.attr)
            func = func.value
        # BFCL drops a base that is not a plain name (`x().f` -> "f").
        if isinstance(func, ast.Name):
            parts.append(self.names.get(func.id, func.id))
        return ".".join(reversed(parts))

    def unparse(self, node: ast.AST) -> str:
        if self.names:
            # Put the original names back on the identifiers themselves (ast.unparse writes them
            # verbatim), never in the written text, where a string could spell a placeholder
            # through escapes. The subtree becomes text and is not read again, and the originals
            # are no placeholders, so renaming it in place is safe.
            for sub in ast.walk(node):
                for attr in ("id", "attr", "arg"):
                    ident = getattr(sub, attr, None)
                    if type(ident) is str and ident in self.names:
                        setattr(sub, attr, self.names[ident])
        try:
            return ast.unparse(node)
        except RecursionError:  # e.g. `g(x.x.x...)`: BFCL's unparse fails the same way
            raise DecodeError("expression too deeply nested to write back as text") from None

    def value(self, node: ast.expr, depth: int) -> Any:
        if depth > self.max_depth:
            raise DecodeError(f"values nested deeper than {self.max_depth} levels")
        if isinstance(node, ast.Constant):
            return self.constant(node.value)
        if isinstance(node, ast.UnaryOp):
            return self.negate_operand(node)
        if isinstance(node, ast.List):
            return [self.value(v, depth + 1) for v in node.elts]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(v, depth + 1) for v in node.elts)
        if isinstance(node, ast.Dict):
            return self.dict_value(node, depth)
        if isinstance(node, ast.Name):
            return node.id  # BFCL reads a bare name as its own spelling: `unit=celsius` -> "celsius"
        if isinstance(node, ast.Call):
            if not node.keywords:
                return self.unparse(node)  # BFCL keeps `f(1)` as the string "f(1)"
            name, args = self.call(node, depth)
            return {name: args}
        if isinstance(node, ast.Subscript):
            return self.unparse(node.value) + "[" + self.unparse(node.slice) + "]"
        if isinstance(node, ast.BinOp):
            return self.checked(arithmetic(node, depth, self.max_depth))
        raise DecodeError(f"unsupported value: {type(node).__name__}")

    def constant(self, v: Any) -> Any:
        if v is Ellipsis:
            return "..."
        return self.checked(v)

    def checked(self, v: Any) -> Any:
        if self.strict and isinstance(v, (bytes, complex)):
            raise DecodeError(f"{type(v).__name__} value is not JSON-like")
        return v

    def negate_operand(self, node: ast.UnaryOp) -> Any:
        # BFCL quirk: every unary operator negates (`+5` -> -5, `not True` -> -1).
        if not isinstance(node.operand, ast.Constant):
            raise DecodeError("unary operator on something other than a literal")
        v = node.operand.value
        if not isinstance(v, (int, float, complex)):  # bool is an int: -True == -1
            raise DecodeError(f"cannot negate {type(v).__name__}")
        return self.checked(-v)

    def dict_value(self, node: ast.Dict, depth: int) -> dict:
        out: dict[Any, Any] = {}
        for k, v in zip(node.keys, node.values):
            if k is None:
                raise DecodeError("'**' unpacking inside a dict is not allowed")
            key = self.value(k, depth + 1)
            try:
                hash(key)
            except TypeError:
                raise DecodeError(f"unhashable dict key of type {type(key).__name__}") from None
            if self.strict and not (key is None or isinstance(key, (str, int, float))):
                raise DecodeError(f"dict key of type {type(key).__name__} is not JSON-like")
            if self.strict and isinstance(key, float) and not math.isfinite(key):
                # files.dumps writes a non-finite value as null, but has nothing to write for a key.
                raise DecodeError(f"dict key {key!r} is not JSON-like")
            out[key] = self.value(v, depth + 1)
        return out


# --- bounded arithmetic in place of BFCL's eval ----------------------------------------------------

def _bits(x: Any) -> int:
    return abs(int(x)).bit_length() if isinstance(x, int) else 0


def _mul(a: Any, b: Any) -> Any:
    if isinstance(a, str) or isinstance(b, str):
        s, n = (a, b) if isinstance(a, str) else (b, a)
        if isinstance(n, int) and len(s) * max(n, 0) > MAX_STR_CHARS:
            raise DecodeError("string repetition too large")
    elif _bits(a) + _bits(b) > MAX_INT_BITS:
        raise DecodeError("integer product too large")
    return a * b


def _pow(a: Any, b: Any) -> Any:
    if isinstance(a, int) and isinstance(b, int) and b > 0:
        # (bits - 1) * b is a lower bound of the result's size: refuse only what is surely too big.
        if (_bits(a) - 1) * b > MAX_INT_BITS:
            raise DecodeError("power too large")
    return a ** b


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str) and len(a) + len(b) > MAX_STR_CHARS:
        raise DecodeError("string too large")
    return a + b


def _mod(a: Any, b: Any) -> Any:
    if isinstance(a, str):
        raise DecodeError("'%' string formatting is not evaluated")
    return a % b


_BINARY: dict[type, Callable[[Any, Any], Any]] = {
    ast.Add: _add, ast.Sub: operator.sub, ast.Mult: _mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: _mod, ast.Pow: _pow,
}
_UNARY: dict[type, Callable[[Any], Any]] = {
    ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Not: operator.not_, ast.Invert: operator.invert,
}
_NUMBER_OR_STR = (int, float, complex, str)  # bool is an int


def arithmetic(node: ast.expr, depth: int, max_depth: int) -> Any:
    """What Python's eval would give for literal arithmetic, with bounded sizes; else DecodeError."""
    if depth > max_depth:
        raise DecodeError(f"arithmetic nested deeper than {max_depth} levels")
    if isinstance(node, ast.Constant) and isinstance(node.value, _NUMBER_OR_STR):
        return node.value
    try:
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            result = _UNARY[type(node.op)](arithmetic(node.operand, depth + 1, max_depth))
        elif isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left = arithmetic(node.left, depth + 1, max_depth)
            right = arithmetic(node.right, depth + 1, max_depth)
            result = _BINARY[type(node.op)](left, right)
        else:
            raise DecodeError(f"cannot compute {type(node).__name__} without evaluating code")
    except (TypeError, ZeroDivisionError, OverflowError, ValueError) as e:
        if isinstance(e, DecodeError):
            raise
        raise DecodeError(f"arithmetic failed: {type(e).__name__}: {e}") from None
    if _bits(result) > MAX_INT_BITS:
        raise DecodeError("integer result too large")
    return result


# --- names that are not identifiers (lenient parsing only) ----------------------------------------

# Bounded repetitions keep the regexes linear on hostile input (no unbounded backtracking).
_WORDS = r"\w[\w.\-]{0,255}(?:[ ]{1,8}[\w.\-]{1,255}){0,32}"
_CALL_NAME_AT = re.compile(rf"(\s*)({_WORDS})(\s*)(?=\()")
_ARG_NAME_AT = re.compile(rf"(\s*)({_WORDS})(\s*)(?==(?!=))")
_SPECIAL = re.compile(r"""[\[\](){},'"#]""")
NAME_PATTERN = re.compile(rf"{_WORDS}")  # what a call or argument name may look like when rendered


def is_plain_name(name: str, dotted: bool) -> bool:
    """True when Python can parse `name` where a call name (dotted) or keyword name must stand."""
    parts = name.split(".") if dotted else [name]
    return all(p.isidentifier() and not keyword.iskeyword(p) for p in parts)


def rewrite_names(source: str) -> tuple[str, dict[str, str]]:
    """Replace call names and keyword names that Python cannot parse by placeholders.

    Only two places are touched: a name followed by "(" at the start of an element of the outer
    list, and a name followed by "=" at the start of an argument inside parentheses. String
    literals and comments are skipped over verbatim, so their contents never change.
    """
    prefix = _placeholder_prefix(source)
    names: dict[str, str] = {}
    placeholder_of: dict[str, str] = {}  # one placeholder per distinct name
    out: list[str] = []
    stack: list[str] = []
    i = 0
    while True:
        m = _SPECIAL.search(source, i)
        if m is None:
            out.append(source[i:])
            break
        j = m.start()
        out.append(source[i:j])
        c = source[j]
        if c in "'\"":
            end = _string_end(source, j)
            out.append(source[j:end])
            i = end
            continue
        if c == "#":
            end = source.find("\n", j)
            end = len(source) if end < 0 else end
            out.append(source[j:end])
            i = end
            continue
        out.append(c)
        i = j + 1
        if c in "([{":
            stack.append(c)
        elif c in ")]}":
            if stack:
                stack.pop()
        if c not in "([," or not stack:
            continue
        if stack[-1] == "[" and len(stack) == 1:
            pattern, dotted = _CALL_NAME_AT, True
        elif stack[-1] == "(":
            pattern, dotted = _ARG_NAME_AT, False
        else:
            continue
        found = pattern.match(source, i)
        if found and not is_plain_name(found.group(2), dotted):
            original = found.group(2)
            placeholder = placeholder_of.get(original)
            if placeholder is None:
                placeholder = placeholder_of[original] = f"{prefix}{len(names)}_"
                names[placeholder] = original
            out.append(found.group(1) + placeholder + found.group(3))
            i = found.end()
    return "".join(out), names


# The run is read in a lookahead, not consumed, so a "_tcr" starting on its last underscore is found too.
_PREFIX_RUNS = re.compile(r"_tcr(?=(_*))")


def _placeholder_prefix(source: str) -> str:
    """A prefix that occurs nowhere in `source`: "_tcr" and one underscore more than follows any
    "_tcr" there. No identifier of the source can then equal a placeholder (prefix, digits, "_")."""
    longest = max((len(m.group(1)) for m in _PREFIX_RUNS.finditer(source)), default=0)
    return "_tcr" + "_" * (longest + 1)


def _string_end(s: str, start: int) -> int:
    """Index just past the string literal opening at `start` (or len(s) if it never closes).

    String prefixes (r, b, f) need no care: a backslash keeps the next character inside the
    literal for raw strings too, so the end is found the same way.
    """
    quote = s[start] * 3 if s.startswith(s[start] * 3, start) else s[start]
    i = start + len(quote)
    while i < len(s):
        if s[i] == "\\":
            i += 2
        elif s.startswith(quote, i):
            return i + len(quote)
        elif s[i] == "\n" and len(quote) == 1:
            return i  # unterminated; ast.parse will report it
        else:
            i += 1
    return len(s)
