"""ACEBench's normal and special categories, read from a checkout of its repository.

Source syntax: `acebench:<category>[,<category>...][@<dir>][#<lang>]`, e.g.
`acebench:normal_atom_bool@/src/ACEBench`, `acebench:all@/src/ACEBench#zh`; the dir may also be
passed as `data_dir=` and the language as `lang=` ("en", the default, or "zh"). The dir is the
repository root, its `data_all` folder, or the language folder itself (`data_all/data_en`), which
holds, as JSON lines despite the `.json` suffix (docs/acebench.md):

    data_<category>.json                    questions: id, question, function, time | profile
    possible_answer/data_<category>.json    answers:   id, ground_truth

Groups: `all` (the 15 offline categories: 12 normal + 3 special), `normal`, `special`, `atom`,
`multi_turn`. The agent categories need ACEBench's simulated environments and are not loadable.

Each line is one Example with ACEBench's id (a multi-turn line is one turn; the earlier turns are
inside its question string). `messages` holds one user message, the question string as ACEBench
stores it (`toolace_r.evaluation.acebench_prompt.acebench_messages` builds ACEBench's own prompts).
`metadata["acebench"]` keeps what scoring and prompting need, as stored: `ground_truth`, `function`
(the raw function list: the checker reads ACEBench's type names, which normalising changes, e.g.
`number`), `question`, `time`, `profile`, `lang`, and for multi-turn lines `conversation`/`turn`.

Gold: normal categories -> Gold("calls"), the (first) ground-truth alternative with the numeric
`_<n>` suffixes of repeated calls removed; special categories -> Gold("no_call") whose text is the
phrase ACEBench's prompt asks for, built from the stored strings.

Tools: `normalize_tools` reads both schema shapes. The atom categories' distractor functions say
`arguments` (with `results`, `tags`) where the others say `parameters`; they are normalised from
`arguments` like any other schema (so they stay offered to the model), and the raw list is kept for
the checker and the prompt.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Iterator, Union

from toolace_r.calls import ToolCall
from toolace_r.data.example import Example, Gold
from toolace_r.data.records import expect, join_by_id
from toolace_r.data.registry import DatasetError, register_loader
from toolace_r.jsonvalues import json_type
from toolace_r.tools import normalize_tools

NORMAL_CATEGORIES = (
    "normal_single_turn_single_function", "normal_single_turn_parallel_function",
    "normal_multi_turn_user_adjust", "normal_multi_turn_user_switch", "normal_similar_api",
    "normal_preference", "normal_atom_bool", "normal_atom_enum", "normal_atom_number", "normal_atom_list",
    "normal_atom_object_deep", "normal_atom_object_short",
)
SPECIAL_CATEGORIES = ("special_incomplete", "special_error_param", "special_irrelevant")
AGENT_CATEGORIES = ("agent_multi_turn", "agent_multi_step")
MULTI_TURN_CATEGORIES = ("normal_multi_turn_user_adjust", "normal_multi_turn_user_switch")
ACEBENCH_CATEGORIES = NORMAL_CATEGORIES + SPECIAL_CATEGORIES
ACEBENCH_GROUPS: dict[str, tuple[str, ...]] = {
    "all": ACEBENCH_CATEGORIES,
    "normal": NORMAL_CATEGORIES,
    "special": SPECIAL_CATEGORIES,
    "atom": tuple(c for c in NORMAL_CATEGORIES if c.startswith("normal_atom_")),
    "multi_turn": MULTI_TURN_CATEGORIES,
}
LANGUAGES = ("en", "zh")

_SUFFIX = re.compile(r"_\d+$")
INCOMPLETE_PHRASE = "Missing necessary parameters ({params}) for the api ({api})"
ERROR_PARAM_PHRASE = "There is incorrect value ({value}) for the parameters ({key}) in the conversation history."


def parse_spec(spec: str, data_dir: str | Path | None = None, lang: str | None = None
               ) -> tuple[list[str], Path, str]:
    """"normal_atom_bool@DIR#zh" -> (categories, language folder, lang); errors say what was expected."""
    rest, _, lang_tail = spec.partition("#")
    cats_text, _, at_dir = rest.partition("@")
    lang = (lang_tail.strip() or lang or "en").lower()
    if lang not in LANGUAGES:
        raise ValueError(f"acebench: unknown language {lang!r} (known: {', '.join(LANGUAGES)})")
    given = at_dir.strip() or data_dir
    if not given:
        raise ValueError("acebench: no data dir: use acebench:<categories>@<ACEBench checkout> "
                         "or pass data_dir=")
    cats = expand_categories(cats_text)
    return cats, language_dir(Path(given), lang, cats), lang


def expand_categories(text: str) -> list[str]:
    names = [c.strip() for c in text.split(",") if c.strip()]
    if not names:
        raise ValueError("expected acebench:<category>[,<category>...]; categories: "
                         f"{', '.join(ACEBENCH_CATEGORIES)}; groups: {', '.join(ACEBENCH_GROUPS)}")
    out: list[str] = []
    for name in names:
        if name in AGENT_CATEGORIES:
            raise ValueError(f"acebench category {name!r} needs ACEBench's simulated environments: "
                             "only the normal and special categories can be loaded")
        for cat in ACEBENCH_GROUPS.get(name, (name,)):
            if cat not in ACEBENCH_CATEGORIES:
                known = ", ".join([*ACEBENCH_CATEGORIES, *ACEBENCH_GROUPS])
                raise ValueError(f"unknown ACEBench category {cat!r} (known: {known})")
            if cat not in out:
                out.append(cat)
    return out


def language_dir(root: Path, lang: str, cats: list[str]) -> Path:
    """The folder holding data_<cat>.json for `lang`: root, root/data_<lang> or root/data_all/data_<lang>."""
    if not root.is_dir():
        raise FileNotFoundError(f"ACEBench data dir {str(root)!r} does not exist")
    for folder in (root / "data_all" / f"data_{lang}", root / f"data_{lang}", root):
        if all((folder / f"data_{c}.json").is_file() and (folder / "possible_answer" / f"data_{c}.json").is_file()
               for c in cats):
            return folder
    first = cats[0]
    raise FileNotFoundError(
        f"{root}: not an ACEBench data folder: expected data_{first}.json and possible_answer/data_{first}.json "
        f"(one pair per category) in it, in data_{lang}/ or in data_all/data_{lang}/")


@register_loader("acebench")
def load_acebench(spec: str, data_dir: str | Path | None = None, lang: str | None = None
                  ) -> Iterator[Union[Example, DatasetError]]:
    cats, folder, lang = parse_spec(spec, data_dir, lang)
    for cat in cats:
        yield from _load_category(folder, cat, lang)


def _load_category(folder: Path, cat: str, lang: str) -> Iterator[Union[Example, DatasetError]]:
    yield from join_by_id(folder / f"data_{cat}.json", folder / "possible_answer" / f"data_{cat}.json",
                          lambda where, rec, answers: _example(cat, lang, where, rec, answers))


def _example(cat: str, lang: str, where: str, rec: Any, answers: dict[str, tuple[str, Any]]) -> Example:
    ex_id = expect(rec, "id", str, where)
    question = expect(rec, "question", str, where)
    functions = expect(rec, "function", list, where)
    try:
        tools = normalize_tools(functions)
    except ValueError as exc:
        raise DatasetError(where, str(exc), field="function") from None
    if ex_id not in answers:
        raise DatasetError(where, f"no answer with id {ex_id!r} in possible_answer/data_{cat}.json", field="id")
    answer_where, answer = answers[ex_id]
    truth = answer.get("ground_truth") if isinstance(answer, dict) else None
    meta: dict[str, Any] = {
        "ground_truth": truth, "function": functions, "question": question, "lang": lang,
        "time": expect(rec, "time", str, where, optional=True) or "",
        "profile": expect(rec, "profile", str, where, optional=True) or "",
    }
    if cat in MULTI_TURN_CATEGORIES:
        parts = ex_id.split("_")
        if len(parts) < 2 or not (parts[-1].isdigit() and parts[-2].isdigit()):
            raise DatasetError(where, f"expected a multi-turn id <category>_<conversation>_<turn>, got {ex_id!r}",
                               field="id")
        meta["conversation"], meta["turn"] = parts[-2], parts[-1]
    gold = _gold(cat, answer_where, answer, truth)
    return Example(id=ex_id, messages=[{"role": "user", "content": question}], tools=tools, gold=gold,
                   category=cat, metadata={"benchmark": "acebench", "acebench": meta})


def _gold(cat: str, where: str, answer: Any, truth: Any) -> Gold:
    if cat == "special_irrelevant":
        return Gold(kind="no_call", text=expect(answer, "ground_truth", str, where))
    if cat == "special_incomplete":
        entries = _string_lists(expect(answer, "ground_truth", dict, where), where, "{api name: [missing parameter]}")
        text = "; ".join(INCOMPLETE_PHRASE.format(params=", ".join(v), api=k) for k, v in entries.items())
        return Gold(kind="no_call", text=text)
    if cat == "special_error_param":
        entries = _string_lists(expect(answer, "ground_truth", dict, where), where, "{parameter: [wrong value]}")
        text = " ".join(ERROR_PARAM_PHRASE.format(value=", ".join(v), key=k) for k, v in entries.items())
        return Gold(kind="no_call", text=text)
    truth = expect(answer, "ground_truth", (dict, list), where)
    alternatives = truth if isinstance(truth, list) else [truth]
    if not alternatives:
        raise DatasetError(where, "expected at least one answer", field="ground_truth")
    for i, alt in enumerate(alternatives):
        if not isinstance(alt, dict) or not all(isinstance(v, dict) for v in alt.values()):
            raise DatasetError(where, f"answer {i}: expected {{function name: {{parameter: value}}}}, "
                                      f"got {json_type(alt)}", field="ground_truth")
    calls = [ToolCall(_SUFFIX.sub("", key), dict(params)) for key, params in alternatives[0].items()]
    return Gold(kind="calls", calls=calls)


def _string_lists(truth: dict, where: str, shape: str) -> dict[str, list[str]]:
    for key, values in truth.items():
        if not (isinstance(values, list) and all(isinstance(v, str) for v in values)):
            raise DatasetError(where, f"entry {key!r}: expected {shape}, got {json_type(values)}",
                               field="ground_truth")
    return truth
