"""Is a model's answer right? BFCL's verdicts, reproduced on `ToolCall` lists.

`check(example, result)` takes an `Example` and the model's answer (raw text, a `ParseResult`, or
already-decoded calls) and returns a `Verdict`. Two ideas:

- Fidelity. A score is trusted only if it equals BFCL's, so the rules below follow the official
  checker (bfcl-eval, prompt mode, Python) verdict for verdict, quirks included: the category name
  picks the matcher ("parallel" -> any order, greedy per expected call; "multiple" -> one call against
  the expected function; else one call against the *first* tool); strings are standardised before
  comparing; an int passes for a float; array element types are checked one level deep and a `""`
  among the acceptable values waves that check through; a value whose type differs from the schema
  but equals the answer key's type is compared as-is ("variable"). The value rules live in
  `bfcl_values.py`; benchmarks/bfcl_agreement.py compares both checkers on thousands of outputs.
- Speed. Refinement and training call `check` millions of times on the same examples, so the
  schema and answer-key work (type lookups, standardised strings) is done once per example and
  cached, messages are formatted only when read, and text is decoded by `calls.decode_bfcl`, whose
  fast path reads plain call lists without `ast.parse`.

BFCL's simple_java and simple_javascript are the same simple matcher on other values: the answer is read
by the language's grammar and every argument string converted by its Java/JS type before the value
rules (`bfcl_lang.py`, `bfcl_typed.py`, `bfcl_typed_js.py`; docs/bfcl.md#java-js).

Non-BFCL golds (kind "calls" from ToolACE/xLAM/jsonl) use the same value rules with an any-order
match of the expected calls (BFCL's parallel matcher), since their categories say nothing about the
tool list; "no_call"/"any_call" use BFCL's irrelevance/relevance rules.
"""
from __future__ import annotations

from typing import Any, Callable

from toolace_r.calls import ParseResult, ToolCall
from toolace_r.evaluation.bfcl_values import STANDARDISE, Answer, Lazy, ParamSpec, check_value

# Actionable error kinds (Verdict.error_type), each with what a user should look at.
ERROR_TYPES: dict[str, str] = {
    "decode_failure": "the answer could not be decoded as calls",
    "wrong_count": "wrong number of calls",
    "wrong_function": "a call names the wrong function",
    "missing_required": "a parameter the schema requires is missing",
    "missing_param": "a parameter the answer needs (optional in the schema) is missing",
    "unexpected_param": "a parameter not in the schema or not in the answer key",
    "type": "a value of the wrong type",
    "value": "a value not among the acceptable ones",
    "unexpected_call": "a call where none should be made (irrelevance)",
    "no_call": "no call where one should be made (relevance)",
    "unscored": "the example has no call-level gold",
    "missing_prediction": "no prediction for this id",
    # BFCL multi-turn (evaluation/multi_turn.py)
    "force_terminated": "fewer or more turns answered than the conversation has",
    "empty_turn": "no call in a turn where the ground truth makes calls",
    "state_mismatch": "the simulated APIs' state after a turn differs from the ground truth's",
    "response_mismatch": "a ground-truth call result is missing from the model's results",
}

# BFCL's own error_type strings -> our actionable kinds (prefix match on "type_error"/"value_error").
_COARSE: dict[str, str] = {
    "ast_decoder:decoder_failed": "decode_failure",
    "ast_decoder:decoder_wrong_output_format": "decode_failure",
    "simple_function_checker:wrong_count": "wrong_count",
    "multiple_function_checker:wrong_count": "wrong_count",
    "parallel_function_checker_no_order:wrong_count": "wrong_count",
    "simple_function_checker:wrong_func_name": "wrong_function",
    "simple_function_checker:missing_required": "missing_required",
    "simple_function_checker:missing_optional": "missing_param",
    "simple_function_checker:unexpected_param": "unexpected_param",
    "dict_checker:unclear": "value",
    "list_dict_checker:unclear": "value",
    "irrelevance_error:decoder_success": "unexpected_call",
    "relevance_error:decoder_failed": "no_call",
    "multi_turn:force_terminated": "force_terminated",
    "multi_turn:empty_turn_model_response": "empty_turn",
    "multi_turn:instance_state_mismatch": "state_mismatch",
    "multi_turn:execution_response_mismatch": "response_mismatch",
}

_CANNOT_MATCH = "parallel_function_checker_no_order:cannot_find_match"


def coarse_error(bfcl_error_type: str) -> str:
    """Our actionable kind for one of BFCL's error_type strings."""
    kind = _COARSE.get(bfcl_error_type)
    if kind is not None:
        return kind
    if bfcl_error_type.startswith("type_error"):
        return "type"
    if bfcl_error_type.startswith("value_error"):
        return "value"
    return bfcl_error_type


class Verdict:
    """valid: right or wrong. error_type: one of ERROR_TYPES (None when valid). error: a message.
    calls: what the answer decoded to (None: not calls). bfcl_error_type: BFCL's own error string.

    The message is formatted on first read: scoring millions of answers never pays for it.
    """

    __slots__ = ("valid", "error_type", "_error", "calls", "bfcl_error_type")

    def __init__(self, valid: bool, error_type: str | None = None, error: Any = None,
                 calls: list[ToolCall] | None = None, bfcl_error_type: str | None = None):
        self.valid = valid
        self.error_type = error_type
        self._error = error
        self.calls = calls
        self.bfcl_error_type = bfcl_error_type

    @property
    def error(self) -> str | None:
        if self._error is not None and not isinstance(self._error, str):
            self._error = str(self._error)
        return self._error

    def to_dict(self) -> dict[str, Any]:
        return {
            "valid": self.valid,
            "error_type": self.error_type,
            "error": self.error,
            "bfcl_error_type": self.bfcl_error_type,
            "calls": None if self.calls is None else [c.to_dict() for c in self.calls],
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Verdict):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        return (f"Verdict(valid={self.valid}, error_type={self.error_type!r}, error={self.error!r}, "
                f"calls={self.calls!r}, bfcl_error_type={self.bfcl_error_type!r})")


# Categories whose name decides the matcher exactly as in BFCL (other sources match in any order).
BFCL_AST_CATEGORIES = frozenset({
    "simple", "simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
    "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
    "exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple", "sql",
})


def matcher_for(category: str, gold_kind: str) -> str:
    """Which rule scores an example: irrelevance | relevance | simple | multiple | parallel | unscored."""
    if "relevance" in category:  # BFCL: "irrelevance" contains "relevance"; both are name-dispatched
        return "irrelevance" if "irrelevance" in category else "relevance"
    if gold_kind == "no_call":
        return "irrelevance"
    if gold_kind == "any_call":
        return "relevance"
    if gold_kind not in ("bfcl", "calls"):
        return "unscored"
    if gold_kind == "calls" and category not in BFCL_AST_CATEGORIES:
        return "parallel"
    if "parallel" in category:
        return "parallel"
    if "multiple" in category:
        return "multiple"
    return "simple"


# --- per-example preparation (cached) -----------------------------------------------------------

class _Tool:
    __slots__ = ("name", "params", "required", "typed")

    def __init__(self, name: str, parameters: dict[str, Any], language: str | None = None):
        self.name = name
        props = parameters.get("properties") or {}
        self.required = tuple(parameters.get("required") or ())
        self.typed: dict[str, Any] = {}
        if language is None:
            self.params = {p: ParamSpec.from_schema(s) for p, s in props.items()}
            return
        from toolace_r.evaluation.bfcl_lang import TypedParam

        # Java/JS: the value check runs on the converted value, typed by the language's table.
        self.typed = {p: TypedParam(language, s) for p, s in props.items()}
        self.params = {p: ParamSpec(t.type_name or "", t.py_type, t.item_type) for p, t in self.typed.items()}


class _Expected:
    """One expected call of the key, bound to the schema it is checked under (fixed per matcher)."""

    __slots__ = ("name", "tool_name", "required", "answers", "slots", "needed", "typed")

    def __init__(self, name: str, params: dict[str, list[Any]], tool: _Tool | None):
        self.name = name
        self.answers = {p: Answer(v) for p, v in params.items()}
        # Parameters the key lists without "": an answer that leaves one out is wrong.
        self.needed = tuple(p for p, a in self.answers.items() if not a.optional)
        self.typed = {} if tool is None else tool.typed
        if tool is None:  # the key names a function missing from the tools (never in BFCL's data)
            self.tool_name, self.required, specs = name, (), {p: ParamSpec.UNKNOWN for p in self.answers}
        else:
            self.tool_name, self.required, specs = tool.name, tool.required, tool.params
        # A parameter is allowed only when both the schema and the key know it.
        self.slots = {p: _slot(specs[p], a) for p, a in self.answers.items() if p in specs}


# Slot kinds: a plain string or a plain scalar (int, float, bool) settles in one test when it passes.
_PLAIN_STR, _PLAIN_SCALAR, _GENERAL = 1, 2, 0


def _slot(spec: ParamSpec, answer: Answer) -> tuple[int, Any, Any, ParamSpec, Answer]:
    expected = spec.py_type
    plain = spec.item_type is None and (answer.key_type is None or answer.key_type is expected)
    if plain and expected is str:
        return _PLAIN_STR, str, answer.strings(), spec, answer
    if plain and expected in (int, float, bool):
        return _PLAIN_SCALAR, expected, answer.values, spec, answer
    return _GENERAL, expected, None, spec, answer


class _Prepared:
    __slots__ = ("matcher", "expected", "ast_check", "language")

    def __init__(self, example: Any):
        gold = example.gold
        self.matcher = matcher_for(example.category or "", gold.kind)
        self.language = _language(example) if self.matcher in ("simple", "multiple", "parallel") else None
        # Java/JS examples show the model all-string parameters; the checker reads the real types.
        functions = _typed_functions(example) if self.language else [(t.name, t.parameters) for t in example.tools]
        tools: dict[str, _Tool] = {}
        for name, parameters in functions:  # BFCL's lookup returns the first tool of a name
            if name not in tools:
                tools[name] = _Tool(name, parameters, self.language)
        key = _answer_key(gold) if self.matcher in ("simple", "multiple", "parallel") else []
        pairs = [(name, params) for entry in key for name, params in entry.items()]
        first_tool = tools[functions[0][0]] if functions else None
        # simple: BFCL checks against the first tool listed, whatever the key names; else by name.
        self.expected = [
            _Expected(name, params, first_tool if self.matcher == "simple" else tools.get(name))
            for name, params in pairs]
        self.ast_check = _AST_CHECKS.get(self.matcher)
        if self.ast_check is not None and not self.expected:
            raise ValueError(f"example {example.id!r}: its answer key lists no call")


def _language(example: Any) -> str | None:
    """BFCL's language of a BFCL-keyed example, by its category's name (None: Python)."""
    if example.gold.kind != "bfcl":
        return None
    from toolace_r.evaluation.bfcl_lang import language_of

    return language_of(example.category)


def _typed_functions(example: Any) -> list[tuple[str, dict[str, Any]]]:
    """(name, parameters) of the functions as the data file types them (the loader keeps them in
    metadata["bfcl_functions"]); without them, the example's tools."""
    raw = (example.metadata or {}).get("bfcl_functions")
    if isinstance(raw, list):
        return [(f["name"], f.get("parameters") or {}) for f in raw if isinstance(f, dict) and "name" in f]
    return [(t.name, t.parameters) for t in example.tools]


def _answer_key(gold: Any) -> list[dict[str, dict[str, list[Any]]]]:
    if gold.kind == "bfcl" and gold.bfcl is not None:
        return gold.bfcl
    if gold.calls is not None:  # exact calls: each value is its only acceptable one
        return [{c.name: {k: [v] for k, v in c.arguments.items()}} for c in gold.calls]
    raise ValueError(f"gold of kind {gold.kind!r} has no calls to check against")


_CACHE: dict[int, tuple[Any, _Prepared]] = {}
_CACHE_MAX = 1 << 16


def _prepared(example: Any) -> _Prepared:
    # Keyed by identity (Examples are unhashable dataclasses); the stored reference keeps the id valid.
    hit = _CACHE.get(id(example))
    if hit is not None and hit[0] is example:
        return hit[1]
    prep = _Prepared(example)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[id(example)] = (example, prep)
    return prep


def clear_cache() -> None:
    """Forget prepared examples (call after mutating an Example's tools or gold in place)."""
    _CACHE.clear()


# --- decoding -------------------------------------------------------------------------------------

_decoder: Callable[[str], ParseResult] | None = None


def _decode(text: str) -> ParseResult:
    global _decoder
    if _decoder is None:
        from toolace_r.calls import decode_bfcl

        _decoder = decode_bfcl
    return _decoder(text)


def _as_calls(result: ParseResult | str | list[ToolCall], fmt: str | None = None
              ) -> tuple[list[ToolCall] | None, str | None]:
    """(calls, decode error): calls None when the answer is not a call list."""
    if isinstance(result, str):
        if fmt is None or fmt == "pythonic":
            result = _decode(result)
        else:
            from toolace_r.calls import parse

            result = parse(result, fmt)
    if isinstance(result, ParseResult):
        if result.error is not None or result.calls is None:
            return None, result.error or "not a call list"
        return result.calls, None
    if isinstance(result, list):
        return result, None
    raise TypeError(f"check() takes text, a ParseResult or a list of ToolCall, got {type(result).__name__}")


# --- the checks -----------------------------------------------------------------------------------

def check(example: Any, result: ParseResult | str | list[ToolCall], fmt: str | None = None) -> Verdict:
    """Score one answer for `example` with BFCL's semantics (see the module docstring).

    fmt: how answer text is decoded. None (or "pythonic"): BFCL's prompt-mode decoder. A `calls` format
    name ("hermes", "json"): that parser, as BFCL's function-calling handlers read a model's native
    tool calls before the same checks."""
    hit = _CACHE.get(id(example))
    prep = hit[1] if hit is not None and hit[0] is example else _prepared(example)
    if prep.language is not None and isinstance(result, str) and fmt in (None, "pythonic"):
        from toolace_r.evaluation.bfcl_lang import decode

        decoded = decode(result, prep.language)
        if decoded.calls is None:
            return _fail(decoded.error_type, Lazy("could not decode the answer: {}", decoded.error), None)
        calls, decode_error = decoded.calls, None
    else:
        calls, decode_error = _as_calls(result, fmt)
    ast_check = prep.ast_check
    if ast_check is not None:  # the common case first
        if calls is None:
            return _fail("ast_decoder:decoder_failed", Lazy("could not decode the answer: {}", decode_error), None)
        err = ast_check(prep, calls)
        if err is None:
            return Verdict(True, None, None, calls)
        return Verdict(False, err[2], err[1], calls, err[0])
    matcher = prep.matcher
    if matcher == "irrelevance":
        if calls:  # BFCL: decoded to at least one call
            return _fail("irrelevance_error:decoder_success", "made a call where none should be made", calls)
        return Verdict(True, None, None, calls)
    if matcher == "relevance":
        if not calls:
            return _fail("relevance_error:decoder_failed",
                         Lazy("no call decoded where one should be made ({})", decode_error or "empty list"), calls)
        return Verdict(True, None, None, calls)
    return Verdict(False, "unscored", "this example has no call-level gold", calls)


def _fail(bfcl_type: str, message: Any, calls: list[ToolCall] | None) -> Verdict:
    return Verdict(False, coarse_error(bfcl_type), message, calls, bfcl_type)


def _err(etype: str, message: Any) -> tuple[str, Any, str]:
    return etype, message, coarse_error(etype)


def _check_simple(prep: _Prepared, calls: list[ToolCall]):
    if len(calls) != 1:
        return _err("simple_function_checker:wrong_count", Lazy("expected 1 call, got {}", len(calls)))
    return _check_call(prep.expected[0], calls[0])


def _check_multiple(prep: _Prepared, calls: list[ToolCall]):
    if len(calls) != len(prep.expected):
        return _err("multiple_function_checker:wrong_count",
                    Lazy("expected {} call(s), got {}", len(prep.expected), len(calls)))
    # BFCL compares only the first call with the first expected one.
    return _check_call(prep.expected[0], calls[0])


def _check_parallel(prep: _Prepared, calls: list[ToolCall]):
    n = len(prep.expected)
    if len(calls) != n:
        return _err("parallel_function_checker_no_order:wrong_count",
                    Lazy("expected {} call(s), got {}", n, len(calls)))
    used = [False] * n
    # Greedy, like BFCL: each expected call in order takes the first unused call that passes.
    for i, exp in enumerate(prep.expected):
        closest = None  # the first candidate that at least named the right function, for the message
        for j, call in enumerate(calls):
            if used[j] or call.name != exp.tool_name:
                continue
            err = _check_call(exp, call)
            if err is None:
                used[j] = True
                break
            if closest is None:
                closest = err
        else:
            if closest is None:
                closest = _err("simple_function_checker:wrong_func_name",
                               Lazy("no unused call names {!r}", exp.tool_name))
            return (_CANNOT_MATCH, Lazy("no call matches expected call #{} ({}); closest: {}", i, exp.name,
                                        closest[1]), closest[2])
    return None


_AST_CHECKS = {"simple": _check_simple, "multiple": _check_multiple, "parallel": _check_parallel}


def _check_call(exp: _Expected, call: ToolCall):
    """None if `call` passes against the expected call `exp`, else (bfcl type, message, kind)."""
    if call.name != exp.tool_name:
        return _err("simple_function_checker:wrong_func_name",
                    Lazy("expected function {!r}, got {!r}", exp.tool_name, call.name))
    args = call.arguments
    for p in exp.required:
        if p not in args:
            return _err("simple_function_checker:missing_required",
                        Lazy("{}: missing required parameter {!r}", exp.tool_name, p))
    slots = exp.slots
    for p, value in args.items():
        slot = slots.get(p)
        if slot is None:
            return _err("simple_function_checker:unexpected_param",
                        Lazy("{}: unexpected parameter {!r}", exp.tool_name, p))
        if exp.typed:
            typed = exp.typed.get(p)
            if typed is not None:
                if type(value) is not str:  # BFCL: a Java/JS argument must be its source text
                    return _err(typed.error_type, Lazy("{}: {}={!r}: expected the {} text of a {}, got {}",
                                                       exp.tool_name, p, value, typed.language,
                                                       typed.type_name, type(value).__name__))
                try:
                    value = typed.convert(value)
                except (ValueError, NotImplementedError) as exc:  # a type BFCL cannot convert: it crashes
                    return _err(typed.error_type, Lazy("{}: {}: {}", exp.tool_name, p, exc))
        kind, expected, accepted, spec, answer = slot
        # The plain cases settle here when they pass; everything else (and every failure) takes the full rules.
        if kind == _PLAIN_STR:
            if type(value) is str and value.translate(STANDARDISE).lower() in accepted:
                continue
        elif kind == _PLAIN_SCALAR:
            if type(value) is expected and value in accepted:
                continue
        bad = check_value(value, spec, answer)
        if bad is not None:
            return _err(bad[0], Lazy("{}: {}={!r}: {}", exp.tool_name, p, value, bad[1]))
    for p in exp.needed:
        if p not in args:
            return _err("simple_function_checker:missing_optional",
                        Lazy("{}: parameter {!r} is needed (acceptable: {!r})", exp.tool_name, p,
                             exp.answers[p].values))
    return None
