"""Human-readable views of an `EvalResult`: a terminal table and report.md.

Both show the same numbers as metrics.json (accuracies as percentages here), plus what a user can act
on: error types per category, ids without predictions, predictions with unknown ids, and which
categories each summary score had to do without.
"""
from __future__ import annotations

from typing import Any

from toolace_r.evaluation.checker import ERROR_TYPES

_LIST_LIMIT = 50  # ids listed in report.md before "... and N more"


def percent(x: float | None, digits: int = 2, missing: str = "n/a") -> str:
    """A share (0.25) as a percentage without the sign ("25.00"); `missing` for None."""
    return missing if x is None else f"{100 * x:.{digits}f}"


def render_table(result: Any) -> str:
    """The per-category and summary table printed by `toolace-r eval`."""
    lines = [f"{'category':<26}{'accuracy':>9}{'correct':>9}{'total':>7}{'missing':>9}",
             "-" * 60]
    for cat, s in result.categories.items():
        lines.append(f"{cat:<26}{percent(s.accuracy):>9}{s.correct:>9}{s.total:>7}{s.missing_predictions:>9}")
    lines.append("-" * 60)
    for name, agg in result.aggregates.items():
        note = f"  (missing: {', '.join(agg.missing)})" if agg.missing and agg.accuracy is not None else ""
        if name == "partial_mean":
            note = f"  {partial_label(agg)}" + (f"; categories not scored: {', '.join(agg.missing)}" if agg.missing else "")
        lines.append(f"{name:<26}{percent(agg.accuracy):>9}{note}")
    errors = result.error_counts()
    if errors:
        lines.append("errors: " + ", ".join(f"{k} {v}" for k, v in errors.most_common()))
    if result.missing_ids:
        lines.append(f"{len(result.missing_ids)} example(s) had no prediction (counted wrong): "
                     + _ids(result.missing_ids, 5))
    if result.unknown_ids:
        lines.append(f"{len(result.unknown_ids)} prediction(s) have ids matching no evaluated example: "
                     + _ids(result.unknown_ids, 5))
    if result.unscored_ids:
        lines.append(f"{len(result.unscored_ids)} example(s) have no call-level gold and were not scored")
    return "\n".join(lines)


def partial_label(agg: Any) -> str:
    """How a `partial_mean` aggregate is named for a reader: never as BFCL's overall."""
    return "mean of scored parts (not BFCL overall): " + (", ".join(agg.parts) or "none")


def _ids(ids: list[str], limit: int) -> str:
    shown = ", ".join(ids[:limit])
    return shown + (f", ... and {len(ids) - limit} more" if len(ids) > limit else "")


def render_markdown(result: Any) -> str:
    """report.md: summary scores with their definitions, categories, error types, listed ids."""
    out = [f"# {result.benchmark.upper()} evaluation", ""]
    counts = result.metrics()["counts"]
    out.append(f"{counts['scored']} items scored, {counts['correct']} correct; "
               f"{counts['missing_predictions']} without a prediction (counted wrong), "
               f"{counts['unknown_prediction_ids']} predictions with unknown ids, {counts['unscored']} unscored.")
    own = result.benchmark_summary()
    if own is not None:
        out += ["", *_benchmark_summary(result.benchmark, own)]
    else:
        out += _bfcl_summary(result)
    return _rest(result, out)


def _benchmark_summary(name: str, own: dict) -> list[str]:
    """A benchmark's own aggregate (evaluation/benchmarks.py) as markdown."""
    if name == "acebench":
        present = [c for part in own["present"].values() for c in part]
        lines = ["## ACEBench summary", "", f"Summary (ACEBench's weights: normal {own['weights']['normal']}, "
                 f"special {own['weights']['special']}, agent {own['weights']['agent']}): "
                 f"**{percent(own['summary'])}**. Scored: {', '.join(present) or '-'}.", "",
                 "| group | accuracy % |", "|---|---:|"]
        lines += [f"| {g} | {percent(v)} |" for g, v in own["groups"].items()]
        missing = [c for part in own["missing"].values() for c in part]
        lines += ["", f"- Not scored, counted 0 as ACEBench counts them: {', '.join(missing) or '-'}.",
                  "- Multi-turn categories count a conversation right only if all its turns are (docs/acebench.md)."]
        return lines
    lines = [f"## API-Bank: {own['metric']}", "", "| level | accuracy % | API name right % | items |",
             "|---|---:|---:|---:|"]
    lines += [f"| {lvl} | {percent(r['accuracy'])} | {percent(r['name_accuracy'])} | {r['n']} |"
              for lvl, r in own["levels"].items()]
    lines += ["", "- Not the official execution-based score: see docs/benchmarks.md for how they can differ."]
    return lines


def _bfcl_summary(result: Any) -> list[str]:
    out = ["", "## Summary scores", "", "| score | accuracy % | computed from | missing |", "|---|---:|---|---|"]
    for name, agg in result.aggregates.items():
        parts, missing = ", ".join(agg.parts) or "-", ", ".join(agg.missing) or "-"
        label = f"{name}: {partial_label(agg)}" if name == "partial_mean" else name
        out.append(f"| {label} | {percent(agg.accuracy)} | {parts} | {missing} |")
    out += ["", "Definitions:", ""]
    for name, agg in result.aggregates.items():
        out.append(f"- **{name}**: {agg.rule}.")
    out += ["- Only categories that were evaluated enter a score; those listed as missing did not. `overall` "
            "appears only when all ten single-turn Python categories of non_live, live and irrelevance were "
            "scored, and is then BFCL v4's overall restricted to those parts (the leaderboard's total also "
            "weights multi-turn and agentic); otherwise `partial_mean` is shown, which is not BFCL's overall "
            "(docs/bfcl.md#overall).",
            "- The exec_* categories (BFCL's unused executable sets, scored here by AST against their call "
            "strings) enter no summary score."]
    from toolace_r.evaluation.bfcl_scores import describe

    out += ["", "## BFCL leaderboard overall", "",
            "BFCL's own formulas (V4: 10 non-live, 10 live, 10 irrelevance, 30 multi-turn, 40 agentic; V3: mean "
            "of non-live, live, multi-turn), each computed only from complete parts (docs/bfcl.md#overall):", "",
            *describe(result.bfcl_leaderboard())]
    return out


def _rest(result: Any, out: list[str]) -> str:
    out += ["", "## Categories", "", "| category | accuracy % | correct | total | no prediction | unscored |",
            "|---|---:|---:|---:|---:|---:|"]
    for cat, s in result.categories.items():
        out.append(f"| {cat} | {percent(s.accuracy)} | {s.correct} | {s.total} | {s.missing_predictions} | {s.unscored} |")

    kinds = sorted({k for s in result.categories.values() for k in s.errors})
    if kinds:
        out += ["", "## Error types", "", "| category | " + " | ".join(kinds) + " |",
                "|---|" + "---:|" * len(kinds)]
        for cat, s in result.categories.items():
            out.append(f"| {cat} | " + " | ".join(str(s.errors.get(k, 0)) for k in kinds) + " |")
        totals = result.error_counts()
        out.append("| **all** | " + " | ".join(f"**{totals.get(k, 0)}**" for k in kinds) + " |")
        out += ["", "What they mean:", ""]
        out += [f"- `{k}`: {ERROR_TYPES.get(k, k)}" for k in kinds]

    for title, ids in (("Examples without a prediction (counted wrong)", result.missing_ids),
                       ("Predictions whose id matches no evaluated example (not scored)", result.unknown_ids),
                       ("Examples without call-level gold (not scored)", result.unscored_ids)):
        if ids:
            out += ["", f"## {title}: {len(ids)}", "", _ids(ids, _LIST_LIMIT)]
    return "\n".join(out) + "\n"
