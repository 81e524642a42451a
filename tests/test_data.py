"""Dataset loaders: fixtures in every format (good and broken), the installed BFCL data, conversion, CLI."""
import json
import os
from pathlib import Path

import pytest

from toolace_r.calls import ToolCall
from toolace_r.cli import main
from toolace_r.data import (BFCL_CATEGORIES, DatasetError, Example, Gold, call_shape, category_sizes, iter_load,
                            load, register_loader, write_jsonl)
from toolace_r.data.registry import LOADERS

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


def calls_of(example: Example):
    return [(c.name, c.arguments) for c in example.answer_calls()]


# --- registry ------------------------------------------------------------------------------------------

def test_unknown_prefix_lists_the_known_ones():
    with pytest.raises(ValueError) as err:
        load("parquet:x.parquet")
    for key in ("bfcl:", "toolace:", "xlam:", "jsonl:"):
        assert key in str(err.value)


def test_a_new_format_is_one_registered_function():
    @register_loader("tiny_test_fmt")
    def tiny(spec):
        for i in range(int(spec)):
            yield Example(f"t{i}", [{"role": "user", "content": "hi"}], [], Gold("no_call"))
        yield DatasetError("tiny line 9", "broken", field="x")

    try:
        assert [e.id for e in load("tiny_test_fmt:3", limit=2)] == ["t0", "t1"]
        got = load("tiny_test_fmt:1", skip_invalid=True)
        assert [e.id for e in got] == ["t0"] and [str(e) for e in got.skipped] == ["tiny line 9: field 'x': broken"]
        with pytest.raises(DatasetError, match="tiny line 9"):
            load("tiny_test_fmt:1")
        # the iterator variant is lazy: the first example comes before the bad record is reached
        assert next(iter_load("tiny_test_fmt:1")).id == "t0"
    finally:
        LOADERS.pop("tiny_test_fmt")


# --- toolace -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["toolace.jsonl", "toolace_array.json"])
def test_toolace_one_example_per_assistant_turn(name):
    ex = load(f"toolace:{FIX / name}")
    assert [e.id for e in ex] == ["toolace-1-1", "toolace-1-3", "toolace-1-5", "toolace-2-1"]
    first, summary, parallel, refusal = ex
    assert first.messages == [{"role": "user", "content": "Weather in Paris in celsius?"}]
    assert [t.name for t in first.tools] == ["Get Weather", "stock.price"]
    assert first.tools[0].required == ["city"]  # lifted from the property's "required": true
    assert first.tools[0].properties["days"]["type"] == "integer"  # ToolACE's "int"
    assert calls_of(first) == [("Get Weather", {"city": "Paris", "unit": "celsius"})]
    assert first.category == "toolace_multiple"
    assert summary.gold.kind == "no_call" and summary.gold.text == "It is 21 degrees in Paris."
    assert [m["role"] for m in summary.messages] == ["user", "assistant", "tool"]
    assert [m["role"] for m in parallel.messages] == ["user", "assistant", "tool", "assistant", "user"]
    assert calls_of(parallel) == [("stock.price", {"symbol": "AAPL"}), ("stock.price", {"symbol": "MSFT"})]
    assert "parallel" in parallel.category
    # second row has no marker sentence: the tool list is found as the first JSON array of tools
    assert [t.name for t in refusal.tools] == ["stock.price"] and refusal.category == "toolace_irrelevance"


def test_toolace_errors_name_file_line_and_field():
    path = FIX / "toolace_broken.jsonl"
    with pytest.raises(DatasetError) as err:
        load(f"toolace:{path}")
    assert str(err.value).startswith(f"{path} line 2: not valid JSON")
    got = load(f"toolace:{path}", skip_invalid=True)
    assert len(got) == 2  # line 1 and line 7
    messages = [str(e) for e in got.skipped]
    assert len(messages) == 5
    assert messages[1] == f"{path} line 3: field 'conversations': expected a list, got str"
    assert messages[2].startswith(f"{path} line 4: field 'system': no JSON tool list")
    assert "line 5: field 'conversations': turn 1:" in messages[3] and "cannot be decoded" in messages[3]
    assert "line 6" in messages[4] and "'robot'" in messages[4]
    assert "skipped 5 invalid records" in got.skipped_summary()


def test_hub_ids_go_through_datasets_load_dataset(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIX / "toolace.jsonl").read_text().splitlines()]
    asked = []

    def fake_load_dataset(name, split):
        asked.append((name, split))
        return rows

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    ex = load("toolace:Team-ACE/ToolACE", limit=2)
    assert asked == [("Team-ACE/ToolACE", "train")] and len(ex) == 2
    assert ex[0].metadata["source"] == "Team-ACE/ToolACE record 1"
    load("toolace:")  # empty: the default hub id
    assert asked[-1] == ("Team-ACE/ToolACE", "train")
    load("xlam:", limit=0)  # limit 0 loads nothing and asks nothing
    assert len(asked) == 2
    with pytest.raises(FileNotFoundError):  # a missing file is not mistaken for a hub id
        load("toolace:missing/toolace.jsonl")


# --- xlam ------------------------------------------------------------------------------------------------

def test_xlam_rows():
    first, empty = load(f"xlam:{FIX / 'xlam.json'}")
    assert first.id == "xlam-1" and first.messages == [{"role": "user", "content": "Sum 1, 2 and 3, and list beta giveaways."}]
    assert calls_of(first) == [("sum_list", {"numbers": [1, 2, 3]}), ("live_giveaways_by_type", {"type": "beta"})]
    sum_list = first.tools[1]
    assert sum_list.properties["numbers"]["items"] == {"type": "integer"}
    assert sum_list.required == ["numbers"]  # "int, optional" is not required
    assert first.tools[0].required == []  # has a default
    assert empty.gold.kind == "no_call" and empty.category == "xlam_irrelevance"


def test_xlam_errors():
    path = FIX / "xlam_broken.jsonl"
    got = load(f"xlam:{path}", skip_invalid=True)
    assert len(got) == 1
    messages = [str(e) for e in got.skipped]
    assert messages[0].startswith(f"{path} line 2: field 'tools': expected a JSON list in a string")
    assert messages[1] == f"{path} line 3: field 'answers': expected a list of calls, got object"
    assert messages[2] == f"{path} line 4: field 'query': missing (expected a string)"


# --- jsonl -------------------------------------------------------------------------------------------------

def test_jsonl_reads_openai_and_trl_styles():
    oslo, cities, bern, hello = load(f"jsonl:{FIX / 'openai.jsonl'}")
    assert [m["role"] for m in oslo.messages] == ["system", "user"]  # leading system message kept
    assert calls_of(oslo) == [("get_weather", {"city": "Oslo"})]  # arguments from a JSON string
    assert oslo.tools[0].properties["temp"]["type"] == "float"  # ["number", "null"]
    assert cities.id == "two-cities" and cities.category == "parallel"
    assert calls_of(cities) == [("get_weather", {"city": "Rome"}), ("get_weather", {"city": "Nice"})]
    assert calls_of(bern) == [("get_weather", {"city": "Bern", "temp": 1.5})]  # calls written as content
    assert hello.gold == Gold(kind="no_call", text="Hello, how can I help?")


def test_jsonl_errors():
    path = FIX / "openai_broken.jsonl"
    with pytest.raises(DatasetError, match="line 2: field 'messages': the last message must be the assistant"):
        load(f"jsonl:{path}")
    got = load(f"jsonl:{path}", skip_invalid=True)
    assert len(got) == 1
    messages = [str(e) for e in got.skipped]
    assert messages[1] == f"{path} line 3: field 'messages': expected a list, got str"
    assert messages[2].startswith(f"{path} line 4: field 'messages': final message tool_calls[0] arguments: not valid JSON")
    assert messages[3].startswith(f"{path} line 6: field 'tools': tool 0:")  # line 5 is blank: ignored


# --- BFCL from a fixture dir ----------------------------------------------------------------------------

def test_bfcl_from_a_fixture_dir():
    ex = {e.id: e for e in load(f"bfcl:simple_python,irrelevance,live_relevance,parallel@{FIX / 'bfcl'}")}
    area = ex["simple_python_0"]
    assert area.gold.kind == "bfcl" and area.category == "simple_python"
    assert area.gold.bfcl[0]["calc_area"]["unit"] == ["", "m"]
    # first acceptable value; "" skipped; a parameter with only "" left out; dict keys resolved inside
    assert calls_of(area) == [("calc_area", {"w": 2.0, "h": 3.0, "unit": "m", "opts": {"round": True, "mode": "fast"}})]
    assert ex["irrelevance_0"].gold == Gold("no_call")
    rel = ex["live_relevance_0-0-0"]
    assert rel.gold == Gold("any_call") and [m["role"] for m in rel.messages] == ["system", "user"]
    # v4 wins over the v3 file beside it
    assert calls_of(ex["parallel_0"]) == [("say.hello", {"name": "Ann"}), ("say.hello", {"name": "Bob"})]
    same = load("bfcl:parallel", data_dir=FIX / "bfcl")
    assert [e.messages for e in same] == [ex["parallel_0"].messages]


def test_bfcl_unused_categories_from_a_fixture_dir():
    exec_ex, sql, rest = load(f"bfcl:exec_simple,sql,rest@{FIX / 'bfcl'}")
    # "calc_area(w=1/4, h=3, opts={'round': True}, points=(1, 2))": arithmetic folded, tuple as list
    expected = {"w": 0.25, "h": 3, "opts": {"round": True}, "points": [1, 2]}
    assert exec_ex.gold.kind == "bfcl" and exec_ex.gold.calls == [ToolCall("calc_area", expected)]
    assert exec_ex.gold.bfcl == [{"calc_area": {k: [v] for k, v in expected.items()}}]
    assert exec_ex.metadata["execution_result_type"] == ["exact_match"]
    assert sql.messages == [{"role": "user", "content": "Say hello to the table."}]  # flat question list
    assert calls_of(sql) == [("say.hello", {"name": "table"})]
    assert rest.gold.kind == "unscored" and rest.metadata["execution_result"] == '{"greeting": "hello"}'


def test_bfcl_errors():
    path = FIX / "bfcl_broken"
    got = load(f"bfcl:simple_python@{path}", skip_invalid=True)
    assert [e.id for e in got] == ["simple_python_0", "simple_python_5"]
    q = path / "BFCL_v4_simple_python.json"
    messages = [str(e) for e in got.skipped]
    assert messages[0].startswith(f"{q} line 2: not valid JSON")
    assert messages[1] == f"{q} line 3: field 'function': missing (expected a list)"
    assert messages[2] == f"{q} line 4: field 'id': no answer with id 'simple_python_3' in the answer file"
    assert messages[3].startswith(f"{path / 'possible_answer' / 'BFCL_v4_simple_python.json'} line 2: field 'ground_truth'")
    with pytest.raises(ValueError, match="unknown BFCL category 'simple_cobol'"):
        load("bfcl:simple_cobol")
    with pytest.raises(FileNotFoundError):
        load(f"bfcl:multiple@{FIX / 'bfcl'}")


# --- BFCL from the installed wheel ----------------------------------------------------------------------

WHEEL_COUNTS = {
    "simple_python": 400, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240,
    "live_simple": 258, "live_multiple": 1053, "live_parallel": 16, "live_parallel_multiple": 24,
    "live_irrelevance": 884, "live_relevance": 16, "exec_simple": 100, "exec_multiple": 50, "exec_parallel": 50,
    "exec_parallel_multiple": 40, "sql": 100, "rest": 70,
}
GOLD_KIND = {"irrelevance": "no_call", "live_irrelevance": "no_call", "live_relevance": "any_call", "rest": "unscored"}


def test_installed_bfcl_counts_and_gold_kinds():
    assert set(WHEEL_COUNTS) == set(BFCL_CATEGORIES)
    assert category_sizes() == WHEEL_COUNTS
    for cat, count in WHEEL_COUNTS.items():
        ex = load(f"bfcl:{cat}")
        assert len(ex) == count, cat
        assert {e.category for e in ex} == {cat}
        assert {e.gold.kind for e in ex} == {GOLD_KIND.get(cat, "bfcl")}, cat
        assert all(e.messages and e.messages[-1]["role"] == "user" for e in ex), cat
        # four live_irrelevance items offer no tools at all; every other item offers some
        assert all(e.tools for e in ex if cat != "live_irrelevance"), cat
    assert len(load("bfcl:all")) == sum(WHEEL_COUNTS[c] for c in list(WHEEL_COUNTS)[:11])
    assert len(load("bfcl:simple_python,multiple", limit=450)) == 450


def test_installed_exec_golds_are_decoded_calls():
    ex = {e.id: e for e in load("bfcl:exec")}
    assert len(ex) == 240
    assert ex["exec_simple_0"].gold.calls == [ToolCall("calc_binomial_probability", {"n": 20, "k": 5, "p": 0.6})]
    assert ex["exec_simple_0"].gold.bfcl == [{"calc_binomial_probability": {"n": [20], "k": [5], "p": [0.6]}}]
    assert ex["exec_multiple_0"].gold.calls[0].arguments["p"] == pytest.approx(1 / 6)  # "p=1/6"
    pm = ex["exec_parallel_multiple_0"].gold.calls
    assert [c.name for c in pm] == ["get_weather_data", "calc_binomial_probability"]
    assert pm[0].arguments == {"coordinates": [45.4215, -75.6972]}
    # "calculate_mean([1,3,4,6,8])": BFCL's decoder drops positional arguments; the item is kept, flagged
    assert "'numbers' is missing" in ex["exec_parallel_multiple_18"].metadata["gold_problems"][0]
    assert "gold_problems" not in ex["exec_simple_0"].metadata


# --- conversion and JSON round trips -----------------------------------------------------------------------

def test_convert_round_trip_keeps_the_gold_calls(tmp_path):
    examples = load("bfcl:all") + load(f"toolace:{FIX / 'toolace.jsonl'}") + load(f"xlam:{FIX / 'xlam.json'}")
    out = tmp_path / "sub" / "train.jsonl"
    written = write_jsonl(examples, out)
    relevance = sum(e.gold.kind == "any_call" for e in examples)
    assert written == len(examples) - relevance == len(out.read_text().splitlines())
    back = load(f"jsonl:{out}")
    originals = [e for e in examples if e.gold.kind != "any_call"]
    assert [e.id for e in back] == [e.id for e in originals]
    for orig, new in zip(originals, back):
        assert new.answer_calls() == orig.answer_calls(), orig.id
        assert new.messages == orig.messages and new.category == orig.category
        assert [t.name for t in new.tools] == [t.name for t in orig.tools]
    assert not [p for p in os.listdir(out.parent) if p.endswith(".tmp")]


def test_write_jsonl_is_atomic(tmp_path):
    out = tmp_path / "x.jsonl"
    out.write_text("old\n")

    def broken():
        yield from load(f"xlam:{FIX / 'xlam.json'}")
        raise RuntimeError("interrupted")

    with pytest.raises(RuntimeError):
        write_jsonl(broken(), out)
    assert out.read_text() == "old\n" and os.listdir(tmp_path) == ["x.jsonl"]


def test_example_dict_round_trip():
    examples = (load(f"bfcl:simple_python,parallel,exec_simple,rest@{FIX / 'bfcl'}")
                + load(f"toolace:{FIX / 'toolace.jsonl'}") + load(f"jsonl:{FIX / 'openai.jsonl'}"))
    for ex in examples:
        again = Example.from_dict(json.loads(json.dumps(ex.to_dict())))
        assert again == ex
    with pytest.raises(ValueError, match="gold kind 'maybe' unknown"):
        Gold.from_dict({"kind": "maybe"})


def test_gold_helpers():
    assert Gold("no_call", text="Sorry").describe() == "no call: 'Sorry'"
    two = Gold("calls", calls=[ToolCall("f", {}), ToolCall("g", {"a": 1})])
    assert two.describe() == "2 calls: f, g"
    assert call_shape(two, 1) == "parallel" and call_shape(two, 3) == "parallel_multiple"
    assert call_shape(Gold("calls", calls=[ToolCall("f", {})]), 2) == "multiple"
    assert call_shape(Gold("no_call"), 2) == "irrelevance"
    assert Gold("any_call").answer_calls() is None and Gold("no_call").answer_calls() == []


# --- CLI ------------------------------------------------------------------------------------------------------

def test_cli_data_show(capsys):
    assert main(["data", "show", f"jsonl:{FIX / 'openai.jsonl'}", "--limit", "2"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 2
    first = json.loads(lines[0])
    assert {"id", "category", "messages", "tools", "gold"} <= set(first)
    assert first["tools"][0]["parameters"]["type"] == "dict"  # BFCL shape
    assert first["gold"]["calls"] == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


def test_cli_data_show_reports_invalid_records(capsys):
    path = FIX / "xlam_broken.jsonl"
    assert main(["data", "show", f"xlam:{path}"]) == 2
    assert f"{path} line 2: field 'tools'" in capsys.readouterr().err
    assert main(["data", "show", f"xlam:{path}", "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    assert len(captured.out.splitlines()) == 1
    assert "skipped 3 invalid records" in captured.err and "line 4: field 'query'" in captured.err


def test_cli_data_convert(tmp_path, capsys):
    out = tmp_path / "train.jsonl"
    assert main(["data", "convert", f"bfcl:parallel,live_relevance@{FIX / 'bfcl'}", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "wrote 1 examples" in printed and "1 left out" in printed
    record = json.loads(out.read_text())
    assert record["tools"][0]["type"] == "function"
    answer = record["messages"][-1]
    assert [json.loads(tc["function"]["arguments"]) for tc in answer["tool_calls"]] == [{"name": "Ann"}, {"name": "Bob"}]
    assert main(["data", "show", "nope:x"]) == 2
    assert "bfcl:" in capsys.readouterr().err
