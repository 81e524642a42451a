"""Raw records from a local file or a Hugging Face Hub dataset, each tagged with where it came from.

Every loader that takes "<path or hub id>" reads through `read_records`, so all of them accept the
same inputs: a JSON-lines file, a file holding one JSON array, a folder of such files, or a hub id
(anything that is not an existing path and does not look like a file name). The tag ("data.jsonl
line 3", "Team-ACE/ToolACE record 7") is what error messages start with.

Local files are always read lazily, line by line. A hub dataset is streamed (`datasets`' IterableDataset:
rows arrive as they download, nothing is converted to Arrow on disk) with `streaming=True`, or, with the
default `streaming=None`, when the hub reports it larger than STREAM_ABOVE_BYTES.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Union

from toolace_r.data.registry import DatasetError
from toolace_r.tools import json_type  # noqa: F401  (re-exported for the loaders)

Record = tuple[str, Any]  # (where, decoded JSON value)

_FILE_SUFFIXES = (".json", ".jsonl", ".ndjson")
STREAM_ABOVE_BYTES = 1 << 30  # [ours] above 1 GiB a hub dataset is streamed rather than cached whole


def read_records(spec: str, *, default_hub_id: str | None = None, split: str = "train",
                 streaming: bool | None = None) -> Iterator[Union[Record, DatasetError]]:
    """Yield (where, record) pairs, or a DatasetError for a line that is not JSON."""
    spec = spec.strip() or (default_hub_id or "")
    if not spec:
        raise ValueError("expected a path or a hub id after the colon")
    path = Path(os.path.expanduser(spec))
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix in _FILE_SUFFIXES)
        if not files:
            raise FileNotFoundError(f"{spec}: no .json/.jsonl files in this folder")
        for f in files:
            yield from read_json_file(f)
    elif path.exists():
        yield from read_json_file(path)
    elif _looks_like_path(spec):
        raise FileNotFoundError(f"{spec}: no such file")
    else:
        yield from _read_hub(spec, split, streaming)


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
            yield from build(row, where, n)
        except DatasetError as err:
            yield err


def read_json_file(path: str | os.PathLike) -> Iterator[Union[Record, DatasetError]]:
    """JSON lines (one record per line, blank lines ignored) or one JSON array of records."""
    path = Path(path)
    with open(path, encoding="utf-8") as fh:
        head = fh.read(4096).lstrip()
        fh.seek(0)
        if head.startswith("["):
            yield from _read_array(path, fh.read())
            return
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield f"{path} line {lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                yield DatasetError(f"{path} line {lineno}", f"not valid JSON ({exc.msg} at column {exc.colno})")


def _read_array(path: Path, text: str) -> Iterator[Union[Record, DatasetError]]:
    try:
        records = json.loads(text)
    except json.JSONDecodeError as exc:
        # The whole file is one value: nothing in it can be trusted, so this is not skippable.
        raise DatasetError(f"{path} line {exc.lineno}", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    for i, record in enumerate(records, start=1):
        yield f"{path} record {i}", record


def _looks_like_path(spec: str) -> bool:
    return (spec.endswith(_FILE_SUFFIXES) or spec.startswith((".", "/", "~"))
            or spec.count("/") > 1)  # hub ids are "owner/name"


def _read_hub(hub_id: str, split: str, streaming: bool | None = None) -> Iterator[Record]:
    import datasets  # heavy: only when a hub id is really asked for

    if streaming is None:
        streaming = (hub_size_bytes(hub_id) or 0) > STREAM_ABOVE_BYTES
    try:
        # streaming= only when asked for: a plain load keeps the exact call it always made
        ds = datasets.load_dataset(hub_id, split=split, **({"streaming": True} if streaming else {}))
    except Exception as exc:  # offline, missing, gated: say which id failed and why, in one line
        raise ValueError(f"could not load hub dataset {hub_id!r} (split {split!r}): {exc}") from exc
    for i, row in enumerate(ds, start=1):
        yield f"{hub_id} record {i}", dict(row)


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
