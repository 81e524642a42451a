"""API-Bank level-1/level-2 scoring without executing any API (docs/benchmarks.md).

METRIC: "call accuracy (API name and arguments against the recorded param_dict, not executed)".

`check(example, text)` finds the call the way the official extraction does: the leftmost
`[Name(` ... `)]` on one line of the answer, anything around it ignored, so "API-Request: [...]"
and a bare "[...]" both count. That span is decoded by our bounded pythonic parser (never evaluated);
when it does not parse, one repair is tried: each quoted value is taken to run to the quote that is
followed by the next `key=` or by the closing `)]`, and is quoted again (the published
expected_output strings hold values such as `attendees='['John']'` and `name='Luigi's'`). The answer
is right when it is exactly one call, its name is the recorded `api_name`, its argument names are the
recorded `param_dict`'s keys, and every value equals the recorded one after normalisation:

- by the gold API's declared type (`metadata["param_types"]`): int/float compare as numbers ("5" ==
  5 == 5.0), bool as True/False (case-insensitive "true"/"false" strings included);
- a list or dict, or a string holding one (the recorded values are strings such as "['John']"),
  compares as the decoded structure, its scalars as stripped strings;
- anything else as a string with surrounding whitespace removed (a number the model wrote unquoted
  equals its digits: the official extraction makes every value a string);
- ToolSearcher's `keywords` also ignore case and runs of whitespace.

How this can differ from the official, execution-based metric (which runs the call on API-Bank's
simulated APIs and compares its result with the recorded one through each API's own rule):
- Lenient there, strict here: several APIs accept different arguments (AddAgenda/AddMeeting/
  AddReminder/ModifyAgenda/QueryReminder: content words overlapping > 50%; scene and switch names
  ignoring case; dates in other formats for the date-normalising APIs; Calculator ignoring spaces;
  GetToday, PlayMusic, Wiki, Dictionary and ToolSearcher comparing only the output, so other keywords
  that retrieve the same tool pass there and fail here).
- Strict there, lenient here: the official evaluator rejects a parameter name the API class does not
  declare even when the recorded call used it (the recorded TimedSwitch/CancelTimedSwitch calls pass
  `device_id`), and compares output and exception, which depend on the simulated database state.
- Decoding: the official extraction reads values with a regular expression (a quoted value ends at
  the first quote, a bare word is a string); ours reads Python literals, so strings with quotes inside
  and unquoted lists can decode differently.
`aggregate` gives per-level accuracy, and API-name accuracy beside it.
"""
from __future__ import annotations

import json
import math
import re
from typing import Any, Iterable

from toolace_r.calls import MAX_INPUT_CHARS, ParseResult, ToolCall, parse
from toolace_r.evaluation.checker import Verdict

METRIC = "call accuracy (API name and arguments against the recorded param_dict, not executed)"
TOOL_SEARCHER = "ToolSearcher"

_START = re.compile(r"\[(\w+)\(")
# [ours] a repair only for spans of a plausible size: keeps the regex work small on hostile input
_REPAIR_MAX_CHARS = 4096
# a quoted value running to the quote that is followed by the next "key=" or by the closing ")]"
_QUOTED_VALUE = re.compile(r"""(\w+)\s*=\s*(['"])(.*?)\2(?=\s*,\s*\w+\s*=|\s*\)\]$)""")


def extract_call(text: str) -> str | None:
    """The leftmost `[Name(...)]` span of one line (to that line's last ")]"), or None."""
    if not isinstance(text, str) or len(text) > MAX_INPUT_CHARS:
        return None
    for line in text.splitlines():
        end = line.rfind(")]")
        if end < 0:
            continue
        for m in _START.finditer(line):
            if end >= m.end():  # the last ")]" comes after this "("
                return line[m.start():end + 2]
            break
    return None


def decode(text: str) -> ParseResult:
    """The answer's call list: ParseResult with `calls`, `text` (no call found) or `error`."""
    if not isinstance(text, str):
        return ParseResult(format=None, error=f"answer is {type(text).__name__}, not text")
    span = extract_call(text)
    if span is None:
        return ParseResult(format="text", text=text.strip())
    result = parse(span, "pythonic")
    if result.is_call:
        return result
    if len(span) <= _REPAIR_MAX_CHARS:
        repaired = _QUOTED_VALUE.sub(lambda m: f"{m.group(1)}={m.group(3)!r}", span)
        if repaired != span:
            again = parse(repaired, "pythonic")
            if again.is_call:
                return again
    return result if result.error else ParseResult(format="pythonic", error="not a call list")


def check(example: Any, text: str | ParseResult | list[ToolCall]) -> Verdict:
    """Verdict of one answer against the example's recorded call (see the module docstring)."""
    gold = example.gold.calls[0]
    if isinstance(text, list):
        calls = text
    else:
        result = text if isinstance(text, ParseResult) else decode(text)
        if result.error:
            return Verdict(False, "decode_failure", f"could not decode the API request: {result.error}")
        if result.calls is None:
            return Verdict(False, "no_call", "no API request ([ApiName(key='value', ...)]) in the answer")
        calls = result.calls
    if len(calls) != 1:
        return Verdict(False, "wrong_count", f"expected one API request, got {len(calls)}", calls)
    call = calls[0]
    if call.name != gold.name:
        return Verdict(False, "wrong_function", f"API {call.name!r}, expected {gold.name!r}", calls)
    missing = [k for k in gold.arguments if k not in call.arguments]
    if missing:
        return Verdict(False, "missing_required", f"missing argument(s) {', '.join(missing)}", calls)
    extra = [k for k in call.arguments if k not in gold.arguments]
    if extra:
        return Verdict(False, "unexpected_param", f"argument(s) {', '.join(extra)} not in the recorded call",
                       calls)
    types = (getattr(example, "metadata", None) or {}).get("param_types") or {}
    for key, want in gold.arguments.items():
        got = call.arguments[key]
        keywords = gold.name == TOOL_SEARCHER and key == "keywords"
        if normalise(got, types.get(key), keywords) != normalise(want, types.get(key), keywords):
            return Verdict(False, "value", f"{key}={got!r}, expected {want!r}", calls)
    return Verdict(True, calls=calls)


def normalise(value: Any, declared: str | None = None, keywords: bool = False) -> Any:
    """A comparable form of one argument value (see the module docstring for the rules)."""
    t = (declared or "").strip().lower()
    if t in ("int", "float") and not isinstance(value, bool):
        number = _number(value)
        if number is not None:
            return ("number", number)
    if t == "bool" or isinstance(value, bool):
        s = str(value).strip().lower()
        if s in ("true", "false"):
            return ("bool", s == "true")
    structured = value if isinstance(value, (list, dict)) else _literal(value)
    if structured is not None:
        return ("literal", _deep(structured))
    s = _scalar(value)
    if keywords:
        s = " ".join(s.lower().split())
    return ("text", s)


def _number(value: Any) -> float | None:
    if isinstance(value, (int, float)):
        x = float(value)
    elif isinstance(value, str):
        try:
            x = float(value.strip())
        except (ValueError, OverflowError):
            return None
    else:
        return None
    return x if math.isfinite(x) else None


def _literal(value: Any) -> Any:
    """A list/dict written inside a string ("['a', 'b']", '{"k": 1}'), decoded safely; else None."""
    if not isinstance(value, str):
        return None
    s = value.strip()
    if (s[:1], s[-1:]) not in (("[", "]"), ("{", "}")) or len(s) > MAX_INPUT_CHARS // 2:
        return None
    try:
        out = json.loads(s)
        if isinstance(out, (list, dict)):
            return out
    except (ValueError, RecursionError):
        pass
    result = parse(f"[v(x={s})]", "pythonic")
    if result.is_call and len(result.calls) == 1 and set(result.calls[0].arguments) == {"x"}:
        out = result.calls[0].arguments["x"]
        if isinstance(out, (list, dict)):
            return out
    return None


def _deep(value: Any, depth: int = 0) -> Any:
    if depth > 32:
        return ("deep", _scalar(value))
    if isinstance(value, dict):
        return ("dict", tuple(sorted((str(k).strip(), _deep(v, depth + 1)) for k, v in value.items())))
    if isinstance(value, (list, tuple)):
        return ("list", tuple(_deep(v, depth + 1) for v in value))
    return _scalar(value)


def _scalar(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, sort_keys=True, default=str)
    return ("" if value is None else str(value)).strip()


def aggregate(examples: Iterable[Any], verdicts: Iterable[Verdict | None]) -> dict[str, Any]:
    """Per level (example category): n, correct, accuracy, name_correct, name_accuracy; also "all".

    `verdicts` align with `examples`; None (no prediction) counts as wrong.
    """
    rows: dict[str, dict[str, Any]] = {}
    for ex, verdict in zip(examples, verdicts, strict=True):
        for key in (ex.category or "apibank", "all"):
            row = rows.setdefault(key, {"n": 0, "correct": 0, "name_correct": 0})
            row["n"] += 1
            if verdict is not None and verdict.valid:
                row["correct"] += 1
            if verdict is not None and verdict.calls and len(verdict.calls) == 1 \
                    and verdict.calls[0].name == ex.gold.calls[0].name:
                row["name_correct"] += 1
    for row in rows.values():
        row["accuracy"] = row["correct"] / row["n"] if row["n"] else None
        row["name_accuracy"] = row["name_correct"] / row["n"] if row["n"] else None
    return {"metric": METRIC, "levels": rows}
