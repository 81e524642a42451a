"""API-Bank loader and checker, on the invented checkout in tests/fixtures/apibank (docs/benchmarks.md)."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from toolace_r.calls import ToolCall, render
from toolace_r.data.apibank import expected_output, find_root, read_api_classes
from toolace_r.data.example import Example
from toolace_r.data.registry import DatasetError, load
from toolace_r.evaluation import apibank
from toolace_r.evaluation.apibank import METRIC, aggregate, check, decode, extract_call, normalise

FIXTURE = Path(__file__).parent / "fixtures" / "apibank" / "checkout"


def _by_id(source: str, **kw) -> dict[str, Example]:
    return {e.id: e for e in load(source, **kw)}


# --- loader ----------------------------------------------------------------------------------------

def test_level1_samples_follow_the_official_construction():
    exs = _by_id(f"apibank:level-1@{FIXTURE}")
    # one sample per API turn, plus the official repeat of an API turn that follows another API turn
    assert sorted(exs) == ["BookTable-level-1-1:2", "GetAccessKey-BookTable-level-2-1:2",
                           "GetAccessKey-BookTable-level-2-1:3", "GetAccessKey-BookTable-level-2-1:3:repeat"]
    rep, own = exs["GetAccessKey-BookTable-level-2-1:3:repeat"], exs["GetAccessKey-BookTable-level-2-1:3"]
    assert rep.messages == own.messages and rep.gold == own.gold
    assert (rep.metadata["official_id"], own.metadata["official_id"]) == (1, 2)
    assert rep.metadata["repeat"] and not own.metadata["repeat"]
    assert own.category == "apibank_level_1" and own.metadata["level"] == 1


def test_repeats_can_be_left_out():
    assert len(load(f"apibank:level-1@{FIXTURE}", repeats=False)) == 3


def test_messages_tools_gold_and_metadata():
    ex = _by_id(f"apibank:level-1@{FIXTURE}")["GetAccessKey-BookTable-level-2-1:3"]
    assert [m["role"] for m in ex.messages] == ["user", "assistant", "assistant", "tool"]
    call = ex.messages[2]
    assert call["tool_calls"][0]["function"] == {"name": "GetAccessKey",
                                                 "arguments": {"username": "ann", "password": "pw1"}}
    assert ex.messages[3]["tool_call_id"] == call["tool_calls"][0]["id"]
    assert json.loads(ex.messages[3]["content"]) == {"output": {"access_key": "k-ann"}}
    # level 1: every API of the dialogue, sorted, descriptions from the class bodies
    assert [t.name for t in ex.tools] == ["BookTable", "GetAccessKey"]
    book = ex.tools[0]
    assert book.description.startswith("Reserves a table")
    assert book.properties["guests"]["type"] == "integer" and book.properties["dishes"]["type"] == "array"
    assert ex.gold.kind == "calls" and ex.gold.calls == [ToolCall("BookTable", {
        "access_key": "k-ann", "restaurant": "Sakura", "guests": "2", "time": "2023-06-01 18:30:00", "dishes": "[]"})]
    assert ex.metadata["expected_output"] == ("API-Request: [BookTable(access_key='k-ann', restaurant='Sakura', "
                                              "guests='2', time='2023-06-01 18:30:00', dishes='[]')]")
    assert ex.metadata["param_types"]["guests"] == "int"
    assert ex.metadata["api_turn"]["result"]["exception"] == "Sakura is full."
    assert Example.from_dict(json.loads(json.dumps(ex.to_dict()))).to_dict() == ex.to_dict()


def test_level2_offers_only_the_tool_searcher():
    exs = _by_id(f"apibank:level-2@{FIXTURE}")
    assert sorted(exs) == ["BookTable-level-3-1:2", "BookTable-level-3-1:3", "BookTable-level-3-1:3:repeat",
                           "GetAccessKey-level-3-1:2", "GetAccessKey-level-3-1:4"]
    first, later = exs["GetAccessKey-level-3-1:2"], exs["GetAccessKey-level-3-1:4"]
    assert first.gold.calls == [ToolCall("ToolSearcher", {"keywords": "access key"})]
    assert [t.name for t in later.tools] == ["ToolSearcher"]
    assert later.category == "apibank_level_2"
    assert first.metadata["retrieved"] == [] and later.metadata["retrieved"] == ["GetAccessKey"]
    assert exs["BookTable-level-3-1:3"].metadata["retrieved"] == ["BookTable"]


def test_levels_all_and_data_dir_and_api_bank_folder():
    both = load(f"apibank:all@{FIXTURE}")
    assert len(both) == 9
    assert [e.id for e in load("apibank:level-1,level-2", data_dir=FIXTURE / "api-bank")] == [e.id for e in both]
    assert find_root(FIXTURE) == find_root(FIXTURE / "api-bank") == FIXTURE / "api-bank"


def test_api_classes_read_without_running_them():
    apis = read_api_classes(FIXTURE / "api-bank" / "apis")
    assert sorted(apis) == ["BookTable", "GetAccessKey", "ToolSearcher"]  # no API base, no NotAnApi
    assert apis["ToolSearcher"]["output_parameters"]["best_matchs"]["type"] == "Union[List[dict], dict]"


def test_wrong_folder_names_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match="level-1-given-desc.*apis"):
        load(f"apibank:level-1@{tmp_path}")
    with pytest.raises(ValueError, match="unknown API-Bank level 'level-3'"):
        load(f"apibank:level-3@{FIXTURE}")
    with pytest.raises(ValueError, match="checkout"):
        load("apibank:level-1")


def _copy(tmp_path: Path) -> Path:
    root = tmp_path / "api-bank"
    shutil.copytree(FIXTURE / "api-bank", root)
    return root


def test_malformed_lines_name_file_line_and_field(tmp_path):
    root = _copy(tmp_path)
    folder = root / "lv1-lv2-samples" / "level-1-given-desc"
    (folder / "Bad-1.jsonl").write_text('{"role": "User", "text": "hi"}\n{"role": "API", "api_name": "BookTable"}\n')
    (folder / "Bad-2.jsonl").write_text('{"role": "User", "text": "hi"}\nnot json\n')
    (folder / "Bad-3.jsonl").write_text('{"role": "Robot", "text": "hi"}\n')
    (folder / "Bad-4.jsonl").write_text('{"role": "API", "api_name": "Nope", "param_dict": {}}\n'
                                        '{"role": "AI", "text": "x"}\n')
    with pytest.raises(DatasetError, match=r"Bad-1.jsonl line 2: field 'param_dict'"):
        load(f"apibank:level-1@{root}")
    got = load(f"apibank:level-1@{root}", skip_invalid=True)
    assert len(got) == 4
    messages = [str(e) for e in got.skipped]
    assert len(messages) == 4
    assert "Bad-2.jsonl line 2" in messages[1]
    assert "Bad-3.jsonl line 1: field 'role'" in messages[2]
    assert "Bad-4.jsonl line 1: field 'api_name'" in messages[3] and "'Nope'" in messages[3]


def test_no_api_classes_is_an_error(tmp_path):
    root = _copy(tmp_path)
    for p in (root / "apis").glob("*.py"):
        p.write_text("x = 1\n")
    with pytest.raises(FileNotFoundError, match="no API class"):
        load(f"apibank:level-1@{root}")


# --- checker ---------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def book() -> Example:
    return _by_id(f"apibank:level-1@{FIXTURE}")["BookTable-level-1-1:2"]


def test_the_recorded_answers_are_right():
    exs = load(f"apibank:all@{FIXTURE}")
    for ex in exs:
        assert check(ex, ex.metadata["expected_output"]).valid, ex.id
        assert check(ex, render(ex.gold.calls, "pythonic")).valid, ex.id


@pytest.mark.parametrize("text", [
    "API-Request: [BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=4, time='2023-05-02 19:00:00', "
    "dishes=['lasagne'])]",
    "[BookTable(access_key='k-123', restaurant=\"Luigi's\", guests='4', time='2023-05-02 19:00:00', "
    "dishes=\"['lasagne']\")]",
    "Sure! [BookTable(guests=4.0, dishes=[' lasagne'], time='2023-05-02 19:00:00', restaurant=\"Luigi's \", "
    "access_key='k-123')] is my request.",
    "Thinking...\nAPI-Request: [BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=4, "
    "time='2023-05-02 19:00:00', dishes='['lasagne']')]\nDone",
])
def test_accepted_spellings(book, text):
    assert check(book, text).valid, check(book, text)


@pytest.mark.parametrize("text,error_type", [
    ("I cannot help with that.", "no_call"),
    ("", "no_call"),
    ("API-Request: [BookTable(access_key='k-123',, guests=4)]", "decode_failure"),
    ("[GetAccessKey(username='a', password='b')]", "wrong_function"),
    ("[BookTable(access_key='k-123')]", "missing_required"),
    ("[BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=4, time='2023-05-02 19:00:00', "
     "dishes=['lasagne'], note='x')]", "unexpected_param"),
    ("[BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=5, time='2023-05-02 19:00:00', "
     "dishes=['lasagne'])]", "value"),
    ("[BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=4, time='2023-05-02 7pm', "
     "dishes=['lasagne'])]", "value"),
    ("[BookTable(access_key='K-123', restaurant=\"Luigi's\", guests=4, time='2023-05-02 19:00:00', "
     "dishes=['lasagne'])]", "value"),
    ("[BookTable(access_key='k-123', restaurant=\"Luigi's\", guests=4, time='2023-05-02 19:00:00', "
     "dishes=['lasagne', 'tiramisu'])]", "value"),
    ("[GetAccessKey(username='a', password='b'), BookTable()]", "wrong_count"),
])
def test_wrong_answers(book, text, error_type):
    verdict = check(book, text)
    assert not verdict.valid and verdict.error_type == error_type, verdict


@pytest.mark.parametrize("garbage", ["[" * 5000, ")]" * 5000, "[a(" * 3000 + ")]", "x" * 200_000,
                                     "[BookTable(" + "[" * 500 + "]" * 500 + ")]", "\x00\ud800"])
def test_garbage_is_a_verdict_not_an_exception(book, garbage):
    assert not check(book, garbage).valid


def test_code_is_never_run(book):
    verdict = check(book, "[BookTable(access_key=__import__('os').system('true'))]")
    assert not verdict.valid  # the expression is kept as source text, as BFCL's decoder keeps it
    assert verdict.calls[0].arguments["access_key"] == "__import__('os').system('true')"


def test_repair_of_recorded_nested_quotes():
    calls = decode("API-Request: [A(name='Luigi's', items='['a', 'b']', n=3)]").calls
    assert calls == [ToolCall("A", {"name": "Luigi's", "items": "['a', 'b']", "n": 3})]


def test_extraction_matches_the_official_pattern():
    assert extract_call("API-Request: [A(x='1')] then [B()]") == "[A(x='1')] then [B()]"  # greedy to the last )]
    assert extract_call("[A()]") == "[A()]"
    assert extract_call("no call\n[A(x=1)]\n") == "[A(x=1)]"
    assert extract_call("[A(x=1\n)]") is None  # one line, as the official pattern's "."
    assert extract_call("A(x=1)") is None
    assert decode("[A(x=1)]").calls == [ToolCall("A", {"x": 1})]


def test_tool_searcher_keywords_ignore_case_and_spacing():
    ex = _by_id(f"apibank:level-2@{FIXTURE}")["GetAccessKey-level-3-1:2"]
    assert check(ex, "API-Request: [ToolSearcher(keywords='Access   KEY ')]").valid
    assert not check(ex, "[ToolSearcher(keywords='key')]").valid


def test_normalise_rules():
    assert normalise("4", "int") == normalise(4, "int") == normalise(4.0, "int")
    assert normalise("True", "bool") == normalise(True, "bool") == normalise("true", "bool")
    assert normalise("['a', 'b']", "list") == normalise(["a", "b"], "list") == normalise('["a", "b"]', None)
    assert normalise(12345, "str") == normalise(" 12345", "str")
    assert normalise("[{'name': 'bp', 'value': '120'}]", "list") == normalise([{"value": 120, "name": "bp"}], "list")
    assert normalise("abc", "str") != normalise("ABC", "str")


def test_aggregate_per_level():
    exs = list(load(f"apibank:all@{FIXTURE}"))
    verdicts = [check(e, e.metadata["expected_output"]) for e in exs]
    verdicts[0] = check(exs[0], "[GetAccessKey(username='x', password='y')]")
    verdicts[-1] = None
    out = aggregate(exs, verdicts)
    assert out["metric"] == METRIC == apibank.METRIC
    l1, l2 = out["levels"]["apibank_level_1"], out["levels"]["apibank_level_2"]
    assert (l1["n"], l1["correct"], l1["accuracy"], l1["name_correct"]) == (4, 3, 0.75, 3)
    assert (l2["n"], l2["correct"], l2["name_correct"]) == (5, 4, 4)
    assert out["levels"]["all"]["n"] == 9


def test_expected_output_string_form():
    assert expected_output("A", {"x": "1", "y": "['a']"}) == "API-Request: [A(x='1', y='['a']')]"
