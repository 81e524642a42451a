"""Model trajectories for the BFCL multi-turn agreement benchmark, generated from BFCL's own data.

A case is {"case", "id", "category", "kind", "result"}, `result` being what BFCL's inference writes
for a multi-turn entry: per turn, the raw text of every step. Kinds (`KINDS`), each built from the
ground truth of the entry (as keyword calls, `gold_calls`) with a seeded random generator:

    gold, gold_stepwise, gold_raw (the answer file's own strings, positional arguments and all),
    wrong_value, tricky_value (values that test the text round trip: quotes, backslashes, newlines,
    non-ASCII, a method name inside a string, big and odd numbers), wrong_order, missing_call, extra_call, duplicate, wrong_function, ahead (a later
    turn's calls made early), state_mistake (another turn's state-changing call slipped in),
    garbage (broken text, unknown functions, builtins, nested calls, {} arguments, names that
    BFCL's rewrite reaches inside strings, ...), empty_turn, chatty (prose and "[]" steps between
    the calls), force_terminated.
"""
from __future__ import annotations

import random
from typing import Any

from toolace_r.calls import ToolCall, render
from toolace_r.evaluation.multi_turn import gold_calls

KINDS = ("gold", "gold_stepwise", "gold_raw", "wrong_value", "tricky_value", "wrong_order", "missing_call", "extra_call",
         "duplicate", "wrong_function", "ahead", "state_mistake", "garbage", "empty_turn", "chatty",
         "force_terminated")

PROSE = ("I have completed the request.", "Sure, let me know if you need anything else.",
         "I cannot do that with the functions I have.", "")


def text(calls: list[ToolCall]) -> str:
    return render(calls, "pythonic")


def generate(examples: list[Any], *, seed: int = 0, kinds: tuple[str, ...] = KINDS) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    cases = []
    for ex in examples:
        gold = gold_calls(ex)
        for kind in kinds:
            result = BUILDERS[kind](rng, ex, gold)
            cases.append({"case": len(cases), "id": ex.id, "category": ex.category, "kind": kind, "result": result})
    return cases


def _steps(turn: list[ToolCall], rng: random.Random | None = None) -> list[str]:
    """A turn answered as one step of calls, or prose where the ground truth makes none."""
    return [text(turn)] if turn else [rng.choice(PROSE) if rng else PROSE[2]]


def _gold(rng, ex, gold):
    return [_steps(t) for t in gold]


def _gold_stepwise(rng, ex, gold):
    return [[text([c]) for c in t] + [rng.choice(PROSE)] for t in gold]


def _gold_raw(rng, ex, gold):
    return [["[" + ", ".join(t) + "]"] if t else [PROSE[0]] for t in ex.gold.turns]


def _busy_turns(gold: list[list[ToolCall]], least: int = 1) -> list[int]:
    return [i for i, t in enumerate(gold) if len(t) >= least]


def _edit(rng, gold, least, change) -> list[list[str]]:
    turns = [list(t) for t in gold]
    busy = _busy_turns(gold, least)
    if busy:
        t = rng.choice(busy)
        turns[t] = change(turns[t])
    return [_steps(t, rng) for t in turns]


def _wrong_value(rng, ex, gold):
    strings = sorted({v for t in gold for c in t for v in c.arguments.values() if isinstance(v, str)})

    def change(turn):
        with_args = [i for i, c in enumerate(turn) if c.arguments]
        if not with_args:
            return turn[:-1]
        i = rng.choice(with_args)
        call = turn[i]
        key = rng.choice(sorted(call.arguments))
        args = dict(call.arguments)
        args[key] = _mutate(rng, args[key], strings)
        return turn[:i] + [ToolCall(call.name, args)] + turn[i + 1:]
    return _edit(rng, gold, 1, change)


def _mutate(rng: random.Random, value: Any, strings: list[str]) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + rng.choice((1, -1, 10))
    if isinstance(value, float):
        return rng.choice((value + 1.5, value * 2, round(value)))
    if isinstance(value, str):
        others = [s for s in strings if s != value]
        options = [value + "x", value.upper(), "", value[:-1]] + ([rng.choice(others)] if others else [])
        return rng.choice(options)
    if isinstance(value, list):
        return rng.choice((value[:-1], list(reversed(value)), value + value[:1]))
    if isinstance(value, dict):
        return rng.choice(({}, {k: v for k, v in list(value.items())[1:]}))
    return "x"


TRICKY_STRINGS = ("it's", 'say "hi"', "back\\slash", "two\nlines", "tab\there", "caf\u00e9 \u6587\u4ef6",
                  "ls(a=True)", "x') or ('", "{0}%s", "", " ", "\u0000", "a" * 300)
TRICKY_OTHERS = (True, None, -1, 0, 2 ** 70, -2 ** 63, 1e-300, -0.0, 1e16, float("inf"), [], [None, "x"],
                 {"k": 1}, {"a": {"b": 1}}, (1, "t"))


def _tricky_value(rng, ex, gold):
    def change(turn):
        with_args = [i for i, c in enumerate(turn) if c.arguments]
        if not with_args:
            return turn
        i = rng.choice(with_args)
        call = turn[i]
        key = rng.choice(sorted(call.arguments))
        args = dict(call.arguments)
        if isinstance(args[key], str) and rng.random() < 0.7:
            args[key] = rng.choice((rng.choice(TRICKY_STRINGS), args[key] + rng.choice(TRICKY_STRINGS)))
        else:
            args[key] = rng.choice(TRICKY_OTHERS)
        return turn[:i] + [ToolCall(call.name, args)] + turn[i + 1:]
    return _edit(rng, gold, 1, change)


def _wrong_order(rng, ex, gold):
    def change(turn):
        shuffled = turn[:]
        for _ in range(5):
            rng.shuffle(shuffled)
            if [c.to_dict() for c in shuffled] != [c.to_dict() for c in turn]:
                break
        return shuffled
    return _edit(rng, gold, 2, change)


def _missing_call(rng, ex, gold):
    def change(turn):
        i = rng.randrange(len(turn))
        return turn[:i] + turn[i + 1:]
    return _edit(rng, gold, 1, change)


def _extra_call(rng, ex, gold):
    no_args = [t.name for t in ex.tools if not t.required]

    def change(turn):
        extra = ToolCall(rng.choice(no_args), {}) if no_args and rng.random() < 0.7 else rng.choice(turn)
        i = rng.randrange(len(turn) + 1)
        return turn[:i] + [extra] + turn[i:]
    return _edit(rng, gold, 1, change)


def _duplicate(rng, ex, gold):
    busy = _busy_turns(gold)
    t = rng.choice(busy) if busy else -1
    return [_steps(turn) * (2 if i == t else 1) for i, turn in enumerate(gold)]


def _wrong_function(rng, ex, gold):
    names = [t.name for t in ex.tools]

    def change(turn):
        i = rng.randrange(len(turn))
        others = [n for n in names if n != turn[i].name] or ["no_such_function"]
        return turn[:i] + [ToolCall(rng.choice(others), dict(turn[i].arguments))] + turn[i + 1:]
    return _edit(rng, gold, 1, change)


def _ahead(rng, ex, gold):
    turns = [list(t) for t in gold]
    pairs = [i for i in range(len(turns) - 1) if turns[i + 1]]
    if pairs:
        i = rng.choice(pairs)
        turns[i] = turns[i] + turns[i + 1]
        turns[i + 1] = [] if rng.random() < 0.5 else turns[i + 1][:1]
    return [_steps(t, rng) for t in turns]


def _state_mistake(rng, ex, gold):
    pool = [c for t in gold for c in t]
    turns = [list(t) for t in gold]
    if pool:
        t = rng.randrange(len(turns))
        turns[t] = turns[t] + [rng.choice(pool)]
    return [_steps(t, rng) for t in turns]


def _garbage_texts(ex, gold) -> list[str]:
    calls = [c for t in gold for c in t]
    first = calls[0].name if calls else "ls"
    method = next((t.name for t in ex.tools if t.required), first)
    return [
        "[", "[f(", "not a call at all", "[]", "```python\n" + (text(calls[:1]) if calls else "[]") + "\n```",
        "[no_such_function(x=1)]", "[kill(pid=1)]", "[exit(code=0)]", "[len(obj=[1, 2])]",
        "[print(value='hello')]", f"[{method}()]", f"[{method}(unexpected_argument=1)]",
        f"[{method}({{}})]", f"[{method}(x={{}})]", f"[{method}(x=1e999)]", f"[{method}(x=(1, 2))]",
        f"[{method}(x=b'bytes')]", f"[{method}(x=1j)]", f"[{method}(x={{1, 2}})]",
        f"[{method}(x={{'a': {{'b': 1}}}})]", f"[{method}(x={{\"it's\": 1}})]",
        f"[{first}(x={first}(y=1))]", f"[{first}(x=pwd())]", f"[GorillaFileSystem.{first}()]",
        f"[json.{first}()]", f"[echo(content='{first}(now)', file_name='note.txt')]",
        f"[post_tweet(content='please {first}(x) now', tags=[], mentions=[])]",
        f"[{first}(x=-y)]", f"[{first}(x=[1, *y])]", f"[{first}(x=a.b)]", f"[{first}(x=f'hi')]",
        f"{first}(folder='x') and then", f"[{first}(x=2**10)]", f"[{first}(x=lambda: 1)]",
        "[_load_scenario(scenario={})]", f"[{first}(x=1, x=2)]", f"['{first}'(x=1)]",
        f"[{first}(x={{'{method}': {{}}}})]", f"[{method}(x={{'{first}': {{'y': 1}}}})]",
        f"[{first}(x={{1: {{'y': 2}}}})]", "[if(x=1)]", f"[{first}(x=\"a'b\")]", f"[{first}(x='\\n')]",
    ]


def _garbage(rng, ex, gold):
    options = _garbage_texts(ex, gold)
    turns = [_steps(t, rng) for t in gold]
    t = rng.randrange(len(turns))
    picks = [rng.choice(options) for _ in range(rng.randint(1, 3))]
    turns[t] = picks + (turns[t] if rng.random() < 0.5 else [])
    return turns


def _empty_turn(rng, ex, gold):
    turns = [_steps(t, rng) for t in gold]
    busy = _busy_turns(gold)
    if busy:
        t = rng.choice(busy)
        turns[t] = rng.choice(([], ["[]"], [rng.choice(PROSE)], ["[", "[]"]))
    return turns


def _chatty(rng, ex, gold):
    out = []
    for t in gold:
        steps = []
        for c in t:
            if rng.random() < 0.4:
                steps.append(rng.choice(("[]", rng.choice(PROSE), "[broken(")))
            steps.append(text([c]))
        steps.append(rng.choice(PROSE))
        out.append(steps)
    return out


def _force_terminated(rng, ex, gold):
    turns = [_steps(t, rng) for t in gold]
    return turns[:-1] if rng.random() < 0.7 else turns + [[PROSE[0]]]


BUILDERS = {
    "gold": _gold, "gold_stepwise": _gold_stepwise, "gold_raw": _gold_raw, "wrong_value": _wrong_value,
    "tricky_value": _tricky_value,
    "wrong_order": _wrong_order, "missing_call": _missing_call, "extra_call": _extra_call, "duplicate": _duplicate,
    "wrong_function": _wrong_function, "ahead": _ahead, "state_mistake": _state_mistake, "garbage": _garbage,
    "empty_turn": _empty_turn, "chatty": _chatty, "force_terminated": _force_terminated,
}
assert set(BUILDERS) == set(KINDS)


# --- hand-made trajectories (tests/test_bfcl_multi_turn.py keeps their official verdicts) -------------

_B0 = [  # multi_turn_base_0 and multi_turn_miss_func_0 share this conversation (miss_func adds turn 2)
    ["[cd(folder='document'), mkdir(dir_name='temp'), mv(source='final_report.pdf', destination='temp')]"],
    ["[cd(folder='temp'), grep(file_name='final_report.pdf', pattern='budget analysis')]"],
    ["[sort(file_name='final_report.pdf')]"],
    ["[cd(folder='..'), mv(source='previous_report.pdf', destination='temp'), cd(folder='temp'), "
     "diff(file_name1='final_report.pdf', file_name2='previous_report.pdf')]"],
]


def _with(turn: int, steps: list[str], base: list[list[str]] = _B0) -> list[list[str]]:
    return [list(steps) if i == turn else list(t) for i, t in enumerate(base)]


HANDMADE: list[tuple[str, str, list[list[str]]]] = [
    ("multi_turn_base_0", "gold in one step per turn", _B0),
    ("multi_turn_base_0", "one call per step, prose at the end", [
        [f"[{c}]" for c in ("cd(folder='document')", "mkdir(dir_name='temp')",
                            "mv(source='final_report.pdf', destination='temp')")] + ["Done."], *_B0[1:]]),
    ("multi_turn_base_0", "the answer file's positional sort('final_report.pdf') loses its argument",
     _with(2, ["[sort('final_report.pdf')]"])),
    ("multi_turn_base_0", "an extra read-only call", _with(0, [_B0[0][0], "[ls()]"])),
    ("multi_turn_base_0", "mv before mkdir", _with(0, [
        "[cd(folder='document'), mv(source='final_report.pdf', destination='temp'), mkdir(dir_name='temp')]"])),
    ("multi_turn_base_0", "grep left out", _with(1, ["[cd(folder='temp')]"])),
    ("multi_turn_base_0", "grep with another pattern", _with(1, [
        "[cd(folder='temp'), grep(file_name='final_report.pdf', pattern='budget')]"])),
    ("multi_turn_base_0", "no step in turn 2", _with(2, [])),
    ("multi_turn_base_0", "only [] and prose in turn 2", _with(2, ["[]", "I sorted it."])),
    ("multi_turn_base_0", "three turns answered", _B0[:3]),
    ("multi_turn_base_0", "five turns answered", _B0 + [["Anything else?"]]),
    ("multi_turn_base_0", "a forbidden name as an extra step", _with(0, [_B0[0][0], "[kill(pid=1)]"])),
    ("multi_turn_base_0", "an unknown function as an extra step", _with(0, [_B0[0][0], "[no_such(x=1)]"])),
    ("multi_turn_base_0", "an argument {} drops the whole step", _with(0, [
        "[cd(folder='document'), mkdir(dir_name='temp'), mv(source='final_report.pdf', destination='temp'), "
        "ls(a={})]"])),
    ("multi_turn_base_0", "a broken step, then the calls", _with(0, ["[cd(folder=", _B0[0][0]])),
    ("multi_turn_base_0", "echo writes a method name inside a string (BFCL rewrites it)", _with(0, [
        _B0[0][0], "[echo(content='run cd(x) now', file_name='notes.txt')]"])),
    ("multi_turn_base_0", "a nested call as an argument", _with(1, [
        "[cd(folder='temp'), grep(file_name='final_report.pdf', pattern=pwd(x=1))]"])),
    ("multi_turn_base_0", "the class name as a prefix", _with(0, [
        "[GorillaFileSystem.cd(folder='document'), mkdir(dir_name='temp'), "
        "mv(source='final_report.pdf', destination='temp')]"])),
    ("multi_turn_base_0", "turn 1 done in turn 0 as well", _with(0, [_B0[0][0], _B0[1][0]])),
    ("multi_turn_base_0", "a tweet posted in passing", _with(3, [
        _B0[3][0], "[post_tweet(content='Reports compared', tags=[], mentions=[])]"])),
    ("multi_turn_miss_func_0", "gold, nothing in the held-out turn", [*_B0[:2], ["I cannot sort without a tool."],
                                                                      *_B0[2:]]),
    ("multi_turn_miss_func_0", "sort called in the held-out turn and again when given",
     [*_B0[:2], ["[sort(file_name='final_report.pdf')]"], *_B0[2:]]),
    ("multi_turn_miss_func_0", "sort called only in the held-out turn",
     [*_B0[:2], ["[sort(file_name='final_report.pdf')]"], ["It is sorted already."], _B0[3]]),
]


def handmade_cases(start: int = 0) -> list[dict[str, Any]]:
    out = []
    for i, (ex_id, what, result) in enumerate(HANDMADE):
        category = ex_id.rsplit("_", 1)[0]
        out.append({"case": start + i, "id": ex_id, "category": category, "kind": "handmade",
                    "what": what, "result": result})
    return out
