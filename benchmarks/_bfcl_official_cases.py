"""Model outputs to test a checker with, generated from BFCL's own data (no model needed).

For every answer-keyed item: the gold rendered as calls (first acceptable values, and a random pick
among the acceptable ones, optional parameters sometimes left out), plus perturbations of a random
gold: wrong values, int<->float, string case/punctuation variants, reordered calls and arguments,
dropped/added parameters, wrong function, extra/missing calls, tuples for lists, None, positional
arguments, arithmetic, bare names, nested calls, unicode, code fences, garbage, refusals, JSON.
For the (ir)relevance categories: refusals, empty lists, calls with made-up arguments, garbage.

Reads the JSON files directly (the wheel's data dir, located without importing bfcl_eval).
"""
from __future__ import annotations

import importlib.util
import json
import random
from pathlib import Path
from typing import Any, Callable

AST_CATEGORIES = ("simple_python", "multiple", "parallel", "parallel_multiple", "live_simple",
                  "live_multiple", "live_parallel", "live_parallel_multiple")
EXEC_CATEGORIES = ("exec_simple", "exec_multiple", "exec_parallel", "exec_parallel_multiple")
RELEVANCE_CATEGORIES = ("irrelevance", "live_irrelevance", "live_relevance")
ALL_CATEGORIES = AST_CATEGORIES + RELEVANCE_CATEGORIES + EXEC_CATEGORIES


def data_dir() -> Path:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("bfcl-eval is not installed (pip install --no-deps bfcl-eval)")
    return Path(list(spec.submodule_search_locations)[0]) / "data"


def _lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def load_items(category: str) -> list[dict[str, Any]]:
    """[{"id", "functions", "key"}]; key None for the relevance categories, call strings for exec."""
    root = data_dir()
    if category.startswith("exec_"):
        q = _lines(root / "unused_datasets" / "question" / f"BFCL_v4_{category}.json")
        a = _lines(root / "unused_datasets" / "possible_answer" / f"BFCL_v4_{category}.json")
    else:
        q = _lines(root / f"BFCL_v4_{category}.json")
        a = _lines(root / "possible_answer" / f"BFCL_v4_{category}.json") if category in AST_CATEGORIES else []
    keys = {x["id"]: x["ground_truth"] for x in a}
    return [{"id": x["id"], "functions": x["function"], "key": keys.get(x["id"])} for x in q]


# --- rendering ------------------------------------------------------------------------------------

class Raw(str):
    """Text placed into a call verbatim (arithmetic, bare names, nested calls)."""


def lit(v: Any, rng: random.Random | None = None, tuples: bool = False) -> str:
    if isinstance(v, Raw):
        return str(v)
    if isinstance(v, str):
        if rng is not None and rng.random() < 0.3 and '"' not in v and "\\" not in v:
            return json.dumps(v, ensure_ascii=False)
        return repr(v)
    if isinstance(v, (bool, int, float)) or v is None:
        return repr(v)
    if isinstance(v, tuple) or (tuples and isinstance(v, list)):
        inner = ", ".join(lit(x, rng, tuples) for x in v)
        return f"({inner},)" if len(v) == 1 else f"({inner})"
    if isinstance(v, list):
        return "[" + ", ".join(lit(x, rng, tuples) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{lit(k, rng)}: {lit(x, rng, tuples)}" for k, x in v.items()) + "}"
    return repr(v)


def render(calls: list[tuple[str, list[tuple[Any, Any]]]], rng: random.Random | None = None,
           tuples: bool = False, brackets: bool = True) -> str:
    parts = []
    for name, args in calls:
        rendered = []
        for k, v in args:
            rendered.append(lit(v, rng, tuples) if k is None else f"{k}={lit(v, rng, tuples)}")
        parts.append(f"{name}({', '.join(rendered)})")
    text = ", ".join(parts)
    return f"[{text}]" if brackets else text


# --- gold choices ---------------------------------------------------------------------------------

def _schema(functions: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for f in functions:
        if f["name"] == name:
            return f["parameters"].get("properties", {})
    return {}


def _pick(values: list[Any], rng: random.Random, first: bool) -> Any:
    choices = [v for v in values if v != ""] if isinstance(values, list) else [values]
    if not choices:
        return None
    return choices[0] if first else rng.choice(choices)


def _materialise_dict(alt: Any, rng: random.Random, first: bool) -> Any:
    if not isinstance(alt, dict):
        return alt
    out = {}
    for k, vals in alt.items():
        if isinstance(vals, list) and "" in vals and (first or rng.random() < 0.4):
            if first and any(v != "" for v in vals):
                out[k] = _pick(vals, rng, True)
            continue
        out[k] = _pick(vals, rng, first)
    return out


def choose_gold(item: dict[str, Any], rng: random.Random, first: bool, minimal: bool = False
                ) -> list[tuple[str, list]]:
    """One right answer: first acceptable values (`first`) or random ones; `minimal` leaves out every
    parameter the key lets be omitted."""
    calls = []
    for entry in item["key"]:
        (name, params), = entry.items()
        schema = _schema(item["functions"], name)
        args = []
        for p, vals in params.items():
            nonempty = [v for v in vals if v != ""] if isinstance(vals, list) else [vals]
            optional = isinstance(vals, list) and "" in vals
            if not nonempty or (optional and (minimal or (not first and rng.random() < 0.3))):
                continue
            value = _pick(vals, rng, first)
            ptype = schema.get(p, {}).get("type")
            items_type = (schema.get(p, {}).get("items") or {}).get("type")
            if ptype == "dict" and isinstance(value, dict):
                value = _materialise_dict(value, rng, first)
            elif ptype == "array" and items_type == "dict" and isinstance(value, list):
                value = [_materialise_dict(d, rng, first) for d in value]
            args.append((p, value))
        calls.append((name, args))
    return calls


def exec_gold(item: dict[str, Any]) -> list[str]:
    return list(item["key"])


# --- perturbations of a chosen gold ---------------------------------------------------------------

def _mutate_value(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return not v
    if isinstance(v, int):
        return v + rng.choice([1, -1, 10])
    if isinstance(v, float):
        return round(v * 1.5 + 0.25, 3)
    if isinstance(v, str):
        return rng.choice([v + "x", v[::-1] if len(v) > 1 else v + "y", "", "unknown"])
    if isinstance(v, list):
        if v and rng.random() < 0.5:
            return v[:-1]
        return v + [v[0]] if v else ["extra"]
    if isinstance(v, dict):
        if v and rng.random() < 0.5:
            k = rng.choice(list(v))
            return {**v, k: _mutate_value(v[k], rng)}
        return {**v, "extra_key": "x"}
    return "changed"


def _string_variant(s: str, rng: random.Random) -> str:
    ops = [str.upper, str.lower, str.title, lambda x: x.replace(" ", ""), lambda x: x.replace(" ", "_"),
           lambda x: x + ".", lambda x: x.replace(",", ""), lambda x: " " + x + " ", lambda x: x.replace("-", " "),
           lambda x: x.replace("'", '"'), lambda x: x + "!", lambda x: x.replace("a", "á"), lambda x: "-" + x]
    return rng.choice(ops)(s)


def _int_float(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return v
    if isinstance(v, int):
        return float(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    if isinstance(v, float):
        return int(v)
    if isinstance(v, list):
        return [_int_float(x, rng) for x in v]
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v)
    return v


def _type_swap(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, (int, float)):
        return str(v)
    if isinstance(v, str):
        return 5 if rng.random() < 0.5 else [v]
    if isinstance(v, list):
        return tuple(v) if rng.random() < 0.5 else (v[0] if v else None)
    if isinstance(v, dict):
        return json.dumps(v)
    return v


def _arith(v: Any, rng: random.Random) -> Any:
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        return Raw(rng.choice(["-x", "1/6", "+5", "not True", "2**3", "-(1)", "~3", "math.pi"]))
    if v < 0:
        return Raw(f"-{-v!r}")
    return Raw(rng.choice([f"+{v!r}", f"{v!r}*1", f"-(-{v!r})", f"--{v!r}", f"{v!r}+0"]))


def _elem_types(v: Any, rng: random.Random) -> Any:
    """Change the types inside a container (element or dict value), or swap the container."""
    swap = {int: lambda x: rng.choice([float(x), str(x), True]), float: lambda x: rng.choice([int(x), str(x)]),
            str: lambda x: rng.choice([len(x), [x], None]), bool: lambda x: int(x)}
    if isinstance(v, list) and v:
        n = rng.randrange(len(v))
        f = swap.get(type(v[n]), lambda x: "x")
        return v[:n] + [f(v[n])] + v[n + 1:]
    if isinstance(v, dict) and v:
        k = rng.choice(list(v))
        f = swap.get(type(v[k]), lambda x: "x")
        return rng.choice([{**v, k: f(v[k])}, {x: y for x, y in v.items() if x != k}, [v], {**v, 1: "one"}])
    return rng.choice([[], {}, "", [v], {"value": v}])


def _odd_value(rng: random.Random) -> Any:
    return rng.choice([Raw("celsius"), Raw("datetime.now()"), Raw("foo(x=1)"), Raw("len([1, 2])"),
                       Raw("x[0]"), Raw("{1, 2}"), Raw("f'{x}'"), Raw("lambda: 1"), Raw("..."),
                       Raw("a.b.c"), Raw("None"), Raw("b'bytes'"), Raw("1e3"), Raw("0x1F"), Raw("3j")])


def _pick_arg(calls, rng):
    spots = [(i, j) for i, (_, args) in enumerate(calls) for j in range(len(args))]
    return rng.choice(spots) if spots else None


def _map_arg(calls, rng, fn):
    spot = _pick_arg(calls, rng)
    if spot is None:
        return None
    i, j = spot
    name, args = calls[i]
    k, v = args[j]
    args = list(args)
    args[j] = (k, fn(v))
    out = list(calls)
    out[i] = (name, args)
    return out


def _string_spot(calls, rng):
    def find(v, path):
        if isinstance(v, str):
            yield path
        elif isinstance(v, list):
            for n, x in enumerate(v):
                yield from find(x, path + [n])
        elif isinstance(v, dict):
            for k, x in v.items():
                yield from find(x, path + [k])
    spots = [(i, j, p) for i, (_, args) in enumerate(calls) for j, (_, v) in enumerate(args) for p in find(v, [])]
    return rng.choice(spots) if spots else None


def _set_path(v, path, fn):
    if not path:
        return fn(v)
    if isinstance(v, list):
        out = list(v)
    else:
        out = dict(v)
    out[path[0]] = _set_path(v[path[0]], path[1:], fn)
    return out


def perturb(kind: str, calls, item, rng: random.Random) -> str | None:
    """Text of a perturbed answer, or None when `kind` does not apply to this gold."""
    names = [f["name"] for f in item["functions"]]
    if kind == "string_variant" or kind == "unicode":
        spot = _string_spot(calls, rng)
        if spot is None:
            return None
        i, j, path = spot
        fn = (lambda s: _string_variant(s, rng)) if kind == "string_variant" else \
            (lambda s: rng.choice([s + " café", "東京", s + "😀", s.upper() + "ß", "Ünïcödé"]))
        name, args = calls[i]
        args = list(args)
        args[j] = (args[j][0], _set_path(args[j][1], path, fn))
        out = list(calls)
        out[i] = (name, args)
        return render(out, rng)
    simple_maps: dict[str, Callable[[Any], Any]] = {
        "wrong_value": lambda v: _mutate_value(v, rng),
        "int_float": lambda v: _int_float(v, rng),
        "type_swap": lambda v: _type_swap(v, rng),
        "none_value": lambda v: None,
        "arith": lambda v: _arith(v, rng),
        "odd_value": lambda v: _odd_value(rng),
        "elem_types": lambda v: _elem_types(v, rng),
    }
    if kind in simple_maps:
        out = _map_arg(calls, rng, simple_maps[kind])
        return None if out is None else render(out, rng)
    if kind == "reorder":
        out = [(n, rng.sample(a, len(a))) for n, a in calls]
        rng.shuffle(out)
        return render(out, rng)
    if kind == "drop_param":
        spot = _pick_arg(calls, rng)
        if spot is None:
            return None
        i, j = spot
        out = list(calls)
        out[i] = (calls[i][0], [a for n, a in enumerate(calls[i][1]) if n != j])
        return render(out, rng)
    if kind == "add_param":
        i = rng.randrange(len(calls))
        name, args = calls[i]
        schema = _schema(item["functions"], name)
        unused = [p for p in schema if p not in {k for k, _ in args}]
        if unused and rng.random() < 0.7:
            p = rng.choice(unused)
            default = schema[p].get("default")
            value = default if default is not None else {"string": "abc", "integer": 1, "float": 1.5,
                                                         "boolean": True, "array": [], "dict": {}}.get(
                schema[p].get("type"), "x")
        else:
            p, value = "extra_param", "x"
        out = list(calls)
        out[i] = (name, list(args) + [(p, value)])
        return render(out, rng)
    if kind == "wrong_function":
        i = rng.randrange(len(calls))
        others = [n for n in names if n != calls[i][0]]
        new = rng.choice(others) if others and rng.random() < 0.6 else calls[i][0] + "_v2"
        out = list(calls)
        out[i] = (new, calls[i][1])
        return render(out, rng)
    if kind == "extra_call":
        out = list(calls) + [rng.choice(calls)]
        rng.shuffle(out)
        return render(out, rng)
    if kind == "missing_call":
        if len(calls) < 2:
            return render([], rng)
        out = list(calls)
        out.pop(rng.randrange(len(out)))
        return render(out, rng)
    if kind == "tuples":
        return render(calls, rng, tuples=True)
    if kind == "positional":
        spot = _pick_arg(calls, rng)
        if spot is None:
            return None
        i, j = spot
        out = list(calls)
        args = list(calls[i][1])
        k, v = args.pop(j)
        out[i] = (calls[i][0], [(None, v)] + args)
        return render(out, rng)
    if kind == "wrapped":
        text = render(calls, rng, brackets=rng.random() < 0.6)
        return rng.choice([f"```python\n{text}\n```", f"```\n{text}\n```", f"`{text}`", f"\n {text} \n",
                           f"Sure! {text}", f"{text}\nHope this helps.", f"'{text}'", f"<tool>{text}</tool>",
                           f"```json\n{text}\n```", text.replace(", ", ",\n")])
    if kind == "json_style":
        obj = [{"name": n, "arguments": {k: v for k, v in a if k is not None and not isinstance(v, Raw)}}
               for n, a in calls]
        return json.dumps(obj, ensure_ascii=False)
    if kind == "truncated":
        text = render(calls, rng)
        return text[: rng.randrange(1, max(2, len(text) - 1))]
    if kind in NO_CALL_TEXTS:
        return NO_CALL_TEXTS[kind](rng)
    raise ValueError(f"unknown perturbation {kind!r}")


NO_CALL_TEXTS: dict[str, Callable[[random.Random], str]] = {
    "refusal": lambda r: r.choice([
        "I cannot help with that.", "None of the provided functions can answer this question.",
        "Sorry, the question lacks the required parameter 'city'.", "I'm sorry, but I can't do that (no tool fits).",
        "The function requires a date, please provide it.", "No function call is needed here."]),
    "empty": lambda r: r.choice(["", "[]", "  ", "```\n[]\n```", "[ ]", "``````"]),
    "garbage": lambda r: r.choice([
        "[[[", "]]", "(((", "asdf qwerty", "[f(x=1", "f(x=)", "{'name': 'f'}", "[1, 2, 3]", "None", "42",
        "[f(x=1) g(y=2)]", "[f(x=1)][g(y=2)]", "print('hi')", "[print('hi')]", "f(x=1); g(y=2)",
        "[f(**{'a': 1})]", "[f(*args)]", "[f(x=1, x=2)]", "[(lambda: 1)()]", "[a[0](x=1)]", "[f()()]",
        "[f(x=1)] and more", "def f(x):\n    return x", "<tool_call>{\"name\": \"f\"}</tool_call>"]),
}

AST_KINDS = ("wrong_value", "int_float", "string_variant", "unicode", "reorder", "drop_param", "add_param",
             "wrong_function", "extra_call", "missing_call", "tuples", "positional", "wrapped", "json_style",
             "truncated", "type_swap", "none_value", "arith", "odd_value", "elem_types", "elem_types",
             "refusal", "empty", "garbage")


# Outputs shaped like answers (a list of calls with literal arguments), as opposed to text that is
# not a call list or uses unusual syntax (fences, JSON, arithmetic, positional arguments, garbage).
WELL_FORMED_KINDS = frozenset({
    "gold_first", "gold_minimal", "gold_random", "wrong_value", "int_float", "string_variant", "unicode", "reorder",
    "drop_param", "add_param", "wrong_function", "extra_call", "missing_call", "type_swap", "none_value",
    "elem_types", "tuples"})


# --- relevance items --------------------------------------------------------------------------------

def _made_up_args(fn: dict[str, Any], rng: random.Random) -> list[tuple[str, Any]]:
    props = fn.get("parameters", {}).get("properties", {})
    sample = {"string": "abc", "integer": 3, "float": 2.5, "boolean": False, "array": ["a"], "tuple": [1, 2],
              "dict": {"k": "v"}, "any": "x"}
    return [(p, sample.get(s.get("type"), "x")) for p, s in props.items() if rng.random() < 0.7]


def relevance_outputs(item: dict[str, Any], rng: random.Random, n: int) -> list[tuple[str, str]]:
    fns = item["functions"]
    makers: list[tuple[str, Callable[[], str | None]]] = [
        ("call", lambda: render([(f["name"], _made_up_args(f, rng)) for f in rng.sample(fns, 1)], rng)
         if fns else None),
        ("call_no_args", lambda: render([(rng.choice(fns)["name"], [])], rng) if fns else None),
        ("two_calls", lambda: render([(f["name"], _made_up_args(f, rng)) for f in fns[:2]], rng) if fns else None),
        ("wrapped_call", lambda: f"```python\n{render([(fns[0]['name'], _made_up_args(fns[0], rng))], rng)}\n```"
         if fns else None),
        ("unknown_call", lambda: render([("search_web", [("query", "weather")])], rng)),
        ("refusal", lambda: NO_CALL_TEXTS["refusal"](rng)),
        ("empty", lambda: NO_CALL_TEXTS["empty"](rng)),
        ("garbage", lambda: NO_CALL_TEXTS["garbage"](rng)),
        ("json_style", lambda: json.dumps([{"name": fns[0]["name"], "arguments": {}}]) if fns else None),
    ]
    out = []
    for kind, make in rng.sample(makers, min(n, len(makers))):
        text = make()
        if text is not None:
            out.append((kind, text))
    return out


# --- the case list ----------------------------------------------------------------------------------

def generate(categories: tuple[str, ...] = ALL_CATEGORIES, per_item: int = 4, seed: int = 0,
             limit: int | None = None) -> list[dict[str, Any]]:
    """[{"case", "id", "category", "kind", "result"}]: two golds + `per_item` perturbations per AST item,
    `per_item - 1` outputs per relevance item."""
    rng = random.Random(seed)
    cases: list[dict[str, Any]] = []

    def add(item, cat, kind, text):
        cases.append({"case": len(cases), "id": item["id"], "category": cat, "kind": kind, "result": text})

    for cat in categories:
        items = load_items(cat)[:limit]
        for item in items:
            if cat in RELEVANCE_CATEGORIES:
                for kind, text in relevance_outputs(item, rng, max(1, per_item - 1)):
                    add(item, cat, kind, text)
                continue
            if cat in EXEC_CATEGORIES:
                add(item, cat, "gold_first", "[" + ", ".join(exec_gold(item)) + "]")
                calls = _exec_calls(item)
                if calls is None:
                    continue
            else:
                add(item, cat, "gold_first", render(choose_gold(item, rng, first=True)))
                add(item, cat, "gold_minimal", render(choose_gold(item, rng, first=True, minimal=True)))
                add(item, cat, "gold_random", render(choose_gold(item, rng, first=False), rng))
                calls = None
            kinds = rng.sample(AST_KINDS, per_item)
            for kind in kinds:
                base = calls if calls is not None else choose_gold(item, rng, first=rng.random() < 0.5)
                text = perturb(kind, base, item, rng)
                if text is not None:
                    add(item, cat, kind, text)
    return cases


def _exec_calls(item: dict[str, Any]) -> list[tuple[str, list]] | None:
    """Exec answers are call strings: perturb them as Raw-valued argument lists (kept verbatim)."""
    import ast

    calls = []
    for text in item["key"]:
        try:
            node = ast.parse(text, mode="eval").body
        except SyntaxError:
            return None
        if not isinstance(node, ast.Call):
            return None
        args = [(None, Raw(ast.unparse(a))) for a in node.args]
        for kw in node.keywords:
            try:
                value = ast.literal_eval(kw.value)
            except ValueError:
                value = Raw(ast.unparse(kw.value))
            args.append((kw.arg, value))
        calls.append((ast.unparse(node.func), args))
    return calls
