"""API-Bank figures from a DAMO-ConvAI checkout (docs/benchmarks.md).

    python benchmarks/apibank_counts.py DIR [--official-extraction]

DIR: the checkout root or its api-bank folder. Prints, per level: samples (the published test sets
have 399 and 135), repeats among them, recorded expected_output strings that are not valid Python
call syntax (and how many still do not decode after our repair), and our checker's verdicts on the
recorded answers (all should be right) and on perturbed ones (all should be wrong, except the
"no prefix" and "reformatted" ones, which should be right).

--official-extraction also runs the checkout's own api_call_extraction.py (only that file: it needs
nothing but `re`) in a separate `python3` process and counts the answers where its API name and
argument strings differ from ours. The execution-based part of the official evaluator is not run: its
ToolManager imports every API module, one of which loads a sentence-transformers model (network).
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

from toolace_r.calls import ToolCall, parse, render
from toolace_r.data.apibank import find_root
from toolace_r.data.registry import load
from toolace_r.evaluation.apibank import check, decode


def perturbations(gold: ToolCall) -> dict[str, tuple[str, bool]]:
    """name -> (answer text, should be right)."""
    out: dict[str, tuple[str, bool]] = {
        "no prefix": (render([gold], "pythonic"), True),
        "reformatted": ("API-Request: " + render([ToolCall(gold.name, dict(reversed(list(gold.arguments.items()))))],
                                                 "pythonic") + "\n", True),
        "wrong name": ("API-Request: " + render([ToolCall(gold.name + "X", gold.arguments)], "pythonic"), False),
        "no call": ("I will call the API now.", False),
    }
    if gold.arguments:
        first = next(iter(gold.arguments))
        fewer = {k: v for k, v in gold.arguments.items() if k != first}
        out["dropped argument"] = ("API-Request: " + render([ToolCall(gold.name, fewer)], "pythonic"), False)
        changed = dict(gold.arguments)
        changed[first] = str(changed[first]) + "9"
        out["changed value"] = ("API-Request: " + render([ToolCall(gold.name, changed)], "pythonic"), False)
    out["extra argument"] = ("API-Request: " + render([ToolCall(gold.name, {**gold.arguments, "zz_extra": "1"})],
                                                      "pythonic"), False)
    return out


_OFFICIAL = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from api_call_extraction import get_api_call, parse_api_call
out = []
for text in json.load(sys.stdin):
    span = get_api_call(text)
    if span is None:
        out.append(None)
        continue
    try:
        out.append(list(parse_api_call(span)))
    except Exception as e:
        out.append(["<error>", str(e)])
json.dump(out, sys.stdout)
"""


def official_extraction(root: Path, texts: list[str]) -> list:
    proc = subprocess.run(["python3", "-I", "-c", _OFFICIAL, str(root)], input=json.dumps(texts),
                          capture_output=True, text=True, timeout=300, check=True)
    return json.loads(proc.stdout)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("dir")
    ap.add_argument("--official-extraction", action="store_true")
    args = ap.parse_args(argv)
    root = find_root(args.dir)
    all_texts: list[str] = []
    all_ours: list = []
    for level in ("level-1", "level-2"):
        exs = load(f"apibank:{level}@{root}")
        repeats = sum(e.metadata["repeat"] for e in exs)
        raw_bad = sum(not parse(e.metadata["expected_output"].split("API-Request:", 1)[-1].strip(),
                                "pythonic").is_call for e in exs)
        still_bad = sum(not decode(e.metadata["expected_output"]).is_call for e in exs)
        gold_right = sum(check(e, e.metadata["expected_output"]).valid for e in exs)
        tally: Counter = Counter()
        for e in exs:
            for name, (text, should) in perturbations(e.gold.calls[0]).items():
                tally[(name, check(e, text).valid == should)] += 1
                all_texts.append(text)
                all_ours.append(decode(text))
            all_texts.append(e.metadata["expected_output"])
            all_ours.append(decode(e.metadata["expected_output"]))
        files = len({e.metadata["file"] for e in exs})
        print(f"{level}: {len(exs)} samples from {files} dialogues ({len(exs) - repeats} API turns + "
              f"{repeats} official repeats)")
        print(f"  expected_output not valid Python: {raw_bad} ({raw_bad / len(exs):.1%}); "
              f"not decodable after our repair: {still_bad}")
        print(f"  recorded answers scored right: {gold_right}/{len(exs)}")
        for name in dict.fromkeys(n for n, _ in tally):
            ok, bad = tally[(name, True)], tally[(name, False)]
            print(f"  perturbation {name!r}: verdict as intended {ok}/{ok + bad}")
    if args.official_extraction:
        theirs = official_extraction(root, all_texts)
        agree = differ = 0
        examples = []
        for text, ours, off in zip(all_texts, all_ours, theirs):
            mine = None if not ours.is_call else [ours.calls[0].name,
                                                  {k: str(v) for k, v in ours.calls[0].arguments.items()}]
            same = (mine is None and off is None) or (mine is not None and off is not None and mine[0] == off[0]
                                                      and mine[1] == off[1])
            agree += same
            differ += not same
            if not same and len(examples) < 5:
                examples.append((text[:160], mine, off))
        print(f"official extraction vs ours (API name and argument strings): agree {agree}, differ {differ}")
        for ex in examples:
            print("  e.g.", ex)
    return 0


if __name__ == "__main__":
    sys.exit(main())
