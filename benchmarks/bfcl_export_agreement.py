"""Does BFCL's own evaluator give the scores toolace-r gives, on the files `eval --export-bfcl` writes?

    .venv/bin/python benchmarks/bfcl_export_agreement.py [--quick] [--categories a,b] [--limit N] [--seed 0]

1. Builds one prediction per item of BFCL's single-turn categories from its own data
   (_bfcl_official_cases.py; _bfcl_java_js_cases.py for simple_java and simple_javascript): half the items (alternating) a gold answer rendered pythonic, the rest
   a perturbed, mostly wrong answer; relevance items a refusal or a call.
2. Scores them with `toolace-r eval --predictions ... --export-bfcl DIR` (our scores, and the export).
3. Runs the official evaluator on DIR in bfcl-eval's own venv (_bfcl_official.py; its entry point
   eval_runner.main, as `bfcl evaluate --partial-eval` does, with BFCL_PROJECT_ROOT in the cache dir).
4. Prints both accuracies per category and whether they agree, then the item-level agreement (an
   item is wrong for BFCL when its score file lists it). Last line: the agreement as a ratio.
   Exit status 1 on any disagreement.

--quick: the first 10 items of each category.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bfcl_java_js_cases as java_js_cases  # noqa: E402
import _bfcl_official as official  # noqa: E402
import _bfcl_official_cases as cases_mod  # noqa: E402

CATEGORIES = cases_mod.AST_CATEGORIES + java_js_cases.CATEGORIES + cases_mod.RELEVANCE_CATEGORIES
MODEL = "Team-ACE/ToolACE-2-8B"  # evaluation/bfcl_export.py: a prompt-mode entry of BFCL's model config


def predictions(categories: list[str], limit: int | None, seed: int) -> list[dict]:
    """One {"id", "category", "kind", "result"} per item: gold for even items, a perturbation for odd."""
    python = tuple(c for c in categories if c not in java_js_cases.CATEGORIES)
    java_js = tuple(c for c in categories if c in java_js_cases.CATEGORIES)
    cases = cases_mod.generate(python, per_item=4, seed=seed, limit=limit) if python else []
    if java_js:  # written as Java/JavaScript source (their golds are not pythonic)
        cases += [c for c in java_js_cases.generate(java_js, per_item=4, seed=seed, limit=limit)
                  if c["kind"] != "handmade"]
    by_id: dict[str, list[dict]] = {}
    for case in cases:
        by_id.setdefault(case["id"], []).append(case)
    rng = random.Random(seed)
    out = []
    for i, (item_id, options) in enumerate(by_id.items()):
        gold = [c for c in options if c["kind"].startswith("gold")]
        other = [c for c in options if not c["kind"].startswith("gold")] or options
        pick = rng.choice(gold if gold and i % 2 == 0 else other)
        out.append({"id": item_id, "category": pick["category"], "kind": pick["kind"], "result": pick["result"]})
    # An item the generator made nothing for (a relevance item without functions): a refusal, so that
    # every item has a prediction and both sides score the same set.
    for cat in categories:
        load_items = java_js_cases.load_items if cat in java_js_cases.CATEGORIES else cases_mod.load_items
        for item in load_items(cat)[:limit]:
            if item["id"] not in by_id:
                out.append({"id": item["id"], "category": cat, "kind": "refusal",
                            "result": "None of the functions can answer this."})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="the first 10 items of each category")
    ap.add_argument("--limit", type=int, default=None, help="items per category (default all)")
    ap.add_argument("--categories", default=",".join(CATEGORIES))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    limit = 10 if args.quick and args.limit is None else args.limit
    categories = [c for c in args.categories.split(",") if c]

    work = official.cache_dir() / "bfcl-export-agreement"
    export, ours_dir = work / "bfcl_result", work / "ours"
    if export.exists():  # a previous run's files would be scored too
        import shutil

        shutil.rmtree(export)
    work.mkdir(parents=True, exist_ok=True)
    preds = predictions(categories, limit, args.seed)
    preds_path = work / "predictions.jsonl"
    preds_path.write_text("".join(json.dumps({"id": p["id"], "result": p["result"]}, ensure_ascii=False) + "\n"
                                  for p in preds), encoding="utf-8")
    print(f"{len(preds)} predictions over {len(categories)} categories -> {preds_path}")

    from toolace_r.cli import main as toolace_r

    argv = ["eval", "--benchmark", "bfcl", "--categories", ",".join(categories), "--predictions", str(preds_path),
            "--out", str(ours_dir), "--export-bfcl", str(export), "--bfcl-model-name", MODEL]
    if limit is not None:
        argv += ["--limit", str(limit)]
    if toolace_r(argv) != 0:
        raise SystemExit("toolace-r eval failed")
    ours = json.loads((ours_dir / "metrics.json").read_text())["categories"]
    our_valid = {r["id"]: r["valid"] for r in map(json.loads, (ours_dir / "results.jsonl").read_text().splitlines())}

    official_out = work / "official.json"
    env = {"BFCL_PROJECT_ROOT": str(work / "bfcl_root")}
    if any(c in java_js_cases.CATEGORIES for c in categories):  # BFCL decodes those with tree-sitter
        env[official.REAL_TREE_SITTER] = "1"
    official.run_worker("evaluate", export, official_out, [MODEL, ",".join(categories)], env=env)
    theirs = json.loads(official_out.read_text())
    if theirs["crash"]:
        print(f"(official evaluator, after scoring: {theirs['crash']})")

    print(f"\n{'category':<24}{'items':>7}{'toolace-r %':>13}{'BFCL %':>9}  agree")
    agree_cats, agree_items, items = 0, 0, 0
    for cat in categories:
        mine, off = ours.get(cat), theirs["scores"].get(cat)
        if off is None:
            print(f"{cat:<24}{mine['total'] if mine else 0:>7}{100 * (mine['accuracy'] or 0):>12.2f}%{'-':>9}  "
                  "no official score")
            continue
        wrong = {json.loads(line)["id"] for line in Path(off["score_file"]).read_text().splitlines()[1:]}
        ids = [p["id"] for p in preds if p["category"] == cat]
        same = sum(our_valid[i] == (i not in wrong) for i in ids)
        agree_items += same
        items += len(ids)
        ok = mine["correct"] == off["correct"] and mine["total"] == off["total"] and same == len(ids)
        agree_cats += ok
        print(f"{cat:<24}{off['total']:>7}{100 * mine['accuracy']:>12.2f}%{100 * off['accuracy']:>8.2f}%  "
              f"{'yes' if ok else f'NO ({same}/{len(ids)} items)'}")
    print(f"\ncategories agreeing: {agree_cats}/{len(categories)}")
    print(f"agreement: {agree_items}/{items} items = {agree_items / max(1, items):.4f}")
    return 0 if agree_cats == len(categories) and agree_items == items else 1


if __name__ == "__main__":
    raise SystemExit(main())
