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
    "simple_python": 400, "simple_java": 100, "simple_javascript": 50, "multiple": 200, "parallel": 200, "parallel_multiple": 200, "irrelevance": 240,
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
    python = [c for c in list(WHEEL_COUNTS)[:13] if c not in ("simple_java", "simple_javascript")]
    assert len(load("bfcl:all")) == len(load("bfcl:python")) == sum(WHEEL_COUNTS[c] for c in python)
    assert len(load("bfcl:non_python")) == 150
    assert len(load("bfcl:single_turn")) == sum(WHEEL_COUNTS[c] for c in list(WHEEL_COUNTS)[:13])
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


def test_converted_records_are_trl_conversational_rows_a_template_renders(tmp_path):
    from chat_templates import build_hermes_tokenizer

    from toolace_r.data import to_record

    ex = Example("w", [{"role": "user", "content": "Weather in Oslo and Paris?"}],
                 load(f"jsonl:{FIX / 'openai.jsonl'}")[0].tools,
                 Gold("calls", calls=[ToolCall("get_weather", {"city": "Oslo"}),
                                      ToolCall("get_weather", {"city": "Paris", "temp": 21.5})]))
    record = to_record(ex)
    calls = record["messages"][-1]["tool_calls"]
    assert [tc["function"]["arguments"] for tc in calls] == [{"city": "Oslo"}, {"city": "Paris", "temp": 21.5}]
    assert all(tc["type"] == "function" for tc in calls)
    assert record["tools"][0]["type"] == "function"  # OpenAI schemas, as templates take them
    # Through the file too: what convert writes is what a trainer reads.
    out = tmp_path / "t.jsonl"
    assert write_jsonl([ex], out) == 1
    written = json.loads(out.read_text())
    assert written["messages"] == record["messages"]
    tok = build_hermes_tokenizer()
    text = tok.apply_chat_template(written["messages"], tools=written["tools"], tokenize=False)
    # `arguments | tojson` writes the object once; a JSON string would come out quoted ("{\"city\"...").
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Oslo"}}\n</tool_call>' in text
    assert '"arguments": {"city": "Paris", "temp": 21.5}}' in text
    assert '\\"city\\"' not in text and '"arguments": "' not in text
    (back,) = load(f"jsonl:{out}")
    assert back.answer_calls() == ex.answer_calls()


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
    # TRL's conversational tool-calling shape: arguments are objects (templates `tojson` them)
    assert answer == {"role": "assistant", "content": "", "tool_calls": [
        {"type": "function", "function": {"name": "say.hello", "arguments": {"name": "Ann"}}},
        {"type": "function", "function": {"name": "say.hello", "arguments": {"name": "Bob"}}}]}
    assert main(["data", "show", "nope:x"]) == 2
    assert "bfcl:" in capsys.readouterr().err


# --- hostile and careless input ---------------------------------------------------------------------------
# Every loader reads through the same line reader; each bad line below must be one DatasetError naming
# file and line (raised when strict, skipped with skip_invalid) and must never cost the lines after it.

def _good_lines(kind: str) -> list[bytes]:
    """Two good records of `kind` as JSON lines."""
    if kind == "jsonl":
        lines = (FIX / "openai.jsonl").read_bytes().splitlines()[:2]
    elif kind == "toolace":
        lines = (FIX / "toolace.jsonl").read_bytes().splitlines()[:2]
    elif kind == "xlam":
        lines = [json.dumps(r).encode() for r in json.loads((FIX / "xlam.json").read_text())]
    else:
        lines = (FIX / "bfcl" / "BFCL_v4_simple_python.json").read_bytes().splitlines()
    assert len(lines) == 2
    return lines


GOOD_COUNT = {"jsonl": 2, "toolace": 4, "xlam": 2, "bfcl": 2}


def _source_with(kind: str, tmp_path: Path, bad: bytes) -> tuple[str, Path, int]:
    """A source whose file holds good line, `bad`, good line: (source, file with the bad line, good examples)."""
    first, second = _good_lines("jsonl" if kind == "mix" else kind)
    body = first + b"\n" + bad + b"\n" + second + b"\n"
    if kind == "bfcl":
        root = tmp_path / "bfcl"
        (root / "possible_answer").mkdir(parents=True)
        answers = FIX / "bfcl" / "possible_answer" / "BFCL_v4_simple_python.json"
        (root / "possible_answer" / answers.name).write_bytes(answers.read_bytes())
        path = root / "BFCL_v4_simple_python.json"
        path.write_bytes(body)
        return f"bfcl:simple_python@{root}", path, 2
    path = tmp_path / "data.jsonl"
    path.write_bytes(body)
    if kind == "mix":
        return f"mix:jsonl:{path};xlam:{FIX / 'xlam.json'}", path, 2 + 2
    return f"{kind}:{path}", path, GOOD_COUNT[kind]


BAD_LINES = {
    # json.loads raises RecursionError on this one
    "deep": (b"[" * 100_000 + b"]" * 100_000, "nested more than 100 levels deep"),
    # json.loads reads this one; the reader's own bound refuses it
    "deep_object": (b'{"a": ' * 150 + b"1" + b"}" * 150, "nested more than 100 levels deep"),
    # json.loads raises ValueError "Exceeds the limit (4300 digits)"
    "number": (b'{"id": ' + b"9" * 5000 + b"}", "a number with more than 4300 digits"),
    "utf8": (b'{"messages": "\xff\xfe caf\xe9"}', "not UTF-8 text (byte 0xff at byte 15 of the line)"),
    "binary": (bytes(range(256)).replace(b"\n", b""), "not UTF-8 text"),
    "long": (b'{"pad": "' + b"x" * 50_000 + b'"}', "a line of 50011 bytes, longer than the 4096 bytes"),
}


@pytest.mark.parametrize("kind", ["jsonl", "toolace", "xlam", "bfcl", "mix"])
@pytest.mark.parametrize("case", list(BAD_LINES))
def test_a_hostile_line_is_one_error_naming_file_and_line(kind, case, tmp_path, monkeypatch):
    from toolace_r.data import records

    if case == "long":
        monkeypatch.setattr(records, "MAX_LINE_BYTES", 4096)  # above every good fixture line
    bad, words = BAD_LINES[case]
    source, path, good = _source_with(kind, tmp_path, bad)
    with pytest.raises(DatasetError) as err:
        load(source)
    assert str(err.value).startswith(f"{path} line 2: ") and words in str(err.value)
    got = load(source, skip_invalid=True)
    assert len(got) == good  # the line after the bad one still loads
    assert [str(e) for e in got.skipped] == [str(err.value)]


@pytest.mark.parametrize("case", ["deep", "number", "utf8"])
def test_a_hostile_first_line_is_not_taken_for_a_json_array(case, tmp_path):
    # A file starting with "[" may be one JSON array; a first line that fails for another reason than
    # being cut off is a bad JSON line, and the rest of the file still loads.
    bad = {"deep": BAD_LINES["deep"][0], "number": b"[" + b"9" * 5000 + b"]",
           "utf8": b'[{"a": "\xff"}]'}[case]
    path = tmp_path / "data.jsonl"
    path.write_bytes(bad + b"\n" + (FIX / "openai.jsonl").read_bytes())
    got = load(f"jsonl:{path}", skip_invalid=True)
    assert len(got) == 4  # all of openai.jsonl
    (err,) = got.skipped
    assert str(err).startswith(f"{path} line 1: ")


def test_json_arrays_on_one_line_or_many_still_load(tmp_path):
    rows = [json.loads(line) for line in (FIX / "toolace.jsonl").read_text().splitlines()]
    one_line = tmp_path / "one.json"
    one_line.write_text(json.dumps(rows) + "\n\n")
    assert [e.id for e in load(f"toolace:{one_line}")] == [e.id for e in load(f"toolace:{FIX / 'toolace_array.json'}")]
    cut = tmp_path / "cut.json"
    cut.write_text(json.dumps(rows, indent=1)[:-3])  # a broken array: the whole file is one value
    with pytest.raises(DatasetError, match=f"{cut} line \\d+: not valid JSON"):
        load(f"toolace:{cut}")


def test_a_line_over_the_cap_is_stepped_over_in_bounded_pieces(monkeypatch):
    import io

    from toolace_r.data import records

    monkeypatch.setattr(records, "MAX_LINE_BYTES", 1000)

    class Recording(io.BytesIO):
        largest = 0

        def readline(self, size=-1):
            line = super().readline(size)
            Recording.largest = max(Recording.largest, len(line))
            return line

    fh = Recording(b'{"a": 1}\n' + b"x" * 10_000_000 + b"\n" + b'{"b": 2}')
    assert list(records._lines(fh)) == [(1, b'{"a": 1}\n'), (2, 10_000_000), (3, b'{"b": 2}')]
    assert Recording.largest <= 1 << 20  # never the 10 MB line at once


def test_only_regular_files_are_read(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "a.jsonl").write_bytes((FIX / "toolace.jsonl").read_bytes())
    (folder / "b.jsonl").mkdir()  # e.g. a Spark output folder: reported, not silently left out
    with pytest.raises(DatasetError, match=f"{folder / 'b.jsonl'}: a directory, not a file"):
        load(f"toolace:{folder}")
    got = load(f"toolace:{folder}", skip_invalid=True)
    assert len(got) == 4 and len(got.skipped) == 1
    with pytest.raises(ValueError, match="a directory, not a regular file"):
        load(f"jsonl:{folder}")
    if os.path.exists("/dev/zero"):  # read to the end, this is an endless line and a MemoryError
        for source in ("jsonl:/dev/zero", "toolace:/dev/zero", "xlam:/dev/zero"):
            with pytest.raises(ValueError, match="/dev/zero: a character device, not a regular file"):
                load(source)
    if hasattr(os, "mkfifo"):  # opening a pipe with no writer would block for ever
        fifo = tmp_path / "pipe.jsonl"
        os.mkfifo(fifo)
        with pytest.raises(ValueError, match="a named pipe, not a regular file"):
            load(f"jsonl:{fifo}")
    with pytest.raises(FileNotFoundError, match="no such file"):
        load(f"jsonl:{tmp_path / 'missing.jsonl'}")


def _deep_schema(levels: int) -> dict:
    """A parameter schema nested `levels` times through every kind of key, not only properties/items."""
    schema: dict = {"type": "string"}
    for i in range(levels):
        key = ("properties", "items", "anyOf", "$defs", "x-extra")[i % 5]
        if key == "properties":
            schema = {"type": "object", "properties": {"p": schema}}
        elif key == "items":
            schema = {"type": "array", "items": schema}
        elif key == "anyOf":
            schema = {"anyOf": [schema, {"type": "null"}]}
        else:
            schema = {"type": "object", key: {"d": schema} if key == "$defs" else schema}
    return {"type": "object", "properties": {"x": schema}}


def _row_with_tools(kind: str, parameters: dict) -> bytes:
    tool = {"name": "f", "description": "d", "parameters": parameters}
    if kind == "jsonl":
        rec = json.loads(_good_lines("jsonl")[0])
        rec["tools"] = [{"type": "function", "function": tool}]
    elif kind == "xlam":
        rec = json.loads(_good_lines("xlam")[0])
        rec["tools"] = json.dumps([tool])
    elif kind == "toolace":
        rec = json.loads(_good_lines("toolace")[0])
        rec["system"] = "Here is a list of functions in JSON format that you can invoke.\n" + json.dumps([tool])
    else:
        rec = json.loads(_good_lines("bfcl")[0])
        rec["function"] = [tool]
    return json.dumps(rec).encode()


TOOLS_FIELD = {"jsonl": "tools", "xlam": "tools", "toolace": "system", "bfcl": "function"}


@pytest.mark.parametrize("kind", ["jsonl", "toolace", "xlam", "bfcl"])
def test_a_deep_tool_schema_is_an_error_of_the_tools_field(kind, tmp_path):
    bad = _row_with_tools(kind, _deep_schema(40))  # about 70 levels: over tools.py's 64, under records' 100
    source, path, good = _source_with(kind, tmp_path, bad)
    got = load(source, skip_invalid=True)
    assert len(got) == good
    (err,) = got.skipped
    assert str(err).startswith(f"{path} line 2: field '{TOOLS_FIELD[kind]}': ")
    assert "schema nested more than 64 levels deep" in str(err)
    if kind in ("xlam", "toolace"):  # tools inside a string: deeper than json.loads can recurse
        deeper = '[{"name": "f", "parameters": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}]"
        rec = json.loads(_good_lines(kind)[0])
        if kind == "xlam":
            rec["tools"] = deeper
        else:
            rec["system"] = "functions in JSON format that you can invoke.\n" + deeper
        (tmp_path / "deeper").mkdir()
        source, path, _ = _source_with(kind, tmp_path / "deeper", json.dumps(rec).encode())
        (err,) = load(source, skip_invalid=True).skipped
        assert str(err).startswith(f"{path} line 2: field '{TOOLS_FIELD[kind]}': ") and "deep" in str(err)


def test_the_toolace_tool_list_scan_is_linear(monkeypatch):
    # ~300 KB of '[{"x' (each a candidate tool list that fails at once) before the real list, no marker.
    # A decoder handed the rest of the prompt at each candidate reads ~1.5e10 characters (and `json`
    # counts the lines before every error across all it was given); linear reads a few million.
    from toolace_r.data import toolace

    handed = []

    class Counting(json.JSONDecoder):
        def raw_decode(self, s, idx=0):
            handed.append(len(s) - idx)
            return super().raw_decode(s, idx)

    monkeypatch.setattr(toolace, "_DECODER", Counting())
    tools = [{"name": "f", "parameters": {"type": "object", "properties": {"q": {"type": "string"}}}}]
    for noise in ('[{"x' * 75_000, '[' + '{"a": 1}, ' * 30_000 + " oops", '[ [ {"' * 50_000):
        system = noise + " tools: " + json.dumps(tools)
        assert toolace.extract_tool_list(system) == tools
        assert sum(handed) < 30 * len(system), noise[:12]
        handed.clear()
    with pytest.raises(ValueError, match="nested too deeply"):  # json.loads would raise RecursionError
        toolace.extract_tool_list('[{"name": "f", "p": ' * 200_000)


def test_a_name_that_cannot_be_a_hub_id_is_no_such_file_without_any_network_call(monkeypatch, capsys):
    import datasets

    def no_network(*args, **kwargs):
        pytest.fail("a name that cannot be a Hub dataset id must not be looked up")

    monkeypatch.setattr(datasets, "load_dataset", no_network)
    monkeypatch.setattr(datasets, "load_dataset_builder", no_network)
    for name in ("nonexistent", "no such/name", "owner/na--me", "owner/" + "n" * 100, "a/b/c", "./x"):
        for kind in ("toolace", "xlam"):
            with pytest.raises(FileNotFoundError, match="no such file"):
                load(f"{kind}:{name}")
    assert main(["data", "show", "toolace:nonexistent"]) == 2
    assert "nonexistent: no such file" in capsys.readouterr().err


def test_a_possible_hub_id_that_fails_says_it_tried_the_path_and_the_hub(monkeypatch):
    import datasets

    asked = []

    def offline(name, **kwargs):
        asked.append(name)
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", offline)
    monkeypatch.setattr(datasets, "load_dataset_builder", offline)
    with pytest.raises(ValueError) as err:
        load("toolace:someone/missing")
    assert "no local file or folder 'someone/missing'" in str(err.value)
    assert "could not load hub dataset 'someone/missing'" in str(err.value) and "offline" in str(err.value)
    assert asked[-1] == "someone/missing"


def test_hub_rows_json_cannot_write_are_errors(monkeypatch):
    import datasets

    rows = [json.loads(line) for line in (FIX / "toolace.jsonl").read_text().splitlines()]
    rows[0]["extra"] = b"\x00bytes"  # a binary Arrow column
    monkeypatch.setattr(datasets, "load_dataset", lambda name, split: rows)
    got = load("toolace:Team-ACE/ToolACE", skip_invalid=True)
    assert [e.id for e in got] == ["toolace-2-1"]
    assert [str(e) for e in got.skipped] == ["Team-ACE/ToolACE record 1: not readable JSON (a bytes value, which "
                                             "JSON cannot hold)"]


def test_lone_surrogates_load_and_are_written(tmp_path, capsys):
    from toolace_r import files

    rec = json.loads(_good_lines("jsonl")[0])
    rec["messages"][1]["content"] = "Weather in \ud800slo?"
    rec["messages"][-1]["tool_calls"][0]["function"]["arguments"] = json.dumps({"city": "\udfffslo"})
    path = tmp_path / "s.jsonl"
    path.write_text(json.dumps(rec) + "\n")  # json.dumps writes them as \ud800 escapes: valid UTF-8
    (ex,) = load(f"jsonl:{path}")
    assert calls_of(ex) == [("get_weather", {"city": "\udfffslo"})]
    text = files.dumps(ex.to_dict())
    text.encode("utf-8")  # what `data show` prints
    assert Example.from_dict(json.loads(text)) == ex
    assert main(["data", "show", f"jsonl:{path}"]) == 0
    assert json.loads(capsys.readouterr().out)["messages"][1]["content"] == "Weather in \ud800slo?"
    out = tmp_path / "out.jsonl"
    assert write_jsonl([ex], out) == 1
    out.read_bytes().decode("utf-8")
    (back,) = load(f"jsonl:{out}")
    assert back.answer_calls() == ex.answer_calls() and back.messages == ex.messages


def test_gold_values_json_cannot_write_are_errors_of_their_line(tmp_path):
    from toolace_r import files

    huge = "0x" + "f" * 5000  # Python reads this literal; no JSON writer can write the number
    row = json.loads(_good_lines("toolace")[0])
    row["conversations"][1]["value"] = f"[Get Weather(city={huge})]"
    path = tmp_path / "t.jsonl"
    path.write_text(json.dumps(row) + "\n" + _good_lines("toolace")[1].decode() + "\n")
    got = load(f"toolace:{path}", skip_invalid=True)
    # the row's other assistant turns and the next row still load; the bad turn names its line
    assert [e.id for e in got] == ["toolace-1-3", "toolace-1-5", "toolace-2-1"]
    (err,) = got.skipped
    assert str(err).startswith(f"{path} line 1: field ")
    for ex in got:
        files.dumps(ex.to_dict())
    # whatever the call parser lets through, an example is checked before it is yielded
    from toolace_r.data.records import check_example

    bad = Example("x", [], [], Gold("calls", calls=[ToolCall("f", {"n": int(huge, 16)})]))
    err = check_example(bad, "somewhere line 9")
    assert isinstance(err, DatasetError)
    assert str(err) == "somewhere line 9: field 'gold': cannot be written as JSON (a number with more than 4300 digits)"
    assert check_example(got[0], "x") is got[0]
    digits = "9" * 5000  # too long for json.loads too: inside a JSON string of arguments
    rec = json.loads(_good_lines("jsonl")[0])
    rec["messages"][-1]["tool_calls"][0]["function"]["arguments"] = '{"city": ' + digits + "}"
    xrow = json.loads(_good_lines("xlam")[0])
    xrow["answers"] = '[{"name": "sum_list", "arguments": {"numbers": [' + digits + "]}}]"
    for kind, bad, field in (("jsonl", rec, "messages"), ("xlam", xrow, "answers")):
        (tmp_path / kind).mkdir()
        source, path, good = _source_with(kind, tmp_path / kind, json.dumps(bad).encode())
        got = load(source, skip_invalid=True)
        assert len(got) == good
        (err,) = got.skipped
        assert str(err).startswith(f"{path} line 2: field '{field}': ") and "more than 4300 digits" in str(err)


def test_bfcl_exec_golds_json_cannot_write_are_errors(tmp_path):
    root = tmp_path / "bfcl"
    for part in ("question", "possible_answer"):
        src = FIX / "bfcl" / "unused_datasets" / part / "BFCL_v4_exec_simple.json"
        (root / "unused_datasets" / part).mkdir(parents=True)
        (root / "unused_datasets" / part / src.name).write_text(src.read_text())
    question = root / "unused_datasets" / "question" / "BFCL_v4_exec_simple.json"
    answers = root / "unused_datasets" / "possible_answer" / "BFCL_v4_exec_simple.json"
    first_q, first_a = question.read_text().strip(), json.loads(answers.read_text())
    bad = [dict(first_a, id="exec_simple_1", ground_truth=["calc_area(w=1j, h=3)"]),
           dict(first_a, id="exec_simple_2", ground_truth=[f"calc_area(w=0x{'f' * 5000}, h=3)"])]
    question.write_text("\n".join([first_q, first_q.replace("exec_simple_0", "exec_simple_1"),
                                   first_q.replace("exec_simple_0", "exec_simple_2")]) + "\n")
    answers.write_text("\n".join(json.dumps(a) for a in [first_a, *bad]) + "\n")
    got = load(f"bfcl:exec_simple@{root}", skip_invalid=True)
    assert [e.id for e in got] == ["exec_simple_0"]
    complex_err, huge_err = (str(e) for e in got.skipped)
    assert complex_err == (f"{question} line 2: field 'gold': cannot be written as JSON (a complex value, which "
                           "JSON cannot hold)")
    # refused by BFCL's decoder itself or by the check after it: either way an error of that item
    assert huge_err.startswith((f"{question} line 3: field 'gold': ", f"{answers} line 3: field 'ground_truth': "))


def test_a_negative_limit_is_a_mistake():
    with pytest.raises(ValueError, match="limit must be >= 0"):
        load(f"jsonl:{FIX / 'openai.jsonl'}", limit=-1)
    assert load(f"jsonl:{FIX / 'missing.jsonl'}", limit=0) == []  # 0 is "nothing": not even opened


def _examples_not_to_be_read():
    pytest.fail("the examples were read although the path was known to be unwritable")
    yield


def test_write_jsonl_refuses_paths_it_cannot_write_naming_them(tmp_path, monkeypatch):
    import tempfile

    examples = load(f"xlam:{FIX / 'xlam.json'}")
    with pytest.raises(IsADirectoryError, match=f"cannot write {tmp_path}: it is a directory"):
        write_jsonl(_examples_not_to_be_read(), tmp_path)
    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match=f"cannot write {a_file / 'sub' / 'out.jsonl'}: {a_file} is a file"):
        write_jsonl(_examples_not_to_be_read(), a_file / "sub" / "out.jsonl")
    out = tmp_path / "out.jsonl"
    out.write_text("old\n")

    def refused(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / ".out.jsonl.x.tmp"))

    monkeypatch.setattr(tempfile, "mkstemp", refused)  # a folder that turns read-only under us
    with pytest.raises(PermissionError, match=f"cannot write {out}: Permission denied"):
        write_jsonl(examples, out)
    monkeypatch.undo()
    assert out.read_text() == "old\n" and sorted(os.listdir(tmp_path)) == ["file", "out.jsonl"]
    if os.geteuid() != 0:  # root writes anywhere
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o555)
        try:
            with pytest.raises(PermissionError, match=f"cannot write {ro / 'x.jsonl'}"):
                write_jsonl(_examples_not_to_be_read(), ro / "x.jsonl")
        finally:
            ro.chmod(0o755)


def test_write_jsonl_writes_strict_json(tmp_path):
    ex = Example("nan", [{"role": "user", "content": "lone \ud800"}], [],
                 Gold("calls", calls=[ToolCall("f", {"x": float("nan"), "s": "\udc00"})]))
    out = tmp_path / "o.jsonl"
    assert write_jsonl([ex], out) == 1
    text = out.read_bytes().decode("utf-8")  # valid UTF-8: surrogates escaped
    assert "NaN" not in text
    record = json.loads(text)
    assert record["messages"][0]["content"] == "lone \ud800"
    assert record["messages"][-1]["tool_calls"][0]["function"]["arguments"] == {"x": None, "s": "\udc00"}


def test_cli_data_show_survives_hostile_lines(tmp_path, capsys):
    good = _good_lines("jsonl")[0]
    surrogate = json.loads(good)
    surrogate["messages"][1]["content"] = "lone \ud800"
    path = tmp_path / "h.jsonl"
    path.write_bytes(b"\n".join([BAD_LINES["deep"][0], good, BAD_LINES["number"][0], BAD_LINES["utf8"][0],
                                 json.dumps(surrogate).encode()]) + b"\n")
    assert main(["data", "show", f"jsonl:{path}"]) == 2
    assert f"{path} line 1: not readable JSON (nested more than 100 levels deep)" in capsys.readouterr().err
    assert main(["data", "show", f"jsonl:{path}", "--skip-invalid"]) == 0
    captured = capsys.readouterr()
    shown = [json.loads(line) for line in captured.out.splitlines()]
    assert [ex["messages"][1]["content"] for ex in shown] == ["Weather in Oslo?", "lone \ud800"]
    assert "skipped 3 invalid records" in captured.err
    for n in (1, 3, 4):
        assert f"{path} line {n}: " in captured.err
