"""The prompts ACEBench sends, read at run time from the user's ACEBench checkout (docs/acebench.md).

ACEBench's prompt texts live in its `model_inference/prompt_en.py` / `prompt_zh.py` as string
constants; they are read with `ast` (the module is never imported or run). Per example ACEBench sends
two messages: a system prompt chosen by category (special -> the special prompt, preference -> the
preference prompt with the user profile, else the normal prompt with the time line), filled with the
function list as Python's `str()` of the list of dicts, and the user prompt holding the question.
"""
from __future__ import annotations

import ast
from functools import lru_cache
from pathlib import Path
from typing import Any

PROMPT_NAMES = {
    "normal": "SYSTEM_PROMPT_FOR_NORMAL_DATA_{L}",
    "preference": "SYSTEM_PROMPT_FOR_PREFERENCE_DATA_{L}",
    "special": "SYSTEM_PROMPT_FOR_SPECIAL_DATA_{L}",
    "user": "USER_PROMPT_{L}",
}


def prompt_file(checkout_dir: str | Path, lang: str = "en") -> Path:
    path = Path(checkout_dir) / "model_inference" / f"prompt_{lang}.py"
    if not path.is_file():
        raise FileNotFoundError(f"{checkout_dir}: no model_inference/prompt_{lang}.py: expected the root of "
                                "an ACEBench checkout")
    return path


@lru_cache(maxsize=8)
def _read_constants(path: str) -> dict[str, str]:
    tree = ast.parse(Path(path).read_text(encoding="utf-8"), filename=path)
    out: dict[str, str] = {}
    for node in tree.body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) \
                and isinstance(node.value.value, str):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    out[target.id] = node.value.value
    return out


def load_prompts(checkout_dir: str | Path, lang: str = "en") -> dict[str, str]:
    """{"normal", "preference", "special", "user"} -> template text, from the checkout's prompt file."""
    path = prompt_file(checkout_dir, lang)
    constants = _read_constants(str(path.resolve()))
    out = {}
    for kind, name in PROMPT_NAMES.items():
        name = name.format(L=lang.upper())
        if name not in constants:
            raise ValueError(f"{path}: no string constant {name}")
        out[kind] = constants[name]
    return out


def render_functions(functions: list[Any]) -> str:
    """The function list as ACEBench inserts it: Python's str() of the list (single quotes, True)."""
    return str(functions)


def acebench_messages(example: Any, checkout_dir: str | Path) -> list[dict[str, str]]:
    """[system, user] messages exactly as ACEBench builds them for an `acebench:` example."""
    meta = example.metadata.get("acebench") or {}
    lang = meta.get("lang") or "en"
    prompts = load_prompts(checkout_dir, lang)
    functions = render_functions(meta.get("function") or [])
    category = example.category
    if "special" in category:
        system = prompts["special"].format(time=meta.get("time") or "", function=functions)
    elif "preference" in category:
        system = prompts["preference"].format(profile=meta.get("profile") or "", function=functions)
    else:
        system = prompts["normal"].format(time=meta.get("time") or "", function=functions)
    user = prompts["user"].format(question=meta.get("question", ""))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
