"""The fast path of `calls.decode_bfcl` (`pythonic_fast`) decodes exactly like the full ast decoder
(`calls.decode_bfcl_ast`): tricky strings, the common forms, and thousands of random call lists."""
from __future__ import annotations

import random

import pytest

from toolace_r.calls import ToolCall, decode_bfcl, decode_bfcl_ast
from toolace_r.pythonic_fast import decode


def fast_decode(text):
    """The fast path's answer as ToolCalls (or its message, or None when it defers)."""
    out = decode(text)
    return out if out is None or isinstance(out, str) else [ToolCall(n, a) for n, a in out]


def test_decode_bfcl_uses_the_fast_path_and_falls_back():
    assert decode_bfcl("[f(a=1)]").calls == [ToolCall("f", {"a": 1})]
    assert decode_bfcl("[f(a=2**3)]").calls == [ToolCall("f", {"a": 8})]  # arithmetic: ast path
    assert decode("[f(a=2**3)]") is None
    assert decode_bfcl("Sorry, I cannot.").error


TRICKY = [
    "[f(a=1)]", "f(a=1)", "[]", "", "  [ ]  ", "[f()]", "[f(a=1,)]", "[f(a=1),]", "[f(a=1), g(b='x')]",
    "[math.factorial(number=5)]", "[f(a=-1, b=-2.5, c=.5, d=1., e=1e3, f=1.5E-2, g=00, h=-0.0)]",
    "[f(a=01)]", "[f(a=1_000)]", "[f(a=0x1F)]", "[f(a=1j)]", "[f(a=+5)]", "[f(a=--5)]", "[f(a=not True)]",
    "[f(a='x' 'y')]", r"[f(a='it\'s')]", r'[f(a="say \"hi\"")]', "[f(a='''x''')]", "[f(a=r'x')]",
    "[f(a=b'x')]", "[f(a=u'x')]", "[f(a=f'x')]", "[f(a='café 東京 😀')]",
    "[f(a='\ud800')]", "[f(a='x\x00y')]", "[f(a='x\ry')]", "[f(a=[1, [2, [3, {'k': (4, 5)}]]])]",
    "[f(a={'k': 'v', 1: 2, 1.5: None, True: False})]", "[f(a={'k': 1, 'k': 2})]", "[f(a={})]", "[f(a=[])]",
    "[f(a={1, 2})]", "[f(a={**x})]", "[f(a=[*x])]", "[f(**kw)]", "[f(*args)]", "[f(1, a=2)]", "[f(a=2, 1)]",
    "[f(a=1, a=2)]", "[f(class=1)]", "[f(__debug__=1)]", "[f(a=celsius)]", "[f(a=None)]", "[f(a=Nonex)]",
    "[f(a=x.y)]", "[f(a=x[0])]", "[f(a=g(1))]", "[f(a=g(b=1))]", "[f(a=1 + 2)]", "[f(a=2**3)]", "[f(a=lambda: 1)]",
    "[f(a=...)]", "[f(a==1)]", "[f (a = 1)]", "[f(a=1)\n, g()]", "[f(\n  a=1,\n  b=2\n)]", "[f(a=1)  # c\n]",
    "[f(a=1)] trailing", "'[f(a=1)]'", "```[f(a=1)]```", "```python\n[f(a=1)]\n```", "```json\n[f(a=1)]\n```",
    "```\nf(a=1)\n```", "python\n[f(a=1)]", "[True(a=1)]", "[None.f(a=1)]", "[a.b.c(d=1)]", "[a .b(d=1)]",
    "[f(a=1)][g()]", "[f(a=1)] [g()]", "[[f(a=1)]]", "[(f(a=1))]", "[f(a=1) for x in y]", "[x if y else z]",
    "I cannot help with that.", "Sorry, the question lacks 'city'.", "None of the functions apply.",
    "not applicable", "lambda x: x", "a for b in c", "python\ndef f(x):\n    return x", "[f(x=1", "f(x=)",
    '[{"name": "f", "arguments": {"a": 1}}]', '[{"name": "f"}, 3]', "[{}]", "[{'a': 1}(x=1)]", "{'a': 1}",
    "[f(a='ok', b=[1, 2, 3], c={'k': [True, None]})]", "[f(a=é)]", "[café(a=1)]", "[f(é=1)]",
    "I'm sorry", "r'x'", "R 'x'", "not 'x'", "None 'x'", "[f(a='Par", "[f(a=1, b=[1, 2]", "[f(ci",
    "[f(a=[1, 2)]", "[f(a=(x := 1))]", "f(a='x\\", "[f(a=(1, 2), b=(3), c=(), d=(4,))]", "[f((1, 2), [3], a=1)]",
    "[calculate_circumferenc", "[1, 2, 3]", "42", "f(x=)", "<tool>f(a=1)</tool>", "[*x]", "[f(a=1), x]",
    "[x][0]", "import os", "[yield x]", "[None]", "[:]", "is it?", "[1,,2]", "[f(a={1: })]", "[r'x']",
    "[f(),,g()]", "[f() ,g()]", "[f(a=1)\t]", "[f(a=\t1)]", "[f(a=1\x0c)]", "[f(a=1\u00a0)]", "[f(a='\t')]", "[f(a=1)]]", "[python\n[f(a=1)]]",
]


def _same_as_decode_bfcl(text):
    fast = fast_decode(text)
    slow = decode_bfcl_ast(text)
    if fast is None:
        return True
    if isinstance(fast, str):  # a sure failure must be a failure
        return slow.error is not None
    if slow.error is not None or slow.calls is None:
        return False
    # repr also tells int from float and str from other types
    return repr([(c.name, c.arguments) for c in fast]) == repr([(c.name, c.arguments) for c in slow.calls])


@pytest.mark.parametrize("text", TRICKY)
def test_fast_decode_agrees_with_decode_bfcl(text):
    assert _same_as_decode_bfcl(text), (fast_decode(text), decode_bfcl_ast(text))


def test_fast_decode_takes_the_common_forms():
    assert fast_decode("[get_weather(city='Paris', days=3, x=[1.5, 'a'], d={'k': None}, u=celsius)]") == [
        ToolCall("get_weather", {"city": "Paris", "days": 3, "x": [1.5, "a"], "d": {"k": None}, "u": "celsius"})]
    assert isinstance(fast_decode("I cannot help with that."), str)
    assert isinstance(fast_decode("```python\n[f(a=1)]\n```"), str)
    assert isinstance(fast_decode('[{"name": "f", "arguments": {}}]'), str)
    assert fast_decode("[f(1, a=(1, 2), b=(3))]") == [ToolCall("f", {"a": (1, 2), "b": 3})]  # positional dropped
    assert fast_decode("[f(a=1 + 2)]") is None  # arithmetic: the full decoder


_RAW = ["1/6", "+3", "-x", "(1, 2)", "1_0", "0o7", "f(1)", "x.y", "'a' 'b'", "not 1", "[1,]", "{'k': 1,}"]


def _random_value(rng, depth=0):
    kind = rng.randrange(9 if depth < 3 else 6)
    if kind == 0:
        return repr(rng.choice(["x", "", "San Francisco, CA", "it's", 'say "hi"', "café", "a\\b", "\n", "東京"]))
    if kind == 1:
        return repr(rng.choice([0, 1, -7, 10 ** 30, True, False, None]))
    if kind == 2:
        return repr(rng.choice([0.5, -2.25, 1e-7, 1e300, float(rng.randint(-5, 5))]))
    if kind == 3:
        return rng.choice(["celsius", "x", "Paris", "if", "True"])  # bare names (and keywords)
    if kind in (4, 5):
        return rng.choice(_RAW)
    if kind in (6, 7):
        return "[" + ", ".join(_random_value(rng, depth + 1) for _ in range(rng.randrange(4))) + "]"
    items = [f"{rng.choice(['k', 'v', '1', 'None', '2.5'])!s}: {_random_value(rng, depth + 1)}"
             for _ in range(rng.randrange(3))]
    return "{" + ", ".join(items) + "}"


def test_fast_decode_agrees_on_random_call_lists():
    rng = random.Random(7)
    seps = [", ", ",", " ,\n  ", ",\t", " , "]
    for _ in range(3000):
        calls = []
        for _ in range(rng.randrange(4)):
            args = [f"{rng.choice(['a', 'b', 'city', 'x_1', 'if', 'a'])}={_random_value(rng)}"
                    for _ in range(rng.randrange(5))]
            calls.append(f"{rng.choice(['f', 'g', 'math.sqrt', 'a.b.c', 'None'])}({rng.choice(seps).join(args)})")
        text = "[" + rng.choice(seps).join(calls) + "]"
        if rng.random() < 0.2:
            text = rng.choice(["```\n{}\n```", "{}", " {} ", "```python\n{}\n```"]).format(text[1:-1])
        assert _same_as_decode_bfcl(text), text


_LONG_NUMBERS = [
    "[f(a=" + "0" * 5000 + ")]", "[f(a=-" + "0" * 101 + ")]", "[f(a=" + "0" * 100 + ")]", "[f(a=" + "9" * 101 + ")]",
    "[f(a=" + "9" * 1300 + ")]", "[f(a=" + "9" * 5000 + ")]", "[f(a=0x" + "f" * 1025 + ")]", "[f(" + "0" * 5000 + ", a=1)]",
    "[f(a=[0, " + "0" * 200 + "])]", "[f(a={" + "0" * 200 + ": 1})]", "[f(a=" + "1_" * 3000 + "1)]",
    "[f(a=1e99999, b=-1e99999, c=1" + "0" * 5000 + ".0, d=1e" + "9" * 5000 + ", e=." + "9" * 5000 + ")]",
]


@pytest.mark.parametrize("text", _LONG_NUMBERS, ids=lambda t: f"{t[:8]}..{len(t)}")
def test_long_number_literals_never_raise_and_agree(text):
    # int() refuses more than 4300 digits, even zeros: the fast path reads at most 100 and defers.
    assert _same_as_decode_bfcl(text), (fast_decode(text), decode_bfcl_ast(text))
    r = decode_bfcl(text)
    assert r.is_call == decode_bfcl_ast(text).is_call
    if r.is_call:
        assert all(len(str(v)) < 4300 for c in r.calls for v in c.arguments.values())


def test_fast_path_reads_at_most_100_digits():
    assert fast_decode("[f(a=" + "0" * 100 + ", b=-" + "9" * 100 + ")]") == [ToolCall("f", {"a": 0, "b": -int("9" * 100)})]
    assert fast_decode("[f(a=" + "0" * 101 + ")]") is None
    assert decode_bfcl("[f(a=" + "0" * 5000 + ")]").calls == [ToolCall("f", {"a": 0})]


# --- golds from the real BFCL data ----------------------------------------------------------------

# Items whose key, rendered with the first acceptable value of every parameter, fails in BFCL's own
