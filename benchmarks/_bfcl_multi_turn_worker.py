"""Runs INSIDE the separate bfcl-eval venv (see _bfcl_official.py); never imports toolace_r.

    python _bfcl_multi_turn_worker.py check CASES.jsonl OUT.jsonl

CASES lines: {"case": n, "id": <BFCL id>, "category": <category>, "result": [[step text, ...] per turn]}
(the raw model text of every step, as BFCL's inference writes a multi-turn result). `check` scores
each case with the official runner's own per-entry function (`_evaluate_single_multi_turn_entry`:
prompt-mode decoding of each step, then `multi_turn_checker`) and writes
{"case", "valid", "error_type", "crash", "results"} per line, then {"seconds": <time spent scoring>}.
`results` are the model's execution results, per turn and kept step, from a second replay of the
decoded steps through BFCL's executor alone (`execute_multi_turn_func_call`), not timed.

BFCL keeps the simulated API instances in `multi_turn_utils`' globals, keyed by model name, entry
id and class, so a second trajectory for the same entry would start from the first one's final
state; every instance a case created is deleted after it, which is what one `bfcl evaluate` run per
trajectory would give.
"""
from __future__ import annotations

import copy
import json
import sys
import time
import warnings

import _bfcl_official_worker as official  # noqa: F401  (installs the third-party stubs first)
from bfcl_eval.eval_checker import eval_runner
from bfcl_eval.eval_checker.multi_turn_eval import multi_turn_utils
from bfcl_eval.model_handler.utils import default_decode_execute_prompting
from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry

MODEL_NAME = official.MODEL_NAME
warnings.simplefilter("ignore")  # BFCL's eval of odd call text warns ("'int' object is not callable; ...")


class PromptHandler:
    """What every prompt-mode handler's decode_execute does."""

    def decode_execute(self, result, has_tool_call_tag=False):
        return default_decode_execute_prompting(result, has_tool_call_tag)


HANDLER = PromptHandler()


def load_category(category):
    prompts = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    answers = load_ground_truth_entry(category)
    return {p["id"]: (p, a["ground_truth"]) for p, a in zip(prompts, answers)}


def evaluate(case, data):
    prompt, truth = data[case["category"]][case["id"]]
    before = set(vars(multi_turn_utils))
    try:
        return eval_runner._evaluate_single_multi_turn_entry(
            HANDLER, case["id"], case["result"], truth, copy.deepcopy(prompt), MODEL_NAME, case["category"])
    finally:
        for name in set(vars(multi_turn_utils)) - before:
            delattr(multi_turn_utils, name)


def execute(case, data):
    """The model's steps, decoded and kept as the runner keeps them, through BFCL's executor."""
    prompt, _ = data[case["category"]][case["id"]]
    test_category = case["id"].rsplit("_", 1)[0]
    before = set(vars(multi_turn_utils))
    out = []
    try:
        for steps in case["result"]:
            turn = []
            for text in steps:
                try:
                    decoded = HANDLER.decode_execute(text)
                except Exception:  # noqa: BLE001 - the runner skips such a step
                    continue
                if multi_turn_utils.is_empty_execute_response(decoded):
                    continue
                results, _ = multi_turn_utils.execute_multi_turn_func_call(
                    decoded, prompt["initial_config"], prompt["involved_classes"], MODEL_NAME, case["id"],
                    long_context="long_context" in test_category or "composite" in test_category, is_evaL_run=True)
                turn.append(results)
            out.append(turn)
    finally:
        for name in set(vars(multi_turn_utils)) - before:
            delattr(multi_turn_utils, name)
    return out


def _read_cases(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _data_for(cases):
    return {cat: load_category(cat) for cat in sorted({c["category"] for c in cases})}


def cmd_check(cases_path, out_path):
    cases = _read_cases(cases_path)
    data = _data_for(cases)
    clock = time.perf_counter
    spent = 0.0
    with open(out_path, "w", encoding="utf-8") as out:
        for case in cases:
            start = clock()
            row = {"case": case["case"], "valid": None, "error_type": None, "crash": None}
            try:
                verdict = evaluate(case, data)
                row["valid"] = bool(verdict["valid"])
                row["error_type"] = (verdict.get("error") or {}).get("error_type")
            except Exception as exc:  # noqa: BLE001 - the official checker crashing is a finding
                row["crash"] = f"{type(exc).__name__}: {exc}"[:300]
            spent += clock() - start
            try:
                row["results"] = execute(case, data)
            except Exception as exc:  # noqa: BLE001
                row["results"] = f"crash: {type(exc).__name__}: {exc}"[:300]
            out.write(json.dumps(row) + "\n")
        out.write(json.dumps({"seconds": spent}) + "\n")


if __name__ == "__main__":
    mode, cases_arg, out_arg = sys.argv[1:4]
    if mode == "check":
        cmd_check(cases_arg, out_arg)
    else:
        raise SystemExit(f"unknown mode {mode!r} (known: check)")
