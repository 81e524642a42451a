"""Raw records from a local file or a Hugging Face Hub dataset, each tagged with where it came from.

Every loader that takes "<path or hub id>" reads through `read_records`, so all of them accept the
same inputs: a JSON-lines file, a file holding one JSON array, a folder of such files, or a hub id
("owner/name" by huggingface_hub's rules, when no such path exists). The tag ("data.jsonl line 3",
"Team-ACE/ToolACE record 7") is what error messages start with. A name that is neither an existing
path nor a possible hub id is "no such file" at once, without any network call.

Local files are read lazily, line by line, as bytes: each line is decoded and parsed on its own, so a
line that is too long (`MAX_LINE_BYTES`: stepped over, never held whole), not UTF-8, not JSON, or
nested too deeply (`MAX_DEPTH`) is one DatasetError and the lines after it still load. Only regular
files are read, since a device or a pipe (`/dev/zero`) never ends: naming one is a ValueError, and a
folder entry that is not a regular file (a directory named `x.jsonl`) is a DatasetError of its own.

A hub dataset is streamed (`datasets`' IterableDataset: rows arrive as they download, nothing is
converted to Arrow on disk) with `streaming=True`, or, with the default `streaming=None`, when the hub
reports it larger than STREAM_ABOVE_BYTES.
"""
from __future__ import annotations

import json
import os
import re
import stat
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

from toolace_r.data.example import Example
from toolace_r.data.registry import DatasetError
from toolace_r.jsonvalues import json_problem, json_type, number_problem

Record = tuple[str, Any]  # (where, decoded JSON value)

_FILE_SUFFIXES = (".json", ".jsonl", ".ndjson")
STREAM_ABOVE_BYTES = 1 << 30  # [ours] above 1 GiB a hub dataset is streamed rather than cached whole
# [ours] The longest line of the installed BFCL data is 24 KB and ToolACE rows are a few KB; a line
# past this is not a record but a runaway (a file without newlines, a device).
MAX_LINE_BYTES = 16 << 20
# [ours] Nesting of one record (BFCL's deepest is 12). Well below Python's recursion limit, so that
# code walking a record recursively (JSON encoding, copying, tools.py's own bound of 64) never fails.
MAX_DEPTH = 100
_SKIP_CHUNK = 1 << 20  # an over-long line is stepped over in pieces of this size
_BOM = b"\xef\xbb\xbf"
# huggingface_hub's REPO_ID_REGEX, for when huggingface_hub itself is not importable
_HUB_ID = re.compile(r"^(\b[\w\-.]+\b/)?\b[\w\-.]{1,96}\b$")


class BadJson(ValueError):
    """A text that this reader does not take as JSON; the message says why, without a location prefix."""


def read_records(spec: str, *, default_hub_id: str | None = None, split: str = "train",
                 streaming: bool | None = None) -> Iterator[Union[Record, DatasetError]]:
    """Yield (where, record) pairs, or a DatasetError for a line that is not JSON."""
    given = spec.strip()
    spec = given or (default_hub_id or "")
    if not spec:
        raise ValueError("expected a path or a hub id after the colon")
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _FILE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{spec}: no .json/.jsonl files in this folder")
        for f in files:
            kind = _not_regular(f)
            if kind:
                # Skippable like a bad line (one stray entry does not cost the other files), but not
                # silent: a folder named x.jsonl may hold data the user meant to load.
                yield DatasetError(str(f), f"{kind}, not a file: only the regular files of a folder are read")
                continue
            yield from read_json_file(f)
    elif path.exists() or path.is_symlink():
        yield from read_json_file(path)
    elif _looks_like_path(spec) or not _could_be_hub_id(spec):
        raise FileNotFoundError(f"{spec}: no such file or folder (nor a Hub dataset id, which is owner/name)")
    else:
        yield from _read_hub(spec, split, streaming, tried_local=bool(given))


def build_examples(spec: str, build: Callable[[Any, str, int], Iterable[Any]], *,
                   default_hub_id: str | None = None, split: str = "train",
                   streaming: bool | None = None) -> Iterator[Any]:
    """Run `build(record, where, record_number)` over every record of `spec`.

    What it yields passes through; a DatasetError (from reading or from `build`) is yielded as an item,
    so `load(..., skip_invalid=True)` can skip it and the strict path can raise it.
    """
    for n, item in enumerate(read_records(spec, default_hub_id=default_hub_id, split=split, streaming=streaming),
                             start=1):
        if isinstance(item, DatasetError):
            yield item
            continue
        where, row = item
        try:
            for built in build(row, where, n):
                yield check_example(built, where) if isinstance(built, Example) else built
        except DatasetError as err:
            yield err


def read_json_file(path: str | os.PathLike) -> Iterator[Union[Record, DatasetError]]:
    """JSON lines (one record per line, blank lines ignored) or one JSON array of records.

    ValueError when `path` is not a regular file. Each line is a DatasetError of its own when it is
    too long, not UTF-8, not JSON or nested too deeply.
    """
    path = regular_file(path)
    with open(path, "rb") as fh:
        head = fh.read(4096).removeprefix(_BOM).lstrip()
        fh.seek(0)
        if head.startswith(b"[") and _holds_one_array(fh):
            fh.seek(0)
            yield from _read_array(path, fh.read())
            return
        fh.seek(0)
        yield from _json_lines(path, fh)


def json_lines(path: str | os.PathLike) -> Iterator[Union[Record, DatasetError]]:
    """(where, value) per non-blank line of a regular JSON-lines file, or a DatasetError for a line
    that is too long, not UTF-8, not JSON or nested too deeply; ValueError for a path that is not a
    regular file."""
    path = regular_file(path)
    with open(path, "rb") as fh:
        yield from _json_lines(path, fh)


def _json_lines(path: Path, fh: Any) -> Iterator[Union[Record, DatasetError]]:
    for lineno, raw in _lines(fh):
        where = f"{path} line {lineno}"
        if isinstance(raw, int):
            yield DatasetError(where, f"a line of {raw} bytes, longer than the {MAX_LINE_BYTES} "
                                      "bytes a record may have (not read)")
            continue
        if lineno == 1:
            raw = raw.removeprefix(_BOM)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield DatasetError(where, f"not UTF-8 text (byte 0x{raw[exc.start]:02x} at byte {exc.start + 1} "
                                      "of the line)")
            continue
        if not text.strip():
            continue
        try:
            yield where, parse_json(text, position="column")
        except BadJson as exc:
            yield DatasetError(where, str(exc))


def _lines(fh: Any) -> Iterator[tuple[int, Union[bytes, int]]]:
    """(line number, bytes) per line of a binary file; for a line over MAX_LINE_BYTES, its length
    instead, having stepped over it without holding more than MAX_LINE_BYTES of it at once."""
    limit = MAX_LINE_BYTES
    lineno = 0
    while True:
        raw = fh.readline(limit + 1)
        if not raw:
            return
        lineno += 1
        if len(raw) > limit and not raw.endswith(b"\n"):
            size = len(raw)
            while not raw.endswith(b"\n"):
                raw = fh.readline(_SKIP_CHUNK)
                if not raw:
                    break
                size += len(raw)
            yield lineno, size - (1 if raw.endswith(b"\n") else 0)
            continue
        yield lineno, raw


def _holds_one_array(fh: Any) -> bool:
    """Whether a file starting with "[" is one JSON array rather than JSON lines that start with a bad one.

    An array: its first line is cut off mid-value (an array over several lines), or is a whole value
    with nothing after it, or is longer than any record (an array written on one line). A first line
    that fails in any other way (too deep, a number too long, a syntax error inside the line) is a
    bad JSON line, reported as such, and the lines after it still load.
    """
    lines = _lines(fh)
    for _, raw in lines:
        if isinstance(raw, int):
            return True
        try:
            text = raw.removeprefix(_BOM).decode("utf-8").strip()
        except UnicodeDecodeError:
            return False
        if not text:
            continue
        try:
            json.loads(text)
        except json.JSONDecodeError as exc:
            return exc.pos >= len(text) or exc.msg.startswith("Unterminated string")
        except (RecursionError, ValueError):
            return False
        return all(not isinstance(rest, int) and not rest.strip() for _, rest in lines)
    return False


def count_lines(path: str | os.PathLike) -> int:
    """Non-blank lines of a regular file (over-long ones included), read as `read_json_file` reads."""
    with open(regular_file(path), "rb") as fh:
        return sum(1 for _, raw in _lines(fh) if isinstance(raw, int) or raw.strip())


def _read_array(path: Path, data: bytes) -> Iterator[Union[Record, DatasetError]]:
    # The whole file is one value: nothing in it can be trusted if it does not read, so those errors
    # are raised (not skippable); a record that reads but breaks a bound is its own DatasetError.
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DatasetError(f"{path} line {line}", f"not UTF-8 text (byte 0x{data[exc.start]:02x})") from None
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"{path} line {exc.lineno}", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except RecursionError:
        raise DatasetError(str(path), f"not readable JSON (nested more than {MAX_DEPTH} levels deep)") from None
    except ValueError as exc:
        raise DatasetError(str(path), f"not readable JSON ({number_problem(exc)})") from None
    for i, record in enumerate(records, start=1):
        problem = json_problem(record, MAX_DEPTH, only_depth=True)
        if problem:
            yield DatasetError(f"{path} record {i}", f"not readable JSON ({problem})")
        else:
            yield f"{path} record {i}", record


def parse_json(text: str, *, position: str = "char") -> Any:
    """`json.loads(text)` within this reader's bounds; BadJson (a ValueError) saying why not.

    `position` says how a syntax error is located: "column" (of a line) or "char" (of a string field).
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        where = f"at column {exc.colno}" if position == "column" else f"at char {exc.pos}"
        raise BadJson(f"not valid JSON ({exc.msg} {where})") from None
    except RecursionError:
        raise BadJson(f"not readable JSON (nested more than {MAX_DEPTH} levels deep)") from None
    except ValueError as exc:  # a number past Python's int-from-text digit limit
        raise BadJson(f"not readable JSON ({number_problem(exc)})") from None
    # Each level of nesting opens a bracket: a text with fewer brackets than the bound needs no walk.
    if text.count("[") + text.count("{") >= MAX_DEPTH:
        problem = json_problem(value, MAX_DEPTH, only_depth=True)
        if problem:
            raise BadJson(f"not readable JSON ({problem})")
    return value


def check_example(example: Example, where: str) -> Union[Example, DatasetError]:
    """`example` if its gold and metadata are writable data (see `json_problem`), else a DatasetError
    (returned, not raised, so that a loader yielding several examples per record goes on).

    Messages and tools come from records already checked on reading; the gold may come from parsing
    text (a pythonic call can hold `0x` followed by 5,000 digits, or a complex number), and an
    example that cannot be written must fail here, naming its line, not later in whatever writes it.
    """
    gold = example.gold
    parts = (("gold", [None if gold.calls is None else [c.arguments for c in gold.calls], gold.bfcl, gold.text,
                       gold.turns]),
             ("metadata", example.metadata))
    for field, value in parts:
        problem = json_problem(value, MAX_DEPTH)
        if problem:
            return DatasetError(where, f"cannot be written as JSON ({problem})", field=field)
    return example


def join_by_id(questions: str | os.PathLike, answers: str | os.PathLike | None,
               build: Callable[[str, Any, dict[str, tuple[str, Any]]], Example]
               ) -> Iterator[Union[Example, DatasetError]]:
    """The examples of a benchmark whose questions and answer keys sit in two files joined by "id" (BFCL,
    ACEBench): `build(where, question record, {id: (where, answer record)})` for every question, each
    checked by `check_example`; a bad line of either file is a DatasetError in the stream, and the
    others go on. No answer file (None): every question gets an empty mapping."""
    keyed: dict[str, tuple[str, Any]] = {}
    for item in read_json_file(answers) if answers is not None else ():
        if isinstance(item, DatasetError):
            yield item
            continue
        where, rec = item
        try:
            keyed[str(expect(rec, "id", str, where))] = (where, rec)
        except DatasetError as err:
            yield err
    for item in read_json_file(questions):
        if isinstance(item, DatasetError):
            yield item
            continue
        where, rec = item
        try:
            yield check_example(build(where, rec, keyed), where)
        except DatasetError as err:
            yield err


def regular_file(path: str | os.PathLike) -> Path:
    path = Path(path)
    kind = _not_regular(path)
    if kind == "missing":
        raise FileNotFoundError(f"{path}: no such file")
    if kind:
        raise ValueError(f"{path}: {kind}, not a regular file; expected a JSON or JSON-lines file")
    return path


def _not_regular(path: Path) -> str | None:
    """None for a regular file (or a link to one); else what the path is, for a message."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return "a broken link" if path.is_symlink() else "missing"
    except OSError as exc:
        return f"unreadable ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
             (stat.S_ISFIFO, "a named pipe"), (stat.S_ISSOCK, "a socket"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _looks_like_path(spec: str) -> bool:
    return (spec.endswith(_FILE_SUFFIXES) or spec.startswith((".", "/", "~"))
            or spec.count("/") > 1)  # hub ids are "owner/name"


def _could_be_hub_id(spec: str) -> bool:
    """Whether `spec` is a valid Hub dataset id here: "owner/name" by huggingface_hub's own rules."""
    if spec.count("/") != 1:
        return False
    try:
        from huggingface_hub.utils import HFValidationError, validate_repo_id
    except ImportError:  # the same rules, as huggingface_hub writes them
        return bool(_HUB_ID.fullmatch(spec)) and "--" not in spec and ".." not in spec and not spec.endswith(".git")
    try:
        validate_repo_id(spec)
    except HFValidationError:
        return False
    return True


def _read_hub(hub_id: str, split: str, streaming: bool | None = None, *,
              tried_local: bool = False) -> Iterator[Union[Record, DatasetError]]:
    import datasets  # heavy: only when a hub id is really asked for

    if streaming is None:
        streaming = (hub_size_bytes(hub_id) or 0) > STREAM_ABOVE_BYTES
    try:
        # streaming= only when asked for: a plain load keeps the exact call it always made
        ds = datasets.load_dataset(hub_id, split=split, **({"streaming": True} if streaming else {}))
    except Exception as exc:  # offline, missing, gated: say which id failed and why, in one line
        local = f"no local file or folder {hub_id!r}, and " if tried_local else ""
        raise ValueError(f"{local}could not load hub dataset {hub_id!r} (split {split!r}): {exc}") from exc
    for i, row in enumerate(ds, start=1):
        where = f"{hub_id} record {i}"
        row = dict(row)
        problem = json_problem(row, MAX_DEPTH)  # Arrow rows can hold what JSON cannot (bytes, timestamps)
        yield DatasetError(where, f"not readable JSON ({problem})") if problem else (where, row)


def hub_size_bytes(hub_id: str) -> int | None:
    """The size the hub reports for a dataset (its metadata only), or None when it says nothing."""
    import datasets

    try:
        info = datasets.load_dataset_builder(hub_id).info
    except Exception:  # offline or no metadata: the caller falls back to not streaming
        return None
    return info.dataset_size or info.download_size or None


def expect(record: Any, field: str, kind: type | tuple[type, ...], where: str, *, optional: bool = False) -> Any:
    """`record[field]` if it has the expected JSON type, else a DatasetError naming field and types."""
    if not isinstance(record, dict):
        raise DatasetError(where, f"expected a JSON object, got {json_type(record)}")
    if field not in record or record[field] is None:
        if optional:
            return None
        raise DatasetError(where, f"missing (expected {_kind_names(kind)})", field=field)
    value = record[field]
    if not isinstance(value, kind) or isinstance(value, bool) and bool not in _as_tuple(kind):
        raise DatasetError(where, f"expected {_kind_names(kind)}, got {json_type(value)}", field=field)
    return value


def _as_tuple(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _kind_names(kind: type | tuple[type, ...]) -> str:
    names = {list: "a list", dict: "an object", str: "a string", int: "an integer", float: "a number",
             bool: "a boolean"}
    return " or ".join(names.get(k, k.__name__) for k in _as_tuple(kind))
