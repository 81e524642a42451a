"""BFCL multi-turn: the loader, the executor over BFCL's simulated APIs, the checker.

Expected verdicts and result strings come from BFCL's official code, recorded once by
benchmarks/bfcl_multi_turn_agreement.py --write-fixture (tests/fixtures/bfcl_multi_turn_verdicts.jsonl)
and by running its executor on the calls of `OFFICIAL_RESULTS`; nothing here needs its venv.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("bfcl_eval.eval_checker.multi_turn_eval.func_source_code.gorilla_file_system")

from toolace_r.calls import ToolCall  # noqa: E402
from toolace_r.data import Example, load  # noqa: E402
from toolace_r.data.bfcl_multi_turn import held_out_tools, missed_functions  # noqa: E402
from toolace_r.evaluation.multi_turn import (MultiTurnState, check_multi_turn, decode_step,  # noqa: E402
                                             decode_trajectory, gold_calls)
from toolace_r.evaluation.multi_turn_exec import MAX_CALL_CHARS, render_call  # noqa: E402

FIXTURE = Path(__file__).parent / "fixtures" / "bfcl_multi_turn_verdicts.jsonl"
CATEGORIES = ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param", "multi_turn_long_context")


@pytest.fixture(scope="module")
def examples() -> dict[str, Example]:
    return {ex.id: ex for ex in load("bfcl:multi_turn")}


# --- loader ---------------------------------------------------------------------------------------

def test_loader_counts_and_shape(examples):
    by_cat = {c: [e for e in examples.values() if e.category == c] for c in CATEGORIES}
    assert {c: len(v) for c, v in by_cat.items()} == {c: 200 for c in CATEGORIES}
    ex = examples["multi_turn_base_0"]
    assert ex.gold.kind == "multi_turn"
    assert ex.gold.turns[0] == ["cd(folder='document')", "mkdir(dir_name='temp')",
                                "mv(source='final_report.pdf', destination='temp')"]
    assert ex.gold.turns[2] == ["sort('final_report.pdf')"]  # kept as written: positional
    meta = ex.metadata
    assert meta["category"] == "multi_turn_base" and meta["long_context"] is False
    assert meta["involved_classes"] == ["TwitterAPI", "GorillaFileSystem"]
    assert "GorillaFileSystem" in meta["initial_config"]
    assert len(meta["turns"]) == len(ex.gold.turns) == 4
    assert ex.messages == meta["turns"][0] and ex.messages[0]["role"] == "user"
    names = [t.name for t in ex.tools]
    assert names[0] == "authenticate_twitter" and "cat" in names and len(names) == len(set(names))
    assert examples["multi_turn_long_context_0"].metadata["long_context"] is True


def test_loader_holds_out_missed_functions(examples):
    ex = examples["multi_turn_miss_func_0"]
    assert missed_functions(ex) == {3: ["sort"]} == ex.metadata["missed_function"]
    assert "sort" not in [t.name for t in ex.tools]
    assert [t.name for t in held_out_tools(ex)[3]] == ["sort"]
    assert ex.metadata["turns"][3] == []  # the turn that only gives the function back
    assert ex.gold.turns[2] == []  # the turn the model cannot do without it
    again = Example.from_dict(json.loads(json.dumps(ex.to_dict())))  # keys become strings in JSON
    assert missed_functions(again) == {3: ["sort"]}
    assert [t.name for t in held_out_tools(again)[3]] == ["sort"]
    assert again.gold.turns == ex.gold.turns


def test_group_and_single_categories():
    assert len(load("bfcl:multi_turn_miss_param", limit=3)) == 3
    with pytest.raises(ValueError, match="multi_turn_base"):
        load("bfcl:multi_turn_nope")


# --- executor -------------------------------------------------------------------------------------

CONFIG = {"GorillaFileSystem": {"root": {"workspace": {"type": "directory", "contents": {
    "a.txt": {"type": "file", "content": "x"}}}}}}

# Call strings and the results BFCL's own executor gives for them, in order, on CONFIG with model
# name "m_eval" and id multi_turn_base_9 (recorded from bfcl_eval's execute_multi_turn_func_call).
OFFICIAL_RESULTS = [
    ("touch(file_name='n.txt')", "None"),
    ("echo(content='run cd(x) now', file_name='n.txt')", "None"),
    # BFCL's method-name rewrite reaches inside the string literal:
    ("cat(file_name='n.txt')", '{"file_content": "run m_eval_multi_turn_base_9_GorillaFileSystem_instance.cd(x) now"}'),
    ("ls(a={'k': 1})", '{"current_directory_content": ["a.txt", "n.txt"]}'),
    ("cd('workspace')", '{"error": "cd: \'workspace\': No such file or directory"}'),
    ("cd(folder=1e999)", "Error during execution: 'float' object has no attribute 'rstrip'"),
    ("pwd(x=1)", "Error during execution: GorillaFileSystem.pwd() got an unexpected keyword argument 'x'"),
    ('mkdir(dir_name={"it\'s": 1})', "Error during execution: unhashable type: 'dict'"),
    ("cd(folder=cat(file_name='a.txt'))", "Error during execution: 'dict' object has no attribute 'rstrip'"),
    ("ls(a=(1+2j))", '{"current_directory_content": ["a.txt", "n.txt"]}'),
    ("GorillaFileSystem.pwd()", "Error during execution: name 'GorillaFileSystem' is not defined"),
]


def test_execute_source_matches_bfcl_executor():
    state = MultiTurnState(["GorillaFileSystem"], CONFIG, example_id="multi_turn_base_9", model_name="m_eval")
    got = state.execute_source([c for c, _ in OFFICIAL_RESULTS])
    assert got == [r for _, r in OFFICIAL_RESULTS]


def test_execute_tool_calls_and_errors(examples):
    state = MultiTurnState.for_example(examples["multi_turn_base_0"])
    assert set(state.instances) == {"GorillaFileSystem", "TwitterAPI"}
    results = state.execute([ToolCall("cd", {"folder": "document"}), ToolCall("ls", {}),
                             ToolCall("no_such", {"x": 1}), ToolCall("kill", {"pid": 1}),
                             ToolCall("_load_scenario", {"scenario": {"root": {}}}),
                             ToolCall("open", {"file": "/etc/passwd"})])
    assert results[0] == '{"current_working_directory": "document"}'
    assert json.loads(results[1]) == {"current_directory_content": ["final_report.pdf", "previous_report.pdf"]}
    assert results[2] == "Error during execution: name 'no_such' is not defined"
    assert results[3] == "Error during execution: Function call kill is not allowed."
    assert results[4] == "Error during execution: name '_load_scenario' is not defined"
    assert results[5] == "Error during execution: name 'open' is not defined"  # builtins never run
    assert state.instances["GorillaFileSystem"]._current_dir.name == "document"


def test_hostile_calls_never_run():
    state = MultiTurnState(["GorillaFileSystem"], CONFIG, example_id="multi_turn_base_9", model_name="m")
    inst = "m_multi_turn_base_9_GorillaFileSystem_instance"
    got = state.execute_source([
        f"{inst}._load_scenario(scenario={{}})", f"{inst}.root.contents.clear()", f"{inst}.__class__()",
        "().__class__.__bases__()", "__import__('os').system('true')", "open(file='/etc/passwd')",
        "cd(folder=[x for x in 'ab'])", "cd(folder=(lambda: 1)())", f"{inst}()",
    ])
    assert got == [
        "Error during execution: GorillaFileSystem._load_scenario is not a public method",
        "Error during execution: GorillaFileSystem.root is not a public method",
        "Error during execution: GorillaFileSystem.__class__ is not a public method",
        "Error during execution: attributes are read only from the simulated API instances",
        "Error during execution: name '__import__' is not defined",
        "Error during execution: name 'open' is not defined",
        "Error during execution: unsupported expression (ListComp)",
        "Error during execution: unsupported expression (Lambda)",
        "Error during execution: 'GorillaFileSystem' object is not callable",
    ]
    assert state.execute_source(["ls()"]) == ['{"current_directory_content": ["a.txt"]}']  # nothing touched


def test_rendering_is_bfcls():
    assert render_call(ToolCall("f", {"a": "x", "b": [1, 2.5], "c": {"k": True}, "d": None})) == \
        "f(a='x', b=[1, 2.5], c={'k': True}, d=None)"
    assert render_call(ToolCall("f", {"a": {"g": {"y": 1}}})) == "f(a=g(y=1))"  # BFCL's nested-call reading
    with pytest.raises(IndexError):
        render_call(ToolCall("f", {"a": {}}))


def test_bounds_refuse_without_running():
    state = MultiTurnState(["MathAPI"], {})
    long = state.execute([ToolCall("mean", {"numbers": [1] * (MAX_CALL_CHARS // 2)})])[0]
    assert long.startswith("Error during execution: call longer than")
    assert state.execute([ToolCall("power", {"base": 10, "exponent": 10 ** 9})])[0].startswith(
        "Error during execution: integer power above")
    assert state.execute([ToolCall("logarithm", {"value": 8, "base": 2, "precision": 10 ** 8})])[0].startswith(
        "Error during execution: precision above")
    assert state.execute([ToolCall("add", {"a": 1, "b": 2})]) == ['{"result": 3}']
    deep = "[" * 80 + "]" * 80
    assert state.execute_source([f"add(a={deep}, b=1)"])[0].startswith("Error during execution: call nested deeper")
    assert state.execute_source(["add(a=[*x], b=1)"])[0] == "Error during execution: unpacking (*) is not supported"


def test_decode_step_follows_bfcl():
    assert [c.name for c in decode_step("cd(folder='a')").calls] == ["cd"]
    assert decode_step("```\n[cd(folder='a'), ls()]\n```").calls[1].name == "ls"
    assert decode_step("[]").calls == []
    assert decode_step("I moved the file.").error
    assert decode_step("[ls(a={})]").error  # BFCL's decoder fails on it: the step is dropped
    assert decode_step("[cd('a')]").calls[0].arguments == {}  # positional arguments are dropped


# --- checker --------------------------------------------------------------------------------------

def test_gold_trajectories_are_valid(examples):
    for ex_id in ("multi_turn_base_0", "multi_turn_miss_func_0", "multi_turn_miss_param_3",
                  "multi_turn_long_context_7"):
        ex = examples[ex_id]
        turns = [[t] if t else [] for t in gold_calls(ex)]
        assert check_multi_turn(ex, turns).valid, ex_id


def test_verdict_fields(examples):
    ex = examples["multi_turn_base_0"]
    v = check_multi_turn(ex, [[]] * 3)
    assert (v.valid, v.error_type, v.bfcl_error_type) == (False, "force_terminated", "multi_turn:force_terminated")
    v = check_multi_turn(ex, [[], [], [], []])
    assert v.error_type == "empty_turn" and "turn 0" in v.error


def _fixture_rows():
    return [json.loads(line) for line in FIXTURE.read_text().splitlines() if line.strip()]


def test_fixture_covers_every_kind_and_error_type():
    rows = _fixture_rows()
    assert {r["error_type"] for r in rows} == {None, "multi_turn:force_terminated",
                                               "multi_turn:empty_turn_model_response",
                                               "multi_turn:instance_state_mismatch",
                                               "multi_turn:execution_response_mismatch"}
    assert {"handmade", "gold", "garbage", "wrong_order", "ahead", "chatty"} <= {r["kind"] for r in rows}


@pytest.mark.parametrize("row", _fixture_rows(), ids=lambda r: f"{r['id']}-{r['kind']}-{r.get('what', '')[:30]}")
def test_official_verdicts(examples, row):
    ex = examples[row["id"]]
    v = check_multi_turn(ex, decode_trajectory(row["result"]), model_name="Team-ACE_ToolACE-2-8B")
    assert (v.valid, v.bfcl_error_type) == (row["valid"], row["error_type"]), v.error


def test_mathapi_precision_does_not_leak():
    import decimal

    import mpmath

    prec, dps = decimal.getcontext().prec, mpmath.mp.dps
    state = MultiTurnState(["MathAPI"], {})
    # the strings BFCL's executor gives for these calls; an mpmath result is written at the precision its
    # own call set
    assert state.execute([ToolCall("square_root", {"number": 2, "precision": 5}),
                          ToolCall("logarithm", {"value": 10, "base": 3, "precision": 4})]) == \
        ["{'result': Decimal('1.4142')}", "{'result': mpf('2.095886')}"]
    assert (decimal.getcontext().prec, mpmath.mp.dps) == (prec, dps)
