"""Runs INSIDE the separate bfcl-eval venv (see _bfcl_official.py); never imports toolace_r.

    python _bfcl_official_worker.py check CASES.jsonl OUT.jsonl
    python _bfcl_official_worker.py time  CASES.jsonl OUT.json [REPEATS]
    python _bfcl_official_worker.py inline CASES.jsonl OUT.jsonl   (cases carrying functions + key)
    python _bfcl_official_worker.py leaderboard TABLES.json OUT.json   (BFCL's overall arithmetic)
    python _bfcl_official_worker.py evaluate RESULT_DIR OUT.json MODEL CATEGORIES
        (`bfcl evaluate --model MODEL --test-category CATEGORIES --result-dir RESULT_DIR --partial-eval`
        through its own entry point, eval_runner.main; OUT.json: the accuracy of each category's score
        file, and the leaderboard step's crash if any. Set BFCL_PROJECT_ROOT to a scratch folder.)

CASES lines: {"case": n, "id": <BFCL id>, "category": <category>, "result": <raw model text>}.
`check` writes one line per case: {"case", "valid", "error_type", "decoded", "crash"}, using the
official runner's own per-entry functions (`_evaluate_single_ast_entry` /
`_evaluate_single_relevance_entry`) with a prompt-mode handler, exactly as `bfcl evaluate` scores
a prompt model. `time` writes the seconds per item of the same decode+check path.

The exec categories have no official AST key; their key is built the way BFCL reads any answer:
each answer string decoded by BFCL's own decoder, every argument value made its one acceptable value,
the whole passed through JSON (as answer files are), so tuples become lists.
"""
from __future__ import annotations

import importlib.abc
import importlib.machinery
import json
import os
import sys
import time
import types

# Third-party modules that bfcl-eval's import chain names (API clients, retry helpers, tree-sitter,
# pandas...) but that the decode+check path never calls. Each becomes a permissive stand-in.
STUBBED = {
    "anthropic", "tree_sitter", "tree_sitter_java", "tree_sitter_javascript", "filelock", "tenacity",
    "cohere", "openai", "google", "httpx", "requests", "mistralai", "boto3", "qwen_agent",
    "writerai", "datamodel_code_generator", "numpy", "pandas", "dotenv", "tqdm",
}


class _StandInMeta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(name)

    def __or__(cls, other):
        return cls

    __ror__ = __and__ = __rand__ = __or__


class _StandIn(metaclass=_StandInMeta):
    def __init__(self, *args, **kwargs):
        pass

    def __call__(self, *args, **kwargs):
        # Used as a decorator factory's product: hand the decorated function back unchanged.
        if len(args) == 1 and callable(args[0]) and not kwargs:
            return args[0]
        return self

    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(name)()

    def __or__(self, other):
        return self

    __ror__ = __and__ = __rand__ = __or__

    def __enter__(self):  # file locks
        return self

    def __exit__(self, *exc):
        return False


def _stand_in(name):
    return _StandInMeta(name, (_StandIn,), {})


class _StandInModule(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(name)


class _StubFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, fullname, path, target=None):
        if fullname.split(".")[0] not in STUBBED:
            return None
        return importlib.machinery.ModuleSpec(fullname, self, is_package=True)

    def create_module(self, spec):
        return _StandInModule(spec.name)

    def exec_module(self, module):
        module.__path__ = []


# Java/JavaScript categories need the real parsers (_bfcl_official.ensure_tree_sitter installs them).
if os.environ.get("BFCL_REAL_TREE_SITTER"):
    STUBBED -= {"tree_sitter", "tree_sitter_java", "tree_sitter_javascript"}

sys.meta_path.insert(0, _StubFinder())

# overrides decorates the handlers' methods (decode_ast...): its decorators must hand them back unchanged,
# or `evaluate` (which builds the model's real handler) would call a stand-in.
_overrides = types.ModuleType("overrides")
_overrides.override = _overrides.final = lambda f: f  # type: ignore[attr-defined]
_overrides.EnforceOverrides = type("EnforceOverrides", (), {})  # type: ignore[attr-defined]
sys.modules.setdefault("overrides", _overrides)

# tqdm wraps the evaluator's loops: a stand-in must hand the iterable back.
_tqdm = types.ModuleType("tqdm")
_tqdm.tqdm = lambda iterable=None, *args, **kwargs: iterable  # type: ignore[attr-defined]
sys.modules.setdefault("tqdm", _tqdm)

from bfcl_eval.constants.enums import Language, ReturnFormat  # noqa: E402
from bfcl_eval.eval_checker import eval_runner  # noqa: E402
from bfcl_eval.model_handler.utils import ast_parse, default_decode_ast_prompting  # noqa: E402
from bfcl_eval.utils import load_dataset_entry, load_ground_truth_entry  # noqa: E402

# A prompt model whose names keep their dots (underscore_to_dot=False), as the ToolACE models are.
MODEL_NAME = "Team-ACE_ToolACE-2-8B"


class PromptHandler:
    """What every prompt-mode handler's decode_ast does."""

    def decode_ast(self, result, language=ReturnFormat.PYTHON, has_tool_call_tag=False):
        return default_decode_ast_prompting(result, language, has_tool_call_tag)


HANDLER = PromptHandler()


def _is_relevance(category):
    return "relevance" in category  # BFCL's is_relevance_or_irrelevance


def load_category(category):
    """{id: (prompt entry, answer key or None)} as the official runner pairs them (by position)."""
    if category.startswith("exec_"):
        import importlib.resources as res

        root = res.files("bfcl_eval") / "data" / "unused_datasets"
        name = f"BFCL_v4_{category}.json"
        prompts = [json.loads(line) for line in (root / "question" / name).read_text().splitlines() if line.strip()]
        answers = [json.loads(line) for line in (root / "possible_answer" / name).read_text().splitlines()
                   if line.strip()]
        out = {}
        for prompt, answer in zip(prompts, answers):
            key = []
            for text in answer["ground_truth"]:
                (call,) = ast_parse(text)
                (fname, args), = call.items()
                key.append({fname: {k: [v] for k, v in args.items()}})
            out[prompt["id"]] = (prompt, json.loads(json.dumps(key)))
        return out
    prompts = load_dataset_entry(category, include_prereq=False, include_language_specific_hint=False)
    if _is_relevance(category):
        return {p["id"]: (p, None) for p in prompts}
    answers = load_ground_truth_entry(category)
    return {p["id"]: (p, a["ground_truth"]) for p, a in zip(prompts, answers)}


def _language(category):
    """(Language, ReturnFormat) of a category, as the official ast_file_runner picks them."""
    from bfcl_eval.utils import is_java, is_js

    if is_java(category):
        return Language.JAVA, ReturnFormat.JAVA
    if is_js(category):
        return Language.JAVASCRIPT, ReturnFormat.JAVASCRIPT
    return Language.PYTHON, ReturnFormat.PYTHON


def evaluate(case_id, category, result, prompt, key):
    if _is_relevance(category):
        return eval_runner._evaluate_single_relevance_entry(HANDLER, case_id, result, prompt, MODEL_NAME, category)
    language, return_format = _language(category)
    return eval_runner._evaluate_single_ast_entry(
        HANDLER, case_id, result, key, prompt, MODEL_NAME, category,
        language=language, return_format=return_format, has_tool_call_tag=False)


def _decoded(result, category=""):
    try:
        return repr(default_decode_ast_prompting(result, _language(category)[1]))
    except Exception as exc:  # noqa: BLE001 - any decode failure is data here
        return f"<decode error {type(exc).__name__}: {exc}>"


def _read_cases(path):
    with open(path, encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def _data_for(cases):
    data = {}
    for cat in sorted({c["category"] for c in cases}):
        data[cat] = load_category(cat)
    return data


class _CaseTimeout(Exception):
    pass


def _with_time_limit(fn, *args):
    """fn(*args), stopped after BFCL_CASE_TIMEOUT seconds (unset: no limit). BFCL's Java/JS converters
    backtrack exponentially on some unclosed arrays; such a case is reported as the crash "timeout"."""
    import signal

    limit = float(os.environ.get("BFCL_CASE_TIMEOUT") or 0)
    if not limit:
        return fn(*args)

    def stop(*_):
        raise _CaseTimeout()

    old = signal.signal(signal.SIGALRM, stop)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        return fn(*args)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def cmd_check(cases_path, out_path):
    cases = _read_cases(cases_path)
    data = _data_for(cases)
    with open(out_path, "w", encoding="utf-8") as out:
        for case in cases:
            cat = case["category"]
            prompt, key = data[cat][case["id"]]
            row = {"case": case["case"], "valid": None, "error_type": None, "crash": None,
                   "decoded": _decoded(case["result"], cat)}
            try:
                verdict = _with_time_limit(evaluate, case["id"], cat, case["result"], prompt, key)
                row["valid"] = bool(verdict["valid"])
                row["error_type"] = verdict.get("error_type")
            except _CaseTimeout:
                row["crash"] = "timeout"
            except Exception as exc:  # noqa: BLE001 - the official checker crashing is a finding
                row["crash"] = f"{type(exc).__name__}: {exc}"
            out.write(json.dumps(row) + "\n")


def cmd_inline(cases_path, out_path):
    """Cases that carry their own functions and key: {"case", "category", "functions", "truth", "result"}."""
    with open(out_path, "w", encoding="utf-8") as out:
        for case in _read_cases(cases_path):
            prompt = {"id": case["case"], "function": case["functions"]}
            row = {"case": case["case"], "valid": None, "error_type": None, "crash": None,
                   "decoded": _decoded(case["result"], case["category"])}
            try:
                verdict = _with_time_limit(evaluate, case["case"], case["category"], case["result"], prompt,
                                           case["truth"])
                row["valid"] = bool(verdict["valid"])
                row["error_type"] = verdict.get("error_type")
            except _CaseTimeout:
                row["crash"] = "timeout"
            except Exception as exc:  # noqa: BLE001
                row["crash"] = f"{type(exc).__name__}: {exc}"
            out.write(json.dumps(row) + "\n")


def cmd_time(cases_path, out_path, repeats):
    """Seconds per output kind (best of `repeats` passes), each item timed on its own."""
    cases = _read_cases(cases_path)
    data = _data_for(cases)
    work = [(c["kind"], c["id"], c["category"], c["result"], *data[c["category"]][c["id"]]) for c in cases]
    clock = time.perf_counter
    best = {}
    for _ in range(repeats):
        spent = {}
        for kind, case_id, cat, result, prompt, key in work:
            start = clock()
            try:
                evaluate(case_id, cat, result, prompt, key)
            except Exception:  # noqa: BLE001
                pass
            spent[kind] = spent.get(kind, 0.0) + clock() - start
        for kind, seconds in spent.items():
            best[kind] = min(best.get(kind, float("inf")), seconds)
    with open(out_path, "w") as out:
        json.dump({"seconds_by_kind": best, "repeats": repeats}, out)


def cmd_evaluate(result_dir, out_path, model, categories):
    """The official evaluator's entry point on a result folder; the score files' headers read back."""
    import traceback
    from pathlib import Path

    from bfcl_eval.utils import get_directory_structure_by_category

    cats = [c for c in categories.split(",") if c]
    score_dir = Path(out_path).resolve().parent / "bfcl_score"
    crash = None
    try:
        eval_runner.main([model], cats, str(Path(result_dir).resolve()), str(score_dir), partial_eval=True)
    except Exception as exc:  # noqa: BLE001 - the leaderboard CSV step needs pandas (stubbed); scores are written first
        crash = f"{type(exc).__name__}: {exc} | " + traceback.format_exc().strip().splitlines()[-3].strip()
    scores = {}
    for cat in cats:
        path = (score_dir / model.replace("/", "_") / get_directory_structure_by_category(cat)
                / f"BFCL_v4_{cat}_score.json")
        if path.exists():
            with open(path, encoding="utf-8") as fh:
                header = json.loads(fh.readline())
            scores[cat] = {"accuracy": header["accuracy"], "correct": header["correct_count"],
                           "total": header["total_count"], "score_file": str(path)}
    with open(out_path, "w") as out:
        json.dump({"scores": scores, "crash": crash}, out, indent=1)


def cmd_leaderboard(in_path, out_path):
    """BFCL's leaderboard arithmetic on hand-built category scores. IN: {"tables": [{category: [correct,
    total]}]}; OUT: per table, V4's overall and its five parts as generate_leaderboard_csv computes
    them (its weighted call captured), and V3's overall composed from the same helper functions the
    way BFCL's V3 release composed them (that release's helper is not in this package)."""
    from bfcl_eval.eval_checker import eval_runner_helper as helper

    tables = json.loads(open(in_path, encoding="utf-8").read())["tables"]
    results = []
    for table in tables:
        scores = {cat: {"accuracy": c / t, "total_count": t} for cat, (c, t) in table.items()}
        captured = {}
        real = helper.calculate_percentage_weighted_accuracy

        def capture(parts, weights, display_na_if_category_missing=True):
            out = real(parts, weights, display_na_if_category_missing)
            captured["parts"] = [p["accuracy"] for p in parts]
            captured["overall"] = out["accuracy"]
            return out

        helper.calculate_percentage_weighted_accuracy = capture
        helper.write_score_csv_file = lambda **kwargs: None
        try:
            helper.generate_leaderboard_csv({MODEL_NAME: {k: dict(v) for k, v in scores.items()}}, "/nonexistent")
        except Exception as exc:  # noqa: BLE001 - what follows the computation (CSV, wandb) may need stubbed modules
            captured.setdefault("after", f"{type(exc).__name__}: {exc}")
        finally:
            helper.calculate_percentage_weighted_accuracy = real
        u, w = helper.calculate_unweighted_accuracy, helper.calculate_weighted_accuracy
        g = {k: {**v, "display_accuracy": v["accuracy"]} for k, v in scores.items()}
        simple = u([g["simple_python"], g["simple_java"], g["simple_javascript"]])
        non_live = u([simple, g["multiple"], g["parallel"], g["parallel_multiple"], g["irrelevance"]], False)
        live = w([g[c] for c in ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple",
                                  "live_irrelevance", "live_relevance")], False)
        multi = u([g[c] for c in ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                                   "multi_turn_long_context")], False)
        v3 = u([live, non_live, multi], False)
        results.append({"v4": captured, "v3": {"overall": v3["accuracy"],
                                               "parts": [live["accuracy"], non_live["accuracy"], multi["accuracy"]]}})
    with open(out_path, "w") as out:
        json.dump({"results": results}, out, indent=1)


if __name__ == "__main__":
    mode, cases_arg, out_arg = sys.argv[1:4]
    if mode == "leaderboard":
        cmd_leaderboard(cases_arg, out_arg)
    elif mode == "evaluate":
        cmd_evaluate(cases_arg, out_arg, sys.argv[4], sys.argv[5])
    elif mode == "check":
        cmd_check(cases_arg, out_arg)
    elif mode == "inline":
        cmd_inline(cases_arg, out_arg)
    elif mode == "time":
        cmd_time(cases_arg, out_arg, int(sys.argv[4]) if len(sys.argv) > 4 else 3)
    else:
        raise SystemExit(f"unknown mode {mode!r} (known: check, inline, time, evaluate, leaderboard)")
