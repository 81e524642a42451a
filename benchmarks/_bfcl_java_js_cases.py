"""Java and JavaScript model outputs to test a checker with, generated from BFCL's own data.

For every item of simple_java / simple_javascript: the gold written as the language's source text
(first acceptable values, random acceptable ones, optional parameters left out; values as string
literals or bare expressions), then perturbations: wrong values, case and punctuation variants,
wrong types (a long without its L, a quoted number, Python's True), missing, extra, duplicated and
positional parameters, a wrong function name, several calls, Python and JSON syntax, code fences,
truncated and character-mutated text, garbage, refusals, arrays of arrays that never close.
"""
from __future__ import annotations

import json
import random
import re
from typing import Any

from _bfcl_official_cases import _lines, data_dir

CATEGORIES = ("simple_java", "simple_javascript")

_JAVA_ELEM = {"String": "String", "integer": "int", "long": "long", "any": "Object", "char": "char",
              "boolean": "boolean", "double": "double", "float": "float"}


def load_items(category: str) -> list[dict[str, Any]]:
    """[{"id", "functions", "key"}] of a Java/JS category, from the wheel's files."""
    root = data_dir()
    keys = {x["id"]: x["ground_truth"] for x in _lines(root / "possible_answer" / f"BFCL_v4_{category}.json")}
    return [{"id": x["id"], "functions": x["function"], "key": keys[x["id"]]}
            for x in _lines(root / f"BFCL_v4_{category}.json")]


# --- values as source text ------------------------------------------------------------------------

def java_text(v: Any, t: str, nested: str | None, rng: random.Random) -> str:
    """`v` (a value of the answer key) written as Java source for schema type `t`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if t == "long" and isinstance(v, int):
        return f"{v}{rng.choice('LLl')}"
    if t == "float" and isinstance(v, (int, float)):
        return f"{float(v)}{rng.choice('ff F')}".replace(" ", "")
    if t == "double" and isinstance(v, (int, float)):
        return repr(float(v))
    if t in ("Array", "ArrayList") and isinstance(v, list):
        if t == "Array":  # BFCL keeps the quotes of Array elements: strings go in bare
            inner = ", ".join(java_text(x, nested or "any", None, rng) for x in v)
            return f"new {_JAVA_ELEM.get(nested or 'any', 'Object')}[]{{{inner}}}"
        inner = ", ".join(_java_quoted(x, nested, rng) for x in v)
        if rng.random() < 0.3:
            adds = " ".join(f"add({_java_quoted(x, nested, rng)});" for x in v)
            return f"new ArrayList<{'' if rng.random() < 0.5 else 'Object'}>() {{{{ {adds} }}}}"
        return f"new ArrayList<>(Arrays.asList({inner}))"
    if t == "HashMap" and isinstance(v, dict):
        puts = " ".join(f'put("{k}", {_java_quoted(x, None, rng)});' for k, x in v.items())
        return f"new HashMap<String, Object>() {{{{ {puts} }}}}"
    return str(v)


def _java_quoted(x: Any, nested: str | None, rng: random.Random) -> str:
    if isinstance(x, str):
        return f"'{x}'" if nested == "char" else f'"{x}"'
    return java_text(x, nested or "any", None, rng)


def js_text(v: Any, t: str, nested: str | None, rng: random.Random) -> str:
    """`v` written as JavaScript source for schema type `t`."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if t == "Bigint" and isinstance(v, int):
        return f"{v}n"
    if t == "float" and isinstance(v, (int, float)) and rng.random() < 0.5:
        return str(int(v)) if float(v).is_integer() else repr(v)
    if isinstance(v, list):
        inner = ", ".join(_js_elem(x, rng) for x in v)
        return f"new Array({inner})" if rng.random() < 0.2 and v else f"[{inner}]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_js_key(k, rng)}: {_js_elem(x, rng)}" for k, x in v.items()) + "}"
    return str(v)


def _js_elem(x: Any, rng: random.Random) -> str:
    if isinstance(x, str):
        return rng.choice(['"{}"', "'{}'"]).format(x)
    if isinstance(x, (list, dict)):
        return js_text(x, "array" if isinstance(x, list) else "dict", None, rng)
    return js_text(x, "any", None, rng)


def _js_key(k: str, rng: random.Random) -> str:
    return rng.choice([k, f'"{k}"', f"'{k}'"])


# --- golds ----------------------------------------------------------------------------------------

def _pick(vals: Any, rng: random.Random, first: bool) -> Any:
    choices = [v for v in vals if v != ""] if isinstance(vals, list) else [vals]
    return choices[0] if first else rng.choice(choices)


def _dict_value(alt: Any, rng: random.Random, first: bool) -> Any:
    if not isinstance(alt, dict):
        return alt
    return {k: _pick(vals, rng, first) for k, vals in alt.items()
            if not (isinstance(vals, list) and all(v == "" for v in vals))}


def gold_args(item: dict[str, Any], rng: random.Random, first: bool, minimal: bool) -> list[tuple[str, Any, str, Any]]:
    """[(param, value, schema type, element type)] of one right answer (by the key)."""
    (name, params), = item["key"][0].items()
    props = item["functions"][0]["parameters"]["properties"]
    out = []
    for p, vals in params.items():
        optional = isinstance(vals, list) and "" in vals
        nonempty = [v for v in vals if v != ""] if isinstance(vals, list) else [vals]
        if not nonempty or (optional and (minimal or (not first and rng.random() < 0.3))):
            continue
        schema = props.get(p, {})
        value = _pick(vals, rng, first)
        if schema.get("type") in ("HashMap", "dict"):
            value = _dict_value(value, rng, first)
        out.append((p, value, schema.get("type", "any"), (schema.get("items") or {}).get("type")))
    return out


# Text that reads as one expression without quotes (a name, a number, a literal, a collection).
_BARE = re.compile(r"[A-Za-z_$][\w$.]*|-?\d+(\.\d+)?[LlfFn]?|new .*|\[.*\]|\{.*\}")


def render(name: str, args: list[tuple[str | None, str]], rng: random.Random, quote: float, lang: str) -> str:
    """A call `name(p=<text>, ...)`; each text a string literal with probability `quote` (when it holds no
    double quote), else bare. Wrapped in brackets most of the time, as BFCL's prompt asks."""
    parts = []
    for p, text in args:
        literal_ok = '"' not in text and "\\" not in text and "\n" not in text
        if literal_ok and (rng.random() < quote or not _BARE.fullmatch(text)):
            text = f'"{text}"' if lang == "java" or "'" in text or rng.random() < 0.7 else f"'{text}'"
        parts.append(text if p is None else f"{p}={text}")
    call = f"{name}({', '.join(parts)})"
    return f"[{call}]" if rng.random() < 0.8 else call


def _texts(lang: str, args: list[tuple[str, Any, str, Any]], rng: random.Random) -> list[tuple[str, str]]:
    write = java_text if lang == "java" else js_text
    return [(p, write(v, t, n, rng)) for p, v, t, n in args]


# --- perturbations --------------------------------------------------------------------------------

def _wrong_value(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([1, -1, 10])
    if isinstance(v, float):
        return v + rng.choice([0.5, 1.0, -2.5])
    if isinstance(v, str):
        return rng.choice([v + "x", v[::-1] if len(v) > 1 else v + "y", "other", ""])
    if isinstance(v, list):
        return v[:-1] if v and rng.random() < 0.5 else [*v, v[0] if v else 1]
    if isinstance(v, dict):
        return {**v, "extra": 1} if rng.random() < 0.5 else {k: _wrong_value(x, rng) for k, x in v.items()}
    return v


def _variant(v: Any, rng: random.Random) -> Any:
    if isinstance(v, str):
        return rng.choice([v.upper(), v.lower(), v.replace(" ", ""), v + ".", v.replace("-", "_"), f" {v} "])
    if isinstance(v, list):
        return [_variant(x, rng) for x in v]
    return v


def _wrong_type_text(lang: str, v: Any, t: str, n: Any, rng: random.Random) -> str:
    if isinstance(v, bool):
        return rng.choice(["True", "1", '"yes"', "0"])
    if isinstance(v, int):
        return rng.choice([str(v) if t == "long" else f"{v}L", f"{v}.0", f"'{v}'", f"{v}n", f"{v}f"])
    if isinstance(v, float):
        return rng.choice([str(v), f"{v}f", f"{v}d", str(int(v)), f"{int(v)}L"])
    if isinstance(v, list):
        return rng.choice([json.dumps(v), str(tuple(v)), "[" + ", ".join(map(repr, v)) + "]",
                           "new ArrayList<>()", "{" + ", ".join(map(str, v)) + "}", "null"])
    if isinstance(v, dict):
        return rng.choice([json.dumps(v), "new HashMap<>()", "{}", str(v), "null"])
    return rng.choice(["null", "undefined", "42", "true", f"new {v}()" if v else "x"])


def _mutate(text: str, rng: random.Random) -> str:
    tokens = ["(", ")", "[", "]", "{", "}", ",", '"', "'", " ", "\n", "=", ";", ":", "new ", "L", "f", "x"]
    for _ in range(rng.randint(1, 3)):
        k = rng.randint(0, len(text))
        op = rng.random()
        if op < 0.45:
            text = text[:k] + rng.choice(tokens) + text[k:]
        elif op < 0.8:
            text = text[:k] + text[k + rng.randint(1, 3):]
        else:
            j = rng.randint(0, len(text))
            a, b = min(j, k), max(j, k)
            text = text[:b] + text[a:b] + text[b:]
    return text


GARBAGE = ["I cannot help with that.", "", "```\n```", "[]", "[{}]", "null", "function call: none",
           "Sure! Here is the call:", "{\"name\": \"f\"}", "((((", "}}}}", "[f(]", "<tool_call>", "42",
           "print('hi')", "let x = 1;", "new int[]{1,2}", "System.out.println(1);"]

KINDS = ("gold_random", "gold_minimal", "gold_quoted", "gold_bare", "wrong_value", "variant", "wrong_type",
         "missing_param", "extra_param", "duplicate_param", "positional", "wrong_function", "no_class",
         "several_calls", "python_style", "json_style", "fenced", "truncated", "mutated", "mutated2",
         "garbage", "nested_array", "unclosed_array", "empty_call", "semicolon", "method_chain")


def perturb(kind: str, lang: str, item: dict[str, Any], rng: random.Random) -> str | None:
    name = item["functions"][0]["name"]
    props = item["functions"][0]["parameters"]["properties"]
    args = gold_args(item, rng, first=rng.random() < 0.5, minimal=False)
    texts = _texts(lang, args, rng)
    q = rng.random()
    if kind == "gold_random":
        return render(name, _texts(lang, gold_args(item, rng, False, False), rng), rng, q, lang)
    if kind == "gold_minimal":
        return render(name, _texts(lang, gold_args(item, rng, True, True), rng), rng, q, lang)
    if kind == "gold_quoted":
        return render(name, texts, rng, 1.0, lang)
    if kind == "gold_bare":
        return render(name, texts, rng, 0.0, lang)
    if kind in ("wrong_value", "variant", "wrong_type"):
        if not args:
            return None
        i = rng.randrange(len(args))
        p, v, t, n = args[i]
        write = java_text if lang == "java" else js_text
        if kind == "wrong_type":
            texts[i] = (p, _wrong_type_text(lang, v, t, n, rng))
        else:
            texts[i] = (p, write(_wrong_value(v, rng) if kind == "wrong_value" else _variant(v, rng), t, n, rng))
        return render(name, texts, rng, q, lang)
    if kind == "missing_param":
        if not texts:
            return None
        texts.pop(rng.randrange(len(texts)))
        return render(name, texts, rng, q, lang)
    if kind == "extra_param":
        extra = rng.choice([p for p in props if p not in dict(texts)] or ["unknown_param"])
        texts.insert(rng.randint(0, len(texts)), (extra, rng.choice(["1", "true", "x", "[1]"])))
        return render(name, texts, rng, q, lang)
    if kind == "duplicate_param":
        if not texts:
            return None
        texts.append(texts[rng.randrange(len(texts))])
        return render(name, texts, rng, q, lang)
    if kind == "positional":
        texts.insert(rng.randint(0, len(texts)), (None, rng.choice(["value", "true", "42", '"s"', "obj.field"])))
        return render(name, texts, rng, q, lang)
    if kind == "wrong_function":
        return render(rng.choice([name + "s", "other." + name.split(".")[-1], name.upper(), "doIt"]), texts, rng, q, lang)
    if kind == "no_class":
        return render(name.split(".")[-1], texts, rng, q, lang)
    if kind == "several_calls":
        one = render(name, texts, rng, q, lang).strip("[]")
        two = render(rng.choice([name, "helper"]), texts[:1], rng, q, lang).strip("[]")
        return rng.choice([f"[{one}, {two}]", f"{one}\n{two}", f"[{one}; {two}]", f"{one}; {two};", f"[{one}] [{two}]"])
    if kind == "python_style":
        py = ", ".join(f"{p}={v!r}" for p, v, _, _ in args)
        return f"[{name}({py})]"
    if kind == "json_style":
        return json.dumps([{"name": name, "arguments": {p: v for p, v, _, _ in args}}])
    if kind == "fenced":
        return f"```{lang}\n{render(name, texts, rng, q, lang)}\n```"
    if kind == "truncated":
        text = render(name, texts, rng, q, lang)
        return text[:rng.randint(0, max(0, len(text) - 1))]
    if kind in ("mutated", "mutated2"):
        return _mutate(render(name, texts, rng, q, lang), rng)
    if kind == "garbage":
        return rng.choice(GARBAGE)
    if kind == "nested_array":
        arrays = [p for p, s in props.items() if s.get("type") in ("array", "Array", "ArrayList")]
        if not arrays:
            return None
        p = rng.choice(arrays)
        inner = ", ".join("[" + ", ".join(str(rng.randint(0, 9)) for _ in range(rng.randint(1, 3))) + "]"
                          for _ in range(rng.randint(1, 4)))
        others = [(k, t) for k, t in texts if k != p]
        return render(name, [*others, (p, f"[{inner}]")], rng, 0.3, lang)
    if kind == "unclosed_array":  # BFCL's JS pattern backtracks exponentially here: kept short
        arrays = [p for p, s in props.items() if s.get("type") in ("array", "Array", "ArrayList")]
        if not arrays:
            return None
        p = rng.choice(arrays)
        body = "[[1]" + ",[2]" * rng.randint(1, 9) + rng.choice([" x", "", ",", " ]x"])
        others = [(k, t) for k, t in texts if k != p]
        return render(name, [*others, (p, body)], rng, 0.0, lang)
    if kind == "empty_call":
        return render(name, [], rng, q, lang)
    if kind == "semicolon":
        return render(name, texts, rng, q, lang) + ";"
    if kind == "method_chain":
        return f"[new Helper().{name.split('.')[-1]}({', '.join(f'{p}={t}' for p, t in texts)})]"
    raise ValueError(f"unknown perturbation {kind!r}")


def hostile(lang: str, item: dict[str, Any], rng: random.Random) -> str | None:
    """An answer on which BFCL's converters backtrack for far longer than any time limit: an unclosed
    JavaScript array of 30 arrays (exponential), or 1,500 unclosed Java HashMap bodies (cubic), each as a
    string literal (the parsers pass its text on to the converters)."""
    props = item["functions"][0]["parameters"]["properties"]
    want = "array" if lang == "javascript" else "HashMap"
    params = [p for p, s in props.items() if s.get("type") == want]
    if not params:
        return None
    body = '"' + ("[[1]" + ",[2]" * 30 + " x" if lang == "javascript" else "new HashMap<>() {" * 1500) + '"'
    args = [(p, t) for p, t in _texts(lang, gold_args(item, rng, True, False), rng) if p != params[0]]
    return render(item["functions"][0]["name"], [*args, (params[0], body)], rng, 0.0, lang)


# Hand-made answers (item id, text): tests/test_bfcl_java_js.py expects each to get the verdict the
# official checker gave it (recorded by bfcl_java_js_agreement.py --fixtures).
HANDMADE: tuple[tuple[str, str], ...] = (
    ("simple_java_0", "[GeometryPresentation.createPresentation(controller=mapController, parent=mapArea)]"),
    ("simple_java_0", 'GeometryPresentation.createPresentation(controller="mapController", parent="mapArea")'),
    ("simple_java_0", "[GeometryPresentation.createPresentation(mapController, parent=mapArea)]"),
    ("simple_java_0", "[GeometryPresentation.createPresentation(controller=mapController, parent=mapArea, extra=1)]"),
    ("simple_java_0", "[createPresentation(controller=mapController, parent=mapArea)]"),
    ("simple_java_0", "[GeometryPresentation.createPresentation(controller=mapController, parent=mapArea), "
                      "GeometryPresentation.createPresentation(controller=x, parent=y)]"),
    ("simple_java_0", "GeometryPresentation.createPresentation(controller=mapController, parent=mapArea);\n"
                      "other(a=1);"),
    ("simple_java_0", "```java\nGeometryPresentation.createPresentation(controller=mapController, parent=mapArea)\n```"),
    ("simple_java_0", "[GeometryPresentation.createPresentation(controller=mapController, controller=mapArea)]"),
    ("simple_java_0", "I would call GeometryPresentation.createPresentation."),
    ("simple_java_0", ""),
    ("simple_java_25", "[SmsHomeRecommendSubjectController.updateSort(id=42L, sort=5)]"),
    ("simple_java_25", '[SmsHomeRecommendSubjectController.updateSort(id="42L", sort="5")]'),
    ("simple_java_25", "[SmsHomeRecommendSubjectController.updateSort(id=42, sort=5)]"),
    ("simple_java_25", "[SmsHomeRecommendSubjectController.updateSort(id=42l, sort=5.0)]"),
    ("simple_java_25", "[SmsHomeRecommendSubjectController.updateSort(id=43L, sort=5)]"),
    ("simple_java_22", "[PmsProductServiceImpl.updateNewStatus(ids=new ArrayList<>(Arrays.asList(101L, 202L, 303L)), newStatus=2)]"),
    ("simple_java_22", '[PmsProductServiceImpl.updateNewStatus(ids="new ArrayList<Long>() {{ add(101L); add(202L); add(303L); }}", newStatus=2)]'),
    ("simple_java_22", "[PmsProductServiceImpl.updateNewStatus(ids=new ArrayList<>() {{ add(101L); add(202L); add(303L); }}, newStatus=2)]"),
    ("simple_java_22", "[PmsProductServiceImpl.updateNewStatus(ids=new ArrayList<>(Arrays.asList(101, 202, 303)), newStatus=2)]"),
    ("simple_java_27", "[TwoSum.twoSum(nums=new int[]{2, 7, 11, 15}, target=9)]"),
    ("simple_java_27", '[TwoSum.twoSum(nums="new int[] {2,7,11,15}", target="9")]'),
    ("simple_java_27", "[TwoSum.twoSum(nums=new int[]{2, 7, 11}, target=9)]"),
    ("simple_java_27", "[TwoSum.twoSum(nums=[2, 7, 11, 15], target=9)]"),
    ("simple_java_61", '[ScoreFunctionBuilders.exponentialDecayFunction(fieldName="timestamp", origin="now", scale="10d", '
                       'offset="2d", decay=0.5)]'),
    ("simple_java_61", '[ScoreFunctionBuilders.exponentialDecayFunction(fieldName="timestamp", origin="now", scale="10d", '
                       'decay=0.5f)]'),
    ("simple_java_1", '[SQLCompletionAnalyzer.makeProposalsFromObject(object=Customers, useShortName=true, '
                      'params="new HashMap<String, Object>() {{ put(\\"limit\\", 50); put(\\"schemaFilter\\", \\"public\\"); }}")]'),
    ("simple_java_1", "[SQLCompletionAnalyzer.makeProposalsFromObject(object=Customers, useShortName=True, params=params)]"),
    ("simple_javascript_0", '[validateUserInput(inputField="userInputField", isComplete=true)]'),
    ("simple_javascript_0", "validateUserInput(inputField='userInputField', isComplete='true')"),
    ("simple_javascript_0", '[validateUserInput(inputField="userInputField", isComplete=True)]'),
    ("simple_javascript_0", '[validateUserInput(inputField=userInputField, isComplete=true), other(a=1)]'),
    ("simple_javascript_0", 'validateUserInput(inputField="userInputField", isComplete=true); other(a=1);'),
    ("simple_javascript_0", "const x = 1;"),
    ("simple_javascript_0", "[validateUserInput(userInputField, true)]"),
    ("simple_javascript_2", '[extractLastTransactionId(filepath="/var/log/db.log", status=["completed", "failed"], '
                            'encoding="utf-8", processFunction=processFunction)]'),
    ("simple_javascript_2", "[extractLastTransactionId(filepath='/var/log/db.log', status='[\"completed\", \"failed\"]', "
                            "encoding='utf-8', processFunction=processFunction)]"),
    ("simple_javascript_2", '[extractLastTransactionId(filepath="/var/log/db.log", status=new Array("completed", "failed"), '
                            'encoding="utf-8", processFunction=processFunction)]'),
    ("simple_javascript_2", '[extractLastTransactionId(filepath="/var/log/db.log", status=["failed", "completed"], '
                            'encoding="utf-8", processFunction=processFunction)]'),
    ("simple_javascript_6", '[mapTransitions(category="transition", limit=4)]'),
    ("simple_javascript_6", '[mapTransitions(category="transition", limit=4.0)]'),
    ("simple_javascript_6", '[mapTransitions(category="transition", limit=4.5)]'),
    ("simple_javascript_6", '[mapTransitions(category="transition", limit="4")]'),
    ("simple_javascript_5", "[manageReactState(store={initialState: initialStateObject, reducers: reducersMap, "
                            "middlewares: ['loggerMiddleware'], enhancers: [\"applyMiddleware('myMiddleWare')\"]}, "
                            "context=React.createContext(), hooks={useStateSelector: useStateSelectorHook, "
                            "useDispatchAction: useDispatchActionHook})]"),
    ("simple_javascript_5", "[manageReactState(store={initialState: initialStateObject}, context=React.createContext(), "
                            "hooks={useStateSelector: useStateSelectorHook, useDispatchAction: useDispatchActionHook})]"),
    ("simple_javascript_17", "[generateNotificationHandler(app=app, priorityLevel=3, messagingService=messagingSvc, "
                             "notificationType=2)]"),
    ("simple_javascript_17", "[generateNotificationHandler(app=app, priorityLevel=3.0, messagingService=messagingSvc, "
                             "notificationType=2)]"),
)


def generate(categories: tuple[str, ...] = CATEGORIES, per_item: int = 40, seed: int = 0,
             limit: int | None = None, hostile_per_category: int = 0) -> list[dict[str, Any]]:
    """[{"case", "id", "category", "kind", "result"}]: the first-values gold plus `per_item` outputs per
    item, the kinds taken round-robin from a shuffled list so every kind appears for every item; before
    them the HANDMADE answers and `hostile_per_category` answers of kind "hostile" per category."""
    rng = random.Random(seed)
    cases: list[dict[str, Any]] = []
    for item_id, text in HANDMADE:
        cat = item_id.rsplit("_", 1)[0]
        if cat in categories:
            cases.append({"case": len(cases), "id": item_id, "category": cat, "kind": "handmade", "result": text})
    for cat in categories:
        lang = "java" if cat == "simple_java" else "javascript"
        made = 0
        for item in load_items(cat)[:limit]:
            text = hostile(lang, item, rng) if made < hostile_per_category else None
            if text is not None:
                cases.append({"case": len(cases), "id": item["id"], "category": cat, "kind": "hostile", "result": text})
                made += 1
    for cat in categories:
        lang = "java" if cat == "simple_java" else "javascript"
        for item in load_items(cat)[:limit]:
            cases.append({"case": len(cases), "id": item["id"], "category": cat, "kind": "gold_first",
                          "result": render(item["functions"][0]["name"],
                                           _texts(lang, gold_args(item, rng, True, False), rng), rng,
                                           rng.random(), lang)})
            kinds = list(KINDS)
            rng.shuffle(kinds)
            made = tries = 0
            while made < per_item and tries < 4 * per_item:
                kind = kinds[tries % len(kinds)]
                tries += 1
                text = perturb(kind, lang, item, rng)
                if text is None:
                    continue
                cases.append({"case": len(cases), "id": item["id"], "category": cat, "kind": kind, "result": text})
                made += 1
    return cases
