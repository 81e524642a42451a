"""BFCL single-turn data, read straight from the files of the installed `bfcl-eval` wheel.

Source syntax: `bfcl:<category>[,<category>...][@<data dir>]`, e.g. `bfcl:simple_python,multiple` or
`bfcl:parallel@tests/fixtures/bfcl`; `bfcl:all` (or `bfcl:python`) means the eleven scored
single-turn Python categories, `bfcl:non_python` simple_java and simple_javascript, `bfcl:single_turn`
all thirteen, and `bfcl:exec` the four executable ones. The multi-turn categories (`bfcl:multi_turn` for
all four) are read by `bfcl_multi_turn.py`. The data dir may also be passed as `data_dir=`; without
either, the wheel's `bfcl_eval/data` is found via importlib *without importing bfcl_eval* (importing
it would pull its heavy pinned dependencies). A data dir has the wheel's layout:

    BFCL_v4_<cat>.json                          questions (JSON lines)
    possible_answer/BFCL_v4_<cat>.json          answer keys
    unused_datasets/question/BFCL_v4_<cat>.json and unused_datasets/possible_answer/...  (exec, sql, rest)

Any `BFCL_v<N>_` prefix is accepted; the highest N present wins.

Gold per category: AST categories -> Gold("bfcl") with the answer key; irrelevance ones -> "no_call";
live_relevance -> "any_call"; simple_java and simple_javascript -> Gold("bfcl") as well, with the functions
as BFCL's prompting handlers show them in `tools` (every parameter a string, its real type in its
description: evaluation/bfcl_lang.py) and as the file types them in metadata["bfcl_functions"] (what the
checker converts arguments by), metadata["language"] "java" or "javascript"; exec_* answers are call strings ("calc(n=20, k=5)"), decoded with BFCL's
own decoding rules into Gold("bfcl", calls=..., bfcl=[{name: {param: [value]}}]); rest's gold is an
execution result, so those examples are "unscored" with the result in metadata["execution_result"].
"""
from __future__ import annotations

import importlib.util
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Union

from toolace_r.calls import ToolCall
from toolace_r.data.bfcl_multi_turn import MULTI_TURN_CATEGORIES, load_multi_turn
from toolace_r.data.example import Example, Gold
from toolace_r.data.records import count_lines, expect, join_by_id
from toolace_r.jsonvalues import json_type
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.schema_check import validate
from toolace_r.tools import Tool, normalize_tools


@dataclass(frozen=True)
class BfclCategory:
    gold: str  # "bfcl" | "no_call" | "any_call" | "exec" | "unscored"
    unused: bool = False  # lives under unused_datasets/
    has_answers: bool = True
    python: bool = True  # False: Java or JavaScript (arguments are source text of that language)


BFCL_CATEGORIES: dict[str, BfclCategory] = {
    "simple_python": BfclCategory("bfcl"),
    "simple_java": BfclCategory("bfcl", python=False),
    "simple_javascript": BfclCategory("bfcl", python=False),
    "multiple": BfclCategory("bfcl"),
    "parallel": BfclCategory("bfcl"),
    "parallel_multiple": BfclCategory("bfcl"),
    "irrelevance": BfclCategory("no_call", has_answers=False),
    "live_simple": BfclCategory("bfcl"),
    "live_multiple": BfclCategory("bfcl"),
    "live_parallel": BfclCategory("bfcl"),
    "live_parallel_multiple": BfclCategory("bfcl"),
    "live_irrelevance": BfclCategory("no_call", has_answers=False),
    "live_relevance": BfclCategory("any_call", has_answers=False),
    "exec_simple": BfclCategory("exec", unused=True),
    "exec_multiple": BfclCategory("exec", unused=True),
    "exec_parallel": BfclCategory("exec", unused=True),
    "exec_parallel_multiple": BfclCategory("exec", unused=True),
    "sql": BfclCategory("bfcl", unused=True),
    "rest": BfclCategory("unscored", unused=True),
}

BFCL_GROUPS: dict[str, tuple[str, ...]] = {
    "all": tuple(c for c, info in BFCL_CATEGORIES.items() if not info.unused and info.python),
    "python": tuple(c for c, info in BFCL_CATEGORIES.items() if not info.unused and info.python),
    "non_python": tuple(c for c, info in BFCL_CATEGORIES.items() if not info.python),
    "single_turn": tuple(c for c, info in BFCL_CATEGORIES.items() if not info.unused),
    "exec": tuple(c for c in BFCL_CATEGORIES if c.startswith("exec_")),
    "multi_turn": MULTI_TURN_CATEGORIES,
}


def default_data_dir() -> Path:
    """`bfcl_eval/data` inside the installed wheel, located without importing the package."""
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("BFCL data not found: install it with `pip install --no-deps bfcl-eval` "
                                "or pass a data dir (bfcl:<category>@<dir> or data_dir=...)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def category_sizes(data_dir: str | Path | None = None) -> dict[str, int]:
    """Number of questions per category, counted from the files (categories without a file are left out)."""
    root = Path(data_dir) if data_dir else default_data_dir()
    sizes = {}
    for cat in BFCL_CATEGORIES:
        path = _question_file(root, cat, required=False)
        if path is not None:
            sizes[cat] = count_lines(path)
    return sizes


@register_loader("bfcl")
def load_bfcl(spec: str, data_dir: str | Path | None = None) -> Iterator[Union[Example, DatasetError]]:
    cats_text, _, at_dir = spec.partition("@")
    root = Path(at_dir or data_dir or default_data_dir())
    if not root.is_dir():
        raise FileNotFoundError(f"BFCL data dir {str(root)!r} does not exist")
    for cat in _expand_categories(cats_text):
        if cat in MULTI_TURN_CATEGORIES:
            yield from load_multi_turn(root, cat, _versioned_or_fail(root, cat),
                                       _versioned_or_fail(root / "possible_answer", cat))
        else:
            yield from _load_category(root, cat)


def bfcl_categories(spec: str) -> list[str]:
    """The categories a `bfcl:` spec (the part after the colon, `@dir` allowed) names, groups expanded."""
    return _expand_categories(spec.partition("@")[0])


def _expand_categories(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ValueError(f"expected bfcl:<category>[,<category>...]; categories: {', '.join(BFCL_CATEGORIES)}")
    out: list[str] = []
    for name in names:
        group = BFCL_GROUPS.get(name, (name,))
        for cat in group:
            if cat not in BFCL_CATEGORIES and cat not in MULTI_TURN_CATEGORIES:
                known = ", ".join([*BFCL_CATEGORIES, *MULTI_TURN_CATEGORIES, *BFCL_GROUPS])
                raise ValueError(f"unknown BFCL category {cat!r} (known: {known})")
            if cat not in out:
                out.append(cat)
    return out


def _versioned(folder: Path, cat: str) -> Path | None:
    best, best_v = None, -1
    if folder.is_dir():
        for p in folder.glob(f"BFCL_v*_{cat}.json"):
            m = re.fullmatch(rf"BFCL_v(\d+)_{re.escape(cat)}\.json", p.name)
            if m and int(m.group(1)) > best_v:
                best, best_v = p, int(m.group(1))
    return best


def _versioned_or_fail(folder: Path, cat: str) -> Path:
    path = _versioned(folder, cat)
    if path is None:
        raise FileNotFoundError(f"no BFCL_v*_{cat}.json in {folder}")
    return path


def _question_file(root: Path, cat: str, required: bool = True) -> Path | None:
    folder = root / "unused_datasets" / "question" if BFCL_CATEGORIES[cat].unused else root
    path = _versioned(folder, cat)
    if path is None and required:
        raise FileNotFoundError(f"no BFCL_v*_{cat}.json in {folder}")
    return path


def _answer_file(root: Path, cat: str) -> Path:
    info = BFCL_CATEGORIES[cat]
    folder = root / ("unused_datasets/possible_answer" if info.unused else "possible_answer")
    path = _versioned(folder, cat)
    if path is None:
        raise FileNotFoundError(f"no BFCL_v*_{cat}.json answer file in {folder}")
    return path


def _load_category(root: Path, cat: str) -> Iterator[Union[Example, DatasetError]]:
    info = BFCL_CATEGORIES[cat]
    answers = _answer_file(root, cat) if info.has_answers else None
    yield from join_by_id(_question_file(root, cat), answers,
                          lambda where, rec, keyed: _example(cat, info, where, rec, keyed))


def _example(cat: str, info: BfclCategory, where: str, rec: Any, answers: dict[str, Any]) -> Example:
    ex_id = expect(rec, "id", str, where)
    messages = _first_turn(expect(rec, "question", list, where), where)
    functions = expect(rec, "function", list, where)
    metadata: dict[str, Any] = {}
    if not info.python:
        functions = _language_functions(cat, functions, metadata, where)
    try:
        tools = normalize_tools(functions)
    except DatasetError:
        raise  # already names its field
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="function") from None
    if info.has_answers:
        if ex_id not in answers:
            raise DatasetError(where, f"no answer with id {ex_id!r} in the answer file", field="id")
        answer_where, answer = answers[ex_id]
        gold = _gold(info, answer_where, answer, metadata, tools)
    else:
        gold = Gold(kind=info.gold)
    return Example(id=ex_id, messages=messages, tools=tools, gold=gold, category=cat, metadata=metadata)


def _language_functions(cat: str, functions: list[Any], metadata: dict[str, Any], where: str) -> list[Any]:
    """Java/JS: the functions as the model is shown them; the file's typed ones kept for the checker."""
    from toolace_r.evaluation.bfcl_lang import language_of, model_functions

    for i, fn in enumerate(functions):
        params = fn.get("parameters") if isinstance(fn, dict) else None
        props = params.get("properties") if isinstance(params, dict) else None
        if not (isinstance(fn, dict) and isinstance(fn.get("name"), str) and isinstance(fn.get("description"), str)
                and isinstance(props, dict) and all(isinstance(p, dict) and isinstance(p.get("type"), str)
                                                    and isinstance(p.get("description", ""), str) for p in props.values())):
            raise DatasetError(where, f"function {i}: expected {{\"name\", \"description\", \"parameters\": "
                               "{\"properties\": {name: {\"type\", \"description\"}}}}", field="function")
    metadata["language"] = language_of(cat)
    metadata["bfcl_functions"] = json.loads(json.dumps(functions))
    try:
        return model_functions(functions, cat)
    except (KeyError, TypeError) as exc:  # a shape BFCL's preprocessing cannot read
        raise DatasetError(where, f"cannot show the functions as BFCL does: {type(exc).__name__}: {exc}",
                           field="function") from None


def _first_turn(question: list[Any], where: str) -> list[dict[str, Any]]:
    """The messages of the first turn: `question` is [[msg, ...], ...], or a flat [msg, ...] (sql)."""
    turn = question[0] if question and isinstance(question[0], list) else question
    if not turn:
        raise DatasetError(where, "expected at least one message", field="question")
    for i, msg in enumerate(turn):
        if not (isinstance(msg, dict) and isinstance(msg.get("role"), str) and "content" in msg):
            raise DatasetError(where, f"message {i}: expected {{\"role\": str, \"content\": ...}}, got "
                               f"{json_type(msg)}", field="question")
    return [dict(m) for m in turn]


def _gold(info: BfclCategory, where: str, answer: Any, metadata: dict[str, Any], tools: list[Tool]) -> Gold:
    if info.gold == "unscored":
        metadata["execution_result"] = expect(answer, "ground_truth", (str, list, dict), where)
        return Gold(kind="unscored")
    truth = expect(answer, "ground_truth", list, where)
    if info.gold == "exec":
        if "execution_result_type" in answer:
            metadata["execution_result_type"] = answer["execution_result_type"]
        calls = [_decode_exec_call(s, i, where) for i, s in enumerate(truth)]
        problems = [p.message for c in calls for p in validate(c, tools)]
        if problems:  # e.g. a positional argument BFCL's decoder drops: keep the item, flag its gold
            metadata["gold_problems"] = problems
        key = [{c.name: {k: [v] for k, v in c.arguments.items()}} for c in calls]
        return Gold(kind="bfcl", calls=calls, bfcl=key)
    for i, entry in enumerate(truth):
        if not (isinstance(entry, dict) and len(entry) == 1 and isinstance(next(iter(entry.values())), dict)):
            raise DatasetError(where, f"entry {i}: expected {{function name: {{param: [values]}}}}, "
                               f"got {json.dumps(entry)[:80]}", field="ground_truth")
    return Gold(kind="bfcl", bfcl=truth)


def _decode_exec_call(text: Any, i: int, where: str) -> ToolCall:
    from toolace_r.calls import decode_bfcl

    if not isinstance(text, str):
        raise DatasetError(where, f"entry {i}: expected a call string, got {json_type(text)}", field="ground_truth")
    result = decode_bfcl(text)
    if result.error or not result.calls or len(result.calls) != 1:
        why = result.error or f"decoded to {len(result.calls or [])} calls"
        raise DatasetError(where, f"entry {i}: cannot decode {text!r} as one call ({why})", field="ground_truth")
    call = result.calls[0]
    return ToolCall(call.name, {k: _jsonable(v) for k, v in call.arguments.items()})


def _jsonable(value: Any) -> Any:
    """Tuples become lists so the key survives a JSON round trip unchanged (BFCL compares them as lists)."""
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    return value
