"""ACEBench's verdicts for its 12 normal and 3 special categories, and its scores (docs/acebench.md).

`check(example, text)` gives the verdict ACEBench's own evaluation gives the raw answer `text` of an
example loaded by `acebench:` (it reads `metadata["acebench"]`: the raw function list and ground
truth). `aggregate(results_by_category)` turns verdicts into ACEBench's category accuracies and its
summary. The ideas, each one function group below:

- decoding (normal categories): every whitespace character is deleted from the whole text, the rest is
  parsed as one Python expression that must be a list/tuple/set of calls; arguments become values by
  ACEBench's rules (a bare name is its own text, any unary operator negates, arithmetic is computed,
  positional arguments are dropped). Parsed with `ast`, never executed.
- matching: gold keys lose their `_<n>` suffix, names must match as multisets, and each gold call is
  satisfied by any decoded call of its name that passes (calls are not consumed); the schema is the
  first function whose name is a substring of the gold key.
- one call: required parameters present, every argument both in the schema and in the gold, then a
  type check (ACEBench's type table: `number` is int) that may mark the value "variable" (unchecked),
  then a value check: numbers and booleans never compared, strings by standardised containment, lists
  elementwise after standardising, objects by textual containment (lists inside objects as raw text).
- special categories: fixed phrases and stored strings as plain substrings of the raw text.
- scores: accuracy per category (multi-turn per conversation), group means, weighted summary
  (evaluation/acebench_scores.py; decoding lives in evaluation/acebench_decode.py).

Every quirk is reproduced by default. `lenient=True` fixes only the quirks that reject a literally
right answer (the gold written as `[Name(k=<repr>)]`, or the special phrase as the prompt asks):
  Q8   a string parameter answered 'true'/'false' is not read as a boolean;
  Q12  lists inside objects compare with whitespace removed on both sides;
  Q14  an `array` without `items` takes its element kind from the gold (objects or plain values);
  Q15  an empty gold list (or object) is matched by an empty answer;
  Q21  a gold key that is itself a function's name keeps its `_<n>` tail;
  Q22  `[F()]` matches a gold `{F: {}}` when F requires nothing;
  Q24  stored missing-parameter names are stripped of stray spaces;
  and the schema is looked up by exact name before ACEBench's substring rule.
Where ACEBench's own code would stop with an exception, the verdict is wrong with
`bfcl_error_type="crash"`. Arithmetic is computed only over literals, within size bounds.
"""
from __future__ import annotations

import re
from typing import Any, Iterable

from toolace_r.calls import ToolCall
from toolace_r.evaluation.acebench_decode import _Crash, _Fail, decode
from toolace_r.evaluation.acebench_scores import MULTI_TURN_PREFIX, SPECIAL_PREFIX, aggregate, category_score
from toolace_r.evaluation.checker import Verdict

__all__ = ["MULTI_TURN_PREFIX", "SPECIAL_PREFIX", "aggregate", "category_score", "check", "decode", "standardise"]


# ACEBench's schema type names -> the Python type a value must have (`enum` matches no value).
_NO_VALUE = type("_NoValue", (), {})
TYPE_TABLE: dict[str, type] = {
    "string": str, "integer": int, "number": int, "int": int, "float": float, "boolean": bool,
    "array": list, "tuple": list, "list": list, "list(string)": list, "list(enum)": list, "objectArray": list,
    "object": dict, "dict": dict, "any": str, "enum": _NO_VALUE,
}
ELEMENT_TYPED = ("array", "tuple", "list(string)", "list(enum)", "object", "objectArray")
_SUFFIX = re.compile(r"_\d+$")
_STANDARDISE_DROP = re.compile(r"[ ,./\-_*^]")

INCOMPLETE_MARK = "Missing necessary parameters"
ERROR_PARAM_MARK = "There is incorrect value"
IRRELEVANT_MARK = "the limitations of the function"


# --- entry point -------------------------------------------------------------------------------------

def check(example: Any, text: str, *, lenient: bool = False) -> Verdict:
    """ACEBench's verdict on the raw answer `text` for an example from the `acebench:` loader."""
    meta = example.metadata.get("acebench") or {}
    category = example.category
    if "agent" in category and SPECIAL_PREFIX not in category:
        raise ValueError(f"{category}: agent categories are scored in simulated environments, not here")
    if not isinstance(text, str):
        return Verdict(False, "decode_failure", f"expected the answer text, got {type(text).__name__}")
    if SPECIAL_PREFIX in category:
        return _check_special(category, meta.get("ground_truth"), text, lenient)
    return _check_normal(meta.get("function") or [], meta.get("ground_truth"), text, lenient)


def _check_normal(functions: list, truth: Any, text: str, lenient: bool) -> Verdict:
    try:
        decoded = decode(text)
    except _Fail as f:
        return Verdict(False, f.error_type, f.message, None, f.official)
    calls = [ToolCall(name, args) for name, args in decoded]
    alternatives = truth if isinstance(truth, list) else [truth]
    first: _Fail | None = None
    for gold in alternatives:
        try:
            _check_answer(functions, decoded, gold, lenient)
            return Verdict(True, calls=calls)
        except _Crash as f:
            return Verdict(False, f.error_type, f.message, calls, f.official)
        except _Fail as f:
            first = first or f
    if first is None:
        first = _Crash("no ground truth")
    return Verdict(False, first.error_type, first.message, calls, first.official)


# --- matching calls to the ground truth --------------------------------------------------------------

def _gold_name(key: str, functions: list, lenient: bool) -> str:
    if lenient and any(isinstance(f, dict) and f.get("name") == key for f in functions):
        return key
    return _SUFFIX.sub("", key)


def _lookup(functions: list, key: str, name: str, lenient: bool) -> dict:
    """The first function whose name is a substring of the gold key (suffix included)."""
    if lenient:
        for f in functions:
            if isinstance(f, dict) and f.get("name") == name:
                return f
    for f in functions:
        fname = f.get("name") if isinstance(f, dict) else None
        if not isinstance(fname, str):
            raise _Crash("a function without a name")
        if fname in key:
            return f
    raise _Crash(f"no function for the gold key {key!r}")


def _check_answer(functions: list, decoded: list[tuple[str, dict]], gold: Any, lenient: bool) -> None:
    if not isinstance(gold, dict):
        raise _Crash("ground truth is not an object")
    if len(decoded) != len(gold):
        raise _Fail("wrong_count", f"{len(decoded)} calls, expected {len(gold)}", "wrong functions number")
    entries = [(key, _gold_name(key, functions, lenient), params) for key, params in gold.items()]
    want = _counts(name for _, name, _ in entries)
    got = _counts(name for name, _ in decoded)
    if want != got:
        raise _Fail("wrong_function", f"functions {sorted(got)} (with counts {got}), expected {want}",
                    "function_mismatch")
    for key, name, params in entries:
        schema = _lookup(functions, key, name, lenient)
        last: _Fail | None = None
        for call_name, args in decoded:
            if call_name != name:
                last = _Fail("wrong_function", f"no passing call of {name}", "simple_function_checker:unclear")
                continue
            try:
                _check_call(schema, call_name, args, params, lenient)
                break
            except _Crash:
                raise
            except _Fail as f:
                last = f
        else:
            raise last or _Fail("wrong_function", f"no call of {name}", "function_mismatch")


def _counts(names: Iterable[str]) -> dict[str, int]:
    out: dict[str, int] = {}
    for n in names:
        out[n] = out.get(n, 0) + 1
    return out


# --- one call ----------------------------------------------------------------------------------------

def _check_call(schema: dict, call_name: str, args: dict, gold: Any, lenient: bool) -> None:
    if "parameters" not in schema:
        raise _Crash(f"function {schema.get('name')!r} has no 'parameters'")
    parameters = schema["parameters"]
    if not args:
        if parameters == {}:
            return
        if lenient and gold == {} and not (parameters.get("required") if isinstance(parameters, dict) else None) \
                and schema.get("name") == call_name:
            return
        raise _Fail("missing_required", f"{call_name}() without arguments", "wrong_param")
    if parameters == {}:
        raise _Fail("unexpected_param", f"{call_name} takes no parameters", "wrong_param")
    if not isinstance(parameters, dict) or "properties" not in parameters:
        raise _Crash(f"function {call_name!r} has no 'properties'")
    properties = parameters["properties"]
    if gold == properties:
        return
    if gold == {}:
        raise _Fail("unexpected_param", f"the gold call of {call_name} has no arguments", "wrong_param")
    if schema.get("name") != call_name:
        raise _Fail("wrong_function", f"schema {schema.get('name')!r} for call {call_name!r}", "wrong_function_name")
    if "required" not in parameters:
        raise _Crash(f"function {call_name!r} has no 'required'")
    for param in parameters["required"]:
        if param not in args:
            raise _Fail("missing_required", f"lack required_params: {param}", "lack_args")
    for param, value in args.items():
        if param not in properties or param not in gold:
            raise _Fail("unexpected_param", f"addition params: {param}", "addition_args")
        _check_argument(param, value, properties[param], gold[param], lenient)


def _check_argument(param: str, value: Any, pschema: Any, gold: Any, lenient: bool) -> None:
    try:
        tname = pschema["type"]
        expected = TYPE_TABLE[tname]
    except (KeyError, TypeError):
        raise _Crash(f"parameter {param!r}: type {pschema.get('type') if isinstance(pschema, dict) else pschema!r} "
                     "is not in ACEBench's table") from None
    element = _element_type(tname, pschema, gold, lenient)
    if tname == "tuple" and type(value) is tuple:
        value = list(value)
    if tname == "float" and type(value) is int:
        value = float(value)
    variable = _type_check(param, value, gold, expected, element, lenient)
    if not variable:
        _value_check(param, value, gold, tname, expected, element, lenient)


def _element_type(tname: str, pschema: dict, gold: Any, lenient: bool) -> type | None:
    if tname not in ELEMENT_TYPED:
        return None
    items = pschema.get("items")
    if isinstance(items, dict) and "type" in items:
        try:
            return TYPE_TABLE[items["type"]]
        except (KeyError, TypeError):
            raise _Crash(f"items type {items['type']!r} is not in ACEBench's table") from None
    if "string" in tname:
        return str
    if "enum" in tname:
        return _NO_VALUE
    if lenient and tname == "array":  # Q14: no items: objects only if the gold holds objects
        return dict if isinstance(gold, list) and gold and all(isinstance(g, dict) for g in gold) else None
    return dict


def _as_bool_text(value: Any) -> Any:
    if isinstance(value, str) and value in ("true", "false"):
        return value == "true"
    return value


def _type_check(param: str, value: Any, gold: Any, expected: type, element: type | None, lenient: bool) -> bool:
    """True when the value is "variable" (its value goes unchecked); _Fail on a type error."""
    gold_type = None if gold == "" else type(gold)
    variable = gold_type is not None and gold_type is not expected
    if not (lenient and expected is str):
        value = _as_bool_text(value)
    fail = _Fail("type", f"wrong type for parameter ({param}): expected {expected.__name__}, "
                         f"got {type(value).__name__}", "type_error")
    if type(value) is expected:
        if element is None:
            return variable
        if not isinstance(gold, (str, list, tuple, dict)):
            raise _Crash(f"parameter {param!r}: gold {gold!r} is not iterable")
        for item in gold:
            if type(item) is not list:
                return variable
            if all(_inner_type_ok(v, item, element) for v in value):
                return variable
        if lenient and len(gold) == 0:
            return variable
        raise fail
    if gold_type is not None and (type(value) is gold_type or gold == value):
        return True
    raise fail


def _inner_type_ok(value: Any, gold: list, expected: type) -> bool:
    value = _as_bool_text(value)
    return type(value) is expected or type(value) is list or gold == value


# --- values ------------------------------------------------------------------------------------------

def standardise(text: str) -> str:
    """ACEBench's string form: drop ` ,./-_*^`, lower-case, `'` -> `"`."""
    return _STANDARDISE_DROP.sub("", text).lower().replace("'", '"')


def _value_check(param: str, value: Any, gold: Any, tname: str, expected: type, element: type | None,
                 lenient: bool) -> None:
    if expected is dict:
        _object_rule(param, value, gold, lenient)
    elif expected is list and element is dict:
        if tname == "objectArray" and len(value) == len(gold) and len(value):
            raise _Crash("objectArray parameters")
        if tname == "objectArray" and len(value) != len(gold):
            raise _Fail("value", f"parameter {param}: wrong number of objects", "value_error:dict_items")
        _list_of_objects(param, value, gold, lenient)
    elif expected is str:
        if standardise(gold) not in standardise(value):
            raise _Fail("value", f"wrong value for parameter ({param}): expected {gold!r}, got {value!r}",
                        "value_error:string")
    elif expected is list:
        def std(xs: Any) -> list:
            return [standardise(x) if type(x) is str else x for x in xs]
        if std(value) != std(gold):
            raise _Fail("value", f"wrong value for parameter ({param!r}): expected {gold!r}, got {value!r}",
                        "value_error:list/tuple")
    # int, float, bool: values are never compared


def _list_of_objects(param: str, value: list, gold: Any, lenient: bool) -> None:
    if len(value) != len(gold):
        raise _Fail("value", f"parameter {param}: {len(value)} objects, expected {len(gold)}",
                    "value_error:list_dict_count")
    for v, g in zip(value, gold):
        _object_rule(param, v, g, lenient)


def _object_rule(param: str, model: Any, gold: Any, lenient: bool) -> None:
    """Same keys (count and names); nested objects recursively, everything else by text containment."""
    fail = _Fail("value", f"wrong value for parameter ({param}): expected {gold!r}, got {model!r}", "value_error")
    if not isinstance(model, dict):
        raise fail
    if not isinstance(gold, dict):
        raise _Crash(f"parameter {param!r}: gold {gold!r} is not an object")
    if len(model) != len(gold):
        raise fail
    for key, value in model.items():
        if key not in gold:
            raise fail
        want = gold[key]
        if not (lenient and isinstance(want, str)):
            value = _as_bool_text(value)
        if isinstance(want, dict):
            _object_rule(param, value, want, lenient)
            continue
        got_text = str(standardise(value) if type(value) is str else value)
        want_text = str(standardise(want) if type(want) is str else want)
        if lenient:  # Q12: the answer's whitespace is gone, so compare without the gold's
            got_text, want_text = "".join(got_text.split()), "".join(want_text.split())
        if want_text not in got_text:
            raise fail


# --- special categories ------------------------------------------------------------------------------

def _check_special(category: str, truth: Any, text: str, lenient: bool) -> Verdict:
    def wrong(detected: bool, message: str) -> Verdict:
        if detected:
            return Verdict(False, "value", message, None, "error_correction")
        return Verdict(False, "unexpected_call", message, None, "error_detection")

    if "incomplete" in category:
        verdict = Verdict(True)
        for api, params in (truth or {}).items():
            if INCOMPLETE_MARK not in text:
                verdict = wrong(False, f"does not say {INCOMPLETE_MARK!r}")
            elif api not in text:
                verdict = wrong(True, f"does not name the api {api!r}")
            else:
                for p in params:
                    if not isinstance(p, str):
                        return Verdict(False, "value", "ACEBench's checker raises here: non-string parameter",
                                       None, "crash")
                    if (p.strip() if lenient else p) not in text:
                        verdict = wrong(True, f"does not name the missing parameter {p!r}")
        return verdict
    if "error" in category:
        verdict = Verdict(True)
        for _, values in (truth or {}).items():
            if ERROR_PARAM_MARK not in text:
                verdict = wrong(False, f"does not say {ERROR_PARAM_MARK!r}")
                continue
            for v in values:
                if not isinstance(v, str):
                    return Verdict(False, "value", "ACEBench's checker raises here: non-string value", None, "crash")
                if v not in text:
                    verdict = wrong(True, f"does not name the incorrect value {v!r}")
        return verdict
    if "irrelevant" in category:
        if IRRELEVANT_MARK not in text:
            return wrong(False, f"does not say {IRRELEVANT_MARK!r}")
        return Verdict(True)
    raise ValueError(f"unknown special category {category!r}")
