"""The pipeline report's compute curve and measured "why", from a hand-built run directory (no model runs).

Evaluation runs are written with the real writer (evaluation/rounds.py `write_refine_outputs`) from
scripted answers, so every count below follows from the script; the iteration files are written as the
training loop writes them (samples.jsonl, selection.json, corpus.jsonl, summary.json).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from toolace_r.config import load_config
from toolace_r.data.select import benchmark_slice
from toolace_r.files import write_jsonl
from toolace_r.pipeline import PipelineConfig
from toolace_r.training.difficulty import gold_target

CATS = "simple_python,multiple,irrelevance"
ITEMS = benchmark_slice("bfcl", CATS, limit=4)  # 4 of each: 12 items
GOLD = {ex.id: gold_target(ex, "No function fits.") for ex in ITEMS}
PROSE, WRONG = "I cannot help with that.", "[wrong_tool(x=1)]"
SIMPLE = [ex.id for ex in ITEMS if ex.category == "simple_python"]
MULTIPLE = [ex.id for ex in ITEMS if ex.category == "multiple"]
IRRELEVANCE = [ex.id for ex in ITEMS if ex.category == "irrelevance"]


def answers(arm: str, policy: str, item: str) -> list[str]:
    """Every round's answer of one item.

    toolace_r@0 (the best iteration on validation): round 0 right on irrelevance only (4/12); one refinement
    round fixes every simple and multiple item (fixed:1: 12/12, net +8); adaptive repeats it once more;
    vote:2 fixes the first two simple items and breaks the first irrelevance item (a call): net +1.
    toolace_r@1 (the last): right on simple and irrelevance (8/12), nothing changes under adaptive.
    control: right on simple only (4/12) under every policy. base: prose (4/12).
    """
    if arm == "base":
        return [PROSE, PROSE]
    if arm == "control":
        first = GOLD[item] if item in SIMPLE else WRONG
        return [first] if policy == "none" else [first, first]
    if arm == "toolace_r@1":
        first = WRONG if item in MULTIPLE else PROSE if item in IRRELEVANCE else GOLD[item]
        return [first, first]
    first = PROSE if item in IRRELEVANCE else WRONG
    fixed = GOLD[item] if item not in IRRELEVANCE else PROSE
    if policy == "none":
        return [first]
    if policy == "fixed:1":
        return [first, fixed]
    if policy == "adaptive":
        return [first, fixed, fixed]
    assert policy == "vote:2"
    if item in SIMPLE[:2]:
        return [first, GOLD[item]]
    return [first, WRONG if item == IRRELEVANCE[0] else first]


def write_eval(root: Path, arm: str, policy: str) -> None:
    from toolace_r.calls import parse
    from toolace_r.evaluation.rounds import write_refine_outputs
    from toolace_r.refine import RefineConfig, RefineResult, Round, Trace

    traces = []
    for ex in ITEMS:
        rounds = []
        for i, a in enumerate(answers(arm, policy, ex.id)):
            if policy.startswith("vote") and i == 1:  # one shared prefill, the samples' tokens generated
                rounds.append(Round(i, a, parse(a), a, prompt_tokens=0, cached_tokens=100, completion_tokens=20))
            else:
                rounds.append(Round(i, a, parse(a), a, prompt_tokens=100, completion_tokens=10))
        reason = "single_pass" if len(rounds) == 1 else "vote" if policy.startswith("vote") else "converged"
        traces.append(Trace(ex.id, rounds, reason))
    n = max(len(t.rounds) for t in traces)
    # vote:N is not a stop policy of this refine module: its runs are written under a fixed:1 config
    rcfg = RefineConfig.from_options("fixed:1" if policy.startswith("vote") else policy)
    result = RefineResult(traces, rcfg, round_seconds=[1.0] * n, seconds=float(n))
    write_refine_outputs(ITEMS, result, root / "eval" / arm / policy.replace(":", "_"), {"arm": arm}, "bfcl")


# The pool of iteration 0: (id, category, solve rate) and what selection.json chose.
POOL = [("a", "live_simple", 0.0), ("b", "live_simple", 0.25), ("c", "live_simple", 0.5),
        ("d", "live_multiple", 1.0), ("e", "live_multiple", 0.0), ("f", "live_irrelevance", 0.75)]
SELECTED, WARMUP = ["b", "c", "d", "f"], ["a"]
CORPUS = [("a", "sft"), ("b", "sft"), ("c", "sft"), ("b", "fix"), ("c", "fix"), ("d", "keep")]


def write_iterations(root: Path) -> dict:
    d = root / "toolace_r" / "iter_0"
    d.mkdir(parents=True)
    write_jsonl(d / "samples.jsonl", [{"id": i, "category": c, "solve_rate": s,
                                       "samples": [{"text": "x", "valid": s > 0}]} for i, c, s in POOL])
    (d / "selection.json").write_text(json.dumps({"selected": SELECTED, "warmup": WARMUP,
                                                  "train_ids": sorted(SELECTED + WARMUP)}))
    write_jsonl(d / "corpus.jsonl", [{"id": i, "kind": k, "prompt": f"question {i} " * (3 if k == "sft" else 1),
                                      "completion": f"answer {k}"} for i, k in CORPUS])
    (root / "toolace_r" / "iter_1").mkdir()  # stopped before a corpus: no selection/corpus figures
    return {"iterations": [
        {"iteration": 0, "items": 6, "selected": 4, "growth": 4, "warmup": 1, "train_items": 5,
         "validation": {"accuracy": 0.6, "items": 10, "by_category": {"live_simple": 0.6}}},
        {"iteration": 1, "items": 6, "selected": 4, "growth": 0, "warmup": 0, "train_items": 4,
         "validation": {"accuracy": 0.5, "items": 10, "by_category": {"live_simple": 0.5}}}],
        "best_iteration": 0, "best_by": "validation", "stop_reason": "selection_stopped_growing"}


def make_run(tmp_path, *extra, control=True):
    cfg = load_config(PipelineConfig, None, [
        "model=m", "training.data.train=jsonl:x.jsonl", f"eval.categories={CATS}", "eval.limit=4",
        "eval.base_policies=[adaptive]", "eval.iteration_policies=[adaptive]",
        "eval.policies=[adaptive, 'fixed:1', 'vote:2']", *extra])
    root = tmp_path / "demo"
    for policy in ("none", "adaptive", "fixed:1", "vote:2"):  # the best iteration has its own none/ run
        write_eval(root, "toolace_r@0", policy)
    write_eval(root, "toolace_r@1", "adaptive")
    write_eval(root, "base", "adaptive")
    if control:
        for policy in ("adaptive", "fixed:1", "vote:2"):  # no none/: the single pass is round 0 of adaptive
            write_eval(root, "control", policy)
    arms = {"base": "b", "toolace_r@0": "t0", "toolace_r@1": "t1", **({"control": "c"} if control else {})}
    return root, cfg, arms, write_iterations(root)


def _tok(model_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def test_compute_curve_and_why_from_run_files(tmp_path, tiny_model_dir):
    from toolace_r.evaluation.benchmarks import score
    from toolace_r.pipeline.report import write_report

    root, cfg, arms, summary = make_run(tmp_path, "goals.max_compute_ratio=2.0")
    arms["base"] = str(tiny_model_dir)  # its tokenizer counts the corpus tokens
    report = write_report(root, cfg, arms, ITEMS, summary, {})
    assert report["reported"] == "toolace_r@0" and report["best_by"] == "validation"
    grid = report["grid"]
    assert list(grid["toolace_r@0"]) == ["none", "adaptive", "fixed:1", "vote:2"]
    assert list(grid["toolace_r@1"]) == ["none", "adaptive"]
    assert grid["toolace_r@0"]["none"]["correct"] == 4 and grid["toolace_r@0"]["none"]["stop_reasons"] == {
        "single_pass": 12}  # read from none/, not derived
    assert grid["control"]["none"]["correct"] == 4 and "stop_reasons" not in grid["control"]["none"]  # derived

    curve = report["compute_curve"]
    assert curve["max_compute_ratio"] == 2.0 and list(curve["arms"]) == ["toolace_r@0", "control"]
    pts = {p["policy"]: p for p in curve["arms"]["toolace_r@0"]["points"]}
    assert list(pts) == ["none", "adaptive", "fixed:1", "vote:2"]
    assert pts["none"]["compute_tokens_per_example"] == 110 and pts["none"]["p_value"] is None
    f1 = pts["fixed:1"]
    assert (f1["correct"], f1["net"], f1["compute_ratio"], f1["compute_tokens_per_example"]) == (12, 8, 2.0, 220)
    assert f1["p_value"] == pytest.approx(2 / 2 ** 8) and f1["significant"] is True
    assert pts["adaptive"]["compute_ratio"] == 3.0 and pts["adaptive"]["significant"] is True
    v2 = pts["vote:2"]  # round 1: 20 tokens generated, the prompt's 100 cached: (110 + 20) / 110
    assert v2["compute_ratio"] == pytest.approx(130 / 110) and (v2["fixes"], v2["breaks"], v2["net"]) == (2, 1, 1)
    assert v2["p_value"] == 1.0 and v2["significant"] is False
    # a significant gain within 2x: fixed:1; adaptive's is significant but costs 3x
    assert curve["arms"]["toolace_r@0"]["pays_off"] == ["fixed:1"]
    sentence = curve["arms"]["toolace_r@0"]["sentence"]
    assert "`fixed:1` (net +8, 2.00x, p = 0.008)" in sentence and "Above that budget: `adaptive`" in sentence
    assert "vote:2" not in sentence
    c = curve["arms"]["control"]
    assert c["pays_off"] == [] and c["sentence"] == "control: no policy gives a detectable gain at this size."
    assert all(p["net"] == 0 and p["significant"] in (None, False) for p in c["points"])

    # paired tests: the reported arm against the control, each trained arm against base, each policy
    # against the same model's single pass (vote and fixed included)
    keys = {(t["kind"], t["a"]["arm"], t["a"]["policy"], t["b"]["arm"], t["b"]["policy"])
            for t in report["paired_tests"]}
    for p in ("adaptive", "fixed:1", "vote:2"):
        assert ("refinement_vs_single_pass", "toolace_r@0", p, "toolace_r@0", "none") in keys
        assert ("refinement_vs_single_pass", "control", p, "control", "none") in keys
        assert ("toolace_r_vs_control", "toolace_r@0", p, "control", p) in keys
    # best vs best (ties: the single pass, then the first listed)
    assert ("toolace_r_vs_control", "toolace_r@0", "adaptive", "control", "none") in keys
    assert not any(k[1] == "toolace_r@1" and k[0] == "toolace_r_vs_control" for k in keys)
    assert {("arm_vs_base", a, p, "base", p) for a in ("toolace_r@0", "toolace_r@1", "control")
            for p in ("none", "adaptive")} <= keys
    assert report["verdicts"]["toolace_r_vs_control"]["toolace_r"]["arm"] == "toolace_r@0"

    w = report["why"]
    assert (w["best_iteration"], w["best_by"]) == (0, "validation")
    it0, it1 = w["iterations"]
    assert it0["best"] is True and it1["best"] is False and it1["selection"] is None and it1["corpus"] is None
    assert it0["validation"]["accuracy"] == 0.6 and it1["validation"]["accuracy"] == 0.5
    sel = it0["selection"]
    assert sel["by_category"]["live_simple"] == {"available": 3, "selected": 2, "warmup": 1, "trained": 3}
    assert sel["by_category"]["live_multiple"] == {"available": 2, "selected": 1, "warmup": 0, "trained": 1}
    assert sel["by_category"]["live_irrelevance"] == {"available": 1, "selected": 1, "warmup": 0, "trained": 1}
    assert sel["by_solve_rate"] == {"0": {"available": 2, "selected": 0, "warmup": 1, "trained": 1},
                                    "(0, 0.5)": {"available": 1, "selected": 1, "warmup": 0, "trained": 1},
                                    "[0.5, 1)": {"available": 2, "selected": 2, "warmup": 0, "trained": 2},
                                    "1": {"available": 1, "selected": 1, "warmup": 0, "trained": 1}}
    assert it0["corpus"]["rows"] == {"sft": 3, "fix": 2, "keep": 1}
    tok = _tok(tiny_model_dir)
    n = lambda text: len(tok(text, add_special_tokens=False)["input_ids"])
    rows = [json.loads(x) for x in (root / "toolace_r" / "iter_0" / "corpus.jsonl").read_text().splitlines()]
    for kind in ("sft", "fix", "keep"):
        assert it0["corpus"]["tokens"][kind] == sum(n(r["prompt"]) + n(r["completion"]) + 1
                                                    for r in rows if r["kind"] == kind) > 0
    assert it0["corpus"]["tokens"]["sft"] > it0["corpus"]["tokens"]["fix"]  # longer prompts, more rows

    # fixes and breaks by the checker's error type, the same totals as the grid
    wrong_simple = score(ITEMS[0], WRONG).error_type
    wrong_multiple = score(next(ex for ex in ITEMS if ex.category == "multiple"), WRONG).error_type
    call_on_irrelevance = score(next(ex for ex in ITEMS if ex.category == "irrelevance"), WRONG).error_type
    assert wrong_simple and wrong_multiple and call_on_irrelevance == "unexpected_call"
    flips = w["flips_by_error"]
    assert set(flips) == {f"{a}, {p}" for a in ("toolace_r@0", "control") for p in ("adaptive", "fixed:1", "vote:2")}
    fixed = flips["toolace_r@0, fixed:1"]
    expected = {}
    for t in (wrong_simple,) * 4 + (wrong_multiple,) * 4:
        expected[t] = expected.get(t, 0) + 1
    assert fixed["fixes"] == expected and fixed["breaks"] == {} and fixed["total_fixes"] == 8
    vote = flips["toolace_r@0, vote:2"]
    assert vote["fixes"] == {wrong_simple: 2} and vote["breaks"] == {"unexpected_call": 1}
    assert flips["control, vote:2"]["total_fixes"] == flips["control, vote:2"]["total_breaks"] == 0
    for f in flips.values():
        row = grid[f["arm"]][f["policy"]]
        assert (f["total_fixes"], f["total_breaks"]) == (row["fixes"], row["breaks"])

    assert (root / "compute.png").stat().st_size > 1000 and (root / "report.png").stat().st_size > 1000
    md = (root / "report.md").read_text()
    assert "## Test-time compute, side by side" in md and "## Why, measured" in md
    assert ("| fixed:1 | 100.0 (12/12) | 220 | 2.00 | +8 | 0.008 | yes | 33.3 (4/12) | 220 | 2.00 | +0 | 1.000 | no |"
            in md)
    assert "| toolace_r@0 | vote:2 | 2 | " + f"{wrong_simple} 2 | 1 | unexpected_call 1 |" in md
    assert "| live_simple | 2 | 1 | 3 | 3 |" in md and "| 0 | 60.0 (10 items) | **best** | 3/2/1 |" in md
    assert "ToolACE-R below means **toolace_r@0** (the best iteration by validation)." in md
    assert report["reported_by"] == "validation"
    on_disk = json.loads((root / "report.json").read_text())
    assert on_disk["compute_curve"] == json.loads(json.dumps(curve)) and on_disk["why"]["flips_by_error"] == flips


def _paired_rows(md: str) -> list[tuple[float, str]]:
    """(p, verdict) of every row of report.md's paired-test table."""
    out = []
    section = md.split("## Paired tests", 1)[1].split("\n## ", 1)[0]
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if len(cells) == 12 and re.fullmatch(r"[\d.]+|< 0\.001", cells[10]):
            out.append((0.0 if cells[10].startswith("<") else float(cells[10]), cells[11]))
    return out


def test_reported_arm_is_explicit_and_no_lead_below_significance_is_a_win(tmp_path):
    from toolace_r.pipeline.report import write_report

    root, cfg, arms, summary = make_run(tmp_path)
    # the last iteration, named explicitly: 8/12 against the control's 4/12, all 4 discordant items its
    # own, p = 0.125: ahead, but no detectable difference
    report = write_report(root, cfg, arms, ITEMS, summary, {}, reported="toolace_r@1")
    assert report["reported"] == "toolace_r@1" and list(report["compute_curve"]["arms"]) == ["toolace_r@1", "control"]
    t = report["verdicts"]["toolace_r_vs_control"]
    assert t["toolace_r"]["arm"] == "toolace_r@1" and t["ahead"] is True and t["beats"] is False
    assert t["p_value"] == pytest.approx(0.125) and t["significant"] is False
    assert list(report["grid"]["toolace_r@1"]) == ["none", "adaptive"]
    # the earlier iteration keeps every run on disk, though it is not the reported one
    assert list(report["grid"]["toolace_r@0"]) == ["none", "adaptive", "fixed:1", "vote:2"]
    md = (root / "report.md").read_text()
    assert "**no detectable difference from the control**" in md and "beats" not in md
    assert "ToolACE-R below means **toolace_r@1** (named for this report)." in md
    assert report["reported_by"] == "explicit" and report["best_iteration"] == 0
    rows = _paired_rows(md)
    assert len(rows) == len(report["paired_tests"]) > 10
    assert all(verdict == "no detectable difference" for p, verdict in rows if p >= 0.05)
    assert all(verdict == "significant" for p, verdict in rows if p < 0.05)
    for arm in report["compute_curve"]["arms"].values():
        for p in arm["points"]:
            if p["p_value"] is not None and p["p_value"] >= 0.05:
                assert p["significant"] is False and p["policy"] not in arm["pays_off"]
    with pytest.raises(ValueError, match="reported arm 'toolace_r@7'"):
        write_report(root, cfg, arms, ITEMS, summary, {}, reported="toolace_r@7")


def test_report_without_control_validation_or_none_run(tmp_path):
    from toolace_r.pipeline.report import render_markdown, write_report

    root, cfg, arms, summary = make_run(tmp_path, control=False)
    summary = {"iterations": [{k: v for k, v in m.items() if k != "validation"} for m in summary["iterations"]]}
    report = write_report(root, cfg, arms, ITEMS, summary, {})  # no best_iteration: the last arm
    assert report["reported"] == "toolace_r@1" and report["best_by"] == report["reported_by"] == "last"
    assert "toolace_r_vs_control" not in report["verdicts"] and list(report["compute_curve"]["arms"]) == ["toolace_r@1"]
    assert report["why"]["iterations"][0]["validation"] is None and report["why"]["iterations"][0]["best"] is False
    assert report["why"]["iterations"][0]["corpus"]["tokens"] is None  # "b" is no model: rows only
    md = (root / "report.md").read_text()
    assert "(the last iteration evaluated)" in md and "| 0 | – |  | 3/2/1 | – |" in md
    assert (root / "compute.png").exists()
    # a report from before these sections renders too
    old = {k: v for k, v in report.items() if k not in ("compute_curve", "why", "reported", "best_by")}
    assert "## Why, measured" not in render_markdown(old)
