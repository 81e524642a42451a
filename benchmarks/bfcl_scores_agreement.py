"""Are toolace-r's BFCL V4/V3 overall scores BFCL's? Hand-built category scores through both.

    .venv/bin/python benchmarks/bfcl_scores_agreement.py [--tables 40] [--fixture tests/fixtures/bfcl_leaderboard_official.json]

Builds random {category: (correct, total)} tables over every scored V4 category (plus all-right and
all-wrong ones), runs BFCL's own generate_leaderboard_csv on each in bfcl-eval's venv (its weighted
V4 overall captured as it is computed; V3's overall composed from the same helper functions as BFCL's
V3 release composed it), and compares with `toolace_r.evaluation.bfcl_scores.leaderboard`, float for
float. --fixture writes the tables and BFCL's figures for tests/test_bfcl_scores.py.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import _bfcl_official as official  # noqa: E402

CATEGORIES = ("simple_python", "simple_java", "simple_javascript", "multiple", "parallel", "parallel_multiple",
              "irrelevance", "live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
              "live_irrelevance", "live_relevance", "multi_turn_base", "multi_turn_miss_func",
              "multi_turn_miss_param", "multi_turn_long_context", "web_search_base", "web_search_no_snippet",
              "memory_kv", "memory_vector", "memory_rec_sum")


def tables(n: int, seed: int) -> list[dict[str, list[int]]]:
    rng = random.Random(seed)
    out = [{c: [7, 7] for c in CATEGORIES}, {c: [0, 7] for c in CATEGORIES}]
    while len(out) < n:
        out.append({c: [rng.randint(0, t), t] for c in CATEGORIES
                    for t in [rng.choice([1, 3, 16, 24, 50, 100, 155, 200, 258, 884, 1053])]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tables", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--fixture", type=Path, default=None)
    args = ap.parse_args(argv)
    from toolace_r.evaluation.bfcl_scores import leaderboard

    work = official.cache_dir() / "bfcl-scores"
    work.mkdir(parents=True, exist_ok=True)
    built = tables(args.tables, args.seed)
    (work / "tables.json").write_text(json.dumps({"tables": built}))
    official.run_worker("leaderboard", work / "tables.json", work / "official.json")
    theirs = json.loads((work / "official.json").read_text())["results"]
    same = 0
    for table, off in zip(built, theirs):
        ours = leaderboard({c: tuple(v) for c, v in table.items()})
        v4 = ours["v4"]["scores"]
        mine = (ours["v4"]["overall"], [v4[p]["accuracy"] for p in ("non_live", "live", "irrelevance", "multi_turn", "agentic")],
                ours["v3"]["overall"], [ours["v3"]["scores"][p]["accuracy"] for p in ("live", "non_live", "multi_turn")])
        bfcl = (off["v4"]["overall"], off["v4"]["parts"], off["v3"]["overall"], off["v3"]["parts"])
        if mine == bfcl:
            same += 1
        else:
            print(f"- differs: ours {mine}\n  BFCL {bfcl}")
    if args.fixture is not None:
        args.fixture.write_text(json.dumps({"source": "benchmarks/bfcl_scores_agreement.py --fixture (BFCL's own "
                                                      "leaderboard helper)", "tables": built, "bfcl": theirs}) + "\n")
        print(f"wrote {len(built)} tables to {args.fixture}")
    print(f"tables whose V4 and V3 overall and parts equal BFCL's exactly: {same}/{len(built)}")
    return 0 if same == len(built) else 1


if __name__ == "__main__":
    raise SystemExit(main())
