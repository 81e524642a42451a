"""API-Bank level-1 and level-2 API-call samples, read from a DAMO-ConvAI checkout (docs/benchmarks.md).

Source syntax: `apibank:<level>[,<level>...][@<dir>]`, levels `level-1`, `level-2` (or `all`), e.g.
`apibank:level-1,level-2@~/DAMO-ConvAI`. `<dir>` (or `data_dir=`) is the checkout root or its
`api-bank` folder; it must hold

    lv1-lv2-samples/level-1-given-desc/*.jsonl     level-1 dialogues
    lv1-lv2-samples/level-2-toolsearcher/*.jsonl   level-2 dialogues
    apis/*.py                                      the API classes (descriptions and parameters)

A dialogue file holds one message per line: {"role": "User"|"AI", "text": ...} or
{"role": "API", "api_name", "param_dict", "result": {"api_name", "input", "output", "exception"}}.

Samples, as the official evaluator builds them: every API turn of a dialogue is one sample whose
context is the dialogue before it. The official construction also makes a sample of the turn right
after each API turn; when that turn is itself an API turn, the same sample appears twice. Those
repeats are kept (`repeats=True`, the default) because the published test sets count them: 389 API
turns + 10 repeats = 399 at level 1, 119 + 16 = 135 at level 2. A repeat's id ends in ":repeat".

Ids: `<file stem>:<turn index>` (0-based line of the API turn among the dialogue's messages).
`metadata["official_id"]` is the official sample index within its file (the `id` of the published
test JSON, whose `file` is `metadata["file"]`).

Messages (OpenAI shape): User -> user, AI -> assistant, an API turn -> an assistant message with
`tool_calls` (arguments as an object) followed by a tool message holding the recorded result
(`{"output": ...}`, or `{"exception": ...}` when the call failed).

Tools: level 1 offers every API the dialogue calls (as the official evaluator does, including those
only called later), sorted by name. Level 2 offers only ToolSearcher, as the official level-2 prompt
does; the APIs a ToolSearcher call retrieved reach the model through that call's tool message, and
their names are in `metadata["retrieved"]`. Descriptions are read from `apis/*.py` by parsing the
class bodies (`ast`, literals only: nothing there is imported or run): a class counts when it assigns
a string `description` and a dict `input_parameters` (`output_parameters` optional).

Gold: Gold("calls", [ToolCall(api_name, param_dict)]). Metadata: file, turn, level, official_id,
repeat, the raw API turn (`api_turn`), `expected_output` (the answer string as the official test
JSON writes it, "API-Request: [Name(key='value', ...)]", built the same way, so values holding quotes
make it invalid Python exactly as there), `param_types` (the gold API's declared parameter types).
"""
from __future__ import annotations

import ast
import json
import os
import re
from pathlib import Path
from typing import Any, Iterator, Union

from toolace_r.answer_format import tool_calls_message
from toolace_r.calls import ToolCall
from toolace_r.data.example import Example, Gold
from toolace_r.data.records import check_example, json_lines
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.jsonvalues import json_type
from toolace_r.tools import Tool, normalize_tools

LEVEL_FOLDERS = {
    "level-1": "lv1-lv2-samples/level-1-given-desc",
    "level-2": "lv1-lv2-samples/level-2-toolsearcher",
}
LEVEL_GROUPS = {"all": tuple(LEVEL_FOLDERS)}
TOOL_SEARCHER = "ToolSearcher"
ROLES = ("User", "AI", "API")
# [ours] a checkout's apis/ holds ~55 small files; a file past this is not an API class file
MAX_API_FILE_BYTES = 1 << 20


def category(level: str) -> str:
    """"level-1" -> "apibank_level_1"."""
    return "apibank_" + level.replace("-", "_")


def find_root(path: str | os.PathLike) -> Path:
    """The `api-bank` folder: `path` itself or its `api-bank` child; FileNotFoundError naming what is expected."""
    given = Path(os.path.expanduser(str(path)))
    for root in (given, given / "api-bank"):
        if (root / "lv1-lv2-samples").is_dir() and (root / "apis").is_dir():
            return root
    expected = ", ".join([*LEVEL_FOLDERS.values(), "apis/*.py"])
    raise FileNotFoundError(f"{given}: not an API-Bank folder: expected the DAMO-ConvAI checkout root or its "
                            f"api-bank folder, holding {expected}")


@register_loader("apibank")
def load_apibank(spec: str, data_dir: str | Path | None = None,
                 repeats: bool = True) -> Iterator[Union[Example, DatasetError]]:
    levels_text, _, at_dir = spec.partition("@")
    levels = _levels(levels_text)
    if not (at_dir or data_dir):
        raise ValueError("apibank: expected the DAMO-ConvAI checkout as apibank:<levels>@<dir> or data_dir=")
    root = find_root(at_dir or data_dir)
    apis = read_api_classes(root / "apis")
    for level in levels:
        folder = root / LEVEL_FOLDERS[level]
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder}: missing; an API-Bank folder holds {LEVEL_FOLDERS[level]}/*.jsonl")
        files = sorted(p for p in folder.iterdir() if p.suffix == ".jsonl")
        if not files:
            raise FileNotFoundError(f"{folder}: no .jsonl dialogue files")
        for path in files:
            yield from _dialogue_samples(path, level, apis, repeats)


def _levels(text: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise ValueError(f"expected apibank:<level>[,<level>...]; levels: {', '.join([*LEVEL_FOLDERS, *LEVEL_GROUPS])}")
    out: list[str] = []
    for name in names:
        for level in LEVEL_GROUPS.get(name, (name,)):
            if level not in LEVEL_FOLDERS:
                raise ValueError(f"unknown API-Bank level {level!r} (known: "
                                 f"{', '.join([*LEVEL_FOLDERS, *LEVEL_GROUPS])})")
            if level not in out:
                out.append(level)
    return out


# --- API descriptions from the class bodies ---------------------------------------------------------

def read_api_classes(folder: Path) -> dict[str, dict[str, Any]]:
    """{class name: {"name", "description", "input_parameters", "output_parameters"}} from `folder/*.py`.

    Only literal assignments in class bodies are read (`ast.literal_eval` of each value); a file that
    does not parse is skipped, a folder without any such class is a FileNotFoundError.
    """
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: missing; an API-Bank folder holds apis/*.py (the API classes)")
    apis: dict[str, dict[str, Any]] = {}
    for path in sorted(folder.glob("*.py")):
        if not path.is_file() or path.stat().st_size > MAX_API_FILE_BYTES:
            continue
        try:
            tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue
        for node in tree.body:
            if isinstance(node, ast.ClassDef):
                info = _class_info(node)
                if info is not None:
                    apis[node.name] = info
    if not apis:
        raise FileNotFoundError(f"{folder}: no API class (a class assigning `description` and "
                                "`input_parameters` literals) in any .py file")
    return apis


def _class_info(node: ast.ClassDef) -> dict[str, Any] | None:
    values: dict[str, Any] = {}
    for stmt in node.body:
        if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
            key = stmt.targets[0].id
            if key in ("description", "input_parameters", "output_parameters"):
                try:
                    values[key] = ast.literal_eval(stmt.value)
                except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
                    return None
    if not isinstance(values.get("description"), str) or not isinstance(values.get("input_parameters"), dict):
        return None
    outputs = values.get("output_parameters", {})
    return {"name": node.name, "description": values["description"],
            "input_parameters": values["input_parameters"],
            "output_parameters": outputs if isinstance(outputs, dict) else {}}


def api_tool(info: dict[str, Any]) -> Tool:
    """One API class as a Tool: every input parameter required (the official call passes them all)."""
    props = {}
    for pname, p in info["input_parameters"].items():
        p = p if isinstance(p, dict) else {}
        props[str(pname)] = {"type": _type_name(p.get("type")), "description": str(p.get("description", ""))}
    return normalize_tools([{"name": info["name"], "description": info["description"],
                             "parameters": {"type": "dict", "properties": props, "required": list(props)}}])[0]


def _type_name(t: Any) -> str:
    """API-Bank's type strings in the Python spelling tools.py reads: "list(str)" -> "List[str]"."""
    if not isinstance(t, str):
        return "any"
    m = re.fullmatch(r"\s*list\((\w+)\)\s*", t)
    return f"List[{m.group(1)}]" if m else t


# --- dialogues -------------------------------------------------------------------------------------

def _dialogue_samples(path: Path, level: str, apis: dict[str, dict[str, Any]],
                      repeats: bool) -> Iterator[Union[Example, DatasetError]]:
    turns: list[tuple[str, dict[str, Any]]] = []
    for item in json_lines(path):
        if isinstance(item, DatasetError):
            yield DatasetError(item.where, f"{item.detail} (the whole dialogue is skipped)", field=item.field)
            return
        where, msg = item
        try:
            _check_turn(msg, where)
        except DatasetError as err:
            yield DatasetError(err.where, f"{err.detail} (the whole dialogue is skipped)", field=err.field)
            return
        turns.append((where, msg))
    names = sorted({m["api_name"] for _, m in turns if m["role"] == "API"})
    tool_names = [TOOL_SEARCHER] if level == "level-2" else names
    for name in [*tool_names, *names]:
        if name not in apis:
            where = next((w for w, m in turns if m["role"] == "API" and m["api_name"] == name), str(path))
            yield DatasetError(where, f"API {name!r} has no class in apis/*.py (the whole dialogue is skipped)",
                               field="api_name")
            return
    tools = [api_tool(apis[n]) for n in tool_names]
    positions = [i for i, (_, m) in enumerate(turns) if m["role"] == "API"]
    for k, i in enumerate(positions):
        yield _sample(path, level, turns, i, 2 * k, tools, apis, repeat=False)
        # the official construction's second sample of this API turn is the next turn; an API turn there
        # is a repeat of the next API turn's own sample
        if repeats and i + 1 < len(turns) and turns[i + 1][1]["role"] == "API":
            yield _sample(path, level, turns, i + 1, 2 * k + 1, tools, apis, repeat=True)


def _check_turn(msg: Any, where: str) -> None:
    if not isinstance(msg, dict):
        raise DatasetError(where, f"expected a JSON object, got {json_type(msg)}")
    role = msg.get("role")
    if role not in ROLES:
        raise DatasetError(where, f"expected one of {', '.join(ROLES)}, got {role!r}", field="role")
    if role in ("User", "AI"):
        if not isinstance(msg.get("text"), str):
            raise DatasetError(where, f"expected a string, got {json_type(msg.get('text'))}", field="text")
        return
    if not isinstance(msg.get("api_name"), str) or not msg["api_name"]:
        raise DatasetError(where, f"expected a non-empty string, got {json_type(msg.get('api_name'))}",
                           field="api_name")
    if not isinstance(msg.get("param_dict"), dict):
        raise DatasetError(where, f"expected an object, got {json_type(msg.get('param_dict'))}", field="param_dict")
    if "result" in msg and not isinstance(msg["result"], (dict, type(None))):
        raise DatasetError(where, f"expected an object, got {json_type(msg['result'])}", field="result")


def _sample(path: Path, level: str, turns: list[tuple[str, dict[str, Any]]], i: int, official_id: int,
            tools: list[Tool], apis: dict[str, dict[str, Any]], repeat: bool) -> Union[Example, DatasetError]:
    where, turn = turns[i]
    messages: list[dict[str, Any]] = []
    retrieved: list[str] = []
    for j, (_, m) in enumerate(turns[:i]):
        if m["role"] == "User":
            messages.append({"role": "user", "content": m["text"]})
        elif m["role"] == "AI":
            messages.append({"role": "assistant", "content": m["text"]})
        else:
            call = tool_calls_message([ToolCall(m["api_name"], dict(m["param_dict"]))])
            call["tool_calls"][0]["id"] = f"call_{j}"
            messages.append(call)
            messages.append({"role": "tool", "tool_call_id": f"call_{j}", "name": m["api_name"],
                             "content": _result_text(m.get("result"))})
            if m["api_name"] == TOOL_SEARCHER:
                retrieved += _retrieved_names(m.get("result"))
    name, params = turn["api_name"], dict(turn["param_dict"])
    declared = apis[name]["input_parameters"]
    metadata = {
        "benchmark": "apibank",  # scored by evaluation/apibank.py (evaluation/benchmarks.py picks it)
        "file": path.name, "turn": i, "level": int(level[-1]), "official_id": official_id, "repeat": repeat,
        "api_turn": turn, "expected_output": expected_output(name, params),
        "param_types": {str(k): str(v.get("type")) if isinstance(v, dict) else None for k, v in declared.items()},
    }
    if level == "level-2":
        metadata["retrieved"] = retrieved
    ex = Example(id=f"{path.stem}:{i}" + (":repeat" if repeat else ""), messages=messages, tools=list(tools),
                 gold=Gold("calls", calls=[ToolCall(name, params)]), category=category(level), metadata=metadata)
    return check_example(ex, where)


def expected_output(name: str, params: dict[str, Any]) -> str:
    """The answer string as the published test JSON writes it: every value as key='<str(value)>'."""
    return "API-Request: [" + name + "(" + ", ".join(f"{k}='{v}'" for k, v in params.items()) + ")]"


def _result_text(result: Any) -> str:
    if not isinstance(result, dict):
        return json.dumps({"output": None})
    if result.get("exception") is not None:
        return json.dumps({"exception": result.get("exception")}, ensure_ascii=False, default=str)
    return json.dumps({"output": result.get("output")}, ensure_ascii=False, default=str)


def _retrieved_names(result: Any) -> list[str]:
    out = result.get("output") if isinstance(result, dict) else None
    items = out if isinstance(out, list) else [out]
    return [x["name"] for x in items if isinstance(x, dict) and isinstance(x.get("name"), str)]
