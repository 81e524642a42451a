"""Benchmarks as a registry (docs/benchmarks.md): one runner scores them all, each with its own checker.

`score(example, answer, fmt)` is what the runner, the refine rounds and the training loop call. It
picks the checker of the benchmark the example came from (its loader marks `metadata["benchmark"]`):
ACEBench's verdict-for-verdict checker, API-Bank's call check against the recorded `param_dict`, and
BFCL's checker for BFCL and every other source (toolace, xlam, jsonl). So a benchmark's quirks live in
its checker alone. `summary(name, items)` gives the benchmark's own aggregate (ACEBench's weighted
summary, API-Bank's per-level accuracy); BFCL's summary scores are computed by the runner itself.

Native answers (a chat template's own tool calls) reach ACEBench as the pythonic text of their calls,
the format its decoder reads; API-Bank's checker takes the parsed calls.
"""
from __future__ import annotations

from typing import Any, Iterable

BENCHMARKS = ("bfcl", "acebench", "apibank")


def benchmark_of(example: Any) -> str:
    """The benchmark whose checker scores `example` ("bfcl" for every source without its own)."""
    metadata = getattr(example, "metadata", None) or {}
    name = metadata.get("benchmark")
    return name if name in BENCHMARKS else "bfcl"


def score(example: Any, answer: Any, fmt: str | None = None) -> Any:
    """The verdict on `answer` (text, a ParseResult or ToolCalls) for `example`, by its benchmark's rules.
    fmt: how answer text decodes (None: the benchmark's own decoder; a native parser such as "hermes")."""
    if getattr(getattr(example, "gold", None), "kind", None) == "multi_turn":
        # BFCL multi-turn: the calls (or texts) of each step of each turn, scored by executing them
        from toolace_r.evaluation.multi_turn import check_multi_turn
        from toolace_r.evaluation.multi_turn_loop import as_turns

        return check_multi_turn(example, as_turns(answer, fmt))
    if isinstance(answer, list) and answer and isinstance(answer[0], list):
        from toolace_r.calls import ParseResult

        answer = ParseResult(format=None, error="a multi-turn result (a list of turns) for a single-turn item")
    name = benchmark_of(example)
    if name == "acebench":
        from toolace_r.evaluation import acebench

        return acebench.check(example, _pythonic_text(answer, fmt))
    if name == "apibank":
        from toolace_r.evaluation import apibank

        if isinstance(answer, str) and fmt not in (None, "pythonic"):
            from toolace_r.calls import parse

            answer = parse(answer, fmt)
        return apibank.check(example, answer)
    from toolace_r.evaluation.checker import check

    return check(example, answer, fmt)


def lenient_summary(name: str, examples: Iterable[Any], answers: dict[str, Any], fmt: str | None = None
                    ) -> dict[str, Any]:
    """ACEBench scored with `lenient=True` (only the quirks that reject right answers fixed,
    docs/acebench.md): reported beside the compatible score, never mixed into it."""
    if name != "acebench":
        raise ValueError(f"--lenient applies to ACEBench's quirks; --benchmark is {name!r}")
    from toolace_r.evaluation import acebench

    by_category: dict[str, list[tuple[str, bool]]] = {}
    for ex in examples:
        valid = ex.id in answers and acebench.check(ex, _pythonic_text(answers[ex.id], fmt), lenient=True).valid
        by_category.setdefault(ex.category, []).append((ex.id, bool(valid)))
    return {"note": "lenient: ACEBench's quirks that reject right answers fixed; not ACEBench's own score",
            **acebench.aggregate(by_category)}


def own_prompts(name: str, examples: Iterable[Any], data_dir: str | None) -> list[Any]:
    """`examples` with their benchmark's own system prompt and tool list in their messages, for
    `prompt.instruction: benchmark`: ACEBench's, read from the user's checkout (docs/acebench.md)."""
    import dataclasses

    if name != "acebench":
        raise ValueError(f"--instruction benchmark: {name} has no prompt of its own here (ACEBench has); "
                         "use --instruction toolace" + (" or bfcl" if name == "bfcl" else ""))
    if not data_dir:
        raise ValueError("--instruction benchmark reads ACEBench's prompts from its checkout: give --data-dir")
    from toolace_r.evaluation.acebench_prompt import acebench_messages

    return [dataclasses.replace(ex, messages=acebench_messages(ex, data_dir)) for ex in examples]


def _pythonic_text(answer: Any, fmt: str | None) -> str:
    """Answer text as ACEBench's decoder reads it: pythonic text stays as the model wrote it (its quirks
    apply to those bytes); native or parsed calls are written as a pythonic call list."""
    from toolace_r.calls import ParseResult, parse, render

    if isinstance(answer, str):
        if fmt in (None, "pythonic"):
            return answer
        answer = parse(answer, fmt)
    if isinstance(answer, ParseResult):
        if not answer.is_call:
            return answer.text or ""
        answer = answer.calls or []
    try:
        return render(list(answer), "pythonic")
    except (TypeError, ValueError):
        return ""


def summary(name: str, items: Iterable[Any], examples: Iterable[Any] = ()) -> dict[str, Any] | None:
    """The benchmark's own aggregate over scored items (runner.ItemResult: id, category, valid), or None
    for BFCL, whose summary scores the runner computes."""
    items = list(items)
    if name == "acebench":
        from toolace_r.evaluation import acebench

        by_category: dict[str, list[tuple[str, bool]]] = {}
        for item in items:
            by_category.setdefault(item.category, []).append((item.id, bool(item.valid)))
        return acebench.aggregate(by_category)
    if name == "apibank":
        from toolace_r.evaluation import apibank

        verdict = {item.id: item for item in items}
        examples = [ex for ex in examples if ex.id in verdict]
        return apibank.aggregate(examples, [_Valid(verdict[ex.id]) for ex in examples])
    return None


class _Valid:
    """The part of a Verdict apibank.aggregate reads, from a runner item."""

    def __init__(self, item: Any) -> None:
        from toolace_r.calls import ToolCall

        self.valid = bool(item.valid)
        self.calls = [ToolCall(c["name"], c.get("arguments") or {}) for c in item.calls] if item.calls else None
