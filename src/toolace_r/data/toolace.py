"""ToolACE rows (`Team-ACE/ToolACE`): one Example per assistant turn.

A row is `{"system": "<prompt ending in a JSON tool list>", "conversations": [{"from": "user" |
"assistant" | "tool", "value": str}, ...]}`. The tools are cut out of the system prompt (the list after
"...in JSON format that you can invoke.", else the first JSON array of objects with a "name" that
parses); the prompt itself is dropped, since prompts.py writes its own. Each assistant turn becomes an
example whose context is every turn before it and whose gold is its value: pythonic calls, or
no-call text. Source: `toolace:<file or folder>` or `toolace:<hub id>` (default `Team-ACE/ToolACE`).
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator, Union

from toolace_r.data.example import Example, call_shape
from toolace_r.data.gold import flag_problems, gold_from_text
from toolace_r.data.records import build_examples, expect
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.jsonvalues import json_type, number_problem
from toolace_r.tools import normalize_tools

DEFAULT_HUB_ID = "Team-ACE/ToolACE"
TOOLS_MARKER = "in JSON format that you can invoke."

_ROLES = {"user": "user", "human": "user", "assistant": "assistant", "gpt": "assistant",
          "tool": "tool", "function": "tool", "observation": "tool", "system": "system"}


@register_loader("toolace")
def load_toolace(spec: str, split: str = "train", streaming: bool | None = None
                 ) -> Iterator[Union[Example, DatasetError]]:
    """streaming: read a hub dataset as it downloads (None: when it is large; see data/records.py)."""
    return build_examples(spec, _examples, default_hub_id=DEFAULT_HUB_ID, split=split, streaming=streaming)


_DECODER = json.JSONDecoder()
_CANDIDATE = re.compile(r'\[\s*\{\s*"')  # a non-empty list of tool objects (keyed, "name" among them) starts so
_FIRST_WINDOW = 64  # chars decoded at first from a candidate; grown 4x while the value runs past it


def extract_tool_list(system: str) -> list[Any]:
    """The JSON tool list inside a ToolACE system prompt; ValueError when there is none.

    Linear in the prompt's length. Each candidate '[{"' is decoded from a slice that grows only while
    the value runs past it, since `json` locates a syntax error by counting the lines before it,
    across the whole string it was given (a prompt of 300,000 '[{"x' would be quadratic otherwise),
    and the scan resumes where the last attempt stopped: a list nested inside a JSON value tried
    before, or inside the part of one that parsed, is not tried again.
    """
    marker = system.find(TOOLS_MARKER)
    if marker >= 0:
        start = system.find("[", marker + len(TOOLS_MARKER))
        if start >= 0:
            value, _ = _decode_at(system, start)
            if isinstance(value, list):
                return value
    pos = 0
    while True:
        m = _CANDIDATE.search(system, pos)
        if m is None:
            break
        value, pos = _decode_at(system, m.start())
        if isinstance(value, list) and value and all(isinstance(t, dict) and "name" in t for t in value):
            return value
    raise ValueError("no JSON tool list found (expected a JSON array of tools, e.g. after "
                     f"{TOOLS_MARKER!r})")


_NOT_JSON = object()


def _decode_at(text: str, start: int) -> tuple[Any, int]:
    """(the JSON value at `start`, where it ends), or (_NOT_JSON, where decoding failed, > start)."""
    window = _FIRST_WINDOW
    while True:
        stop = min(len(text), start + window)
        piece = text[start:stop]
        try:
            value, end = _DECODER.raw_decode(piece)
            return value, start + end
        except json.JSONDecodeError as exc:
            # An error near the slice's end, or an unterminated string, may only be where the slice
            # cut the value: decode a longer one. Any other error is where the whole text fails too.
            cut = exc.pos >= len(piece) - 16 or exc.msg.startswith("Unterminated string")
            if stop == len(text) or not cut:
                return _NOT_JSON, start + max(exc.pos, 1)
            window *= 4
        except RecursionError:
            raise ValueError(f"a JSON value at char {start} is nested too deeply to read") from None
        except ValueError as exc:  # a number past Python's int-from-text digit limit
            raise ValueError(f"the JSON value at char {start} is not readable ({number_problem(exc)})") from None


def _examples(row: Any, where: str, n: int) -> Iterator[Union[Example, DatasetError]]:
    system = expect(row, "system", str, where)
    turns = expect(row, "conversations", list, where)
    try:
        tools = normalize_tools(extract_tool_list(system))
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="system") from None
    context: list[dict[str, Any]] = []
    for i, turn in enumerate(turns):
        if not (isinstance(turn, dict) and isinstance(turn.get("from"), str) and isinstance(turn.get("value"), str)):
            raise DatasetError(where, f"turn {i}: expected {{\"from\": str, \"value\": str}}, got "
                               f"{_describe(turn)}", field="conversations")
        role = _ROLES.get(turn["from"].lower())
        if role is None:
            raise DatasetError(where, f"turn {i}: unknown speaker {turn['from']!r} (expected one of "
                               f"{', '.join(sorted(_ROLES))})", field="conversations")
        if role == "assistant" and context:
            try:
                gold = gold_from_text(turn["value"], "pythonic", where, "conversations")
            except DatasetError as err:
                yield DatasetError(where, f"turn {i}: {err.detail}", field="conversations")
            else:
                yield flag_problems(Example(
                    id=f"toolace-{n}-{i}", messages=[dict(m) for m in context], tools=tools, gold=gold,
                    category=f"toolace_{call_shape(gold, len(tools))}", metadata={"source": where, "turn": i}))
        context.append({"role": role, "content": turn["value"]})


def _describe(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k!r}: {json_type(v)}" for k, v in value.items()) + "}"
    return json_type(value)
