"""ACEBench: loader, verdicts (each rule and quirk of docs/acebench.md), scores, prompts.

Fixtures under tests/fixtures/acebench are invented items in ACEBench's file layout; no test needs a
checkout of ACEBench."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.data import DatasetError, Example, Gold, load
from toolace_r.evaluation.acebench import aggregate, category_score, check, decode, standardise
from toolace_r.evaluation.acebench_prompt import acebench_messages, load_prompts

ROOT = Path(__file__).parent / "fixtures" / "acebench"
EN = ROOT / "data_all" / "data_en"


def _fn(name, props, required=()):
    return {"name": name, "description": "", "parameters": {"type": "object", "properties": props,
                                                            "required": list(required)}}


F = _fn("F", {"s": {"type": "string"}, "n": {"type": "integer"}, "x": {"type": "number"},
              "f": {"type": "float"}, "b": {"type": "boolean"}, "l": {"type": "array", "items": {"type": "string"}},
              "a": {"type": "array"}, "o": {"type": "object"}, "lo": {"type": "array", "items": {"type": "object"}},
              "e": {"type": "string", "enum": ["total", "partial"]}})


def ex(truth, functions=(F,), category="normal_atom_bool", ex_id="normal_atom_bool_0"):
    return Example(id=ex_id, messages=[], tools=[], gold=Gold(kind="calls"), category=category,
                   metadata={"acebench": {"ground_truth": truth, "function": list(functions)}})


def ok(truth, text, **kw):
    functions = kw.pop("functions", (F,))
    return check(ex(truth, functions), text, **kw).valid


# --- loader ------------------------------------------------------------------------------------------

@pytest.mark.parametrize("spec,options", [
    (f"acebench:normal_atom_bool@{ROOT}", {}),
    (f"acebench:normal_atom_bool@{ROOT / 'data_all'}", {}),
    ("acebench:normal_atom_bool", {"data_dir": str(EN)}),
    (f"acebench:normal_atom_bool@{ROOT}#en", {}),
])
def test_loader_finds_the_language_folder(spec, options):
    items = load(spec, **options)
    assert [e.id for e in items] == [f"normal_atom_bool_{i}" for i in range(6)]


def test_loader_example_fields():
    first, _, alt, _, _, parallel = load(f"acebench:normal_atom_bool@{ROOT}")
    meta = first.metadata["acebench"]
    assert meta["time"] == "The current time is May 1, 2024." and meta["lang"] == "en"
    assert meta["question"].startswith("user: Weather") and first.messages[0]["content"] == meta["question"]
    assert meta["ground_truth"] == {"Weather.get": {"city": "New York", "days": 3, "metric": True}}
    assert [t.name for t in first.tools] == ["Other.tool", "Weather.get"]  # distractor read from 'arguments'
    assert first.tools[0].properties == {"q": {"type": "string"}}
    assert first.gold.kind == "calls" and first.gold.calls[0].arguments["city"] == "New York"
    assert alt.gold.calls[0].arguments == {"city": "Rome"}  # the first alternative
    assert [c.name for c in parallel.gold.calls] == ["Weather.get", "Weather.get"]  # suffix removed


def test_loader_all_groups_and_special_gold():
    items = load(f"acebench:special@{ROOT}")
    assert [e.category for e in items] == ["special_incomplete", "special_error_param", "special_irrelevant"]
    assert all(e.gold.kind == "no_call" for e in items)
    for e in items:  # the gold text is an answer ACEBench accepts
        assert check(e, e.gold.text).valid
    multi = load(f"acebench:normal_multi_turn_user_adjust@{ROOT}")
    assert [e.metadata["acebench"]["conversation"] for e in multi] == ["0", "0", "1", "1", "1"]
    pref = load(f"acebench:normal_preference@{ROOT}")[0]
    assert pref.metadata["acebench"]["profile"] == "{'home': 'Lyon'}"


def test_loader_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected data_normal_atom_bool.json and possible_answer/"):
        list(load(f"acebench:normal_atom_bool@{tmp_path}"))
    with pytest.raises(ValueError, match="unknown ACEBench category 'normal_nope'"):
        load(f"acebench:normal_nope@{ROOT}")
    with pytest.raises(ValueError, match="simulated environments"):
        load(f"acebench:agent_multi_step@{ROOT}")
    with pytest.raises(ValueError, match="unknown language 'fr'"):
        load(f"acebench:normal_atom_bool@{ROOT}#fr")
    with pytest.raises(ValueError, match="no data dir"):
        load("acebench:normal_atom_bool")
    with pytest.raises(FileNotFoundError, match="data_zh"):  # no Chinese fixtures
        load(f"acebench:normal_atom_bool@{ROOT}#zh")


def _bad_dir(tmp_path, question, answer):
    folder = tmp_path / "data_en"
    (folder / "possible_answer").mkdir(parents=True)
    (folder / "data_special_irrelevant.json").write_text(json.dumps(question) + "\n")
    (folder / "possible_answer" / "data_special_irrelevant.json").write_text(json.dumps(answer) + "\n")
    return tmp_path


def test_loader_malformed_line_names_file_line_and_field(tmp_path):
    root = _bad_dir(tmp_path, {"id": "special_irrelevant_0", "question": 5, "function": []},
                    {"id": "special_irrelevant_0", "ground_truth": "x"})
    with pytest.raises(DatasetError, match=r"data_special_irrelevant.json line 1: field 'question': expected"):
        load(f"acebench:special_irrelevant@{root}")
    items = load(f"acebench:special_irrelevant@{root}", skip_invalid=True)
    assert len(items) == 0 and len(items.skipped) == 1


def test_loader_missing_answer(tmp_path):
    root = _bad_dir(tmp_path, {"id": "special_irrelevant_0", "question": "q", "function": []},
                    {"id": "special_irrelevant_9", "ground_truth": "x"})
    with pytest.raises(DatasetError, match="field 'id': no answer with id 'special_irrelevant_0'"):
        load(f"acebench:special_irrelevant@{root}")


# --- decoding ----------------------------------------------------------------------------------------

def test_decoding_rules():
    assert decode("[F(s='New York')]") == [("F", {"s": "NewYork"})]  # Q1: all whitespace removed
    assert decode("[F(s=New\u00a0York)]") == [("F", {"s": "NewYork"})]  # Q2: bare names are text
    assert decode("[F(s='sea\\x20view')]") == [("F", {"s": "sea view"})]
    assert decode("F(s='a'),") == [("F", {"s": "a"})] and decode("{F(s='a')}") == [("F", {"s": "a"})]  # Q18
    assert decode("[functions.F('a', n=1)]") == [("functions.F", {"n": 1})]  # Q19
    assert decode("[F(l=[+5, ~3], x=10/4, s='a'+'b', v=..., c=G(k=1), d=H(), t=a[0])]") == [
        ("F", {"l": [-5, -3], "x": 2.5, "s": "ab", "v": "...", "c": {"G": {"k": 1}}, "d": {"H": {}}, "t": "a[0]"})]
    assert decode("[F(**k)]") == [("F", {None: "k"})]
    assert decode("[]") == []
    assert decode("[F(s=1,s='a')]") == [("F", {"s": "a"})]  # ast accepts a repeated keyword: the last wins


@pytest.mark.parametrize("text", ["F(s='a')", "(F(s='a'))", "```python\n[F(s='a')]\n```", "Sure: [F(s='a')]",
                                  '[{"name": "F", "arguments": {}}]', "", "   ", "[F(s=f'x')]", "[F(s={1})]",
                                  "[F(s=a.b)]", "[F(s=-x)]", "[F(s=lambda:1)]", "[F(s=1<2)]",
                                  "[F(s=2**99999999)]", "[F(s='a'*10**9)]", "[1]"])
def test_undecodable(text):
    v = check(ex({"F": {"s": "a"}}), text)
    assert not v.valid and v.error_type == "decode_failure"


# --- one normal item ---------------------------------------------------------------------------------

def test_count_names_and_suffixes():
    gold = {"F": {"s": "a"}, "F_1": {"s": "b"}}
    assert ok(gold, "[F(s='b'), F(s='a')]")  # order free
    assert ok(gold, "[F(s='a b'), F(s='zzz')]")  # Q17: one call may satisfy both
    assert not ok(gold, "[F(s='a'), F_1(s='b')]")  # Q17: the suffix must not be written
    assert not ok(gold, "[F(s='a')]")
    assert check(ex(gold), "[F(s='a')]").error_type == "wrong_count"
    assert check(ex({"F": {"s": "a"}}), "[G(s='a')]").error_type == "wrong_function"
    g2 = _fn("G_2", {"s": {"type": "string"}})
    assert not ok({"G_2": {"s": "a"}}, "[G_2(s='a')]", functions=[g2])  # Q21
    assert ok({"G_2": {"s": "a"}}, "[G_2(s='a')]", functions=[g2], lenient=True)


def test_schema_lookup_by_substring():
    short = _fn("Get", {"q": {"type": "string"}})
    long = _fn("GetWeather", {"s": {"type": "string"}})
    assert not ok({"GetWeather": {"s": "a"}}, "[GetWeather(s='a')]", functions=[short, long])
    assert ok({"GetWeather": {"s": "a"}}, "[GetWeather(s='a')]", functions=[short, long], lenient=True)


def test_parameters_required_extra_and_omitted():
    req = _fn("F", {"s": {"type": "string"}, "n": {"type": "integer"}}, required=["s"])
    assert ok({"F": {"s": "a", "n": 5}}, "[F(s='a')]", functions=[req])  # Q9
    assert not ok({"F": {"s": "a", "n": 5}}, "[F(n=5)]", functions=[req])
    assert check(ex({"F": {"s": "a", "n": 5}}, [req]), "[F(n=5)]").error_type == "missing_required"
    assert not ok({"F": {"s": "a"}}, "[F(s='a', n=5)]", functions=[req])  # optional, not in gold
    assert not ok({"F": {"s": "a"}}, "[F(s='a', z=1)]", functions=[req])
    assert not ok({"F": {"s": "a"}}, "[F(**k)]", functions=[req])
    assert not ok({"F": {"s": "a"}}, "[F('a')]", functions=[req])  # Q19


def test_empty_arguments():
    ping = {"name": "Ping", "description": "", "parameters": {}}
    assert ok({"Ping": {}}, "[Ping()]", functions=[ping])
    assert not ok({"Ping": {}}, "[Ping(x=1)]", functions=[ping])
    assert not ok({"F": {}}, "[F()]")  # Q22
    assert ok({"F": {}}, "[F()]", lenient=True)


def test_numbers_and_booleans_are_not_compared():
    assert ok({"F": {"n": 5}}, "[F(n=6)]")  # Q5
    assert ok({"F": {"n": 5}}, "[F(n=5.0)]") and not ok({"F": {"n": 40}}, "[F(n=40.5)]")
    assert ok({"F": {"x": 1.5}}, "[F(x=99)]") and not ok({"F": {"x": 1.5}}, "[F(x='1.5')]")  # Q6
    assert ok({"F": {"f": 1.5}}, "[F(f=2)]")  # int accepted for float
    for text in ("[F(b=False)]", "[F(b='false')]", "[F(b=true)]"):  # Q7
        assert ok({"F": {"b": True}}, text)
    assert not ok({"F": {"b": True}}, "[F(b='yes')]")
    assert check(ex({"F": {"b": True}}), "[F(b='yes')]").error_type == "type"


def test_strings():
    assert ok({"F": {"s": "Athens"}}, "[F(s='Athens, Greece')]")  # Q3
    assert not ok({"F": {"s": "Athens"}}, "[F(s='Athen')]")
    assert ok({"F": {"s": "E-mail_Address"}}, "[F(s='email address')]")  # Q4
    assert not ok({"F": {"s": "email"}}, "[F(s='e:mail')]")
    assert standardise("Mother's A.B") == 'mother"sab'
    assert ok({"F": {"e": "total"}}, "[F(e='totally')]")  # Q16
    assert not ok({"F": {"s": "true"}}, "[F(s='true')]")  # Q8
    assert ok({"F": {"s": "true"}}, "[F(s='True')]")
    assert ok({"F": {"s": "true"}}, "[F(s='true')]", lenient=True)
    assert check(ex({"F": {"s": "x"}}), "[F(s='y')]").error_type == "value"


def test_lists():
    assert ok({"F": {"l": ["Red Wine", "b"]}}, "[F(l=['redwine', 'B'])]")  # Q10
    assert not ok({"F": {"l": ["a", "b"]}}, "[F(l=['b', 'a'])]")
    assert not ok({"F": {"l": ["x"]}}, "[F(l=['xy'])]") and not ok({"F": {"l": ["x"]}}, "[F(l=['x', 'y'])]")
    assert ok({"F": {"l": [-5]}}, "[F(l=[+5])]")  # Q20
    assert not ok({"F": {"a": ["x"]}}, "[F(a=['x'])]")  # Q14
    assert ok({"F": {"a": ["x"]}}, "[F(a=['x'])]", lenient=True)
    assert not ok({"F": {"l": []}}, "[F(l=[])]")  # Q15
    assert ok({"F": {"l": []}}, "[F(l=[])]", lenient=True)
    gold = {"F": {"lo": [{"k": "x"}, {"k": "y"}]}}
    assert ok(gold, "[F(lo=[{'k': 'x'}, {'k': 'y'}])]")
    assert not ok(gold, "[F(lo=[{'k': 'y'}, {'k': 'x'}])]")  # Q13
    assert not ok({"F": {"l": {"k": 1}}}, "[F(l='abc')]")


def test_objects():
    assert ok({"F": {"o": {"n": 5}}}, "[F(o={'n': 15})]")  # Q11
    assert ok({"F": {"o": {"c": "Paris"}}}, "[F(o={'c': 'paris area'})]")
    assert ok({"F": {"o": {"n": 5}}}, "[F(o={'n': '5'})]") and not ok({"F": {"o": {"n": 5.0}}}, "[F(o={'n': 5})]")
    assert not ok({"F": {"o": {"n": 2.5}}}, "[F(o={'n': '2.5'})]")
    assert ok({"F": {"o": {"b": True}}}, "[F(o={'b': 'true'})]") and not ok({"F": {"o": {"b": True}}}, "[F(o={'b': 'True'})]")
    assert not ok({"F": {"o": {"b": True}}}, "[F(o={'b': False})]")
    assert not ok({"F": {"o": {"a": 1, "b": 2}}}, "[F(o={'a': 1})]")  # same key count
    assert not ok({"F": {"o": {"a": 1}}}, "[F(o={'z': 1})]")
    assert ok({"F": {"o": {"d": {"e": "x"}}}}, "[F(o={'d': {'e': 'X'}})]")  # nested objects recurse
    gold = {"F": {"o": {"tags": ["sea view"]}}}
    assert not ok(gold, "[F(o={'tags': ['sea view']})]")  # Q12
    assert ok(gold, "[F(o={'tags': ['sea\\x20view']})]")
    assert ok(gold, "[F(o={'tags': ['sea view']})]", lenient=True)


def test_alternatives():
    gold = [{"F": {"s": "a"}}, {"F": {"s": "b"}}]  # Q23
    assert ok(gold, "[F(s='b')]") and ok(gold, "[F(s='a')]") and not ok(gold, "[F(s='c')]")


def test_crash_spots_are_wrong():
    odd = _fn("F", {"s": {"type": "strange"}})
    v = check(ex({"F": {"s": "a"}}, [odd]), "[F(s='a')]")
    assert not v.valid and v.bfcl_error_type == "crash"


def test_fixture_items():
    items = {e.id: e for e in load(f"acebench:normal_atom_bool@{ROOT}")}
    assert check(items["normal_atom_bool_0"], "[Weather.get(city='New York', days=3, metric=True)]").valid
    assert not check(items["normal_atom_bool_0"], "[Other.tool(q='x')]").valid
    opts = "[Weather.get(city='Paris', opts={'mode': 'fast', 'n': 5, 'labels': ['sea view']})]"
    assert not check(items["normal_atom_bool_1"], opts).valid and check(items["normal_atom_bool_1"], opts, lenient=True).valid
    assert check(items["normal_atom_bool_2"], "[Weather.get(city='Milan')]").valid
    assert not check(items["normal_atom_bool_3"], "[Ping(), Reset()]").valid
    assert check(items["normal_atom_bool_3"], "[Ping(), Reset()]", lenient=True).valid
    right = "[Rooms.book(rooms=['single'], empty=[], flag='true')]"
    assert not check(items["normal_atom_bool_4"], right).valid and check(items["normal_atom_bool_4"], right, lenient=True).valid
    assert check(items["normal_atom_bool_5"], "[Weather.get(city='Bergen'), Weather.get(city='Oslo', lat=1, tags=['red wine', 'B'])]").valid


# --- special categories ------------------------------------------------------------------------------

def special(category, truth, text, **kw):
    return check(ex(truth, category=category, ex_id=category + "_0"), text, **kw).valid


def test_special_incomplete():
    truth = {"Book": ["rooms ", " flag"]}
    assert special("special_incomplete", truth, "Missing necessary parameters (rooms , flag) for the api (Book)")
    assert not special("special_incomplete", truth, "Missing necessary parameters (rooms, flag) for the api (Book)")  # Q24
    assert special("special_incomplete", truth, "Missing necessary parameters (rooms, flag) for the api (Book)", lenient=True)
    assert special("special_incomplete", {"F": ["a"]}, '["Missing necessary parameters (a) for the api (Foo)"]')
    assert not special("special_incomplete", {"F": ["a"]}, "missing necessary parameters (a) for the api (F)")
    v = check(ex({"F": ["zz"]}, category="special_incomplete"), "Missing necessary parameters (b) for the api (F)")
    assert (v.error_type, v.bfcl_error_type) == ("value", "error_correction")


def test_special_error_param():
    truth = {"id": ["1234WrongID"]}
    assert special("special_error_param", truth, "There is incorrect value 1234WrongID")  # Q25
    assert special("special_error_param", truth, "There is incorrect value (1234WrongID) for the parameters (x)")
    assert not special("special_error_param", truth, "There are incorrect values (1234WrongID)")
    assert not special("special_error_param", truth, "There is incorrect value (1234wrongid)")


def test_special_irrelevant():
    cat, truth = "special_irrelevant", "Due to the limitations of the function, I cannot solve this problem."
    assert special(cat, truth, truth) and special(cat, truth, "the limitations of the functions")  # Q26
    assert special(cat, truth, '[F(s="the limitations of the function")]')
    assert not special(cat, truth, "Due to the Limitations of the function")
    assert not special(cat, truth, "the limitations of  the function")
    v = check(ex(truth, category=cat), "[F(s='a')]")
    assert (v.valid, v.error_type, v.bfcl_error_type) == (False, "unexpected_call", "error_detection")


# --- scores ------------------------------------------------------------------------------------------

def test_multi_turn_accuracy_per_conversation():
    items = load(f"acebench:normal_multi_turn_user_adjust@{ROOT}")
    answers = ["[Weather.get(city='Rome')]", "[Weather.get(city='Milan')]", "[Weather.get(city='Oslo')]",
               "[Weather.get(city='Oslo')]", "[Weather.get(city='Turin')]"]
    results = {e.id: check(e, a) for e, a in zip(items, answers)}
    score = category_score("normal_multi_turn_user_adjust", results)
    assert score["correct"] == 4 and score["conversations"] == 2 and score["accuracy"] == 0.5
    assert score["process_accuracy"] == round((1 + round(2 / 3, 3)) / 2, 3)


def test_aggregate_summary_and_present_parts():
    normal = {f"normal_atom_bool_{i}": i < 2 for i in range(3)}  # 2/3 -> 0.667
    special = [("special_irrelevant_0", True), ("special_irrelevant_1", False), ("special_irrelevant_2", False)]
    out = aggregate({"normal_atom_bool": normal, "special_irrelevant": special})
    assert out["categories"]["normal_atom_bool"]["accuracy"] == 0.667
    assert out["categories"]["special_irrelevant"]["accuracy"] == 1 / 3  # special: not rounded
    assert out["groups"]["atom"] == round(0.667 / 6, 3) and out["groups"]["normal_summary"] == round(0.667 / 12, 3)
    assert out["groups"]["special_summary"] == round(1 / 9, 3) and out["groups"]["agent_summary"] == 0
    assert out["summary"] == round(out["groups"]["normal_summary"] * 0.578 + out["groups"]["special_summary"] * 0.2676, 3)
    assert out["present"]["normal"] == ["normal_atom_bool"] and out["present"]["agent"] == []
    assert "agent_multi_turn" in out["missing"]["agent"]
    with pytest.raises(ValueError, match="unknown ACEBench categories"):
        aggregate({"simple_python": {}})


def test_all_right_scores_full_marks():
    cats = {c: {f"{c}_0": True} for c in
            ("normal_single_turn_single_function", "normal_single_turn_parallel_function", "normal_similar_api",
             "normal_preference", "normal_atom_bool", "normal_atom_enum", "normal_atom_number", "normal_atom_list",
             "normal_atom_object_deep", "normal_atom_object_short", "special_incomplete", "special_error_param",
             "special_irrelevant")}
    cats["normal_multi_turn_user_switch"] = {"normal_multi_turn_user_switch_0_0": True}
    cats["normal_multi_turn_user_adjust"] = {"normal_multi_turn_user_adjust_0_0": True}
    assert aggregate(cats)["summary"] == round(0.578 + 0.2676, 3)


# --- prompts -----------------------------------------------------------------------------------------

def test_prompts_read_without_running_the_module():
    prompts = load_prompts(ROOT)  # the fixture module raises SystemExit if executed
    assert prompts["user"] == "Conversation history 1..t:\n{question}"
    first = load(f"acebench:normal_atom_bool@{ROOT}")[0]
    system, user = acebench_messages(first, ROOT)
    assert system["role"] == "system" and system["content"].startswith("Normal prompt.\nThe current time is May 1")
    assert "[{'name': 'Other.tool'" in system["content"] and "'required': ['q']" in system["content"]
    assert user == {"role": "user", "content": "Conversation history 1..t:\n" + first.metadata["acebench"]["question"]}
    pref = load(f"acebench:normal_preference@{ROOT}")[0]
    assert "Character Profile:\n{'home': 'Lyon'}" in acebench_messages(pref, ROOT)[0]["content"]
    irr = load(f"acebench:special_irrelevant@{ROOT}")[0]
    assert acebench_messages(irr, ROOT)[0]["content"].startswith("Special prompt.")
    with pytest.raises(FileNotFoundError, match="model_inference/prompt_en.py"):
        load_prompts(ROOT / "data_all")
