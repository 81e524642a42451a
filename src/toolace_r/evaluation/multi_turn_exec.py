"""Executing calls against BFCL's simulated APIs, safely, with BFCL's results string for string.

BFCL's multi-turn harness turns each decoded call back into text (`cd(folder='document')`), prefixes
every method name of the involved classes with the name of a global instance, and `eval`s the text;
the result becomes a string (a str as is, a dict through `json.dumps`, anything else through `str`,
an exception as "Error during execution: <message>"). Model output is untrusted, so nothing here
evaluates text. Two ideas:

- Same text, no eval. A call is rendered exactly as BFCL renders it (`render_call`), the same
  method-name rewrite is applied (it reaches into string literals too, and that is reproduced), and
  the rewritten text is parsed with `ast.parse` and walked by a small interpreter that knows only
  literals, the instances' public methods and calls of them. Anything else (a builtin, an attribute
  that is not a public method, an operator beyond what `repr` writes) is an error result; BFCL would
  run it. Ground-truth strings, which use positional arguments, go through the same interpreter.
- Same classes. The simulated APIs are BFCL's own classes, imported from the installed `bfcl_eval`
  (plain Python: its file system, trading bot, ...), created and loaded as BFCL does, so their state,
  their results and their error messages are BFCL's.

MathAPI's methods set the process-wide decimal and mpmath precisions; a call and the writing of its
result run inside a local decimal context, and mpmath's precision is put back afterwards, so nothing
leaks into the rest of the process (an mpmath number is written at the precision its call set).

Bounds: a rendered call is at most `MAX_CALL_CHARS` characters and `MAX_DEPTH` levels deep, and a few
arguments that set the amount of work of a method (MathAPI's precisions and integer powers) are
capped (`_WORK_LIMITS`), since BFCL would run them for as long as they take.
"""
from __future__ import annotations

import ast
import copy
import decimal
import importlib
import inspect
import json
import re
import sys
import warnings
from typing import Any, Iterable

from toolace_r.calls import ToolCall

MAX_CALL_CHARS = 256 * 1024  # one rendered call; a decoded answer is at most 64 KiB before rendering
MAX_DEPTH = 64  # nesting inside one call
FORBIDDEN_NAMES = frozenset({"kill", "exit", "quit", "remove", "unlink", "popen", "Popen", "run"})  # BFCL's list
_METHOD_NAME = re.compile(r"\b([a-zA-Z_]\w*)\s*(?=\()")  # what BFCL rewrites: a name before "("
_INSTANCE_CHARS = re.compile(r"[-./:]")

# Module of each class under bfcl_eval's func_source_code package (BFCL's own mapping, restated so
# this file lists exactly the classes it can run), and the classes BFCL does not load a scenario into.
_SOURCE = "bfcl_eval.eval_checker.multi_turn_eval.func_source_code"
CLASS_MODULES = {
    "GorillaFileSystem": "gorilla_file_system",
    "MathAPI": "math_api",
    "MessageAPI": "message_api",
    "TwitterAPI": "posting_api",
    "TicketAPI": "ticket_api",
    "TradingBot": "trading_bot",
    "TravelAPI": "travel_booking",
    "VehicleControlAPI": "vehicle_control",
}
STATELESS_CLASSES = frozenset({"MathAPI"})


class ExecutionRefused(Exception):
    """A call this executor will not run (BFCL would): becomes an "Error during execution" result."""


def load_class(class_name: str) -> type:
    if class_name not in CLASS_MODULES:
        raise ValueError(f"unknown BFCL class {class_name!r} (known: {', '.join(CLASS_MODULES)})")
    module = importlib.import_module(f"{_SOURCE}.{CLASS_MODULES[class_name]}")
    return getattr(module, class_name)


_PUBLIC_METHODS: dict[type, frozenset[str]] = {}


def public_methods(instance: Any) -> frozenset[str]:
    """The names BFCL maps to an instance: bound methods whose names do not start with "_"."""
    cls = type(instance)
    if cls not in _PUBLIC_METHODS:
        _PUBLIC_METHODS[cls] = frozenset(
            name for name, _ in inspect.getmembers(instance, predicate=inspect.ismethod) if not name.startswith("_"))
    return _PUBLIC_METHODS[cls]


def instance_name(model_name: str, example_id: str, class_name: str) -> str:
    """BFCL's global name for an instance; it shows wherever the method rewrite reaches into a string."""
    return _INSTANCE_CHARS.sub("_", f"{model_name}_{example_id}_{class_name}_instance")


# --- rendering: a decoded call back into BFCL's execution text ------------------------------------

def render_call(call: ToolCall) -> str:
    """The text BFCL's decoder hands to execution for one call. IndexError where BFCL's raises (an
    argument value `{}`), which makes BFCL drop the whole step."""
    args = ", ".join(f"{k}={_render_value(v)}" for k, v in call.arguments.items())
    return f"{call.name}({args})"


def _render_value(value: Any) -> str:
    if isinstance(value, dict):
        if all(isinstance(v, dict) for v in value.values()):  # BFCL reads this shape as a nested call
            name = list(value.keys())[0]
            inner = value[name]
            return f"{name}(" + ", ".join(f"{k}={_render_value(v)}" for k, v in inner.items()) + ")"
        return "{" + ", ".join(f"'{k}': {_render_value(v)}" for k, v in value.items()) + "}"
    return repr(value)


# --- the state --------------------------------------------------------------------------------------

class MultiTurnState:
    """The instances of one conversation and an executor over them.

    `model_name` is the model-name part of BFCL's instance names (the checker uses
    "<model>_eval" and "<model>_ground_truth_eval", as BFCL's evaluation does).
    """

    def __init__(self, involved_classes: Iterable[str], initial_config: dict[str, Any] | None = None, *,
                 long_context: bool = False, example_id: str = "", model_name: str = "toolace_r"):
        config = initial_config or {}
        self.instances: dict[str, Any] = {}
        self._by_name: dict[str, Any] = {}  # instance name -> instance
        self._owner: dict[str, str] = {}  # method name -> instance name (a later class wins, as in BFCL)
        for class_name in involved_classes:
            instance = load_class(class_name)()
            if class_name not in STATELESS_CLASSES:
                instance._load_scenario(copy.deepcopy(config.get(class_name, {})), long_context=long_context)
            name = instance_name(model_name, example_id, class_name)
            self.instances[class_name] = instance
            self._by_name[name] = instance
            for method in sorted(public_methods(instance)):
                self._owner[method] = name

    @classmethod
    def for_example(cls, example: Any, *, model_name: str = "toolace_r") -> "MultiTurnState":
        """Fresh instances for a multi-turn Example (see data/bfcl_multi_turn.py), loaded as BFCL loads them."""
        meta = example.metadata
        return cls(meta["involved_classes"], meta.get("initial_config") or {},
                   long_context=bool(meta.get("long_context")), example_id=example.id, model_name=model_name)

    def execute(self, calls: list[ToolCall]) -> list[str]:
        """One result string per call, in order, each as BFCL's executor would give it."""
        out = []
        for call in calls:
            try:
                text = render_call(call)
            except Exception as e:  # BFCL fails such a call while decoding; here it is an error result
                out.append(f"Error during execution: {type(e).__name__}: {e}")
                continue
            out.append(self.execute_text(text))
        return out

    def execute_source(self, texts: list[str]) -> list[str]:
        """Call strings as BFCL's answer files hold them (positional arguments allowed)."""
        return [self.execute_text(t) for t in texts]

    def execute_text(self, text: str) -> str:
        if len(text) > MAX_CALL_CHARS:
            return f"Error during execution: call longer than {MAX_CALL_CHARS} characters"
        processed = _METHOD_NAME.sub(self._prefix, text)
        head = processed.split("(")[0] if "(" in processed else processed
        if "." in head:
            head = head.split(".")[1]
        if head in FORBIDDEN_NAMES:
            return f"Error during execution: Function call {head} is not allowed."
        # MathAPI sets the process-wide decimal and mpmath precisions before each use, and an mpmath
        # number is written out at the precision in force: both stay local to the call and its result.
        mpmath = sys.modules.get("mpmath")
        dps = mpmath.mp.dps if mpmath is not None else None
        try:
            with decimal.localcontext():
                return _stringify(self._run(processed))
        except Exception as e:
            return f"Error during execution: {e}"
        finally:
            if mpmath is not None:
                mpmath.mp.dps = dps

    def _prefix(self, match: re.Match) -> str:
        name = match.group(1)
        owner = self._owner.get(name)
        return f"{owner}.{name}" if owner is not None else name

    def _run(self, source: str) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                tree = ast.parse(source, filename="<string>", mode="eval")
        except (MemoryError, RecursionError) as e:  # SyntaxError, ValueError: Python's own message, as eval's
            raise ExecutionRefused(f"cannot parse the call: {type(e).__name__}") from None
        return _Interpreter(self).value(tree.body, 0)


def _stringify(result: Any) -> str:
    """BFCL's rule, exact types: str as is, dict as JSON (else str), anything else str."""
    if type(result) == str:  # noqa: E721  (subclasses go through str(), as in BFCL)
        return result
    if type(result) == dict:  # noqa: E721
        try:
            return json.dumps(result)
        except Exception:
            return str(result)
    return str(result)


# --- the interpreter ----------------------------------------------------------------------------------

_UNARY = {ast.USub: lambda x: -x, ast.UAdd: lambda x: +x, ast.Not: lambda x: not x, ast.Invert: lambda x: ~x}
_BINARY = {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b}  # what repr writes: complex numbers
_NUMBER = (int, float, complex)


class _Interpreter:
    """Literals, names of instances, their public methods, and calls: Python's evaluation order."""

    def __init__(self, state: MultiTurnState):
        self.state = state

    def value(self, node: ast.AST, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise ExecutionRefused(f"call nested deeper than {MAX_DEPTH} levels")
        d = depth + 1
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Call):
            return self.call(node, d)
        if isinstance(node, ast.List):
            return [self.value(e, d) for e in self._plain(node.elts)]
        if isinstance(node, ast.Tuple):
            return tuple(self.value(e, d) for e in self._plain(node.elts))
        if isinstance(node, ast.Set):
            return {self.value(e, d) for e in self._plain(node.elts)}
        if isinstance(node, ast.Dict):
            out = {}
            for k, v in zip(node.keys, node.values):
                if k is None:
                    raise ExecutionRefused("dict unpacking (**) is not supported")
                key = self.value(k, d)
                out[key] = self.value(v, d)
            return out
        if isinstance(node, ast.Name):
            if node.id in self.state._by_name:
                return self.state._by_name[node.id]
            raise NameError(f"name '{node.id}' is not defined")
        if isinstance(node, ast.Attribute):
            return self.attribute(self.value(node.value, d), node.attr)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _UNARY:
            return _UNARY[type(node.op)](self.value(node.operand, d))
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            a, b = self.value(node.left, d), self.value(node.right, d)
            if not (isinstance(a, _NUMBER) and isinstance(b, _NUMBER)):
                raise ExecutionRefused("only numbers are added or subtracted")
            return _BINARY[type(node.op)](a, b)
        raise ExecutionRefused(f"unsupported expression ({type(node).__name__})")

    @staticmethod
    def _plain(elts: list[ast.expr]) -> list[ast.expr]:
        if any(isinstance(e, ast.Starred) for e in elts):
            raise ExecutionRefused("unpacking (*) is not supported")
        return elts

    def attribute(self, obj: Any, attr: str) -> Any:
        if not any(obj is inst for inst in self.state._by_name.values()):
            raise ExecutionRefused("attributes are read only from the simulated API instances")
        if attr in public_methods(obj):
            return getattr(obj, attr)
        if not hasattr(type(obj), attr) and attr not in vars(obj):
            raise AttributeError(f"'{type(obj).__name__}' object has no attribute '{attr}'")
        raise ExecutionRefused(f"{type(obj).__name__}.{attr} is not a public method")

    def call(self, node: ast.Call, depth: int) -> Any:
        func = self.value(node.func, depth)
        args = [self.value(a, depth) for a in self._plain(node.args)]
        kwargs: dict[str, Any] = {}
        for kw in node.keywords:
            if kw.arg is None:
                raise ExecutionRefused("keyword unpacking (**) is not supported")
            if kw.arg in kwargs:  # Python's compiler refuses this before anything runs
                raise SyntaxError(f"keyword argument repeated: {kw.arg} (<string>, line {kw.lineno})")
            kwargs[kw.arg] = self.value(kw.value, depth)
        if not (inspect.ismethod(func) and any(func.__self__ is inst for inst in self.state._by_name.values())):
            raise TypeError(f"'{type(func).__name__}' object is not callable")
        _check_work(func, args, kwargs)
        return func(*args, **kwargs)


# Arguments that set how long a method works; BFCL would run any value. (class, method) -> checks.
_MAX_PRECISION = 10_000
_MAX_POWER_BITS = 1 << 20


def _check_work(method: Any, args: list[Any], kwargs: dict[str, Any]) -> None:
    owner, name = type(method.__self__).__name__, method.__name__
    if owner != "MathAPI":
        return
    try:
        bound = inspect.signature(method).bind(*args, **kwargs).arguments
    except TypeError:
        return  # the call itself will fail with Python's message
    precision = bound.get("precision")
    if isinstance(precision, int) and precision > _MAX_PRECISION:
        # Only what would really run long: a decimal precision past decimal.MAX_PREC fails at once.
        if name == "logarithm" or (name == "square_root" and precision <= decimal.MAX_PREC):
            raise ExecutionRefused(f"precision above {_MAX_PRECISION} is not run")
    if name == "power":
        base, exponent = bound.get("base"), bound.get("exponent")
        if isinstance(base, int) and isinstance(exponent, int) and abs(base) > 1 \
                and exponent * base.bit_length() > _MAX_POWER_BITS:
            raise ExecutionRefused(f"integer power above {_MAX_POWER_BITS} bits is not run")
