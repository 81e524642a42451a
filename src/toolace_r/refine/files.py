"""Refinement output on disk: BFCL-format predictions and traces, one JSON object a line."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Iterable, Iterator

from toolace_r.files import write_jsonl
from toolace_r.refine.traces import Trace


def prediction_rows(traces: Iterable[Trace]) -> Iterator[dict[str, Any]]:
    """BFCL-format predictions ({"id", "result"}), readable by `toolace-r eval --predictions`."""
    return ({"id": t.id, "result": t.final} for t in traces)


def _write(path: str | Path, rows: Iterable[dict[str, Any]]) -> Path:
    path = Path(path)
    write_jsonl(path, rows)
    return path


def write_predictions(traces: Iterable[Trace], path: str | Path) -> Path:
    return _write(path, prediction_rows(traces))


def write_traces(traces: Iterable[Trace], path: str | Path) -> Path:
    return _write(path, (t.to_dict() for t in traces))


def read_traces(path: str | Path) -> list[Trace]:
    out = []
    with open(path, encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if line.strip():
                try:
                    out.append(Trace.from_dict(json.loads(line)))
                except (ValueError, KeyError, TypeError) as exc:
                    raise ValueError(f"{path}:{n}: not a refinement trace ({exc})") from None
    return out
