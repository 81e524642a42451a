"""ACEBench's decoding of a normal-category answer (docs/acebench.md): every whitespace character is
deleted from the whole text, the rest is parsed as one Python expression that must be a list/tuple/set
of calls, and arguments become values by ACEBench's rules (a bare name is its own text, any unary
operator negates, arithmetic is computed over literals within size bounds, positional arguments are
dropped). Parsed with `ast`, never executed. A failure is `_Fail`, which evaluation/acebench.py turns
into a verdict.
"""
from __future__ import annotations

import ast
import operator
from typing import Any


class _Fail(Exception):
    """A wrong answer: our error type, a message, ACEBench's own error type."""

    def __init__(self, error_type: str, message: str, official: str):
        super().__init__(message)
        self.error_type, self.message, self.official = error_type, message, official


class _Crash(_Fail):
    """A spot where ACEBench's own checker raises an exception (it would stop the whole run)."""

    def __init__(self, message: str):
        super().__init__("value", f"ACEBench's checker raises here: {message}", "crash")


MAX_POWER_EXPONENT = 10_000   # [ours] bounds on computing arithmetic found in an answer
MAX_SEQUENCE_RESULT = 1_000_000


def decode(text: str) -> list[tuple[str, dict]]:
    """[(name, {keyword: value})] by ACEBench's decoding rules; _Fail when ACEBench cannot decode it."""
    cleaned = "".join(text.split())
    try:
        tree = ast.parse(cleaned, mode="eval")
    except (SyntaxError, ValueError, RecursionError, MemoryError) as exc:
        raise _Fail("decode_failure", f"not a Python expression: {exc}", "wrong_output_format") from None
    body = tree.body
    if not isinstance(body, (ast.List, ast.Tuple, ast.Set)):
        raise _Fail("decode_failure", "expected a list of calls [F(k=v), ...]", "wrong_output_format")
    out = []
    for elt in body.elts:
        if not isinstance(elt, ast.Call):
            raise _Fail("decode_failure", f"not a call: {ast.unparse(elt)[:80]}", "wrong_output_format")
        try:
            name, args = _call(elt)
        except RecursionError:
            raise _Fail("decode_failure", "nested too deeply", "wrong_output_format") from None
        out.append((name, args))
    return out


def _dotted_name(func: ast.expr) -> str:
    parts = []
    while isinstance(func, ast.Attribute):
        parts.append(func.attr)
        func = func.value
    if isinstance(func, ast.Name):
        parts.append(func.id)
    return ".".join(reversed(parts))


def _call(node: ast.Call) -> tuple[str, dict]:
    """Keyword arguments only (positional ones are dropped); `**x` becomes the argument named None."""
    return _dotted_name(node.func), {kw.arg: _value(kw.value) for kw in node.keywords}


def _value(node: Any) -> Any:
    bad = _Fail("decode_failure", f"unsupported value {type(node).__name__}", "wrong_output_format")
    if isinstance(node, ast.Constant):
        return "..." if node.value is Ellipsis else node.value
    if isinstance(node, ast.UnaryOp):  # whatever the operator, the literal operand is negated
        if not isinstance(node.operand, ast.Constant):
            raise bad
        try:
            return -node.operand.value
        except TypeError:
            raise bad from None
    if isinstance(node, ast.List):
        return [_value(v) for v in node.elts]
    if isinstance(node, ast.Tuple):
        return tuple(_value(v) for v in node.elts)
    if isinstance(node, ast.Dict):
        out = {}
        for k, v in zip(node.keys, node.values):
            key = _value(k)  # `**x` inside a dict has no key node: unsupported
            try:
                out[key] = _value(v)
            except TypeError:
                raise bad from None
        return out
    if isinstance(node, ast.BinOp):
        return _arithmetic(node)
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Call):
        name, args = _call(node)
        return {name: args}
    if isinstance(node, ast.Subscript):
        return ast.unparse(node.value) + "[" + ast.unparse(node.slice) + "]"
    raise bad


_BINOPS = {
    ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow,
    ast.LShift: operator.lshift, ast.RShift: operator.rshift, ast.BitOr: operator.or_,
    ast.BitXor: operator.xor, ast.BitAnd: operator.and_, ast.MatMult: operator.matmul,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos, ast.Invert: operator.invert, ast.Not: operator.not_}


def _arithmetic(node: ast.expr) -> Any:
    """The value Python gives an operation over literals (ACEBench computes it); names, calls and
    results past the size bounds cannot be decoded."""
    bad = _Fail("decode_failure", f"cannot compute {ast.unparse(node)[:80]}", "wrong_output_format")
    try:
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, (ast.List, ast.Tuple, ast.Set)):
            items = [_arithmetic(e) for e in node.elts]
            return {ast.List: list, ast.Tuple: tuple, ast.Set: set}[type(node)](items)
        if isinstance(node, ast.Dict) and all(k is not None for k in node.keys):
            return {_arithmetic(k): _arithmetic(v) for k, v in zip(node.keys, node.values)}
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](_arithmetic(node.operand))
        if isinstance(node, ast.BinOp):
            left, right = _arithmetic(node.left), _arithmetic(node.right)
            _check_size(node.op, left, right)
            return _BINOPS[type(node.op)](left, right)
    except _Fail:
        raise
    except (ArithmeticError, TypeError, ValueError, KeyError, MemoryError, RecursionError):
        raise bad from None
    raise bad


def _check_size(op: ast.operator, left: Any, right: Any) -> None:
    def big_int(x: Any) -> bool:
        return isinstance(x, int) and abs(x) > MAX_SEQUENCE_RESULT
    too_big = (
        isinstance(op, ast.Pow) and isinstance(right, int) and abs(right) > MAX_POWER_EXPONENT
        or isinstance(op, ast.LShift) and isinstance(right, int) and right > MAX_POWER_EXPONENT
        or isinstance(op, ast.Mult) and (
            isinstance(left, (str, bytes, list, tuple)) and isinstance(right, int)
            and len(left) * max(right, 0) > MAX_SEQUENCE_RESULT
            or isinstance(right, (str, bytes, list, tuple)) and isinstance(left, int)
            and len(right) * max(left, 0) > MAX_SEQUENCE_RESULT
            or big_int(left) and big_int(right) and left.bit_length() + right.bit_length() > 64 * MAX_POWER_EXPONENT)
    )
    if too_big:
        raise _Fail("decode_failure", "arithmetic result too large to compute", "wrong_output_format")
