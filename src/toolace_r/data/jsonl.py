"""OpenAI/TRL conversational JSON lines: `{"messages": [...], "tools": [<OpenAI function schemas>]}`.

Reading (`jsonl:<path>`): the final message must be the assistant's and is the gold: its `tool_calls`
become the gold calls (`arguments` given as a JSON string, OpenAI's API way, or as an object, TRL's
way); without tool calls its content is parsed, and counts as calls if it decodes to some, else as a
no-call answer. Everything before it, a leading system message included, is the context. Optional
top-level "id" and "category" are used when present.

Writing (`write_jsonl`, `toolace-r data convert`) produces TRL's documented conversational
tool-calling format, so SFTTrainer and chat templates read it as is: call golds as an assistant message
with `tool_calls` whose `arguments` are JSON objects (`prompts.tool_calls_message`; the Qwen2.5 and
Llama-3.1 templates apply `tojson` to them, and a JSON string would come out encoded twice), no-call
golds as content, tools as OpenAI function schemas. `load("jsonl:...")` reads back the gold calls. A
BFCL answer key has no single answer, so the first acceptable value of each parameter is used (see
`Gold.answer_calls`); golds with no concrete answer at all (any_call, unscored) are skipped and counted.
"""
from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any, Iterable, Iterator, Union

from toolace_r import files
from toolace_r.calls import ToolCall
from toolace_r.data.example import Example, Gold, call_shape
from toolace_r.data.gold import flag_problems
from toolace_r.data.records import BadJson, check_example, expect, parse_json, read_json_file
from toolace_r.jsonvalues import json_type
from toolace_r.prompts import tool_calls_message
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.tools import normalize_tools

log = logging.getLogger(__name__)

# What a no-call example says when its gold has no text of its own (BFCL irrelevance has none).
DEFAULT_NO_CALL_TEXT = "None of the available functions can be used for this request."


@register_loader("jsonl")
def load_jsonl(spec: str) -> Iterator[Union[Example, DatasetError]]:
    if not spec.strip():
        raise ValueError("expected jsonl:<path>")
    path = Path(os.path.expanduser(spec.strip()))
    if not (path.exists() or path.is_symlink()):
        raise FileNotFoundError(f"{spec}: no such file")
    for n, item in enumerate(read_json_file(path), start=1):  # ValueError for a folder, a device, a pipe
        if isinstance(item, DatasetError):
            yield item
            continue
        where, rec = item
        try:
            yield check_example(_example(rec, where, n), where)
        except DatasetError as err:
            yield err


def _example(rec: Any, where: str, n: int) -> Example:
    messages = expect(rec, "messages", list, where)
    raw_tools = expect(rec, "tools", (list, str), where, optional=True) or []
    try:
        tools = normalize_tools(raw_tools)
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="tools") from None
    for i, msg in enumerate(messages):
        if not (isinstance(msg, dict) and isinstance(msg.get("role"), str)):
            raise DatasetError(where, f"message {i}: expected an object with a 'role', got {json_type(msg)}",
                               field="messages")
    if not messages or messages[-1]["role"] != "assistant":
        last = messages[-1]["role"] if messages else "nothing"
        raise DatasetError(where, f"the last message must be the assistant's answer (the gold), got {last}",
                           field="messages")
    metadata: dict[str, Any] = {"source": where}
    gold = _gold(messages[-1], where, metadata)
    ex_id = rec.get("id")
    category = rec.get("category")
    return flag_problems(Example(
        id=str(ex_id) if ex_id is not None else f"jsonl-{n}",
        messages=[dict(m) for m in messages[:-1]],
        tools=tools,
        gold=gold,
        category=category if isinstance(category, str) and category else f"jsonl_{call_shape(gold, len(tools))}",
        metadata=metadata,
    ))


def _gold(answer: dict[str, Any], where: str, metadata: dict[str, Any]) -> Gold:
    tool_calls = answer.get("tool_calls")
    if tool_calls:
        if not isinstance(tool_calls, list):
            raise DatasetError(where, f"final message 'tool_calls': expected a list, got {json_type(tool_calls)}",
                               field="messages")
        return Gold(kind="calls", calls=[_tool_call(tc, i, where) for i, tc in enumerate(tool_calls)])
    content = answer.get("content")
    if content is None:
        content = ""
    if not isinstance(content, str):
        raise DatasetError(where, f"final message 'content': expected a string, got {json_type(content)}",
                           field="messages")
    from toolace_r.calls import parse

    result = parse(content, "auto")
    if result.is_call and result.calls:
        return Gold(kind="calls", calls=list(result.calls))
    if result.error:
        # Content that almost parses as calls is still the answer people wrote: keep it as text, say so.
        metadata["gold_parse_error"] = result.error
    return Gold(kind="no_call", text=content)


def _tool_call(tc: Any, i: int, where: str) -> ToolCall:
    fn = tc.get("function", tc) if isinstance(tc, dict) else None
    if not (isinstance(fn, dict) and isinstance(fn.get("name"), str)):
        raise DatasetError(where, f"final message tool_calls[{i}]: expected {{\"function\": {{\"name\", "
                                  f"\"arguments\"}}}}, got {json_type(tc)}", field="messages")
    args = fn.get("arguments", {})
    if isinstance(args, str):
        try:
            args = parse_json(args) if args.strip() else {}
        except BadJson as exc:
            raise DatasetError(where, f"final message tool_calls[{i}] arguments: {exc}", field="messages") from None
    if not isinstance(args, dict):
        raise DatasetError(where, f"final message tool_calls[{i}] arguments: expected an object, "
                                  f"got {json_type(args)}", field="messages")
    return ToolCall(fn["name"], args)


# --- writing -----------------------------------------------------------------------------------------

def to_record(example: Example, no_call_text: str = DEFAULT_NO_CALL_TEXT) -> dict[str, Any] | None:
    """The JSONL record for one example, or None when its gold has no concrete answer to write."""
    calls = example.answer_calls()
    if calls is None:
        return None
    if calls:
        # One writer of the tool-calls shape (arguments as objects), shared with training prompts.
        answer: dict[str, Any] = tool_calls_message(calls, content="")
    else:
        answer = {"role": "assistant", "content": example.gold.text or no_call_text}
    return {
        "id": example.id,
        "category": example.category,
        "messages": [*example.messages, answer],
        "tools": [t.to_openai() for t in example.tools],
    }


def write_jsonl(examples: Iterable[Example], path: str | os.PathLike,
                no_call_text: str = DEFAULT_NO_CALL_TEXT) -> int:
    """Write examples in the OpenAI/TRL format, atomically; returns how many were written.

    Every line is rendered (with `files.dumps`: strict JSON, lone surrogates escaped) before the file
    is touched, so a failure leaves what was at `path` as it was. A path that cannot be written (a
    directory, a parent that is a file or read-only) is an OSError naming `path`, raised before the
    examples are read where that can be seen up front.
    """
    path = Path(path)
    _check_writable(path)
    lines: list[str] = []
    skipped = 0
    for ex in examples:
        record = to_record(ex, no_call_text)
        if record is None:
            skipped += 1
            continue
        lines.append(files.dumps(record) + "\n")
    try:
        files.write_files({path: "".join(lines)})
    except OSError as exc:
        raise type(exc)(f"cannot write {path}: {exc.strerror or exc}") from None
    if skipped:
        log.info("%s: skipped %d examples whose gold has no concrete answer (any_call/unscored)", path, skipped)
    return len(lines)


def _check_writable(path: Path) -> None:
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: it is a directory (give a file name)")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"cannot write {path}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise PermissionError(f"cannot write {path}: no permission to write in {parent}")
            return
