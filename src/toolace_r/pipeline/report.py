"""The pipeline's report: every arm under every refinement policy on the same held-out items.

Reads what the stages wrote (eval/<arm>/<policy>/metrics.json and traces, toolace_r/ iteration files,
control/, stages.json) and writes report.json (all figures), report.md (tables, the verdicts on the
configured goals, what broke) and report.png. Nothing here runs a model; rewriting the report is cheap.

`none` rows come from the arm's own single-pass run (eval/<arm>/none/) when there is one, else from
round 0 of the arm's first policy run: greedy round 0 is the same computation under every policy, so it
is the single-pass result and its cost.

The reported ToolACE-R arm (`reported`) is the iteration validation picked (summary.json
`best_iteration`), else the last one evaluated; every verdict, test and table about "ToolACE-R" is about it.
Beside the grid: test-time compute side by side (pipeline/compute_curve.py, compute.png) and what
selection, corpus and refinement did, measured (pipeline/why.py).

Every comparison the verdicts rest on is also tested item by item (`paired_tests`, evaluation/stats.py):
ToolACE-R against the control, each trained arm against the base model, each refinement policy against
the same model's single pass. A verdict calls a lead a win only when it is significant (p < 0.05).
"""
from __future__ import annotations

import json
from functools import partial
from pathlib import Path
from typing import Any, Sequence

from toolace_r.evaluation.report import percent
from toolace_r.evaluation.runner import summary_name
from toolace_r.files import dumps, write_files

from .compute_curve import plot_compute, render_compute_markdown, compute_curve
from .paired import ci_text, find_test, p_text, paired_table, paired_tests, traced
from .why import render_why_markdown, why


# A row's summary of summaries: BFCL's (single-turn) `overall` when the held-out set covers all its
# categories, else `partial_mean`; which one is under SUMMARY_NAME (evaluation/runner.py).
SUMMARY = "summary"
SUMMARY_NAME = "summary_name"


def _load(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def _slug(policy: str) -> str:
    return policy.replace(":", "_")


def policy_rows(root: Path, arm: str, policies: Sequence[str]) -> dict[str, dict[str, Any]]:
    """policy -> figures. `none` comes first: from the arm's own single-pass run when `policies` holds
    `none` or eval/<arm>/none/ exists, else derived from round 0 of the first policy run."""
    out: dict[str, dict[str, Any]] = {}
    own_none = "none" in policies or _has_run(root, arm, "none")
    if own_none:
        out["none"] = _row(_load(root / "eval" / arm / "none" / "metrics.json")["refinement"], round_index=None)
    for policy in (p for p in policies if p != "none"):
        ref = _load(root / "eval" / arm / _slug(policy) / "metrics.json")["refinement"]
        if not out:
            out["none"] = _row(ref, round_index=0)
        out[policy] = _row(ref, round_index=None)
    return out


def _has_run(root: Path, arm: str, policy: str) -> bool:
    return (root / "eval" / arm / _slug(policy) / "metrics.json").exists()


def arm_policies(root: Path, arm: str, listed: Sequence[str], configured: Sequence[str]) -> list[str]:
    """The policies `arm` was scored under: those of its role (`listed`, in order) that ran, then any other
    configured policy (`configured`) whose run is there (a reported iteration other than the last one)."""
    out = [p for p in listed if _has_run(root, arm, p)]
    return out + [p for p in configured if p not in out and _has_run(root, arm, p)]


def reported_arm(arms: Sequence[str], summary: dict[str, Any]) -> str | None:
    """The ToolACE-R arm the report is about: toolace_r@<best_iteration> when summary.json names one that
    was evaluated, else the last toolace_r arm (None: no iteration trained)."""
    trained = [a for a in arms if a.startswith("toolace_r@")]
    best = summary.get("best_iteration")
    if best is not None and f"toolace_r@{best}" in trained:
        return f"toolace_r@{best}"
    return trained[-1] if trained else None


def _row(ref: dict[str, Any], round_index: int | None) -> dict[str, Any]:
    """The figures of one policy run (round_index None: its final answers; 0: the single pass)."""
    pooled = ref["all"]
    r = len(ref["rounds"]) - 1 if round_index is None else round_index
    cats = {c: v["accuracy_by_round"][min(r, len(v["accuracy_by_round"]) - 1)] for c, v in ref["categories"].items()}
    tokens = pooled["tokens_per_example"]
    name = summary_name(ref["summary_by_round"])
    summary = ref["summary_by_round"][name] if name else [None]
    if round_index == 0:
        wall = ref["wall_seconds_by_round"][0] if ref.get("wall_seconds_by_round") else None
        return {"accuracy": pooled["accuracy_by_round"][0], SUMMARY: summary[0], SUMMARY_NAME: name,
                "by_category": cats,
                "correct": pooled["correct_by_round"][0], "examples": pooled["examples"],
                "average_refinements": 0.0, "fixes": 0, "breaks": 0, "wall_seconds": wall,
                "compute_tokens_per_example": tokens["single_pass"]["compute"], "compute_ratio": 1.0,
                "wall_ratio": 1.0}
    wall0 = ref["wall_seconds_by_round"][0] if ref.get("wall_seconds_by_round") else None
    return {"accuracy": pooled["final_accuracy"], SUMMARY: summary[-1], SUMMARY_NAME: name,
            "by_category": cats,
            "correct": pooled["correct_by_round"][-1], "examples": pooled["examples"],
            "accuracy_by_round": pooled["accuracy_by_round"],
            "average_refinements": pooled["average_refinements"],
            "fixes": sum(pooled["fixes_by_round"]), "breaks": sum(pooled["breaks_by_round"]),
            "stop_reasons": pooled["stop_reasons"], "wall_seconds": ref["wall_seconds"],
            "compute_tokens_per_example": tokens["refined"]["compute"],
            "compute_ratio": tokens["compute_ratio"],
            "wall_ratio": ref["wall_seconds"] / wall0 if wall0 else None}


def transitions(root: Path, arm: str, policy: str, examples: Sequence[Any], limit: int = 8) -> dict[str, list]:
    """The answers that refinement fixed and broke (first `limit` of each), for reading."""
    out: dict[str, list] = {"fixed": [], "broke": []}
    for trace, verdicts in traced(root, arm, policy, examples).values():
        answers = [r.answer for r in trace.rounds]
        verdicts = [bool(v) for v in verdicts]
        for r in range(1, len(answers)):
            if verdicts[r] != verdicts[r - 1]:
                kind = "fixed" if verdicts[r] else "broke"
                if len(out[kind]) < limit:
                    out[kind].append({"id": trace.id, "round": r, "before": answers[r - 1][:200],
                                      "after": answers[r][:200]})
    return out


def iteration_rows(run_dir: Path, summary: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for m in summary["iterations"]:
        d = run_dir / f"iter_{m['iteration']}"
        row = {k: m.get(k) for k in ("iteration", "items", "mean_solve_rate", "selected", "growth", "warmup",
                                     "train_items", "train_by_group", "corpus", "train_loss", "train_steps",
                                     "stopped", "solve_rate_hist", "validation")}
        row["best"] = summary.get("best_iteration") is not None and m["iteration"] == summary["best_iteration"]
        row["seconds"] = {phase: _load(d / f"{phase}.done").get("seconds")
                          for phase in ("sample", "corpus", "train") if (d / f"{phase}.done").exists()}
        rows.append(row)
    return rows


def write_report(root: Path, cfg: Any, arms: dict[str, str], examples: Sequence[Any], summary: dict[str, Any],
                 stages: dict[str, Any], *, reported: str | None = None, tokenizer: Any = None) -> dict[str, Any]:
    """report.json, report.md, report.png and compute.png of the run in `root`. reported: the ToolACE-R arm
    the verdicts are about (default `reported_arm`: the best iteration on validation, else the last).
    tokenizer: counts the corpus tokens by kind (default: the base model's, `arms["base"]`, when it loads)."""
    grid: dict[str, dict[str, dict[str, Any]]] = {}
    trained = [a for a in arms if a != "base"]
    final_tr = reported if reported is not None else reported_arm(list(arms), summary)
    if final_tr is not None and final_tr not in arms:
        raise ValueError(f"reported arm {final_tr!r} is not among the arms {list(arms)}")
    e = cfg.eval
    configured = list(dict.fromkeys([*e.policies, *e.iteration_policies, *e.base_policies]))
    first_policy: dict[str, str] = {}
    for arm in arms:
        listed = e.base_policies if arm == "base" else e.policies if arm in (final_tr, "control") else \
            e.iteration_policies
        policies = arm_policies(root, arm, listed, configured)
        if not policies and not _has_run(root, arm, "none"):
            continue  # an arm with no evaluation on disk has no row
        grid[arm] = policy_rows(root, arm, policies)
        # item verdicts of `none`: round 0 of this run (the single-pass run itself when there is one)
        first_policy[arm] = "none" if ("none" in policies or _has_run(root, arm, "none")) else policies[0]
    best = {arm: _best(grid, arm)[0] for arm in (final_tr, "control") if arm in grid}
    tests = paired_tests(root, grid, first_policy, final_tr, examples, best if len(best) == 2 else None)
    verdicts = _verdicts(grid, final_tr, cfg.goals, tests)
    side = [a for a in (final_tr, "control") if a in grid]
    if tokenizer is None and arms.get("base"):
        tokenizer = _tokenizer(arms["base"])
    flips = {}
    for arm in trained:
        for policy in grid.get(arm, {}):
            if _stops_itself(policy):
                flips[f"{arm}, {policy}"] = transitions(root, arm, policy, examples)
    report = {
        "model": cfg.model,
        "held_out": {"categories": cfg.eval.categories, "limit_per_category": cfg.eval.limit,
                     "items": len(examples)},
        "pool": pool_vs_held_out(cfg),
        "arms": {a: str(p) for a, p in arms.items()},
        "grid": grid,
        "iterations": iteration_rows(root / "toolace_r", summary),
        "stop_reason": summary.get("stop_reason"),
        "stages": stages,
        "verdicts": verdicts,
        "paired_tests": tests,
        "transitions": flips,
        "reported": final_tr,
        "best_iteration": summary.get("best_iteration"),
        "best_by": summary.get("best_by") if summary.get("best_iteration") is not None else "last",
        "reported_by": _reported_by(final_tr, reported, summary),
        "compute_curve": compute_curve(grid, side, tests, cfg.goals.max_compute_ratio),
        "why": why(root, summary, grid, side, examples, tokenizer),
    }
    control = root / "control" / "control.json"
    if control.exists():
        report["control"] = _load(control)
    write_files({root / "report.json": dumps(report, indent=1) + "\n",
                 root / "report.md": render_markdown(report)})
    try:
        plot_report(report, root / "report.png")
    except Exception as exc:  # the JSON and markdown are the record; a figure is a convenience
        report["plot_error"] = str(exc)
    try:
        plot_compute(report["compute_curve"], root / "compute.png")
    except Exception as exc:
        report["compute_plot_error"] = str(exc)
    return report


def _reported_by(arm: str | None, explicit: str | None, summary: dict[str, Any]) -> str | None:
    """Why `arm` is the reported one: the training run's pick (summary.json `best_by`, e.g. validation), "last"
    (no pick), or "explicit" (the caller named another arm)."""
    if arm is None:
        return None
    best = summary.get("best_iteration")
    if best is not None and arm == f"toolace_r@{best}":
        return summary.get("best_by") or "validation"
    return "explicit" if explicit is not None else "last"


def _tokenizer(model_dir: str) -> Any:
    """The tokenizer of the model folder `model_dir`, or None when it is none or does not load (the corpus
    tokens are then left out)."""
    if not Path(model_dir).is_dir():  # a hub name: no download for a report
        return None
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir)
    except Exception:
        return None


def _policy_attr(policy: str, attr: str, default: Any) -> Any:
    """An attribute of the stop policy `policy` names (refine/policies.py), or `default` for a name this
    install does not know (a report rewritten from another version's files)."""
    from toolace_r.refine import get_policy

    if policy.split(":")[0] == "vote":
        return default  # vote:N samples a majority; it is no stop policy that decides per item
    try:
        return getattr(get_policy(policy), attr, default)
    except (KeyError, ValueError):
        return default


def _stops_itself(policy: str) -> bool:
    """Whether a policy decides per item when to stop (adaptive, checked), not none, fixed:N or vote:N."""
    return policy != "none" and _policy_attr(policy, "rounds", 0) is None


def _checks_schema(policy: str) -> bool:
    return bool(_policy_attr(policy, "check", False))


def _best(grid: dict[str, dict[str, dict[str, Any]]], arm: str) -> tuple[str, dict[str, Any]]:
    """An arm's best policy and its row (ties: the single pass, then the first listed)."""
    return max(grid[arm].items(), key=lambda kv: (kv[1]["accuracy"], kv[0] == "none"))


def _significance(test: dict[str, Any] | None) -> dict[str, Any]:
    """The fields a verdict takes from its paired test (None: no test, so nothing is significant)."""
    if test is None:
        return {"significant": None, "p_value": None, "paired": None}
    return {"significant": test["p_value"] < test["alpha"], "p_value": test["p_value"], "paired": test}


def _verdicts(grid: dict[str, dict[str, dict[str, Any]]], final_tr: str | None, goals: Any,
              tests: Sequence[dict[str, Any]] = ()) -> dict[str, Any]:
    """The verdicts on `goals` (a pipeline.config.GoalsConfig) from the figures and the paired tests.

    `ahead` / `net` are the raw differences; `beats` / `net_gain` hold only when the paired test finds the
    difference significant (p < alpha), so a lead of an item or two is never a win."""
    out: dict[str, Any] = {}
    if final_tr not in grid:
        final_tr = None  # no evaluation of the reported arm on disk: nothing to give a verdict on
    if goals.beat_control and final_tr and "control" in grid:
        tr_pol, tr = _best(grid, final_tr)
        c_pol, c = _best(grid, "control")
        sig = _significance(find_test(tests, final_tr, tr_pol, "control", c_pol))
        ahead = tr["accuracy"] > c["accuracy"]
        out["toolace_r_vs_control"] = {
            "toolace_r": {"arm": final_tr, "policy": tr_pol, "accuracy": tr["accuracy"], SUMMARY: tr[SUMMARY]},
            "control": {"policy": c_pol, "accuracy": c["accuracy"], SUMMARY: c[SUMMARY]},
            "same_policy": {p: {"toolace_r": grid[final_tr][p]["accuracy"], "control": grid["control"][p]["accuracy"]}
                            for p in grid[final_tr] if p in grid["control"]},
            "ahead": ahead, "behind": tr["accuracy"] < c["accuracy"],
            "beats": bool(ahead and sig["significant"]), **sig,
        }
    if goals.refinement and final_tr:
        # One verdict per policy that stops by itself: `adaptive` is the paper's, `checked` ours.
        out["max_compute_ratio"] = goals.max_compute_ratio
        out["refinement"] = {}
        for policy, a in grid[final_tr].items():
            if not _stops_itself(policy):
                continue
            sig = _significance(find_test(tests, final_tr, policy, final_tr, "none"))
            net = a["fixes"] - a["breaks"]
            out["refinement"][policy] = {
                "arm": final_tr, "policy": policy, "fixes": a["fixes"], "breaks": a["breaks"], "net": net,
                "compute_ratio": a["compute_ratio"], "wall_ratio": a["wall_ratio"],
                "net_gain": bool(net > 0 and sig["significant"]), "net_loss": bool(net < 0 and sig["significant"]),
                "within_cost": a["compute_ratio"] is not None and a["compute_ratio"] <= goals.max_compute_ratio,
                **sig}
    return out


# The report's tables: one decimal, a dash where there is no figure.
_pct = partial(percent, digits=1, missing="–")


def _num(x: float | None, fmt: str = ".2f") -> str:
    return "–" if x is None else format(x, fmt)


def pool_vs_held_out(cfg: Any) -> dict[str, Any]:
    """The training pool's BFCL categories beside the held-out ones, and those in both: computed from the
    config, so the report's word that the two are disjoint is checked for each run, not assumed."""
    from toolace_r.data.bfcl import bfcl_categories
    from toolace_r.data.registry import MIX_SEPARATOR

    train = cfg.training.data.train or ""
    parts = train[len("mix:"):].split(MIX_SEPARATOR) if train.startswith("mix:") else [train]
    pool: list[str] = []
    others: list[str] = []
    for part in (p.strip() for p in parts if p.strip()):
        key, _, rest = part.partition(":")
        if key == "bfcl":
            pool += [c for c in bfcl_categories(rest) if c not in pool]
        else:
            others.append(part)
    held_out = bfcl_categories(cfg.eval.categories) if cfg.eval.benchmark == "bfcl" else []
    return {"train": train, "bfcl_categories": pool, "other_sources": others, "held_out_categories": held_out,
            "overlap": [c for c in held_out if c in pool]}


def _pool_sentence(pool: dict[str, Any]) -> str:
    named = ", ".join(pool["bfcl_categories"]) or "no BFCL category"
    if pool["other_sources"]:
        named += "; also " + ", ".join(f"`{s}`" for s in pool["other_sources"])
    if pool["overlap"]:
        return (f"Training pool (`training.data.train`): {named}. **It shares BFCL categories with the held-out "
                f"sets: {', '.join(pool['overlap'])}**, so those held-out scores may count items trained on.")
    return (f"Training pool (`training.data.train`): {named}. Its BFCL categories and the held-out ones "
            f"({', '.join(pool['held_out_categories']) or 'none'}) are disjoint: no held-out category is trained on.")


def render_markdown(report: dict[str, Any]) -> str:
    grid = report["grid"]
    cats = sorted({c for arm in grid.values() for row in arm.values() for c in row["by_category"]})
    h = report["held_out"]
    names = {row.get(SUMMARY_NAME) for arm in grid.values() for row in arm.values()}
    if names == {"overall"}:
        summary_col = "BFCL overall (single-turn)"
        summary_note = ("`BFCL overall (single-turn)` is BFCL v4's overall restricted to non-live, live and "
                        "irrelevance (the leaderboard's total also weights multi-turn and agentic).")
    else:
        summary_col = "mean of scored parts (not BFCL overall)"
        summary_note = ("`mean of scored parts (not BFCL overall)` is the unweighted mean of the BFCL summary "
                        "scores present (docs/bfcl.md#overall); the held-out set lacks categories of BFCL's "
                        "overall, so it is not the leaderboard's number.")
    lines = [f"# ToolACE-R pipeline report: {report['model']}", "",
             f"Held-out: {h['items']} BFCL items ({h['categories']}; the first {h['limit_per_category']} of each "
             "category), the same for every arm; greedy decoding. Accuracy in %; " + summary_note + " `none` is the "
             "arm's single pass (its own run, or round 0 of its first refinement run: the identical computation).",
             *([f"ToolACE-R below means **{report['reported']}** ("
                + {"last": "the last iteration evaluated", "explicit": "named for this report"}.get(
                    report.get("reported_by"), f"the best iteration by {report.get('reported_by')}")
                + ")."] if report.get("reported") else []), "",
             *([_pool_sentence(report["pool"]), ""] if "pool" in report else []),
             "## Accuracy by arm and refinement policy", "",
             "| arm | policy | " + " | ".join(cats) + f" | all items | {summary_col} | avg rounds | fixes | breaks | "
             "compute tokens/item | x single pass (tokens) |",
             "|---|---|" + "---|" * len(cats) + "---|---|---|---|---|---|---|"]
    for arm, rows in grid.items():
        for policy, r in rows.items():
            lines.append(f"| {arm} | {policy} | " + " | ".join(_pct(r["by_category"].get(c)) for c in cats)
                         + f" | {_pct(r['accuracy'])} ({r['correct']}/{r['examples']}) | {_pct(r[SUMMARY])} | "
                         f"{_num(r['average_refinements'])} | {r['fixes']} | {r['breaks']} | "
                         f"{_num(r['compute_tokens_per_example'], '.0f')} | {_num(r['compute_ratio'])} |")
    lines += ["", "Cost is counted in computed tokens (prefilled + generated, each policy as if it ran alone on a "
              "fresh engine). Wall time is not: an arm's policies come from one shared run (round 0 once, "
              "none/adaptive/fixed:N read off one refine chain; docs/method.md#grid), whose wall seconds are in "
              "the stages table below."]
    lines += ["", "## Accuracy after each refinement round (all items, %)", "",
              "| arm | policy | " + " | ".join(f"round {i}" for i in range(4)) + " | stop reasons |",
              "|---|---|---|---|---|---|---|"]
    for arm, rows in grid.items():
        for policy, r in rows.items():
            if "accuracy_by_round" in r:
                acc = r["accuracy_by_round"] + [None] * (4 - len(r["accuracy_by_round"]))
                lines.append(f"| {arm} | {policy} | " + " | ".join(_pct(a) for a in acc[:4])
                             + f" | {r.get('stop_reasons', {})} |")
    v = report.get("verdicts", {})
    lines += ["", "## The goals", ""]
    if "toolace_r_vs_control" in v:
        t = v["toolace_r_vs_control"]
        pr = t.get("paired")
        if pr is None:  # a report written without item-by-item verdicts
            word = "ahead of the control, not tested item by item" if t["ahead"] else "not ahead of the control"
        elif t["significant"]:
            word = "significantly beats the control" if t["ahead"] else "is significantly behind the control"
        else:
            word = "no detectable difference from the control"
        line = (f"- ToolACE-R ({t['toolace_r']['arm']}, best policy {t['toolace_r']['policy']}) "
                f"{_pct(t['toolace_r']['accuracy'])}% vs control (best policy {t['control']['policy']}) "
                f"{_pct(t['control']['accuracy'])}%: **{word}**.")
        if pr is not None:
            line += (f" Item by item: {pr['wins']} right only for ToolACE-R, {pr['losses']} right only for the control "
                     f"of {pr['items']} (exact McNemar p = {p_text(pr['p_value'])}; 95% paired bootstrap interval of "
                     f"the difference {ci_text(pr)} points).")
        lines.append(line + " Same policy: " + ", ".join(f"{p} {_pct(x['toolace_r'])} vs {_pct(x['control'])}"
                                                         for p, x in t["same_policy"].items()) + ".")
    for a in v.get("refinement", {}).values():
        what = ("schema-checked adaptive refinement (ours: only answers that do not fit the tool list are refined, "
                "and the refine turn says why)" if _checks_schema(a["policy"])
                else "adaptive refinement (the paper's: every answer, no feedback)")
        pr = a.get("paired")
        if pr is None:
            word, detail = ("a net gain, not tested item by item" if a["net"] > 0 else "no net gain"), ""
        else:
            word = "a significant net gain" if a["net_gain"] else "a significant net loss" if a["net_loss"] else \
                "no detectable difference from the single pass"
            detail = (f" (exact McNemar p = {p_text(pr['p_value'])} against the single pass; 95% interval of the "
                      f"difference {ci_text(pr)} points)")
        lines.append(f"- {what[0].upper() + what[1:]}, `{a['policy']}`, on {a['arm']}: {a['fixes']} fixes, "
                     f"{a['breaks']} breaks (net {a['net']:+d}): **{word}**{detail};"
                     f" cost {_num(a['compute_ratio'])}x the single pass in computed tokens: "
                     f"**{'within' if a['within_cost'] else 'above'}** the {v['max_compute_ratio']:g}x budget.")
    if report.get("compute_curve"):
        lines += render_compute_markdown(report["compute_curve"], _pct, _num)
    if report.get("paired_tests"):
        lines += paired_table(report["paired_tests"])
    lines += ["", "## ToolACE-R iterations", "",
              "| iteration | mean solve rate | selected (+growth) | warm-up | trained on | by group "
              "| corpus sft/fix/keep | steps | loss | validation | sample s | train s |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for it in report.get("iterations", []):
        corpus = it.get("corpus") or {}
        val = (it.get("validation") or {}).get("accuracy")
        seconds = it.get("seconds") or {}
        lines.append(f"| {it['iteration']} | {_num(it.get('mean_solve_rate'), '.3f')} | {it.get('selected')} "
                     f"(+{it.get('growth')}) | {it.get('warmup')} | {it.get('train_items')} | "
                     f"{it.get('train_by_group') or '–'} | "
                     + (f"{corpus.get('sft', 0)}/{corpus.get('fix', 0)}/{corpus.get('keep', 0)}" if corpus else "–")
                     + f" | {it.get('train_steps') or '–'} | {_num(it.get('train_loss'), '.3f')} | "
                     f"{_pct(val)}{' (best)' if it.get('best') else ''} | "
                     f"{_num(seconds.get('sample'), '.0f')} | {_num(seconds.get('train'), '.0f')} |")
    lines.append(f"\nStop: {report.get('stop_reason')}.")
    if "control" in report:
        c = report["control"]
        lines.append(f"\nControl: {c['rows']} rows ({c['distinct_items']} distinct of {c['pool_items']} pool items, "
                     f"{c['passes']} pass(es)), {c['train_tokens']} training tokens for a target of {c['target']} "
                     f"({c['match']}).")
    if report.get("why"):
        lines += render_why_markdown(report["why"], _pct)
    lines += ["", "## Stages: wall time and tokens", "", "| stage | wall s | tokens | notes |", "|---|---|---|---|"]
    for name, s in report.get("stages", {}).items():
        tokens = s.get("train_tokens", s.get("compute_tokens"))
        notes = {k: v for k, v in s.items() if k not in ("seconds", "train_tokens", "compute_tokens", "config",
                                                         "per_iteration")}
        lines.append(f"| {name} | {_num(s.get('seconds'), '.1f')} | {tokens if tokens is not None else '–'} | "
                     f"{notes or ''} |")
    for arm, flips in report.get("transitions", {}).items():
        if flips["fixed"] or flips["broke"]:
            lines += ["", f"## What refinement changed: {arm}", ""]
            for kind in ("fixed", "broke"):
                for f in flips[kind]:
                    lines.append(f"- {kind} `{f['id']}` (round {f['round']}): `{_md(f['before'])}` → "
                                 f"`{_md(f['after'])}`")
    return "\n".join(lines) + "\n"


def _md(text: str) -> str:
    return text.replace("`", "'").replace("\n", " ").replace("|", "\\|")


def plot_report(report: dict[str, Any], path: Path) -> None:
    """Three panels: accuracy by arm and policy; accuracy by refinement round; selection per iteration."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    grid = report["grid"]
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    ax = axes[0]
    policies = []
    for rows in grid.values():
        policies += [p for p in rows if p not in policies]
    width = 0.8 / max(1, len(policies))
    for j, policy in enumerate(policies):
        xs = [i + j * width for i, arm in enumerate(grid) if policy in grid[arm]]
        ys = [100 * grid[arm][policy]["accuracy"] for arm in grid if policy in grid[arm]]
        ax.bar(xs, ys, width, label=policy)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(grid))], list(grid), rotation=20, fontsize=8)
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("accuracy by arm and policy")
    ax.legend(fontsize=8)
    ax = axes[1]
    for arm, rows in grid.items():
        for policy, r in rows.items():
            if policy.startswith("fixed") and "accuracy_by_round" in r:
                ax.plot(range(len(r["accuracy_by_round"])), [100 * a for a in r["accuracy_by_round"]], marker="o",
                        label=f"{arm} {policy}")
    ax.set_xlabel("refinement round")
    ax.set_ylabel("accuracy (%)")
    ax.set_title("accuracy after each round")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=7)
    ax = axes[2]
    its = report["iterations"]
    x = [it["iteration"] for it in its]
    ax.bar([i - 0.2 for i in x], [it["selected"] for it in its], 0.4, label="selected")
    ax.bar([i + 0.2 for i in x], [it["train_items"] for it in its], 0.4, label="trained on (with warm-up)")
    ax.set_xlabel("iteration")
    ax.set_title("ToolACE-R selection")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
