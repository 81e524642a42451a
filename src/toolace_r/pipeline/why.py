"""Why, measured: what each ToolACE-R iteration chose and trained on, which iteration validation picked,
and what kind of error every refinement or vote policy fixed and broke. report.json "why" and a section
of report.md; read from the iteration files (toolace_r/iter_N/: samples.jsonl, selection.json,
corpus.jsonl; docs/method.md#selection, #corpus), summary.json and the evaluation traces.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from .paired import traced_errors

# Solve-rate buckets over an item's k samples (docs/method.md#difficulty).
BUCKETS = ("0", "(0, 0.5)", "[0.5, 1)", "1")
KINDS = ("sft", "fix", "keep")


def solve_bucket(rate: float) -> str:
    if rate <= 0:
        return BUCKETS[0]
    if rate < 0.5:
        return BUCKETS[1]
    if rate < 1:
        return BUCKETS[2]
    return BUCKETS[3]


def _load(path: Path) -> Any:
    import json

    return json.loads(path.read_text(encoding="utf-8"))


def selection_mix(records: Sequence[dict[str, Any]], sel: dict[str, Any]) -> dict[str, Any]:
    """Counts of available / selected / warm-up / trained-on items per pool category and solve-rate bucket."""
    chosen, warm, train = set(sel.get("selected", [])), set(sel.get("warmup", [])), set(sel.get("train_ids", []))

    def tally(key) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for r in records:
            c = out.setdefault(key(r), {"available": 0, "selected": 0, "warmup": 0, "trained": 0})
            c["available"] += 1
            c["selected"] += r["id"] in chosen
            c["warmup"] += r["id"] in warm
            c["trained"] += r["id"] in train
        return out

    by_bucket = tally(lambda r: solve_bucket(r["solve_rate"]))
    return {"by_category": dict(sorted(tally(lambda r: r.get("category") or "?").items())),
            "by_solve_rate": {b: by_bucket.get(b, {"available": 0, "selected": 0, "warmup": 0, "trained": 0})
                              for b in BUCKETS}}


def corpus_mix(rows: Sequence[dict[str, Any]], tokenizer: Any = None) -> dict[str, Any]:
    """Rows and training tokens (training/sft.py `row_tokens`; None without a tokenizer) by kind."""
    out: dict[str, Any] = {"rows": {k: 0 for k in KINDS}, "tokens": {k: 0 for k in KINDS} if tokenizer else None}
    if tokenizer is not None:
        from toolace_r.training.sft import row_tokens
    for row in rows:
        kind = row.get("kind", "?")
        out["rows"][kind] = out["rows"].get(kind, 0) + 1
        if tokenizer is not None:
            out["tokens"][kind] = out["tokens"].get(kind, 0) + row_tokens(tokenizer, row)
    return out


def iteration_why(run_dir: Path, summary: dict[str, Any], tokenizer: Any = None) -> list[dict[str, Any]]:
    """Per iteration: the selection's mix, the corpus mix, the validation accuracy, and whether it is the
    best iteration (summary.json `best_iteration`)."""
    from toolace_r.training.corpus import read_corpus
    from toolace_r.training.difficulty import read_samples

    best = summary.get("best_iteration")
    out = []
    for m in summary.get("iterations", []):
        d = run_dir / f"iter_{m['iteration']}"
        row: dict[str, Any] = {"iteration": m["iteration"], "selection": None, "corpus": None,
                               "validation": m.get("validation"), "best": best is not None and m["iteration"] == best}
        if (d / "samples.jsonl").exists() and (d / "selection.json").exists():
            row["selection"] = selection_mix(read_samples(d / "samples.jsonl"), _load(d / "selection.json"))
        if (d / "corpus.jsonl").exists():
            row["corpus"] = corpus_mix(read_corpus(d / "corpus.jsonl"), tokenizer)
        out.append(row)
    return out


def flips_by_error(root: Path, arm: str, policy: str, examples: Sequence[Any]) -> dict[str, Any]:
    """Fixes by the checker's error type of the answer before the fix, breaks by that of the answer after the
    break (evaluation/checker.py ERROR_TYPES), over every round of every item, as the grid counts them."""
    fixes: Counter = Counter()
    breaks: Counter = Counter()
    for _, verdicts, errors in traced_errors(root, arm, policy, examples).values():
        if verdicts[0] is None:
            continue  # unscored: left out, as from every figure
        for r in range(1, len(verdicts)):
            if not verdicts[r - 1] and verdicts[r]:
                fixes[errors[r - 1] or "?"] += 1
            elif verdicts[r - 1] and not verdicts[r]:
                breaks[errors[r] or "?"] += 1
    return {"fixes": dict(sorted(fixes.items())), "breaks": dict(sorted(breaks.items())),
            "total_fixes": sum(fixes.values()), "total_breaks": sum(breaks.values())}


def why(root: Path, summary: dict[str, Any], grid: dict[str, dict[str, Any]], arms: Sequence[str],
        examples: Sequence[Any], tokenizer: Any = None) -> dict[str, Any]:
    """report.json "why": the iterations, validation's pick, and the error types of fixes and breaks of every
    policy other than the single pass, for `arms` (the reported ToolACE-R arm and the control)."""
    flips = {}
    for arm in arms:
        for policy in grid.get(arm, {}):
            if policy != "none":
                flips[f"{arm}, {policy}"] = {"arm": arm, "policy": policy,
                                             **flips_by_error(root, arm, policy, examples)}
    return {"iterations": iteration_why(root / "toolace_r", summary, tokenizer),
            "best_iteration": summary.get("best_iteration"), "best_by": summary.get("best_by"),
            "flips_by_error": flips}


def _counts(d: dict[str, int] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in d.items()) if d else "–"


def render_why_markdown(w: dict[str, Any], pct: Any) -> list[str]:
    lines = ["", "## Why, measured", ""]
    its = w.get("iterations", [])
    if its:
        best = w.get("best_iteration")
        how = {"validation": "the best validation accuracy", "last": "the last iteration (no validation)"}
        lines += [f"Reported iteration: {best if best is not None else 'the last'}"
                  + (f", chosen by {how.get(w.get('best_by'), w.get('best_by'))}" if w.get("best_by") else "") + ".",
                  "", "| iteration | validation accuracy | best | corpus rows sft/fix/keep "
                      "| corpus tokens sft/fix/keep |", "|---|---|---|---|---|"]
        for it in its:
            v = it.get("validation") or {}
            c = it.get("corpus") or {}
            rows = c.get("rows") or {}
            toks = c.get("tokens")
            items = f" ({v['items']} items)" if v.get("items") else ""
            mark = "**best**" if it["best"] else ""
            lines.append(f"| {it['iteration']} | {pct(v.get('accuracy'))}{items} | {mark} | "
                         + ("/".join(str(rows.get(k, 0)) for k in KINDS) if c else "–") + " | "
                         + ("/".join(str(toks.get(k, 0)) for k in KINDS) if toks else "–") + " |")
        for it in its:
            s = it.get("selection")
            if not s:
                continue
            lines += ["", f"Iteration {it['iteration']}: what the selection chose (selected / warm-up / trained on "
                          "/ available items).", "", "| pool category | selected | warm-up | trained on | available |",
                      "|---|---|---|---|---|"]
            lines += [f"| {cat} | {c['selected']} | {c['warmup']} | {c['trained']} | {c['available']} |"
                      for cat, c in s["by_category"].items()]
            lines += ["", "| solve rate | selected | warm-up | trained on | available |", "|---|---|---|---|---|"]
            lines += [f"| {b} | {c['selected']} | {c['warmup']} | {c['trained']} | {c['available']} |"
                      for b, c in s["by_solve_rate"].items()]
    flips = w.get("flips_by_error", {})
    if flips:
        lines += ["", "What each policy fixed and broke, by the checker's error type (a fix: the type of the wrong "
                      "answer before it; a break: of the wrong answer after it).", "",
                  "| arm | policy | fixes | fixed error types | breaks | breaking error types |",
                  "|---|---|---|---|---|---|"]
        lines += [f"| {f['arm']} | {f['policy']} | {f['total_fixes']} | {_counts(f['fixes'])} | {f['total_breaks']} | "
                  f"{_counts(f['breaks'])} |" for f in flips.values()]
    return lines if len(lines) > 3 else []
