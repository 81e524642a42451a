"""Does `toolace_r.evaluation.check` give BFCL's verdicts? Item by item, against the official checker.

    .venv/bin/python benchmarks/bfcl_agreement.py [--per-item 4] [--seed 0] [--limit N] [--categories a,b]
    .venv/bin/python benchmarks/bfcl_agreement.py --quirks   # the hand-made cases of tests/test_checker.py

1. Generates model outputs from BFCL's own data (_bfcl_official_cases.py: golds and perturbations),
   saved to <cache>/bfcl-agreement/cases.jsonl, the file both sides read.
2. Scores them with the official bfcl-eval decoder+checker in its own venv (_bfcl_official.py), in a
   subprocess, and with ours here (examples from `toolace_r.data.load`).
3. Prints agreement per category (verdicts, and BFCL error_type strings), every verdict
   disagreement in full, the cases where the official checker crashed, and the gold answers that fail
   on both sides (the data set's own quirks). Exit status 1 if any verdict disagrees.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bfcl_official as official  # noqa: E402
import _bfcl_official_cases as cases_mod  # noqa: E402


def _ours(cases: list[dict], categories: list[str]) -> tuple[list[dict], float]:
    from toolace_r.data import load

    return score_ours(cases, {ex.id: ex for ex in load("bfcl:" + ",".join(categories))})


def score_ours(cases: list[dict], examples: dict) -> tuple[list[dict], float]:
    """Our verdict on every case (a crash is recorded, not raised) and the seconds the checking took."""
    from toolace_r.evaluation.checker import check

    out = []
    start = time.perf_counter()
    for case in cases:
        try:
            v = check(examples[case["id"]], case["result"])
            out.append({"valid": v.valid, "error_type": v.bfcl_error_type,
                        "decoded": None if v.calls is None else [(c.name, c.arguments) for c in v.calls],
                        "crash": None})
        except Exception as exc:  # noqa: BLE001 - a crash of ours is a finding too
            out.append({"valid": None, "error_type": None, "decoded": None, "crash": f"{type(exc).__name__}: {exc}"})
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--per-item", type=int, default=4, help="perturbations per item (default 4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--limit", type=int, default=None, help="items per category (default all)")
    ap.add_argument("--categories", default=",".join(cases_mod.ALL_CATEGORIES))
    ap.add_argument("--show", type=int, default=200, help="disagreements to print in full")
    ap.add_argument("--quirks", action="store_true",
                    help="instead: re-check the hand-made QUIRK_CASES of tests/test_checker.py against the official checker")
    args = ap.parse_args(argv)
    if args.quirks:
        return check_quirk_cases()
    categories = [c for c in args.categories.split(",") if c]

    work = official.cache_dir() / "bfcl-agreement"
    work.mkdir(parents=True, exist_ok=True)
    cases = cases_mod.generate(tuple(categories), per_item=args.per_item, seed=args.seed, limit=args.limit)
    cases_path, official_path = work / "cases.jsonl", work / "official.jsonl"
    with open(cases_path, "w", encoding="utf-8") as fh:
        for c in cases:
            fh.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"{len(cases)} cases over {len(categories)} categories -> {cases_path}")

    start = time.perf_counter()
    official.run_worker("check", cases_path, official_path)
    print(f"official checker: {time.perf_counter() - start:.1f} s (incl. start-up)")
    with open(official_path, encoding="utf-8") as fh:
        theirs = {row["case"]: row for row in map(json.loads, fh)}
    ours, ours_s = _ours(cases, categories)
    print(f"ours: {ours_s:.1f} s")
    return report(cases, theirs, ours, args.show)


def check_quirk_cases() -> int:
    """The expected verdicts written in tests/test_checker.py must be the official checker's."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("test_checker", HERE.parent / "tests" / "test_checker.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    work = official.cache_dir() / "bfcl-agreement"
    work.mkdir(parents=True, exist_ok=True)
    cases_path, out_path = work / "quirks.jsonl", work / "quirks_official.jsonl"
    with open(cases_path, "w", encoding="utf-8") as fh:
        for name, category, functions, truth, text, _, _ in module.QUIRK_CASES:
            fh.write(json.dumps({"case": name, "category": category, "functions": functions, "truth": truth,
                                 "result": text}, ensure_ascii=False) + "\n")
    official.run_worker("inline", cases_path, out_path)
    with open(out_path, encoding="utf-8") as fh:
        theirs = {row["case"]: row for row in map(json.loads, fh)}
    wrong = 0
    for name, _, _, _, text, valid, bfcl_type in module.QUIRK_CASES:
        got = (theirs[name]["valid"], theirs[name]["error_type"])
        if got != (valid, bfcl_type):
            wrong += 1
            print(f"- {name}: test expects {(valid, bfcl_type)}, official gives {got} for {text!r}")
    print(f"{len(module.QUIRK_CASES) - wrong}/{len(module.QUIRK_CASES)} quirk cases match the official checker")
    return 1 if wrong else 0


def report(cases: list[dict], theirs: dict[int, dict], ours: list[dict], show: int) -> int:
    per_cat: dict[str, Counter] = defaultdict(Counter)
    per_kind: dict[str, Counter] = defaultdict(Counter)
    disagree, type_diff, crashes, gold_fail = [], [], [], []
    for case, mine in zip(cases, ours):
        off = theirs[case["case"]]
        c = per_cat[case["category"]]
        c["cases"] += 1
        if off["crash"]:
            crashes.append((case, off, mine))
            c["official_crash"] += 1
            continue
        same = off["valid"] == mine["valid"]
        c["agree"] += same
        per_kind[case["kind"]]["cases"] += 1
        per_kind[case["kind"]]["agree"] += same
        c["official_valid"] += bool(off["valid"])
        if not same:
            disagree.append((case, off, mine))
        elif not off["valid"] and off["error_type"] != mine["error_type"]:
            type_diff.append((case, off, mine))
        else:
            c["type_agree"] += 1
        if case["kind"] in ("gold_first", "gold_minimal") and not (off["valid"] and mine["valid"]):
            gold_fail.append((case, off, mine))

    print(f"\n{'category':<24}{'cases':>7}{'agree':>7}{'verdict %':>11}{'err type %':>12}{'BFCL valid':>12}{'crash':>7}")
    total = Counter()
    for cat, c in per_cat.items():
        total.update(c)
        scored = c["cases"] - c["official_crash"]
        print(f"{cat:<24}{c['cases']:>7}{c['agree']:>7}{100 * c['agree'] / max(1, scored):>10.2f}%"
              f"{100 * c['type_agree'] / max(1, scored):>11.2f}%{c['official_valid']:>12}{c['official_crash']:>7}")
    scored = total["cases"] - total["official_crash"]
    print(f"{'TOTAL':<24}{total['cases']:>7}{total['agree']:>7}{100 * total['agree'] / max(1, scored):>10.2f}%"
          f"{100 * total['type_agree'] / max(1, scored):>11.2f}%{total['official_valid']:>12}"
          f"{total['official_crash']:>7}")
    print("\nper output kind (verdict agreement): " + ", ".join(
        f"{k} {v['agree']}/{v['cases']}" for k, v in sorted(per_kind.items())))

    def show_case(tag, case, off, mine):
        print(f"- [{tag}] case {case['case']} {case['id']} ({case['category']}, {case['kind']}): {case['result']!r}")
        print(f"    official: valid={off['valid']} {off['error_type']} crash={off['crash']} decoded={off['decoded']}")
        print(f"    ours:     valid={mine['valid']} {mine['error_type']} crash={mine['crash']} decoded={mine['decoded']}")

    print(f"\nverdict disagreements: {len(disagree)} (grouped by output text)")
    groups: dict[str, list] = defaultdict(list)
    for row in disagree:
        groups[row[0]["result"]].append(row)
    for rows in list(groups.values())[:show]:
        show_case(f"verdict x{len(rows)}: " + ", ".join(sorted({r[0]['category'] for r in rows})), *rows[0])
    print(f"\nerror-type differences (same verdict): {len(type_diff)}")
    for row in type_diff[: min(show, 30)]:
        show_case("type", *row)
    print(f"\nofficial checker crashed: {len(crashes)} (ours on those: "
          f"{Counter(str(m['valid']) for _, _, m in crashes)})")
    for row in crashes[: min(show, 30)]:
        show_case("crash", *row)
    print(f"\ngold answers (first acceptable values; gold_minimal: optional ones left out) failing on either "
          f"side: {len(gold_fail)}")
    for row in gold_fail:
        show_case("gold", *row)
    return 1 if disagree else 0


if __name__ == "__main__":
    raise SystemExit(main())
