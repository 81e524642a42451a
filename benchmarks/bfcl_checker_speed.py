"""Decode+check speed: ours against the official bfcl-eval checker, on the same outputs, in one run.

    .venv/bin/python benchmarks/bfcl_checker_speed.py [--per-item 4] [--repeats 5]

Outputs: golds and perturbations (_bfcl_official_cases.py) for every Python AST category (the eight
BFCL AST categories and the four exec ones). Each side runs its full per-item path on raw text:
official = the runner's `_evaluate_single_ast_entry` (decode_ast + format check + ast_checker),
ours = `check(example, text)` (fast path or decode_bfcl, then the checker). Each item is timed on its
own; per output kind the best of --repeats passes counts. Ours is also timed on a first, cold pass
(per-example preparation included). Other processes share the CPU, so compare the ratios within
one run, not absolute numbers across runs.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bfcl_official as official  # noqa: E402
import _bfcl_official_cases as cases_mod  # noqa: E402

CATEGORIES = cases_mod.AST_CATEGORIES + cases_mod.EXEC_CATEGORIES


def _time_ours(work, repeats: int) -> tuple[dict[str, float], float]:
    from toolace_r.evaluation.checker import check, clear_cache

    clock = time.perf_counter
    clear_cache()
    start = clock()
    for _, ex, text in work:
        check(ex, text)
    cold = clock() - start
    best: dict[str, float] = {}
    for _ in range(repeats):
        spent: dict[str, float] = {}
        for kind, ex, text in work:
            t0 = clock()
            check(ex, text)
            spent[kind] = spent.get(kind, 0.0) + clock() - t0
        for kind, seconds in spent.items():
            best[kind] = min(best.get(kind, float("inf")), seconds)
    return best, cold


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-item", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--by-kind", action="store_true", help="also print every output kind")
    args = ap.parse_args(argv)

    from toolace_r.data import load

    cases = cases_mod.generate(CATEGORIES, per_item=args.per_item, seed=args.seed)
    work_dir = official.cache_dir() / "bfcl-speed"
    work_dir.mkdir(parents=True, exist_ok=True)
    cases_path, timing_path = work_dir / "cases.jsonl", work_dir / "official_time.json"
    with open(cases_path, "w", encoding="utf-8") as fh:
        for c in cases:
            fh.write(json.dumps(c, ensure_ascii=False) + "\n")

    examples = {ex.id: ex for ex in load("bfcl:" + ",".join(CATEGORIES))}
    work = [(c["kind"], examples[c["id"]], c["result"]) for c in cases]
    ours, cold = _time_ours(work, args.repeats)
    official.run_worker("time", cases_path, timing_path, [str(args.repeats)])
    theirs = json.loads(timing_path.read_text())["seconds_by_kind"]

    counts: dict[str, int] = {}
    for kind, _, _ in work:
        counts[kind] = counts.get(kind, 0) + 1
    groups = {
        "well-formed call lists": [k for k in counts if k in cases_mod.WELL_FORMED_KINDS],
        "other text (fences, JSON, arithmetic, garbage, ...)": [k for k in counts if k not in cases_mod.WELL_FORMED_KINDS],
        "all outputs": list(counts),
    }
    print(f"{len(work)} outputs over {len(CATEGORIES)} Python AST categories; best of {args.repeats} passes")
    print(f"{'outputs':<54}{'items':>7}{'official us':>13}{'ours us':>10}{'speed-up':>10}")
    for label, kinds in groups.items():
        n = sum(counts[k] for k in kinds)
        t_off = sum(theirs[k] for k in kinds)
        t_ours = sum(ours[k] for k in kinds)
        print(f"{label:<54}{n:>7}{1e6 * t_off / n:>13.1f}{1e6 * t_ours / n:>10.1f}{t_off / t_ours:>9.2f}x")
    if args.by_kind:
        for kind in sorted(counts):
            n = counts[kind]
            print(f"  {kind:<52}{n:>7}{1e6 * theirs[kind] / n:>13.1f}{1e6 * ours[kind] / n:>10.1f}"
                  f"{theirs[kind] / ours[kind]:>9.2f}x")
    n = len(work)
    t_off = sum(theirs.values())
    print(f"{'all outputs, ours on a cold first pass':<54}{n:>7}{1e6 * t_off / n:>13.1f}{1e6 * cold / n:>10.1f}"
          f"{t_off / cold:>9.2f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
