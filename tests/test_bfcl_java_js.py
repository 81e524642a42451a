"""BFCL's simple_java and simple_javascript: loading, what the model sees, decoding, verdicts.

The expected verdicts come from the official checker: tests/fixtures/bfcl_java_js_official.json was
written by `benchmarks/bfcl_java_js_agreement.py --fixtures` (bfcl-eval in its own venv, with the real
tree-sitter), a sample of every kind of generated output plus every hand-made answer of
benchmarks/_bfcl_java_js_cases.py. The converters are compared with bfcl-eval's own on generated text
(those two modules import cleanly without bfcl-eval's dependencies).
"""
from __future__ import annotations

import contextlib
import io
import json
import random
import time
from pathlib import Path

import pytest

from toolace_r.calls import ToolCall
from toolace_r.data import load
from toolace_r.evaluation import bfcl_lang, bfcl_typed, bfcl_typed_js
from toolace_r.evaluation.checker import check

FIXTURE = Path(__file__).parent / "fixtures" / "bfcl_java_js_official.json"


@pytest.fixture(scope="module")
def examples():
    return {ex.id: ex for ex in load("bfcl:simple_java,simple_javascript")}


# --- loading and what the model sees --------------------------------------------------------------

def test_load_java_and_javascript(examples):
    java = [e for e in examples.values() if e.category == "simple_java"]
    js = [e for e in examples.values() if e.category == "simple_javascript"]
    assert len(java) == 100 and len(js) == 50
    assert {e.metadata["language"] for e in java} == {"java"} and {e.metadata["language"] for e in js} == {"javascript"}
    assert all(e.gold.kind == "bfcl" and len(e.tools) == 1 for e in examples.values())
    ex = examples["simple_java_1"]
    typed = ex.metadata["bfcl_functions"][0]["parameters"]["properties"]
    assert typed["params"]["type"] == "HashMap" and typed["useShortName"]["type"] == "boolean"
    assert ex.gold.bfcl[0]["SQLCompletionAnalyzer.makeProposalsFromObject"]["params"] == [
        {"limit": [50], "schemaFilter": ["public"]}]
    assert len(load("bfcl:non_python")) == 150
    assert not {"simple_java", "simple_javascript"} & {e.category for e in load("bfcl:all", limit=2000)}


def test_tools_are_what_bfcl_prompting_handlers_show(examples):
    for ex in examples.values():
        raw = ex.metadata["bfcl_functions"]
        shown = bfcl_lang.model_functions(raw, ex.category)  # bfcl-eval's own preprocessing, on a copy
        assert ex.metadata["bfcl_functions"] == raw
        assert [t.to_bfcl() for t in ex.tools] == shown, ex.id
        for tool, fn in zip(ex.tools, raw):
            assert tool.description.startswith(fn["description"]) and tool.description != fn["description"]
            for name, prop in tool.properties.items():
                assert prop["type"] == "string" and "items" not in prop
                assert prop["description"].startswith(fn["parameters"]["properties"][name]["description"])


def test_python_categories_keep_their_descriptions():
    ex = load("bfcl:simple_python", limit=1)[0]
    assert "language" not in ex.metadata and "bfcl_functions" not in ex.metadata


# --- verdicts: the official checker's ---------------------------------------------------------------

def test_verdicts_equal_the_official_checkers(examples):
    data = json.loads(FIXTURE.read_text(encoding="utf-8"))
    cases = data["cases"]
    assert len(cases) > 400 and sum(c["kind"] == "handmade" for c in cases) >= 40
    assert {c["kind"] for c in cases} >= {"gold_first", "wrong_type", "several_calls", "truncated", "garbage"}
    wrong = []
    for case in cases:
        v = check(examples[case["id"]], case["result"])
        if (v.valid, v.bfcl_error_type) != (case["valid"], case["error_type"]):
            wrong.append((case["id"], case["result"][:120], (case["valid"], case["error_type"]),
                          (v.valid, v.bfcl_error_type)))
    assert not wrong, wrong[:5]
    assert {c["valid"] for c in cases} == {True, False}


def test_handmade_quirks(examples):
    java, js = examples["simple_java_0"], examples["simple_javascript_0"]
    # Java: only the first call is read, after a newline or ";", but a comma between two calls is a syntax error
    first = check(java, "GeometryPresentation.createPresentation(controller=mapController, parent=mapArea);\nx(a=1);")
    assert first.valid and len(first.calls) == 1
    assert check(java, "[GeometryPresentation.createPresentation(controller=a, parent=b), f(x=1)]").bfcl_error_type == \
        "ast_decoder:decoder_failed"
    # JavaScript: two calls in brackets are a sequence expression, not a call
    assert check(js, '[validateUserInput(inputField="a", isComplete=true), f(x=1)]').bfcl_error_type == \
        "ast_decoder:decoder_wrong_output_format"
    v = check(java, "[GeometryPresentation.createPresentation(mapController, parent=mapArea)]")
    assert v.bfcl_error_type == "simple_function_checker:missing_required"
    assert v.calls[0].arguments[bfcl_lang.POSITIONAL] == "mapController"
    v = check(java, "[GeometryPresentation.createPresentation(controller=mapController, parent=mapArea, extra=1)]")
    assert v.error_type == "unexpected_param"
    # values are Java-typed strings: 42L is a long, 42 is not
    ex = examples["simple_java_25"]
    assert check(ex, "[SmsHomeRecommendSubjectController.updateSort(id=42L, sort=5)]").valid
    assert check(ex, '[SmsHomeRecommendSubjectController.updateSort(id="42L", sort="5")]').valid
    assert check(ex, "[SmsHomeRecommendSubjectController.updateSort(id=42, sort=5)]").bfcl_error_type == "type_error:simple"


def test_native_calls_need_string_arguments(examples):
    """A native-format answer (FC mode) reaches the checker as calls; BFCL wants each argument as text."""
    ex = examples["simple_javascript_0"]
    good = [ToolCall("validateUserInput", {"inputField": "userInputField", "isComplete": "true"})]
    assert check(ex, good).valid
    bad = check(ex, [ToolCall("validateUserInput", {"inputField": "userInputField", "isComplete": True})])
    assert (bad.valid, bad.bfcl_error_type, bad.error_type) == (False, "type_error:js", "type")
    java = examples["simple_java_25"]
    bad = check(java, [ToolCall("SmsHomeRecommendSubjectController.updateSort", {"id": 42, "sort": "5"})])
    assert bad.bfcl_error_type == "type_error:java"
    hermes = '<tool_call>\n{"name": "validateUserInput", "arguments": {"inputField": "userInputField", "isComplete": "true"}}\n</tool_call>'
    assert check(ex, hermes, fmt="hermes").valid


def test_decode_bounds(examples):
    ex = examples["simple_javascript_0"]
    deep = "validateUserInput(inputField=" + "(" * (bfcl_lang.MAX_NESTING + 1) + "1" + ")" * (bfcl_lang.MAX_NESTING + 1) + ")"
    v = check(ex, deep)
    assert v.bfcl_error_type == "ast_decoder:decoder_failed" and "nested deeper" in v.error
    v = check(ex, "x" * (64 * 1024 + 1))
    assert v.bfcl_error_type == "ast_decoder:decoder_failed" and "longer than" in v.error
    shallow = "validateUserInput(inputField=" + "(" * 50 + "1" + ")" * 50 + ", isComplete=true)"
    assert check(ex, shallow).bfcl_error_type == "value_error:string"


def test_eval_command_scores_java(tmp_path, examples):
    from toolace_r.cli import main

    preds = tmp_path / "preds.jsonl"
    preds.write_text("\n".join(json.dumps(r) for r in [
        {"id": "simple_java_0", "result": "[GeometryPresentation.createPresentation(controller=mapController, parent=mapArea)]"},
        {"id": "simple_java_25", "result": "[SmsHomeRecommendSubjectController.updateSort(id=42, sort=5)]"},
    ]) + "\n")
    out = tmp_path / "out"
    assert main(["eval", "--benchmark", "bfcl", "--categories", "simple_java", "--predictions", str(preds),
                 "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    text = json.dumps(metrics)
    assert "simple_java" in text
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    by_id = {r["id"]: r for r in results}
    assert by_id["simple_java_0"]["valid"] is True
    assert by_id["simple_java_25"]["valid"] is False and by_id["simple_java_25"]["error_type"] == "type"
    assert by_id["simple_java_1"]["error_type"] == "missing_prediction"


# --- the converters: bfcl-eval's results, in linear time ---------------------------------------------

JAVA_TEMPLATES = [
    'new ArrayList<String>(Arrays.asList("a", "b"))', 'new ArrayList<>() {{ add("x"); add(2); }}', "new ArrayList<Integer>()",
    "new int[]{1, 2, 3}", 'new String[] {"a","b"}', 'new HashMap<String, String>() {{ put("k", "v"); put("n", 5L); }}',
    "new HashMap<>()", 'new HashMap<String, Object>() { { put("a", true); } }', "12L", "3.5f", "1e3", "true", "'c'",
]
JS_TEMPLATES = [
    "[[1, 2], [3, 4]]", "new Array([1], [2, 3])", '[1, "two", true]', "new Array(1, 2)", "{'key': 'v', n: 5}",
    "{a: [1, 2], b: {c: 1}, d: x}", '{"k": initial, "m": ["x"]}', "'str'", '"q"', "5", "2.5", "7n", "true", "[]", "{}",
]
JAVA_TOKENS = ["new ", " ", "\n", "ArrayList", "<", ">", "(", ")", "()", "Arrays.asList(", "))", "{", "}", "{{", "}}",
               "add(", 'put("', '",', ",", '"', "'", "a", "1", "2L", "3.5f", "true", "HashMap", "int", "[]", "\t"]
JS_TOKENS = ["[", "]", "[[", "]]", ",", " ", "\n", "new", " Array(", "(", ")", "{", "}", ":", "'", '"', "a", "1",
             "2.5", "true", "3n", "key", "-", "x:", ", "]
JAVA_TYPES = [("ArrayList", "String"), ("ArrayList", "integer"), ("ArrayList", "long"), ("ArrayList", "any"),
              ("ArrayList", "char"), ("ArrayList", None), ("Array", "String"), ("Array", "integer"), ("Array", None),
              ("HashMap", None), ("long", None), ("float", None), ("double", None), ("integer", None),
              ("boolean", None), ("char", None), ("String", None), ("any", None), ("Set", None), ("Unknown", None)]
JS_TYPES = [("array", None), ("array", "String"), ("array", "float"), ("array", "integer"), ("array", "dict"),
            ("array", "array"), ("array", "Nope"), ("dict", None), ("String", None), ("float", None),
            ("integer", None), ("Bigint", None), ("Boolean", None), ("any", None), ("Unknown", None)]


def _mutate(rng, text, tokens):
    for _ in range(rng.randint(0, 4)):
        k = rng.randint(0, len(text))
        op = rng.random()
        if op < 0.4:
            text = text[:k] + rng.choice(tokens) + text[k:]
        elif op < 0.7:
            text = text[:k] + text[k + rng.randint(1, 3):]
        elif op < 0.85:
            j = rng.randint(0, len(text))
            a, b = min(k, j), max(k, j)
            text = text[:b] + text[a:b] + text[b:]
        else:
            text = text[:k]
    return text


def _matching_type(rng, text, types):
    """Mostly the type the text looks like (so the collection parsers run), else any type."""
    if rng.random() < 0.7:
        for marker, type_name in (("ArrayList", "ArrayList"), ("[]", "Array"), ("HashMap", "HashMap"),
                                  ("[", "array"), ("Array(", "array"), ("{", "dict")):
            fitting = [t for t in types if t[0] == type_name]
            if marker in text and fitting:
                return rng.choice(fitting)
    return rng.choice(types)


def _outcome(fn, *args):
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # BFCL prints when a dict fails to parse
            value = fn(*args)
    except Exception as exc:  # noqa: BLE001 - which exception is part of the behaviour
        return ("raises", type(exc).__name__)
    return (type(value).__name__, repr(value))


@pytest.mark.parametrize("language", ["java", "javascript"])
def test_converters_equal_bfcls_on_generated_text(language):
    if language == "java":
        from bfcl_eval.eval_checker.ast_eval.type_convertor.java_type_converter import java_type_converter as theirs
        ours, templates, tokens, types = bfcl_typed.java_value, JAVA_TEMPLATES, JAVA_TOKENS, JAVA_TYPES
    else:
        from bfcl_eval.eval_checker.ast_eval.type_convertor.js_type_converter import js_type_converter as theirs
        ours, templates, tokens, types = bfcl_typed_js.js_value, JS_TEMPLATES, JS_TOKENS, JS_TYPES
    rng = random.Random(7)
    parsed = 0
    for _ in range(6000):
        text = _mutate(rng, rng.choice(templates), tokens)
        if text.count("[") > 10:  # BFCL's JS pattern is exponential in unclosed arrays: keep its side short
            continue
        type_name, nested = _matching_type(rng, text, types)
        expected = _outcome(theirs, text, type_name, nested)
        assert _outcome(ours, text, type_name, nested) == expected, (text, type_name, nested)
        parsed += expected[0] in ("list", "dict")
    assert parsed > 1000  # the generated text reaches the collection parsers, not only the fallbacks


def test_converters_are_linear_on_text_bfcl_backtracks_on():
    cases = [
        (bfcl_typed_js.js_value, "[[1]" + ",[2]" * 5000 + " x", "array", None),  # exponential in BFCL
        (bfcl_typed.java_value, "new HashMap<>() {" * 3000, "HashMap", None),  # cubic
        (bfcl_typed.java_value, "new ArrayList<>(Arrays.asList(" * 3000 + "\n))", "ArrayList", "String"),
        (bfcl_typed.java_value, "new ArrayList<>() {{ " + "add(\n" * 10000 + "}}", "ArrayList", "String"),
        (bfcl_typed.java_value, 'new HashMap<>() {{ ' + 'put("k",\n' * 8000 + ' }}', "HashMap", None),
        (bfcl_typed_js.js_value, "{" + "a:,b" * 8000 + "}", "dict", None),
        (bfcl_typed.java_value, "new int[]{" * 6000, "Array", "integer"),
    ]
    for fn, text, type_name, nested in cases:
        start = time.perf_counter()
        fn(text, type_name, nested)
        assert time.perf_counter() - start < 1.0, (type_name, text[:40])


def test_converter_examples():
    j, s = bfcl_typed.java_value, bfcl_typed_js.js_value
    assert j("5L", "long") == 5 and j("5", "long") == "5" and j("1.5f", "float") == 1.5 and j("2", "double") == 2.0
    assert j("'c'", "char") == "'c'"  # BFCL's char pattern never matches
    assert j('new ArrayList<>(Arrays.asList("a", "b"))', "ArrayList", "String") == ["a", "b"]
    assert j('new String[]{"a", "b"}', "Array", "String") == ['"a"', '"b"']  # Array strings keep their quotes
    assert j('new HashMap<String, Object>() {{ put("k", 5); }}', "HashMap") == {"k": 5}
    assert s("[[1, 2], [3]]", "array", "String") == [[1, 2], [3]]
    # a dict ends at its first "}", so a nested one is cut short and stays text
    assert s("{a: 1, 'b': [1, 'x'], c: {d: true}}", "dict") == {"a": 1, "b": [1, "x"], "c": "{d: true"}
    assert s("5n", "Bigint") == 5 and s("'x'", "String") == "x" and s("4", "float") == 4.0
    with pytest.raises(NotImplementedError):
        j("x", "Set")
    with pytest.raises(ValueError):
        s("x", "Symbol")
