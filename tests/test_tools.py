"""Tool schemas: normalising every supported shape, converting back, validating calls."""
import json

import pytest

from toolace_r.calls import ToolCall
from toolace_r.schema_check import Problem, validate
from toolace_r.tools import BFCL_TYPES, Tool, normalize_tool, normalize_tools

# --- normalisation of each shape ------------------------------------------------------------------


def test_openai_shape_maps_json_schema_types():
    tool = normalize_tool({"type": "function", "function": {
        "name": "f", "description": "d",
        "parameters": {"type": "object", "properties": {
            "x": {"type": "number"},
            "n": {"type": "integer", "default": 3},
            "opt": {"type": ["string", "null"]},
            "either": {"anyOf": [{"type": "integer"}, {"type": "null"}]},
            "mixed": {"type": ["string", "integer"]},
            "cfg": {"type": "object", "properties": {"deep": {"type": "boolean"}}, "required": ["deep"]},
            "xs": {"type": "array", "items": {"type": "number"}},
            "free": {"description": "no type at all"},
        }, "required": ["x"]}}})
    assert tool.name == "f" and tool.description == "d"
    p = tool.parameters
    assert p["type"] == "dict" and p["required"] == ["x"]
    types = {k: v["type"] for k, v in p["properties"].items()}
    assert types == {"x": "float", "n": "integer", "opt": "string", "either": "integer", "mixed": "any",
                     "cfg": "dict", "xs": "array", "free": "any"}
    assert p["properties"]["cfg"]["properties"]["deep"]["type"] == "boolean"
    assert p["properties"]["cfg"]["required"] == ["deep"]
    assert p["properties"]["xs"]["items"] == {"type": "float"}
    assert p["properties"]["n"]["default"] == 3


def test_bare_json_schema_shape():
    tool = normalize_tool({"name": "g", "parameters": {"type": "object", "properties": {
        "a": {"type": "string", "enum": ["x", "y"]}}, "required": ["a"]}})
    assert tool.description == ""
    assert tool.parameters == {"type": "dict", "properties": {"a": {"type": "string", "enum": ["x", "y"]}},
                               "required": ["a"]}


def test_bfcl_shape_is_kept_as_it_is():
    bfcl = {"name": "math.hypot", "description": "Norm.", "parameters": {"type": "dict", "properties": {
        "x": {"type": "integer", "description": "x"}, "z": {"type": "tuple", "items": {"type": "float"}},
        "any": {"type": "any", "default": None}, "extra": {"type": "string", "format": "date"}},
        "required": ["x"]}}
    tool = normalize_tool(bfcl)
    assert tool.to_bfcl() == bfcl
    assert json.dumps(tool.to_bfcl()) == json.dumps(bfcl)  # key order kept too (it shows in prompts)


def test_toolace_python_ish_type_names_and_property_required_flags():
    tool = normalize_tool({"name": "Get Weather", "description": "w", "parameters": {"type": "object", "properties": {
        "city": {"type": "str", "required": True}, "days": {"type": "int"}, "ratio": {"type": "float"},
        "flag": {"type": "bool", "required": False}, "tags": {"type": "list", "items": {"type": "str"}},
        "meta": {"type": "dict"}, "names": {"type": "List[str]"}}, "required": None}})
    props = tool.properties
    assert {k: v["type"] for k, v in props.items()} == {
        "city": "string", "days": "integer", "ratio": "float", "flag": "boolean", "tags": "array",
        "meta": "dict", "names": "array"}
    assert props["tags"]["items"] == {"type": "string"}
    assert props["names"]["items"] == {"type": "string"}
    assert "required" not in props["city"] and "required" not in props["flag"]
    assert tool.required == ["city"]


def test_xlam_shape():
    tool = normalize_tool({"name": "sum_list", "description": "s", "parameters": {
        "numbers": {"description": "numbers", "type": "List[int]"},
        "precision": {"description": "digits", "type": "int, optional"},
        "mode": {"description": "m", "type": "str", "default": "fast"},
        "weights": {"description": "w", "type": "Dict[str, Any]"},
        "scale": {"description": "f", "type": "float, optional", "default": 1.0},
        "cb": {"description": "callback", "type": "Callable"},
        "pair": {"description": "p", "type": "Tuple[int, int]"},
        "maybe": {"description": "q", "type": "Optional[str]"}}})
    props = tool.properties
    assert props["numbers"] == {"type": "array", "items": {"type": "integer"}, "description": "numbers"}
    assert props["precision"]["type"] == "integer"
    assert props["weights"]["type"] == "dict"
    assert props["scale"] == {"type": "float", "description": "f", "default": 1.0}
    assert props["cb"]["type"] == "any"
    assert props["pair"]["type"] == "tuple"
    assert props["maybe"]["type"] == "string"
    # required unless the type says optional or a default is given
    assert tool.required == ["numbers", "weights", "cb", "pair"]


def test_no_parameters_gives_empty_schema():
    assert normalize_tool({"name": "now"}).parameters == {"type": "dict", "properties": {}, "required": []}


@pytest.mark.parametrize("bad, words", [
    ("a string", "must be a JSON object"),
    ({"description": "no name"}, '"name", "description", "parameters"'),
    ({"name": "f", "parameters": [1, 2]}, "'parameters' must be an object"),
    ({"name": "f", "parameters": {"a": 1, "b": "x"}}, "JSON Schema object"),
])
def test_unknown_shapes_say_what_was_expected(bad, words):
    with pytest.raises(ValueError) as err:
        normalize_tool(bad)
    assert words in str(err.value)


def test_normalize_tools_accepts_json_strings_and_names_the_bad_tool():
    tools = normalize_tools(json.dumps([{"name": "a"}, {"type": "function", "function": {"name": "b"}}]))
    assert [t.name for t in tools] == ["a", "b"]
    assert normalize_tools("") == []
    with pytest.raises(ValueError, match="not valid JSON"):
        normalize_tools("[{")
    with pytest.raises(ValueError, match="tool 1:"):
        normalize_tools([{"name": "a"}, {"nope": 1}])
    with pytest.raises(ValueError, match="expected a list"):
        normalize_tools(42)


# --- conversion back ---------------------------------------------------------------------------------

SAMPLE = Tool("calc", "Compute.", {"type": "dict", "properties": {
    "x": {"type": "float", "description": "x"},
    "n": {"type": "integer", "enum": [1, 2]},
    "s": {"type": "string", "default": "a"},
    "b": {"type": "boolean"},
    "xs": {"type": "array", "items": {"type": "float"}},
    "cfg": {"type": "dict", "properties": {"k": {"type": "integer"}}, "required": ["k"]},
}, "required": ["x", "n"]})


def test_to_openai_uses_json_schema_names():
    fn = SAMPLE.to_openai()
    assert fn["type"] == "function"
    params = fn["function"]["parameters"]
    assert params["type"] == "object"
    assert params["properties"]["x"]["type"] == "number"
    assert params["properties"]["xs"]["items"]["type"] == "number"
    assert params["properties"]["cfg"]["type"] == "object"
    assert params["properties"]["cfg"]["properties"]["k"]["type"] == "integer"
    assert params["required"] == ["x", "n"]
    lossy = Tool("t", "", {"type": "dict", "properties": {"p": {"type": "tuple", "items": {"type": "integer"}},
                                                          "q": {"type": "any", "description": "anything"}},
                           "required": []}).to_openai()["function"]["parameters"]["properties"]
    assert lossy["p"] == {"type": "array", "items": {"type": "integer"}}
    assert lossy["q"] == {"description": "anything"}  # no type constraint at all


def test_openai_and_bfcl_round_trips():
    assert Tool.from_openai(SAMPLE.to_openai()) == SAMPLE
    assert normalize_tool(SAMPLE.to_bfcl()) == SAMPLE
    with pytest.raises(ValueError, match='"type": "function"'):
        Tool.from_openai(SAMPLE.to_bfcl())


def test_every_tool_of_the_installed_bfcl_round_trips_unchanged():
    from toolace_r.data.bfcl import BFCL_CATEGORIES, _question_file, default_data_dir

    root = default_data_dir()
    seen = 0
    # Java/JS functions are typed in their languages' words; the loader shows them all-string (test_bfcl_java_js.py)
    for cat in [c for c, info in BFCL_CATEGORIES.items() if info.python]:
        with open(_question_file(root, cat), encoding="utf-8") as fh:
            for line in fh:
                if line.strip():
                    for fn in json.loads(line)["function"]:
                        seen += 1
                        assert json.dumps(normalize_tool(fn).to_bfcl()) == json.dumps(fn)
                        for prop in normalize_tool(fn).properties.values():
                            assert prop["type"] in BFCL_TYPES
    assert seen > 9000


# --- validate ------------------------------------------------------------------------------------------

def kinds(problems: list[Problem]) -> list[tuple[str, str | None]]:
    return [(p.kind, p.param) for p in problems]


def test_a_fitting_call_has_no_problems():
    call = ToolCall("calc", {"x": 2, "n": 1, "xs": (1, 2.5), "cfg": {"k": 3}, "b": False})
    assert validate(call, [SAMPLE]) == []


def test_each_problem_kind():
    assert kinds(validate(ToolCall("nope", {}), [SAMPLE])) == [("unknown_function", None)]
    assert kinds(validate(ToolCall("calc", {"x": 1.0}), [SAMPLE])) == [("missing_required", "n")]
    assert kinds(validate(ToolCall("calc", {"x": 1.0, "n": 1, "zz": 0}), [SAMPLE])) == [("unknown_parameter", "zz")]
    assert kinds(validate(ToolCall("calc", {"x": "1", "n": 1}), [SAMPLE])) == [("wrong_type", "x")]
    assert kinds(validate(ToolCall("calc", {"x": 1, "n": 3}), [SAMPLE])) == [("not_in_enum", "n")]
    problem = validate(ToolCall("calc", {"x": 1.0}), [SAMPLE])[0]
    assert "'n'" in problem.message and "calc" in problem.message


def test_type_rules():
    assert validate(ToolCall("calc", {"x": 3, "n": 1}), [SAMPLE]) == []  # int is a float
    assert kinds(validate(ToolCall("calc", {"x": True, "n": 1}), [SAMPLE])) == [("wrong_type", "x")]  # bool is not
    assert kinds(validate(ToolCall("calc", {"x": 1.0, "n": 1.0}), [SAMPLE])) == [("wrong_type", "n")]  # float not int
    assert kinds(validate(ToolCall("calc", {"x": 1.0, "n": True}), [SAMPLE])) == [("wrong_type", "n")]
    tup = Tool("t", "", {"type": "dict", "properties": {"p": {"type": "tuple"}, "q": {"type": "array"},
                                                        "a": {"type": "any"}}, "required": []})
    assert validate(ToolCall("t", {"p": [1, 2], "q": (1, 2), "a": {"x": None}}), [tup]) == []
    assert kinds(validate(ToolCall("t", {"q": "1,2"}), [tup])) == [("wrong_type", "q")]
    assert kinds(validate(ToolCall("calc", {"x": None, "n": 1}), [SAMPLE])) == [("wrong_type", "x")]


def test_nested_values_are_checked():
    problems = validate(ToolCall("calc", {"x": 1, "n": 2, "xs": [1, "two"], "cfg": {}}), [SAMPLE])
    assert kinds(problems) == [("wrong_type", "xs[1]"), ("missing_required", "cfg.k")]
    arr_enum = Tool("m", "", {"type": "dict", "properties": {
        "metrics": {"type": "array", "items": {"type": "string"}, "enum": ["a", "b"]}}, "required": []})
    assert validate(ToolCall("m", {"metrics": ["a", "b"]}), [arr_enum]) == []
    assert kinds(validate(ToolCall("m", {"metrics": ["a", "c"]}), [arr_enum])) == [("not_in_enum", "metrics")]


def test_answer_problems_for_text_calls_and_broken_syntax():
    from toolace_r.schema_check import answer_problems, feedback_text

    tools = [{"name": "math.hypot", "description": "", "parameters": {
        "type": "dict", "properties": {"x": {"type": "integer"}, "y": {"type": "integer"}}, "required": ["x", "y"]}}]
    assert answer_problems("There is no tool for that.", tools) == []  # a no-call answer fits
    assert answer_problems("[math.hypot(x=3, y=4)]", tools) == []
    assert answer_problems("[hypot(x=3, y=4)]", tools) == ["no tool named 'hypot' (tools: math.hypot)"]
    assert answer_problems('[math.hypot(x=3.5, z=1)]', tools) == [
        "math.hypot: required parameter 'y' is missing", "math.hypot: x is float 3.5, expected integer",
        "math.hypot: no parameter 'z' (known: x, y)"]
    assert answer_problems('[math.hypot(x=3.5, z=1)]', tools, limit=1) == ["math.hypot: required parameter 'y' is missing"]
    (broken,) = answer_problems("[math.hypot(x: 3)]", tools)
    assert broken.startswith("not valid function-call syntax (")
    assert answer_problems("[f(x=1)]", "not json") == []  # unreadable tools: nothing to check against
    assert feedback_text([]) is None and feedback_text(["a", "b"]) == "a; b"


# --- hostile schemas: every failure is a ValueError, and the work is bounded ------------------------------

def _chain(key: str, levels: int) -> dict:
    """A parameters object with `levels` nestings through `key`, built without recursion."""
    inner: object = {"type": "string"}
    for _ in range(levels):
        if key == "properties":
            inner = {"type": "object", "properties": {"p": inner}}
        elif key == "items":
            inner = {"type": "array", "items": inner}
        elif key in ("anyOf", "oneOf"):
            inner = {key: [inner, {"type": "null"}]}
        elif key == "$defs":
            inner = {"$defs": {"d": inner}}
        elif key == "default":  # a value, not a schema: still part of the schema's size
            inner = {"type": "array", "default": [inner]}
        else:
            inner = {"type": "object", key: inner}
    return {"type": "object", "properties": {"x": inner}}


@pytest.mark.parametrize("key", ["properties", "items", "anyOf", "oneOf", "$defs", "default", "x-vendor"])
def test_one_depth_bound_covers_every_key_of_a_tool(key):
    from toolace_r.tools import MAX_SCHEMA_DEPTH

    assert normalize_tool({"name": "f", "parameters": _chain(key, 10)}).name == "f"
    for levels in (MAX_SCHEMA_DEPTH, 100_000):  # 100,000: deeper than Python's recursion limit
        with pytest.raises(ValueError, match=f"schema nested more than {MAX_SCHEMA_DEPTH} levels deep"):
            normalize_tool({"name": "f", "parameters": _chain(key, levels)})
        with pytest.raises(ValueError, match=f"^tool 1: schema nested more than {MAX_SCHEMA_DEPTH}"):
            normalize_tools([{"name": "ok"}, {"name": "f", "parameters": _chain(key, levels)}])


def test_the_depth_bound_is_exact_and_counts_from_the_tool_object():
    def nested(total_depth: int) -> dict:  # tool (1) > parameters (2) > x-meta (3) > x (4) > ...
        inner: dict = {}
        for _ in range(total_depth - 3):
            inner = {"x": inner}
        return {"name": "f", "parameters": {"type": "object", "x-meta": inner}}

    assert normalize_tool(nested(64)).parameters["x-meta"]
    with pytest.raises(ValueError, match="nested more than 64 levels"):
        normalize_tool(nested(65))
    with pytest.raises(ValueError, match="nested more than 64 levels"):  # the OpenAI wrapper counts too
        normalize_tool({"type": "function", "function": nested(64)})
    with pytest.raises(ValueError, match="^tools: nested more than 64 levels deep"):  # json.loads: RecursionError
        normalize_tools("[" * 100_000 + "]" * 100_000)
    with pytest.raises(ValueError, match="^tools: not readable JSON \\(a number with more than 4300 digits\\)"):
        normalize_tools('[{"name": "f", "default": ' + "9" * 5000 + "}]")


def test_huge_tool_lists_are_refused():
    from toolace_r.tools import MAX_SCHEMA_NODES

    many = {"type": "object", "properties": {f"p{i}": {"type": "string", "required": True}
                                             for i in range(15_000)}}
    tool = normalize_tool({"name": "f", "parameters": many})  # 45,000 values in one tool: fine
    assert len(tool.required) == 15_000  # lifted once each
    with pytest.raises(ValueError, match=f"more than {MAX_SCHEMA_NODES} values"):
        normalize_tools([{"name": "f", "parameters": many}, {"name": "g", "parameters": many}])
    with pytest.raises(ValueError, match=f"more than {MAX_SCHEMA_NODES} values"):
        normalize_tools([{"name": f"t{i}"} for i in range(MAX_SCHEMA_NODES)])


@pytest.mark.parametrize("name, ok", [
    ("get-weather", True), ("stock.price", True), ("Get Weather", True), ("from", True), ("名前", True),
    ("\ud800lone", True), ("x" * 256, True),
    ("", False), ("   ", False), ("x" * 257, False), ("a\nb", False), ("nul\x00", False), ("del\x7f", False),
    ("c1\x85", False),
])
def test_unusual_tool_and_parameter_names_normalise_or_are_value_errors(name, ok):
    from toolace_r import files

    shapes = [
        {"name": name, "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}},
        {"name": "f", "parameters": {"type": "object", "properties": {name: {"type": "string"}}, "required": [name]}},
        {"name": "f", "parameters": {name: {"type": "int, optional"}}},  # xLAM's shape
        {"name": "f", "parameters": {"type": "object", "properties": {"o": {
            "type": "object", "properties": {name: {"type": "string"}}}}}},
    ]
    for shape in shapes:
        if not ok:
            with pytest.raises(ValueError):
                normalize_tool(shape)
            continue
        tool = normalize_tool(shape)
        json.loads(files.dumps(tool.to_bfcl()))
        json.loads(files.dumps(tool.to_openai()))
        assert normalize_tools(files.dumps([tool.to_openai()]))[0].name == tool.name


@pytest.mark.parametrize("bad", [
    {"name": "f", "parameters": {"type": "object", "properties": {1: {"type": "string"}}}},
    {"name": "f", "parameters": {"type": "object", "properties": {("a",): {"type": "string"}}}},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "enum": {1, 2}}}}},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string", "default": b"x"}}}},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "number", "default": 1j}}}},
    {"name": "f", "description": object()},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"default": 16 ** 5000}}}},
    {"name": "f", "parameters": {"type": 7}},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": ["string", 3]}}}},
    {"name": "f", "parameters": {"type": "object", "properties": {"a": {"anyOf": [{"type": {}}]}}}},
])
def test_what_json_cannot_hold_is_a_value_error(bad):
    with pytest.raises(ValueError):
        normalize_tool(bad)
    with pytest.raises(ValueError):
        normalize_tools([bad])


def test_python_ish_types_are_read_in_linear_time():
    # The optional-marker match once used a regular expression that backtracks over a run of spaces:
    # 300,000 spaces took about 25 minutes. In a subprocess, so that a regression fails by its timeout.
    import subprocess
    import sys

    code = ("from toolace_r.tools import normalize_tool\n"
            "t = normalize_tool({'name': 'f', 'parameters': {\n"
            "    'a': {'type': 'int' + ' ' * 300000 + 'x'},\n"
            "    'b': {'type': 'List[' * 3000 + 'int' + ']' * 3000}}})\n"
            "print(t.properties['a']['type'], t.properties['b']['type'], t.required)\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["any", "any", "['a',", "'b']"]
    tool = normalize_tool({"name": "f", "parameters": {
        "a": {"type": "int ( optional)"}, "b": {"type": "str  ,  default='x'"}, "c": {"type": "float (optional)"},
        "d": {"type": "int(optional)"}, "e": {"type": "List[List[int]], optional"}, "g": {"type": "int\t\toptional"}}})
    assert tool.required == ["d"]
    assert tool.properties["e"] == {"type": "array", "items": {"type": "array", "items": {"type": "integer"}}}
