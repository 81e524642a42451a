"""Runs INSIDE the separate ACEBench venv (see _acebench_official.py); never imports toolace_r.

    python _acebench_official_worker.py ACEBENCH_DIR CASES.jsonl OUT.jsonl

CASES lines: {"case": n, "id": <ACEBench id>, "category": <category>, "result": <raw model text>}.
Each case is scored by ACEBench's own per-category function from its `eval_main.py`
(`normal_single_turn_eval`, `normal_multi_turn_eval`, `special_eval`) on a one-item run built from
the checkout's own data lines, so the verdict is that function's accuracy (1 or 0). Its score-file
and Excel writers are replaced by no-ops; pandas and openpyxl, which only those writers use, are
stand-ins. OUT lines: {"case", "valid", "crash"} ("crash": the exception ACEBench's code raised).
"""
from __future__ import annotations

import json
import os
import sys
import types


def _stub_modules() -> None:
    """pandas / openpyxl stand-ins: only ACEBench's report writers (replaced below) use them."""
    class _Unused:
        def __init__(self, *a, **k):
            pass

    stubs = {"pandas": {}, "openpyxl": {"Workbook": _Unused}, "openpyxl.styles": {"Alignment": _Unused}}
    for name, attrs in stubs.items():
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        sys.modules.setdefault(name, mod)


def _read(path: str) -> dict[str, dict]:
    with open(path, encoding="utf-8") as fh:
        return {rec["id"]: rec for rec in map(json.loads, fh)}


def main(root: str, cases_path: str, out_path: str) -> None:
    _stub_modules()
    root = os.path.abspath(root)
    sys.path.insert(0, root)
    os.chdir(root)
    import eval_main  # noqa: E402  (ACEBench's own module)

    eval_main.save_score_as_json = lambda *a, **k: None
    eval_main.convert_result_to_excel = lambda *a, **k: None
    eval_main.OUTPUT_PATH = "/nonexistent-unused"
    data: dict[str, tuple[dict, dict]] = {}
    out = open(out_path, "w", encoding="utf-8")
    with open(cases_path, encoding="utf-8") as fh:
        for line in fh:
            case = json.loads(line)
            cat = case["category"]
            if cat not in data:
                folder = os.path.join(root, "data_all", "data_en")
                data[cat] = (_read(os.path.join(folder, f"data_{cat}.json")),
                             _read(os.path.join(folder, "possible_answer", f"data_{cat}.json")))
            prompts, answers = data[cat]
            prompt, answer = [prompts[case["id"]]], [answers[case["id"]]]
            result = [{"id": case["id"], "result": case["result"]}]
            crash = None
            try:
                if "special" in cat:
                    acc = eval_main.special_eval(result, prompt, answer, cat, "agreement", None)
                elif "normal_multi_turn" in cat:
                    acc = eval_main.normal_multi_turn_eval(result, prompt, answer, cat, "agreement", None)
                else:
                    acc = eval_main.normal_single_turn_eval(result, prompt, answer, cat, "agreement", None)
                valid = acc == 1
            except Exception as exc:  # ACEBench's code stops here; the item cannot be right
                valid, crash = False, f"{type(exc).__name__}: {exc}"[:200]
            out.write(json.dumps({"case": case["case"], "valid": valid, "crash": crash}) + "\n")
    out.close()


if __name__ == "__main__":
    main(*sys.argv[1:4])
