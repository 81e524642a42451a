"""Does our checker give BFCL's verdicts on simple_java and simple_javascript? Item by item, against the
official decoder (tree-sitter) and checker (its Java/JavaScript branches), with both checkers' speed.

    .venv/bin/python benchmarks/bfcl_java_js_agreement.py [--per-item 40] [--seed 0] [--quick]
    .venv/bin/python benchmarks/bfcl_java_js_agreement.py --fixtures tests/fixtures/bfcl_java_js_official.json

1. Generates model outputs from BFCL's own Java/JS data (_bfcl_java_js_cases.py: golds written as
   Java/JS source, and perturbations), saved to <cache>/bfcl-java-js/cases.jsonl.
2. Scores them with bfcl-eval in its own venv (_bfcl_official.py), now with tree-sitter and the two
   grammars at bfcl-eval's pins, in a subprocess, each case limited to 2 s (BFCL's JS array pattern
   backtracks exponentially on some unclosed arrays: such a case is an official "timeout"); then here.
3. Prints agreement per category and per output kind (verdicts, and BFCL's error_type strings), every
   disagreement, the official crashes and timeouts, and the speed of both (seconds per output, decode
   plus check, on the outputs the official checker finished). Last line: the verdict agreement ratio.
   Exit status 1 if any verdict disagrees.

Two answers per category are "hostile" (not with --quick): text on which BFCL's converters would
backtrack for hours; the official checker is stopped after 2 s, ours is timed on them.
--quick: 6 outputs per item (about 1,000), no hostile ones, one timing pass: well under a minute.
--fixtures PATH: also writes a sample (every kind of every category, a few each) with the official
verdicts (and every hand-made answer of _bfcl_java_js_cases.HANDMADE), the file tests/test_bfcl_java_js.py
checks our verdicts against without the official venv.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bfcl_java_js_cases as cases_mod  # noqa: E402
import _bfcl_official as official  # noqa: E402
from bfcl_agreement import report, score_ours  # noqa: E402

CASE_TIMEOUT_S = 2


def _ours(cases: list[dict], examples: dict) -> tuple[list[dict], float]:
    return score_ours(cases, examples)


def _time_ours(cases: list[dict], examples: dict, repeats: int) -> float:
    from toolace_r.evaluation.checker import check

    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for case in cases:
            check(examples[case["id"]], case["result"])
        best = min(best, time.perf_counter() - start)
    return best


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-item", type=int, default=40, help="outputs per item besides the gold (default 40)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="items per category (default all)")
    ap.add_argument("--quick", action="store_true", help="6 outputs per item, one timing pass (< 60 s)")
    ap.add_argument("--show", type=int, default=100, help="disagreements to print in full")
    ap.add_argument("--fixtures", type=Path, default=None, help="write a sample with the official verdicts here")
    args = ap.parse_args(argv)
    per_item, repeats = (6, 1) if args.quick else (args.per_item, 3)

    from toolace_r.data import load

    examples = {ex.id: ex for ex in load("bfcl:" + ",".join(cases_mod.CATEGORIES))}
    work = official.cache_dir() / "bfcl-java-js"
    work.mkdir(parents=True, exist_ok=True)
    cases = cases_mod.generate(per_item=per_item, seed=args.seed, limit=args.limit,
                               hostile_per_category=0 if args.quick else 2)
    cases_path, official_path = work / "cases.jsonl", work / "official.jsonl"
    _write_jsonl(cases_path, cases)
    print(f"{len(cases)} cases over {len(cases_mod.CATEGORIES)} categories -> {cases_path}")

    env = {official.REAL_TREE_SITTER: "1", "BFCL_CASE_TIMEOUT": str(CASE_TIMEOUT_S)}
    start = time.perf_counter()
    official.run_worker("check", cases_path, official_path, env=env)
    print(f"official checker: {time.perf_counter() - start:.1f} s (incl. start-up and timeouts)")
    with open(official_path, encoding="utf-8") as fh:
        theirs = {row["case"]: row for row in map(json.loads, fh)}
    ours, ours_s = _ours(cases, examples)
    print(f"ours: {ours_s:.2f} s for all {len(cases)} outputs")

    # Hostile answers run to tens of kilobytes: the report shows each output's first 300 characters.
    shown = [{**c, "result": c["result"] if len(c["result"]) <= 300 else c["result"][:300] + "..."} for c in cases]
    code = report(shown, theirs, ours, args.show)
    timeouts = [c for c in cases if theirs[c["case"]]["crash"] == "timeout"]
    print(f"\nofficial timeouts (> {CASE_TIMEOUT_S} s): {len(timeouts)}; ours on those: "
          f"{max((_time_ours([c], examples, 1) for c in timeouts), default=0.0) * 1e3:.2f} ms at most")

    finished = [c for c in cases if not theirs[c["case"]]["crash"]]
    timing_path, timing_out = work / "timing_cases.jsonl", work / "official_timing.json"
    _write_jsonl(timing_path, finished)
    official.run_worker("time", timing_path, timing_out, extra=[str(repeats)], env=env)
    official_s = sum(json.loads(timing_out.read_text())["seconds_by_kind"].values())
    ours_best = _time_ours(finished, examples, repeats)
    n = max(1, len(finished))
    print(f"speed, {len(finished)} outputs, best of {repeats}: official {official_s / n * 1e6:.1f} us/output, "
          f"ours {ours_best / n * 1e6:.1f} us/output ({official_s / max(ours_best, 1e-9):.2f}x)")

    if args.fixtures is not None:
        _write_fixtures(args.fixtures, cases, theirs)
    scored = [c for c in cases if not theirs[c["case"]]["crash"]]
    agree = sum(theirs[c["case"]]["valid"] == mine["valid"] for c, mine in zip(cases, ours)
                if not theirs[c["case"]]["crash"])
    same_type = sum(theirs[c["case"]]["valid"] == mine["valid"] and theirs[c["case"]]["error_type"] == mine["error_type"]
                    for c, mine in zip(cases, ours) if not theirs[c["case"]]["crash"])
    print(f"error types equal: {same_type}/{len(scored)}")
    print(f"verdict agreement: {agree}/{len(scored)} = {agree / max(1, len(scored)):.4f}")
    return code


def _write_jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


def _write_fixtures(path: Path, cases: list[dict], theirs: dict[int, dict], per_kind: int = 3) -> None:
    """A few cases of every (category, kind, official verdict), with what the official checker said."""
    taken: dict[tuple, int] = defaultdict(int)
    rows = []
    for case in cases:
        off = theirs[case["case"]]
        if off["crash"]:
            continue
        key = (case["category"], case["kind"], off["valid"], off["error_type"])
        if taken[key] < per_kind or case["kind"] == "handmade":
            taken[key] += 1
            rows.append({"id": case["id"], "kind": case["kind"], "result": case["result"],
                         "valid": off["valid"], "error_type": off["error_type"]})
    path.write_text(json.dumps({"source": "benchmarks/bfcl_java_js_agreement.py --fixtures (the official "
                                          "bfcl-eval checker's verdicts)", "cases": rows},
                               indent=0, ensure_ascii=False) + "\n")
    print(f"wrote {len(rows)} official verdicts to {path}")


if __name__ == "__main__":
    raise SystemExit(main())
