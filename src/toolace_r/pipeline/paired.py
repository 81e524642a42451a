"""The pipeline report's paired tests: every comparison it makes, tested item by item.

Two answer sets on the same held-out items (two arms, or a refinement policy and the same model's
single pass) are compared on the items where one is right and the other wrong (evaluation/stats.py:
exact McNemar p, paired bootstrap interval). Per-item verdicts come from each run's traces, scored
with the parser its metrics were scored with, so the counts agree with the report's accuracies.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from toolace_r.evaluation.stats import ALPHA, RESAMPLES, SEED, paired_test


def item_verdicts(root: Path, arm: str, policy: str, first_policy: str, examples: Sequence[Any]) -> dict[str, bool]:
    """Right or wrong per item under `policy` (`none`: round 0 of the arm's first policy run). Items the
    benchmark cannot score are left out, as every accuracy in the report leaves them out."""
    run = first_policy if policy == "none" else policy
    out = {}
    for i, (_, v) in traced(root, arm, run, examples).items():
        verdict = v[0] if policy == "none" else v[-1]
        if verdict is not None:
            out[i] = bool(verdict)
    return out


def _run_traces(root: Path, arm: str, policy: str, examples: Sequence[Any]) -> tuple[list, dict, str | None]:
    """One evaluation run's traces of `examples`, the examples by id, and the parser its metrics used."""
    from toolace_r.refine import read_traces

    d = root / "eval" / arm / policy.replace(":", "_")
    config = d / "config.json"
    fmt = json.loads(config.read_text(encoding="utf-8")).get("parse_format") if config.exists() else None
    fmt = None if fmt in (None, "bfcl") else fmt
    by_id = {ex.id: ex for ex in examples}
    return [t for t in read_traces(d / "traces.jsonl") if t.id in by_id], by_id, fmt


def traced(root: Path, arm: str, policy: str, examples: Sequence[Any]) -> dict[str, tuple[Any, list]]:
    """id -> (trace, right or wrong after each round) for one evaluation run's traces, scored with the
    parser the run's metrics were scored with (config.json `parse_format`: native answers decode so)."""
    from toolace_r.evaluation.rounds import round_verdicts

    traces, by_id, fmt = _run_traces(root, arm, policy, examples)
    return {t.id: (t, round_verdicts(by_id[t.id], t, fmt)) for t in traces}


def traced_errors(root: Path, arm: str, policy: str, examples: Sequence[Any]) -> dict[str, tuple[Any, list, list]]:
    """id -> (trace, right or wrong after each round, the checker's error type after each round) for one
    evaluation run: `traced` plus `Verdict.error_type` (evaluation/checker.py; None for a right answer),
    scored the same way (an unscored item's verdicts are None, as in `round_verdicts`)."""
    from toolace_r.evaluation.benchmarks import score

    traces, by_id, fmt = _run_traces(root, arm, policy, examples)
    out = {}
    for t in traces:
        verdicts: list[bool | None] = []
        errors: list[str | None] = []
        for i, rnd in enumerate(t.rounds):
            if i and rnd.answer == t.rounds[i - 1].answer:  # unchanged answer: the same verdict
                verdicts.append(verdicts[-1])
                errors.append(errors[-1])
                continue
            v = score(by_id[t.id], rnd.answer, fmt)
            verdicts.append(None if v.error_type == "unscored" else v.valid)
            errors.append(None if v.valid else v.error_type)
        out[t.id] = (t, verdicts, errors)
    return out


# paired_tests' kinds of comparison, as the report's table names them
PAIRED_KINDS = {"toolace_r_vs_control": "ToolACE-R vs control", "arm_vs_base": "trained vs base",
                "refinement_vs_single_pass": "refinement vs single pass"}


def paired_tests(root: Path, grid: dict[str, dict[str, Any]], first_policy: dict[str, str], final_tr: str | None,
                 examples: Sequence[Any], best: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """Item-by-item tests (evaluation/stats.py) of every comparison the report makes, A against B:
    the reported ToolACE-R model (`final_tr`: the best iteration on validation, else the last) against
    the control (their best policies, `best`: arm -> policy, then each
    shared policy), each trained arm against the base model under each shared policy, and each refinement
    policy against the same arm's single pass. wins: items right for A only; losses: for B only."""
    cache: dict[tuple[str, str], dict[str, bool]] = {}

    def answers(arm: str, policy: str) -> dict[str, bool]:
        if (arm, policy) not in cache:
            cache[arm, policy] = item_verdicts(root, arm, policy, first_policy[arm], examples)
        return cache[arm, policy]

    pairs: list[tuple[str, str, str, str, str]] = []
    if final_tr in grid and "control" in grid:
        if best:
            pairs.append(("toolace_r_vs_control", final_tr, best[final_tr], "control", best["control"]))
        pairs += [("toolace_r_vs_control", final_tr, p, "control", p) for p in grid[final_tr] if p in grid["control"]]
    if "base" in grid:
        pairs += [("arm_vs_base", arm, p, "base", p) for arm in grid if arm != "base" for p in grid[arm]
                  if p in grid["base"]]
    pairs += [("refinement_vs_single_pass", arm, p, arm, "none") for arm in grid for p in grid[arm]
              if p != "none" and "none" in grid[arm]]
    out, seen = [], set()
    for kind, arm_a, pol_a, arm_b, pol_b in pairs:
        if (arm_a, pol_a, arm_b, pol_b) in seen:
            continue
        seen.add((arm_a, pol_a, arm_b, pol_b))
        t = paired_test(answers(arm_a, pol_a), answers(arm_b, pol_b), resamples=RESAMPLES, seed=SEED, alpha=ALPHA)
        out.append({"kind": kind, "a": {"arm": arm_a, "policy": pol_a}, "b": {"arm": arm_b, "policy": pol_b},
                    **t.to_dict(), "resamples": RESAMPLES, "seed": SEED, "alpha": ALPHA})
    return out


def find_test(tests: Sequence[dict[str, Any]], arm_a: str, pol_a: str, arm_b: str, pol_b: str) -> dict[str, Any] | None:
    """The paired test of A against B in `tests`, or None."""
    for t in tests:
        if (t["a"]["arm"], t["a"]["policy"], t["b"]["arm"], t["b"]["policy"]) == (arm_a, pol_a, arm_b, pol_b):
            return t
    return None


def p_text(p: float) -> str:
    """A p-value as the report writes it."""
    return "< 0.001" if p < 0.001 else f"{p:.3f}"


def _points(x: float | None) -> str:
    """A difference of accuracies in percentage points, signed."""
    return "–" if x is None else f"{100 * x:+.1f}"


def ci_text(t: dict[str, Any]) -> str:
    """A paired test's interval of the difference, in signed percentage points."""
    return "–" if t["ci_low"] is None else f"{_points(t['ci_low'])} to {_points(t['ci_high'])}"


def paired_table(tests: Sequence[dict[str, Any]]) -> list[str]:
    """report.md's table of the paired tests, one row per comparison A vs B."""
    t0 = tests[0]
    lines = ["", "## Paired tests: item by item on the same held-out items", "",
             f"A against B on the items both score. `A only` / `B only`: items right for one and wrong for the "
             f"other (the only ones that tell them apart); p: exact two-sided McNemar test (binomial sign test on "
             f"those items); interval: {t0['level']:.0%} paired bootstrap of accuracy(A) - accuracy(B), "
             f"{t0['resamples']:,} resamples of the items, seed {t0['seed']}, in percentage points. "
             f"`significant` only when p < {t0['alpha']:g}; with this many tests, about one in twenty "
             "comparisons of equal models would still read significant (no correction is applied).", "",
             "| comparison | A | B | items | both right | both wrong | A only | B only | A - B (points) | "
             "95% interval | McNemar p | verdict |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in tests:
        lines.append(f"| {PAIRED_KINDS.get(t['kind'], t['kind'])} | {t['a']['arm']} {t['a']['policy']} | "
                     f"{t['b']['arm']} {t['b']['policy']} | {t['items']} | {t['both_right']} | {t['both_wrong']} | "
                     f"{t['wins']} | {t['losses']} | {_points(t['difference'])} | {ci_text(t)} | "
                     f"{p_text(t['p_value'])} | {t['verdict']} |")
    return lines
