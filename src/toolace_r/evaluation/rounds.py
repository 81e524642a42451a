"""Per-round view of a refinement run: what each round bought (accuracy) and what it cost (tokens).

    metrics = round_metrics(examples, result.traces)     # the "refinement" block of metrics.json
    report = write_refine_outputs(examples, result, "runs/eval")  # everything a run directory holds

"Stopped after round r" means every item keeps the answer it had after round r, or its final answer
if it stopped earlier; round 0 is thus the single-pass score and the last round the final one. Each
round's answers are scored with `check` (BFCL semantics). Per category and over all items:
accuracy by round, fixes (wrong -> right) and breaks (right -> wrong) made by each round, rounds run,
why items stopped, and tokens per example (prefilled = computed prompt tokens, cached = prompt tokens
whose KV was reused, generated), cumulative by round and against the single pass. BFCL's summary
scores (non_live, live, irrelevance, and overall or partial_mean) are given per round too.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from toolace_r.evaluation.benchmarks import score
from toolace_r.data.select import examples_digest
from toolace_r.evaluation.report import percent
from toolace_r.evaluation.runner import CategoryScore, aggregate, summary_name

ALL = "all"  # the key of the pooled entry beside the categories


def round_verdicts(example: Any, trace: Any, fmt: str | None = None) -> list[bool | None]:
    """Right or wrong after each round the item ran (None: the example cannot be scored).
    fmt: how answers decode (`check`); None for pythonic runs."""
    out: list[bool | None] = []
    for rnd in trace.rounds:
        if out and rnd.answer == trace.rounds[rnd.index - 1].answer:
            out.append(out[-1])  # unchanged answer: same verdict, no need to check again
            continue
        verdict = score(example, rnd.answer, fmt)
        out.append(None if verdict.error_type == "unscored" else verdict.valid)
    return out


def round_metrics(examples: Sequence[Any], traces: Sequence[Any], fmt: str | None = None) -> dict[str, Any]:
    """Per-round accuracy and cost, per category and over all items (see the module docstring).
    fmt: how answers decode (`check`): None for pythonic runs, the native parser otherwise."""
    by_id = {t.id: t for t in traces}
    missing = [ex.id for ex in examples if ex.id not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} example(s) have no refinement trace, e.g. {missing[:3]}")
    n_rounds = max((len(t.rounds) for t in traces), default=1)
    groups: dict[str, list[tuple[Any, list[bool | None]]]] = {}
    for ex in examples:
        trace = by_id[ex.id]
        verdicts = round_verdicts(ex, trace, fmt)
        if verdicts[0] is None:
            continue  # unscored: left out of every figure, as evaluate_predictions does
        row = (trace, verdicts)
        groups.setdefault(ex.category, []).append(row)
        groups.setdefault(ALL, []).append(row)
    categories = {cat: _group_metrics(rows, n_rounds) for cat, rows in groups.items() if cat != ALL}
    pooled = _group_metrics(groups.get(ALL, []), n_rounds)
    from toolace_r.evaluation.benchmarks import benchmark_of

    # BFCL's summary scores by round; another benchmark's own summary is in metrics.json's "summary"
    bfcl = all(benchmark_of(ex) == "bfcl" for ex in examples)
    summaries = _summaries_by_round(categories, n_rounds) if bfcl else {}
    return {"rounds": list(range(n_rounds)), "categories": categories, ALL: pooled, "summary_by_round": summaries}


def _group_metrics(rows: list[tuple[Any, list[bool | None]]], n_rounds: int) -> dict[str, Any]:
    n = len(rows)

    def right_after(verdicts: list, r: int) -> bool:
        return bool(verdicts[min(r, len(verdicts) - 1)])

    correct = [sum(right_after(v, r) for _, v in rows) for r in range(n_rounds)]
    fixes = [0] + [sum(1 for t, v in rows if r < len(v) and not v[r - 1] and v[r]) for r in range(1, n_rounds)]
    breaks = [0] + [sum(1 for t, v in rows if r < len(v) and v[r - 1] and not v[r]) for r in range(1, n_rounds)]
    ran = [sum(1 for t, _ in rows if len(t.rounds) > r) for r in range(n_rounds)]
    tokens = [_mean_tokens([t.tokens(r) for t, _ in rows], n) for r in range(n_rounds)]
    single, total = tokens[0], tokens[-1]
    return {
        "examples": n,
        "accuracy_by_round": [c / n if n else None for c in correct],
        "correct_by_round": correct,
        "final_accuracy": correct[-1] / n if n else None,
        "single_pass_accuracy": correct[0] / n if n else None,
        "fixes_by_round": fixes,
        "breaks_by_round": breaks,
        "examples_run_by_round": ran,
        "average_refinements": sum(t.refinements for t, _ in rows) / n if n else None,
        "average_generations": sum(len(t.rounds) for t, _ in rows) / n if n else None,
        "stop_reasons": dict(sorted(Counter(t.stop_reason for t, _ in rows).items())),
        "tokens_per_example_by_round": tokens,
        "tokens_per_example": {
            "single_pass": single,
            "refined": total,
            # compute = prefilled + generated: what an engine actually ran for the item.
            "compute_ratio": _ratio(total["compute"], single["compute"]),
            # processed = prefilled + cached + generated: the cost without any prefix cache.
            "processed_ratio": _ratio(total["processed"], single["processed"]),
        },
    }


def _mean_tokens(per_item: list[dict[str, int]], n: int) -> dict[str, float]:
    keys = ("prompt", "cached", "completion")
    out = {k: (sum(d[k] for d in per_item) / n if n else 0.0) for k in keys}
    out["compute"] = out["prompt"] + out["completion"]
    out["processed"] = out["compute"] + out["cached"]
    return out


def _ratio(a: float, b: float) -> float | None:
    return a / b if b else None


def _summaries_by_round(categories: dict[str, dict[str, Any]], n_rounds: int) -> dict[str, list[float | None]]:
    """BFCL's summary scores (runner.aggregate) had we stopped after each round."""
    out: dict[str, list[float | None]] = {}
    for r in range(n_rounds):
        scores = {cat: CategoryScore(cat, correct=m["correct_by_round"][r], total=m["examples"])
                  for cat, m in categories.items()}
        for name, agg in aggregate(scores).items():
            out.setdefault(name, []).append(agg.accuracy)
    return out


# --- views -----------------------------------------------------------------------------------------

def render_rounds_table(metrics: dict[str, Any]) -> str:
    """Accuracy by round and cost per category, for the terminal."""
    rounds = metrics["rounds"]
    head = f"{'category':<24}" + "".join(f"{'r' + str(r):>8}" for r in rounds) + f"{'rounds':>8}{'fix':>5}{'brk':>5}{'tok x':>7}"
    lines = ["accuracy % had we stopped after each round", head, "-" * len(head)]
    rows = list(metrics["categories"].items()) + [(ALL, metrics[ALL])]
    for cat, m in rows:
        cost = m["tokens_per_example"]["compute_ratio"]
        lines.append(f"{cat:<24}" + "".join(f"{percent(a):>8}" for a in m["accuracy_by_round"])
                     + f"{m['average_refinements'] or 0:>8.2f}{sum(m['fixes_by_round']):>5}"
                     + f"{sum(m['breaks_by_round']):>5}{(cost or 0):>7.2f}")
    name = summary_name(metrics["summary_by_round"])
    if name:
        label = "BFCL overall (1-turn)" if name == "overall" else "partial mean (not BFCL)"
        lines.append(f"{label:<24}" + "".join(f"{percent(a):>8}" for a in metrics["summary_by_round"][name]))
    lines.append("rounds: average refinement rounds; fix/brk: wrong->right / right->wrong over all rounds; "
                 "tok x: tokens computed per example against a single pass")
    return "\n".join(lines)


def render_rounds_markdown(metrics: dict[str, Any], config: dict[str, Any] | None = None) -> str:
    """The refinement section of report.md."""
    rounds = metrics["rounds"]
    out = ["", "## Refinement by round", ""]
    if config:
        out += [f"Policy `{config.get('policy')}`, round cap {config.get('max_rounds')}, guard "
                f"`{config.get('guard')}`. Accuracy % had we stopped after each round (round 0 = single pass).", ""]
    out += ["| category | " + " | ".join(f"round {r}" for r in rounds) + " | final | avg rounds | fixes | breaks |",
            "|---|" + "---:|" * (len(rounds) + 4)]
    for cat, m in list(metrics["categories"].items()) + [(f"**{ALL}**", metrics[ALL])]:
        out.append(f"| {cat} | " + " | ".join(percent(a) for a in m["accuracy_by_round"])
                   + f" | {percent(m['final_accuracy'])} | {m['average_refinements']:.2f} | "
                   + f"{'/'.join(map(str, m['fixes_by_round'][1:])) or '-'} | "
                   + f"{'/'.join(map(str, m['breaks_by_round'][1:])) or '-'} |")
    for name, values in metrics["summary_by_round"].items():
        if any(v is not None for v in values):
            label = "mean of scored parts (not BFCL overall)" if name == "partial_mean" else f"BFCL {name}"
            out.append(f"| {label} | " + " | ".join(percent(v) for v in values) + " | | | | |")
    pooled = metrics[ALL]
    tok = pooled["tokens_per_example"]
    out += ["", "Fixes and breaks are listed per refinement round (round 1/round 2/...).", "",
            "| tokens per example | prefilled | cached | generated | computed |", "|---|---:|---:|---:|---:|"]
    for label, t in (("single pass (round 0)", tok["single_pass"]), ("with refinement", tok["refined"])):
        out.append(f"| {label} | {t['prompt']:.1f} | {t['cached']:.1f} | {t['completion']:.1f} | {t['compute']:.1f} |")
    ratio = tok["compute_ratio"]
    out += ["", f"Refinement computed {ratio:.2f}x the tokens of a single pass "
                f"({tok['processed_ratio']:.2f}x counting cached prompt tokens)." if ratio else "",
            "", "Why items stopped: " + ", ".join(f"{k} {v}" for k, v in pooled["stop_reasons"].items()) + "."]
    return "\n".join(out) + "\n"


def plot_rounds(metrics: dict[str, Any], path: str | Path, title: str = "") -> Path:
    """A PNG: accuracy by round (per category and pooled) beside cumulative tokens per example."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = metrics["rounds"]
    fig, (acc_ax, cost_ax) = plt.subplots(1, 2, figsize=(11, 4.2))
    for cat, m in metrics["categories"].items():
        acc_ax.plot(rounds, [100 * (a or 0) for a in m["accuracy_by_round"]], marker="o", alpha=0.6, label=cat)
    acc_ax.plot(rounds, [100 * (a or 0) for a in metrics[ALL]["accuracy_by_round"]], marker="s", color="black",
                linewidth=2.5, label=ALL)
    acc_ax.set(xlabel="stopped after round", ylabel="accuracy %", title="accuracy", xticks=rounds)
    acc_ax.set_ylim(-2, 102)
    acc_ax.legend(fontsize=7)
    pooled = metrics[ALL]
    compute = [t["compute"] for t in pooled["tokens_per_example_by_round"]]
    processed = [t["processed"] for t in pooled["tokens_per_example_by_round"]]
    cost_ax.plot(rounds, compute, marker="o", label="computed (prefilled + generated)")
    cost_ax.plot(rounds, processed, marker="^", linestyle="--", label="processed (+ cached prompt)")
    cost_ax.set(xlabel="stopped after round", ylabel="tokens per example (cumulative)", title="cost", xticks=rounds)
    cost_ax.set_ylim(bottom=0)
    share = cost_ax.twinx()
    n = pooled["examples"] or 1
    share.bar(rounds, [100 * k / n for k in pooled["examples_run_by_round"]], alpha=0.15, color="gray")
    share.set(ylabel="% of items that ran the round", ylim=(0, 105))
    cost_ax.legend(fontsize=7, loc="upper left")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


# --- a run directory -------------------------------------------------------------------------------

@dataclass
class RefineReport:
    """What `write_refine_outputs` wrote (`paths`), the final answers' `EvalResult`, the round metrics and the
    multi-turn figures."""

    paths: dict[str, Path]
    scored: Any
    rounds: dict[str, Any] | None  # None when every item was multi-turn
    multi_turn: dict[str, Any] | None = None  # the "multi_turn" block, when there were such items


def write_refine_outputs(examples: Sequence[Any], result: Any, out_dir: str | Path,
                         run_config: dict[str, Any] | None = None, benchmark: str = "bfcl",
                         lenient: bool = False, multi_turn: Any = None) -> RefineReport:
    """Score a `RefineResult` (and a `MultiTurnResult` for BFCL's multi-turn items) and write the run directory.

    predictions.jsonl (final answers, BFCL format) and traces.jsonl; config.json (the refine config
    plus `run_config`: model, engine, data; and the examples' digest); metrics.json, results.jsonl and report.md for the final
    answers (as `eval --predictions` writes them) with a "refinement" block / section added; rounds.png.
    With multi-turn items (`multi_turn`, evaluation/multi_turn_loop.py): trajectories.jsonl (one item a line,
    every turn, step and round), their verdicts in results.jsonl, a "multi_turn" block in metrics.json and a
    section in report.md; the refinement block and rounds.png then cover the single-turn items only.
    """
    from toolace_r.evaluation.multi_turn_loop import is_multi_turn
    from toolace_r.evaluation.multi_turn_report import multi_turn_metrics, render_multi_turn_markdown
    from toolace_r.evaluation.runner import evaluate_predictions, output_files
    from toolace_r.files import dumps, dumps_lines, write_files
    from toolace_r.refine import prediction_rows

    out = Path(out_dir)
    refine_config = result.config.to_dict()
    # Native answers are decoded with the parser the run used, pythonic ones with BFCL's decoder.
    fmt = result.parse_format if result.answer_format == "native" else None
    config = {**(run_config or {}), "examples_sha256": examples_digest(examples), "refine": refine_config,
              "answer_format": result.answer_format, "parse_format": fmt or "bfcl"}
    single = [ex for ex in examples if not is_multi_turn(ex)]
    multi = [ex for ex in examples if is_multi_turn(ex)]
    if multi and multi_turn is None:
        raise ValueError(f"{len(multi)} multi-turn example(s) need a MultiTurnResult (run_multi_turn)")
    finals: dict[str, Any] = {t.id: t.final for t in result.traces}
    if multi_turn is not None:
        finals.update({t.id: t.calls() for t in multi_turn.trajectories})
        config["multi_turn"] = {"max_steps": multi_turn.max_steps}
    scored = evaluate_predictions(examples, finals, fmt)
    scored.benchmark = benchmark
    if lenient:  # ACEBench without the quirks that reject right answers, beside the compatible score
        from toolace_r.evaluation.benchmarks import lenient_summary

        scored.extra["lenient"] = lenient_summary(benchmark, examples, finals, fmt)
    metrics = scored.metrics()
    files = output_files(scored, out)
    report_path, report = files["report"]
    rounds = None
    if single or not multi:
        rounds = round_metrics(single, result.traces, fmt)
        rounds["policy"] = refine_config["policy"]
        rounds["max_rounds"] = refine_config["max_rounds"]
        rounds["guard"] = refine_config["guard"]
        rounds["wall_seconds"] = round(result.seconds, 3)
        rounds["wall_seconds_by_round"] = [round(s, 3) for s in result.round_seconds]
        metrics["refinement"] = rounds
        report += render_rounds_markdown(rounds, refine_config)
    rows = list(prediction_rows(result.traces))
    if multi:
        verdicts = {item.id: item.valid for item in scored.items if item.error_type != "unscored"}
        metrics["multi_turn"] = multi_turn_metrics(multi, multi_turn, verdicts)
        report += render_multi_turn_markdown(metrics["multi_turn"])
        rows += multi_turn.predictions()
        files["trajectories"] = (out / "trajectories.jsonl",
                                 dumps_lines(t.to_dict() for t in multi_turn.trajectories))
    files["report"] = (report_path, report)
    files["metrics"] = (files["metrics"][0], dumps(metrics, indent=2) + "\n")
    files["predictions"] = (out / "predictions.jsonl", dumps_lines(rows))
    files["traces"] = (out / "traces.jsonl", dumps_lines(t.to_dict() for t in result.traces))
    files["config"] = (out / "config.json", dumps(config, indent=2) + "\n")
    # Every text is rendered before any file changes: the run directory holds one run's outputs.
    write_files(dict(files.values()))
    paths = {key: path for key, (path, _) in files.items()}
    if rounds is not None:
        paths["plot"] = plot_rounds(rounds, out / "rounds.png", title=f"{benchmark}: refine {refine_config['policy']}")
    return RefineReport(paths, scored, rounds, metrics.get("multi_turn"))
