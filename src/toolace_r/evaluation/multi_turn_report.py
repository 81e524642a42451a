"""Figures of a BFCL multi-turn run (multi_turn_loop.py): per category and over all items, accuracy,
turns, steps, executed calls, why turns ended and items stopped, what refinement did per step, tokens
per example and the engine's prefix-cache counters; the report.md section and the terminal table.
"""
from __future__ import annotations

from collections import Counter
from typing import Any, Sequence

from toolace_r.calls import canonical_answer, decode_bfcl
from toolace_r.evaluation.multi_turn_loop import MultiTurnResult, Trajectory


def multi_turn_metrics(examples: Sequence[Any], result: MultiTurnResult,
                       verdicts: dict[str, bool] | None = None) -> dict[str, Any]:
    """Per category and over all items: accuracy (from `verdicts`, id -> right), turns, steps, calls,
    why turns ended and items stopped, what refinement did per step, and tokens per example.

    Refinement changes what is executed, and so every later step: no counterfactual "accuracy had we
    stopped after round r" exists for a multi-turn item; the figures say how often a step's refined
    calls differ from its round-0 calls instead."""
    by_id = result.by_id()
    groups: dict[str, list[tuple[Trajectory, bool | None]]] = {}
    for ex in examples:
        t = by_id.get(str(ex.id))
        if t is None:
            continue
        row = (t, None if verdicts is None else verdicts.get(str(ex.id)))
        groups.setdefault(ex.category, []).append(row)
        groups.setdefault("all", []).append(row)
    out = {cat: _group(rows) for cat, rows in groups.items() if cat != "all"}
    return {"max_steps": result.max_steps, "policy": result.config.policy, "max_rounds": result.config.max_rounds,
            "wall_seconds": round(result.seconds, 3), "step_waves": result.engine_calls,
            "prefix_cache": result.prefix_cache,
            "categories": out, "all": _group(groups.get("all", []))}


def _group(rows: list[tuple[Trajectory, bool | None]]) -> dict[str, Any]:
    n = len(rows)
    steps = [s for t, _ in rows for s in t.steps]
    turns = [turn for t, _ in rows for turn in t.turns]
    scored = [v for _, v in rows if v is not None]
    refined = [s for s in steps if s.trace.refinements]
    changed = sum(1 for s in refined if _key(s.trace.rounds[0].text) != _key(s.text))
    tokens = _mean([t.tokens() for t, _ in rows], n)
    first = _mean([t.tokens(first_round_only=True) for t, _ in rows], n)
    return {
        "examples": n,
        "correct": sum(1 for v in scored if v),
        "accuracy": (sum(1 for v in scored if v) / len(scored)) if scored else None,
        "turns": len(turns),
        "steps": len(steps),
        "executed_calls": sum(len(s.calls or []) for s in steps),
        "steps_per_turn": len(steps) / len(turns) if turns else None,
        "turn_ends": dict(sorted(Counter(t.end or "open" for t in turns).items())),
        "stop_reasons": dict(sorted(Counter(t.stop_reason for t, _ in rows).items())),
        "steps_refined": len(refined),
        "average_refinements_per_step": sum(s.trace.refinements for s in steps) / len(steps) if steps else None,
        "steps_changed_by_refinement": changed,
        "step_stop_reasons": dict(sorted(Counter(s.trace.stop_reason for s in steps).items())),
        "tokens_per_example": tokens,
        "tokens_per_example_round0": first,
        "compute_ratio_vs_round0": (tokens["compute"] / first["compute"]) if first["compute"] else None,
        "cached_share": (tokens["cached"] / tokens["processed"]) if tokens["processed"] else None,
    }


def _key(text: str) -> tuple:
    return canonical_answer(decode_bfcl(text)) if text else ("empty",)


def _mean(per_item: list[dict[str, int]], n: int) -> dict[str, float]:
    out = {k: (sum(d[k] for d in per_item) / n if n else 0.0) for k in ("prompt", "cached", "completion")}
    out["compute"] = out["prompt"] + out["completion"]
    out["processed"] = out["compute"] + out["cached"]
    return out


def render_multi_turn_markdown(metrics: dict[str, Any]) -> str:
    """The multi-turn section of report.md."""
    from toolace_r.evaluation.report import percent

    out = ["", "## Multi-turn", "",
           f"Policy `{metrics['policy']}` per step (round cap {metrics['max_rounds']}), at most "
           f"{metrics['max_steps']} steps with calls per turn (BFCL's limit), {metrics['step_waves']} step waves, "
           f"{metrics['wall_seconds']:.1f} s.", "",
           "| category | items | accuracy | turns | steps | calls | steps/turn | steps refined | changed | "
           "tokens computed | cached share |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for cat, m in list(metrics["categories"].items()) + [("**all**", metrics["all"])]:
        spt = m["steps_per_turn"]
        share = m["cached_share"]
        out.append(f"| {cat} | {m['examples']} | {percent(m['accuracy'])} | {m['turns']} | {m['steps']} | "
                   f"{m['executed_calls']} | {'-' if spt is None else f'{spt:.2f}'} | {m['steps_refined']} | "
                   f"{m['steps_changed_by_refinement']} | {m['tokens_per_example']['compute']:.0f} | "
                   f"{'-' if share is None else f'{100 * share:.0f}%'} |")
    pooled = metrics["all"]
    out += ["", "Turns ended: " + ", ".join(f"{k} {v}" for k, v in pooled["turn_ends"].items()) + "; items: "
            + ", ".join(f"{k} {v}" for k, v in pooled["stop_reasons"].items()) + ". A step's refinement changes "
            "what runs next, so no accuracy by round exists for these items: `changed` counts steps whose refined "
            "calls differ from their round-0 calls."]
    return "\n".join(out) + "\n"


def render_multi_turn_table(metrics: dict[str, Any]) -> str:
    """The multi-turn figures for the terminal."""
    from toolace_r.evaluation.report import percent

    head = f"{'category':<24}{'items':>6}{'acc %':>8}{'turns':>7}{'steps':>7}{'calls':>7}{'refined':>9}{'changed':>9}"
    lines = [f"multi-turn: policy {metrics['policy']} per step, at most {metrics['max_steps']} steps with calls "
             "per turn", head, "-" * len(head)]
    for cat, m in list(metrics["categories"].items()) + [("all", metrics["all"])]:
        lines.append(f"{cat:<24}{m['examples']:>6}{percent(m['accuracy']):>8}{m['turns']:>7}{m['steps']:>7}"
                     f"{m['executed_calls']:>7}{m['steps_refined']:>9}{m['steps_changed_by_refinement']:>9}")
    pooled = metrics["all"]
    lines.append("turns ended: " + ", ".join(f"{k} {v}" for k, v in pooled["turn_ends"].items())
                 + "; items: " + ", ".join(f"{k} {v}" for k, v in pooled["stop_reasons"].items()))
    return "\n".join(lines)
