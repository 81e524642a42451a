"""Verdict-for-verdict agreement of toolace_r.evaluation.acebench with ACEBench's own evaluation code.

    python benchmarks/acebench_agreement.py ACEBENCH_DIR [--quick] [--show N]

For every English item of the 15 normal and special categories it writes many outputs: the right
answer rendered from the ground truth, each quirk's trigger (whitespace, bare names, suffixed names,
`\\x20` escapes, 'true' strings, prefixed names, positional arguments, tuples/sets/bare calls, code
fences, JSON), wrong, missing and extra values and parameters, reversed parallel calls, random leaf
mutations, and for the special categories the phrases and their near misses. Each output is scored
by our checker here and by ACEBench's functions in a separate venv (_acebench_official.py); verdicts
are compared one by one. Last line: `agreement: X/Y (Z%)`. `--quick`: 5 items per category.
"""
from __future__ import annotations

import argparse
import collections
import json
import random
import re
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "src"))

from toolace_r.data import load  # noqa: E402
from toolace_r.evaluation.acebench import check  # noqa: E402

import _acebench_official  # noqa: E402

_SUFFIX = re.compile(r"_\d+$")


def lit(v, space_escape=False, bare=False):
    if isinstance(v, str):
        if bare and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) and v not in ("True", "False", "None"):
            return v
        r = repr(v)
        return r.replace(" ", "\\x20") if space_escape else r
    if isinstance(v, list):
        return "[" + ", ".join(lit(x, space_escape, bare) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k!r}: {lit(x, space_escape, bare)}" for k, x in v.items()) + "}"
    return repr(v)


def render(calls, space_escape=False, bare=False, prefix="", wrap="[]", positional=False):
    parts = []
    for name, args in calls:
        if positional:
            inner = ", ".join(lit(v, space_escape, bare) for v in args.values())
        else:
            inner = ", ".join(f"{k}={lit(v, space_escape, bare)}" for k, v in args.items())
        parts.append(f"{prefix}{name}({inner})")
    body = ", ".join(parts)
    return {"[]": f"[{body}]", "()": f"({body},)", "{}": "{" + body + "}", "": body}[wrap]


def mutate_leaf(value, rng):
    """A copy with one random leaf changed (strings, numbers, booleans, lists, dicts)."""
    if isinstance(value, dict) and value:
        k = rng.choice(list(value))
        out = dict(value)
        action = rng.random()
        if action < 0.15:
            del out[k]
        elif action < 0.25:
            out["extraKey"] = "x"
        else:
            out[k] = mutate_leaf(value[k], rng)
        return out
    if isinstance(value, list) and value:
        i = rng.randrange(len(value))
        out = list(value)
        action = rng.random()
        if action < 0.2:
            out.reverse()
        elif action < 0.35:
            out.append(out[i])
        elif action < 0.45:
            out.pop(i)
        else:
            out[i] = mutate_leaf(value[i], rng)
        return out
    if isinstance(value, bool):
        return rng.choice([not value, "true" if value else "false", 1, "yes"])
    if isinstance(value, int):
        return rng.choice([value + 1, float(value), str(value), -value, value * 10, 0])
    if isinstance(value, float):
        return rng.choice([value + 1, int(value), str(value), round(value, 1), -value])
    if isinstance(value, str):
        return rng.choice([value.upper(), value + " extra", value[: max(1, len(value) // 2)], "zzqx",
                           "true", value.replace(" ", "-"), "", value + "!", f"The {value}"])
    if value is None:
        return rng.choice(["None", "null", 0])
    return "x"


def normal_variants(gold, rng, quick):
    calls = [(_SUFFIX.sub("", k), dict(v)) for k, v in gold.items()]
    out = {
        "right": render(calls),
        "right_x20": render(calls, space_escape=True),
        "bare_names": render(calls, bare=True),
        "tuple": render(calls, wrap="()"),
        "set": render(calls, wrap="{}"),
        "bare_call": render(calls, wrap=""),
        "suffixed": render([(k, dict(v)) for k, v in gold.items()]),
        "prefixed": render(calls, prefix="functions."),
        "positional": render(calls, positional=True),
        "fenced": "```python\n" + render(calls) + "\n```",
        "prose": "Sure! " + render(calls),
        "json": json.dumps([{"name": n, "arguments": a} for n, a in calls]),
        "empty_list": "[]",
        "empty": "",
        "garbage": "I cannot do that [",
        "spaced": render(calls).replace("=", " = ").replace(",", " ,\n  "),
        "nbsp": render(calls).replace(" ", "\u00a0"),
        "doubled": render(calls + calls[:1]),
        "dropped_call": render(calls[:-1]),
        "reversed": render(list(reversed(calls))),
        "wrong_name": render([(n + "X", a) for n, a in calls]),
        "no_args": render([(n, {}) for n, _ in calls]),
        "extra_param": render([(n, {**a, "extra_param": "x"}) for n, a in calls]),
    }
    for i, (name, args) in enumerate(calls):
        for p in list(args)[: (2 if quick else 6)]:
            dropped = [(n, {k: v for k, v in a.items() if not (j == i and k == p)}) for j, (n, a) in enumerate(calls)]
            out[f"drop_{i}_{p}"] = render(dropped)
    n_random = 4 if quick else 16
    for r in range(n_random):
        i = rng.randrange(len(calls))
        name, args = calls[i]
        if not args:
            continue
        mutated = list(calls)
        mutated[i] = (name, mutate_leaf(args, rng) if rng.random() < 0.3 else
                      {**args, (p := rng.choice(list(args))): mutate_leaf(args[p], rng)})
        out[f"mutate_{r}"] = render(mutated, space_escape=rng.random() < 0.3, bare=rng.random() < 0.2)
    name, args = calls[0]
    if args:
        p, v = next(iter(args.items()))
        rest = "".join(f", {k}={lit(x)}" for k, x in list(args.items())[1:])
        others = "".join(", " + render([c])[1:-1] for c in calls[1:])
        exprs = {"subscript": "v[0]", "attribute": "a.b", "fstring": "f'x'", "set": "{1}", "lambda": "lambda:1",
                 "not": "not(True)", "invert": "~3", "neg_name": "-x", "compare": "1<2", "call": "G(k=1)",
                 "call0": "H()", "neg_str": "-'a'", "complex": "2j", "div0": "1/0", "listadd": "[1]+[2]"}
        if isinstance(v, str) and len(v) > 1:
            exprs["concat"] = f"{v[: len(v) // 2]!r}+{v[len(v) // 2:]!r}"
        for label, e in exprs.items():
            out[f"expr_{label}"] = f"[{name}({p}={e}{rest}){others}]"
        out["starstar"] = f"[{name}(**k{rest}){others}]"
    out["arith"] = re.sub(r"=(\d+)\b", r"=\1+0", render(calls), count=1)
    out["unary_plus"] = re.sub(r"=(\d+)\b", r"=+\1", render(calls), count=1)
    out["bare_true"] = render(calls).replace("True", "true").replace("False", "false")
    out["string_true"] = render(calls).replace("True", "'true'").replace("False", "'false'")
    return out


def special_variants(cat, gold, text):
    out = {"right": text, "lower": text.lower(), "upper": text.upper(), "call": "[F(x='a')]", "empty": "",
           "fenced": "```\n" + text + "\n```", "bracketed": f'["{text}"]'}
    out["irrelevant_phrase"] = "Due to the limitations of the function, I cannot solve this problem."
    out["irrelevant_plural"] = "Due to the limitations of the functions, I cannot solve this problem."
    out["irrelevant_caps"] = "Due to the Limitations of the function, I cannot solve this problem."
    out["irrelevant_spaced"] = "Due to the limitations of  the function."
    out["irrelevant_in_call"] = '[F(s="the limitations of the function")]'
    if cat == "special_incomplete":
        for api, params in gold.items():
            out["natural"] = f"Missing necessary parameters ({', '.join(p.strip() for p in params)}) for the api ({api})"
            out["no_api"] = f"Missing necessary parameters ({', '.join(params)}) for the api (Other)"
            out["one_param"] = f"Missing necessary parameters ({params[0]}) for the api ({api})"
            out["lower_mark"] = f"missing necessary parameters ({', '.join(params)}) for the api ({api})"
            out["reordered"] = f"Missing necessary parameters ({', '.join(reversed(params))}) for the api ({api})"
    if cat == "special_error_param":
        for key, values in gold.items():
            out["no_key"] = f"There is incorrect value ({', '.join(values)})"
            out["other_key"] = f"There is incorrect value ({', '.join(values)}) for the parameters (whatever)"
            out["plural"] = f"There are incorrect values ({', '.join(values)}) for the parameters ({key})"
            out["value_lower"] = f"There is incorrect value ({', '.join(values).lower()}) for the parameters ({key})"
            out["first_value"] = f"There is incorrect value ({values[0]}) for the parameters ({key})"
    out["missing_phrase"] = "Missing necessary parameters (x) for the api (y)"
    out["error_phrase"] = "There is incorrect value (x) for the parameters (y) in the conversation history."
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("acebench_dir", type=Path)
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--show", type=int, default=10)
    args = ap.parse_args()
    rng = random.Random(0)
    examples = load("acebench:all", data_dir=str(args.acebench_dir))
    per_cat = collections.Counter()
    cases, ours = [], []
    for ex in examples:
        if args.quick and per_cat[ex.category] >= 5:
            continue
        per_cat[ex.category] += 1
        meta = ex.metadata["acebench"]
        truth = meta["ground_truth"]
        if ex.category.startswith("special"):
            variants = special_variants(ex.category, truth, ex.gold.text)
        else:
            alts = truth if isinstance(truth, list) else [truth]
            variants = {}
            for a, alt in enumerate(alts):
                variants.update({(f"alt{a}_" if a else "") + k: v for k, v in normal_variants(alt, rng, args.quick).items()})
        for kind, text in variants.items():
            cases.append({"case": len(cases), "id": ex.id, "category": ex.category, "kind": kind, "result": text})
            ours.append(check(ex, text).valid)
    with tempfile.TemporaryDirectory() as tmp:
        cases_path, out_path = Path(tmp) / "cases.jsonl", Path(tmp) / "out.jsonl"
        with open(cases_path, "w", encoding="utf-8") as fh:
            for c in cases:
                fh.write(json.dumps(c, ensure_ascii=False) + "\n")
        _acebench_official.run_worker(args.acebench_dir.resolve(), cases_path, out_path)
        official = {}
        crashes = 0
        for line in open(out_path, encoding="utf-8"):
            rec = json.loads(line)
            official[rec["case"]] = rec["valid"]
            crashes += rec["crash"] is not None
    totals, agree, diffs = collections.Counter(), collections.Counter(), []
    for c, mine in zip(cases, ours):
        theirs = official[c["case"]]
        totals[c["category"]] += 1
        if mine == theirs:
            agree[c["category"]] += 1
        else:
            diffs.append((c, mine, theirs))
    for cat in totals:
        print(f"{cat:40s} {agree[cat]:6d}/{totals[cat]:<6d} ({100 * agree[cat] / totals[cat]:.2f}%)")
    valid = sum(official.values())
    print(f"official verdicts: {valid} right, {len(official) - valid} wrong, {crashes} raised an exception")
    for c, mine, theirs in diffs[: args.show]:
        print(f"DIFF {c['id']} [{c['kind']}] ours={mine} official={theirs}: {c['result'][:200]!r}")
    n, a = sum(totals.values()), sum(agree.values())
    print(f"agreement: {a}/{n} ({100 * a / n:.2f}%)")
    return 0 if a == n else 1


if __name__ == "__main__":
    sys.exit(main())
