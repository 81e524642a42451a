"""Writing what a run produces (JSON that any parser reads, files that appear whole or not at all), and
reading its JSON lines back.

Two ideas:
- **JSON we write is strict JSON.** `json.dumps` would write bare `NaN`/`Infinity` (no JSON parser
  outside Python reads them) and keeps lone surrogates ("\\ud800", which model output and request
  bodies can hold) as characters that cannot be encoded as UTF-8, so the write fails half-way.
  `dumps` writes non-finite floats as `null` and lone surrogates as `\\udXXX` escapes, which
  `json.loads` reads back to the same string.
- **Outputs appear whole.** `atomic_write_text` writes a temporary file beside the target and renames
  it; `write_files` renders every file of a set first, then renames them all, so a failure while
  producing any of them leaves the previous set untouched rather than a mix of old and new files.
"""
from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Iterable, Mapping



def _finite(value: Any) -> Any:
    """A copy of `value` with non-finite floats replaced by None (only copies where needed)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        # A non-finite key becomes the string json.dumps would write for it ("Infinity", "NaN").
        return {(json.dumps(k) if isinstance(k, float) and not math.isfinite(k) else k): _finite(v)
                for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


def dumps(obj: Any, *, indent: int | None = None, sort_keys: bool = False) -> str:
    """Strict JSON text for `obj`, readable (non-ASCII kept), encodable as UTF-8.

    NaN and infinities become null; lone surrogates become `\\udXXX` escapes. Other values JSON
    cannot hold raise TypeError/ValueError as `json.dumps` does.
    """
    try:
        text = json.dumps(obj, ensure_ascii=False, allow_nan=False, indent=indent, sort_keys=sort_keys)
    except ValueError as exc:
        if "out of range float" not in str(exc).lower():
            raise
        text = json.dumps(_finite(obj), ensure_ascii=False, allow_nan=False, indent=indent,
                          sort_keys=sort_keys)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # Only lone surrogates fail to encode; inside a JSON string "\\udXXX" is their escape.
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def dumps_lines(records: Iterable[Any]) -> str:
    """JSON lines: one `dumps` record per line, each ending in a newline."""
    return "".join(dumps(r) + "\n" for r in records)


def _temporary(path: Path) -> tuple[int, str]:
    return tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write via a temporary file in the same folder and rename, so readers never see half a file."""
    write_files({Path(path): text})


def write_files(files: Mapping[str | os.PathLike, str]) -> None:
    """Write several text files as one unit: all temporary files first, then all renames.

    Everything that can fail for a reason of the content (rendering, encoding) fails before any
    target changes; only an OS failure between two renames (microseconds apart) could leave a mix.
    """
    staged: list[tuple[str, Path]] = []
    try:
        for target, text in files.items():
            path = Path(target)
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.is_dir():
                raise IsADirectoryError(f"{path}: is a directory, cannot write a file there")
            fd, tmp = _temporary(path)
            staged.append((tmp, path))
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
        for tmp, path in staged:
            os.replace(tmp, path)
    except BaseException:
        for tmp, _ in staged:
            if os.path.exists(tmp):
                os.unlink(tmp)
        raise


def write_json(path: str | os.PathLike, obj: Any, *, indent: int | None = 1) -> None:
    """`dumps(obj)` plus a newline, written atomically."""
    atomic_write_text(path, dumps(obj, indent=indent) + "\n")


def write_jsonl(path: str | os.PathLike, records: Iterable[Any]) -> None:
    """JSON lines, written atomically."""
    atomic_write_text(path, dumps_lines(records))


def read_jsonl(path: str | os.PathLike) -> list[Any]:
    """The records of a JSON-lines file, in order; blank lines are skipped."""
    text = Path(path).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def writable_dir(path: str | os.PathLike, what: str = "output directory") -> Path:
    """Create `path` if needed and check that files can be written in it, before any long work starts.

    Raises OSError subclasses whose message names the path and the reason: a file where the
    directory should be, a file among its parents, no permission to write.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(f"{what} {path}: is a file, expected a directory")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(f"{what} {path}: {parent} is a file, not a directory")
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check.", suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except PermissionError:
        raise PermissionError(f"{what} {path}: not writable (permission denied)") from None
    except OSError as exc:
        raise type(exc)(f"{what} {path}: cannot write there ({exc.strerror or exc})") from None
    return path


def writable_file(path: str | os.PathLike, what: str = "output file") -> Path:
    """Check that `path` can be written as a file (its folder is checked like `writable_dir`)."""
    path = Path(path)
    if path.is_dir():
        raise IsADirectoryError(f"{what} {path}: is a directory, expected a file name")
    writable_dir(path.parent, f"the folder of the {what}")
    return path
