"""Predictions in the folder layout `bfcl evaluate` reads (docs/bfcl.md#export), so BFCL's own tools can
score what toolace-r scored.

    export_bfcl(examples, predictions, "bfcl_result")   # -> {category: path}

`bfcl generate` writes, and `bfcl evaluate` reads (its `runner` globs `<result_dir>/<model dir>/**/
BFCL_v4_*_result.json`), one file per category:

    <result_dir>/<model name, "/" -> "_">/<group>/BFCL_v4_<category>_result.json

group is "non_live" or "live" (bfcl_eval.utils.get_directory_structure_by_category), one JSON line per
item `{"id": ..., "result": ...}`; the evaluator reads only these two fields (token counts and latency,
which generate adds, only feed its cost columns). `result` is the model's raw text, decoded by the
model's handler at evaluation time. The evaluator only scores model names of its model config and picks
their handler by name: the default, Team-ACE/ToolACE-2-8B, is a prompt-mode entry (is_fc_model False,
LlamaHandler, whose decode_ast is BFCL's default pythonic decoder, names' dots kept), which is how
toolace-r decodes pythonic answers. Native answers are written as the pythonic text of the calls they
were decoded to, so that handler reads the same calls.

Categories BFCL does not score (the exec_* sets) are left out. An item without a prediction gets no line:
score a subset with `bfcl evaluate --partial-eval` (an official evaluation needs every item).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Iterable

from toolace_r.calls import ParseResult, ToolCall, render
from toolace_r.files import dumps_lines, write_files

DEFAULT_MODEL_NAME = "Team-ACE/ToolACE-2-8B"

# bfcl_eval.constants.category_mapping of bfcl-eval 2026.3.23, used only when the package is absent.
_VERSION_PREFIX = "BFCL_v4"
_NON_LIVE = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
             "irrelevance")
_LIVE = ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple", "live_irrelevance",
         "live_relevance")


def _layout() -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    try:
        from bfcl_eval.constants import category_mapping as cm
    except ImportError:
        return _VERSION_PREFIX, _NON_LIVE, _LIVE
    return cm.VERSION_PREFIX, tuple(cm.NON_LIVE_CATEGORY), tuple(cm.LIVE_CATEGORY)


def result_path(result_dir: str | Path, model_name: str, category: str) -> Path | None:
    """Where `bfcl generate` writes (and `bfcl evaluate` reads) `category`'s results; None for a
    category BFCL does not score."""
    prefix, non_live, live = _layout()
    group = "non_live" if category in non_live else "live" if category in live else None
    if group is None:
        return None
    return Path(result_dir) / model_name.replace("/", "_") / group / f"{prefix}_{category}_result.json"


def result_text(prediction: Any, decoded: list[dict[str, Any]] | None = None) -> str:
    """The `result` of a line: raw text as it is (or, given `decoded` calls, their pythonic text), calls
    as pythonic text, a prediction whose calls could not be read as "" (no call, on both sides)."""
    if decoded is not None:
        return render([ToolCall(c["name"], c["arguments"]) for c in decoded], "pythonic")
    if isinstance(prediction, str):
        return prediction
    if isinstance(prediction, ParseResult):
        return ""
    return render(list(prediction), "pythonic")


def export_bfcl(examples: Iterable[Any], predictions: dict[str, Any], result_dir: str | Path,
                model_name: str = DEFAULT_MODEL_NAME,
                decoded: dict[str, list[dict[str, Any]] | None] | None = None) -> dict[str, Path]:
    """Write one result file per scored BFCL category of `examples` (in their order); {category: path}.

    predictions: id -> raw text, ToolCall list or ParseResult (as `load_predictions` gives them).
    decoded: id -> decoded calls (ItemResult.calls) for a run whose answers are not pythonic text
    (native): those items are written as the pythonic text of their calls."""
    rows: dict[str, list[dict[str, Any]]] = {}
    paths: dict[str, Path] = {}
    for ex in examples:
        path = result_path(result_dir, model_name, ex.category)
        if path is None or ex.id not in predictions:
            continue
        calls = decoded.get(ex.id) if decoded is not None else None
        paths[ex.category] = path
        rows.setdefault(ex.category, []).append({"id": ex.id, "result": result_text(predictions[ex.id], calls)})
    write_files({paths[cat]: dumps_lines(lines) for cat, lines in rows.items()})
    return paths
