"""BFCL multi-turn data: conversations over BFCL's simulated APIs (file system, trading, travel, ...).

Source syntax: `bfcl:multi_turn_base`, `bfcl:multi_turn_miss_func`, `bfcl:multi_turn_miss_param`,
`bfcl:multi_turn_long_context`, or `bfcl:multi_turn` for the four (see docs/bfcl_multi_turn.md).

An item is a conversation of several user turns against instances of the classes it names
(`involved_classes`, e.g. GorillaFileSystem and TwitterAPI), each loaded with `initial_config`. The
model may take several steps per turn (calls, their results, more calls); the ground truth is a list
of call strings per turn, and `evaluation/multi_turn.py` scores a whole trajectory by executing it.

What each Example holds:
- `messages`: the first turn's messages; `metadata["turns"]` all turns as the question file has them
  (a miss_func turn that only makes a held-out function available again is an empty list).
- `tools`: the function docs of the involved classes (`data/multi_turn_func_doc/`), in class order,
  minus the held-out ones, as BFCL builds the prompt; `metadata["held_out_tools"]` maps a turn index
  to the docs (BFCL-shaped dicts) that become available at that turn, `metadata["missed_function"]`
  to their names. Both are keyed by int on loading; `missed_functions`/`held_out_tools` read either
  int or str keys (a JSON round trip writes keys as strings).
- `gold`: Gold("multi_turn", turns=[[call string, ...] per turn]). The strings are kept as written:
  some use positional arguments (`sort('final_report.pdf')`), which only execution makes sense of.
- `metadata`: "category", "turns", "involved_classes", "initial_config", "missed_function",
  "held_out_tools", "long_context" (BFCL's rule: the category names long_context), "path" and
  "excluded_function" where the record has them (BFCL's harness reads neither).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterator, Union

from toolace_r.data.example import Example, Gold
from toolace_r.data.records import expect, join_by_id, read_json_file
from toolace_r.data.registry import DatasetError
from toolace_r.jsonvalues import json_type
from toolace_r.tools import Tool, normalize_tools

MULTI_TURN_CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                         "multi_turn_long_context")

# Which doc file under data/multi_turn_func_doc/ describes each class (BFCL's own mapping, restated
# so that loading data never imports bfcl_eval).
FUNC_DOC_FILES = {
    "GorillaFileSystem": "gorilla_file_system.json",
    "MathAPI": "math_api.json",
    "MessageAPI": "message_api.json",
    "TwitterAPI": "posting_api.json",
    "TicketAPI": "ticket_api.json",
    "TradingBot": "trading_bot.json",
    "TravelAPI": "travel_booking.json",
    "VehicleControlAPI": "vehicle_control.json",
}


def is_long_context(example_id: str) -> bool:
    """BFCL's rule: the category (the id without its trailing `_<n>`) names long_context or composite."""
    category = example_id.rsplit("_", 1)[0]
    return "long_context" in category or "composite" in category


def load_multi_turn(root: Path, cat: str, question_file: Path, answer_file: Path
                    ) -> Iterator[Union[Example, DatasetError]]:
    """Examples of one multi-turn category; `root` is the data dir holding multi_turn_func_doc/."""
    docs = _FuncDocs(root / "multi_turn_func_doc")
    yield from join_by_id(question_file, answer_file,
                          lambda where, rec, answers: _example(cat, where, rec, answers, docs))


def missed_functions(example: Example) -> dict[int, list[str]]:
    """Turn index -> names of the functions held out until that turn (miss_func), int keys."""
    raw = example.metadata.get("missed_function") or {}
    return {int(k): list(v) for k, v in raw.items()}


def held_out_tools(example: Example) -> dict[int, list[Tool]]:
    """Turn index -> the held-out tools that become available at that turn, as Tools."""
    raw = example.metadata.get("held_out_tools") or {}
    return {int(k): normalize_tools(v) for k, v in raw.items()}


def ground_truth(example: Example) -> list[list[str]]:
    """The gold call strings, one list per turn."""
    if example.gold.kind != "multi_turn" or example.gold.turns is None:
        raise ValueError(f"example {example.id!r} has no multi-turn gold (kind {example.gold.kind!r})")
    return example.gold.turns


class _FuncDocs:
    """The doc list of each class, read once per category."""

    def __init__(self, folder: Path):
        self.folder = folder
        self.cache: dict[str, list[dict[str, Any]]] = {}

    def of(self, class_name: str, where: str) -> list[dict[str, Any]]:
        if class_name not in self.cache:
            name = FUNC_DOC_FILES.get(class_name)
            if name is None:
                raise DatasetError(where, f"unknown class {class_name!r} (known: {', '.join(FUNC_DOC_FILES)})",
                                   field="involved_classes")
            docs = []
            for item in read_json_file(self.folder / name):
                if isinstance(item, DatasetError):
                    raise item
                docs.append(item[1])
            self.cache[class_name] = docs
        return [dict(d) for d in self.cache[class_name]]


def _example(cat: str, where: str, rec: Any, answers: dict[str, Any], docs: _FuncDocs) -> Example:
    ex_id = expect(rec, "id", str, where)
    turns = _turns(expect(rec, "question", list, where), where)
    classes = expect(rec, "involved_classes", list, where)
    if not all(isinstance(c, str) for c in classes):
        raise DatasetError(where, "expected a list of class names", field="involved_classes")
    config = expect(rec, "initial_config", dict, where, optional=True) or {}
    functions = [doc for c in classes for doc in docs.of(c, where)]
    missed = expect(rec, "missed_function", dict, where, optional=True) or {}
    missed_names: dict[int, list[str]] = {}
    held_out: dict[int, list[dict[str, Any]]] = {}
    for key, names in missed.items():
        try:
            turn = int(key)
        except ValueError:
            raise DatasetError(where, f"turn index {key!r} is not an integer", field="missed_function") from None
        if not (isinstance(names, list) and all(isinstance(n, str) for n in names)):
            raise DatasetError(where, f"turn {key}: expected a list of function names", field="missed_function")
        missed_names[turn], held_out[turn] = list(names), []
        for name in names:  # as BFCL does: the first doc of that name leaves the list
            i = next((i for i, d in enumerate(functions) if d.get("name") == name), None)
            if i is not None:
                held_out[turn].append(functions.pop(i))
    try:
        tools = normalize_tools(functions)
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="involved_classes") from None
    if ex_id not in answers:
        raise DatasetError(where, f"no answer with id {ex_id!r} in the answer file", field="id")
    answer_where, answer = answers[ex_id]
    truth = _ground_truth(expect(answer, "ground_truth", list, answer_where), answer_where)
    if len(truth) != len(turns):
        raise DatasetError(answer_where, f"{len(truth)} ground-truth turns for {len(turns)} question turns",
                           field="ground_truth")
    metadata: dict[str, Any] = {
        "category": cat, "turns": turns, "involved_classes": list(classes), "initial_config": config,
        "missed_function": missed_names, "held_out_tools": held_out, "long_context": is_long_context(ex_id),
    }
    for key in ("path", "excluded_function"):
        if key in rec:
            metadata[key] = rec[key]
    if not turns[0]:
        raise DatasetError(where, "the first turn has no message", field="question")
    return Example(id=ex_id, messages=[dict(m) for m in turns[0]], tools=tools,
                   gold=Gold(kind="multi_turn", turns=truth), category=cat, metadata=metadata)


def _turns(question: list[Any], where: str) -> list[list[dict[str, Any]]]:
    out = []
    for t, turn in enumerate(question):
        if not isinstance(turn, list):
            raise DatasetError(where, f"turn {t}: expected a list of messages, got {json_type(turn)}", field="question")
        for i, msg in enumerate(turn):
            if not (isinstance(msg, dict) and isinstance(msg.get("role"), str) and "content" in msg):
                raise DatasetError(where, f"turn {t} message {i}: expected {{\"role\": str, \"content\": ...}}, "
                                   f"got {json_type(msg)}", field="question")
        out.append([dict(m) for m in turn])
    if not out:
        raise DatasetError(where, "expected at least one turn", field="question")
    return out


def _ground_truth(truth: list[Any], where: str) -> list[list[str]]:
    for t, turn in enumerate(truth):
        if not (isinstance(turn, list) and all(isinstance(s, str) for s in turn)):
            raise DatasetError(where, f"turn {t}: expected a list of call strings, got {json.dumps(turn)[:80]}",
                               field="ground_truth")
    return [list(turn) for turn in truth]
