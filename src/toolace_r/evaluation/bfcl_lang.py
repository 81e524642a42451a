"""BFCL's Java and JavaScript categories (simple_java, simple_javascript): what the model sees, how its
answer is read, what its arguments are worth. docs/bfcl.md#java-js says it for a user.

Every argument there is a string in the language's own syntax ("5L", "new int[]{1, 2}", "{a: 1}"), so:

- The model sees each function the way BFCL's prompting handlers show it: a note on the language at the
  end of the description, every parameter typed "string" with its real type said in its description
  (`model_functions`, which runs bfcl-eval's own preprocessing at run time). The checker keeps the real
  types (`Example.metadata["bfcl_functions"]`).
- The answer is read as BFCL reads a prompt model's Java/JS answer (`decode`): its call text parsed by
  the language's tree-sitter grammar, with bfcl-eval's own parser functions, values kept as source
  text. Only the first call is read; a positional argument becomes a parameter named `POSITIONAL`.
- Each argument string is converted by its schema type (`bfcl_typed`, `bfcl_typed_js`) and then
  checked by the usual value rules, the language branch of BFCL's checker (evaluation/checker.py).

Bounds, as for every answer: text over `calls.MAX_INPUT_CHARS`, or with brackets nested deeper than
`MAX_NESTING` (counted over the whole text, string literals included), is a decode failure before
any parser sees it: tree-sitter's own recursion crashes the process on input nested some ten thousand
deep. Below that the text goes to bfcl-eval's parsers as BFCL's does (its Java reader fails by itself at
about a thousand levels, on Python's recursion limit).
"""
from __future__ import annotations

import copy
import os
import tempfile
from typing import Any, Callable

from toolace_r.calls import MAX_INPUT_CHARS, ToolCall
from toolace_r.evaluation.bfcl_typed import JAVA_TYPES, JS_TYPES, NESTED_TYPES, java_value
from toolace_r.evaluation.bfcl_typed_js import js_value

LANGUAGES = ("java", "javascript")
MAX_NESTING = 4000  # tree-sitter crashed from about 10,000 on (8 MiB thread stack)
# The name a positional argument gets (BFCL's parsers key it None): no schema has it, so it is unexpected.
POSITIONAL = "<positional>"

_MISSING = ("BFCL's {} category needs bfcl-eval and the tree-sitter grammars: "
            "`pip install --no-deps bfcl-eval` and `pip install 'tree-sitter>=0.21.3,<0.22' "
            "'tree-sitter-java>=0.21,<0.22' 'tree-sitter-javascript>=0.21.4,<0.22'` ({})")


def language_of(category: str | None) -> str | None:
    """"java", "javascript" or None (Python), decided by the category name as BFCL decides it."""
    category = category or ""
    if "javascript" in category:
        return "javascript"
    if "java" in category:
        return "java"
    return None


# --- what the model sees --------------------------------------------------------------------------

def model_functions(functions: list[dict[str, Any]], category: str) -> list[dict[str, Any]]:
    """`functions` (BFCL-shaped dicts) as BFCL's prompting handlers show them for `category`: bfcl-eval's
    own language preprocessing, run on a copy. Raises RuntimeError when bfcl-eval cannot be imported."""
    preprocess = _bfcl_preprocessing()
    return preprocess(copy.deepcopy(functions), category)


_PREPROCESS: Callable[[list[dict[str, Any]], str], list[dict[str, Any]]] | None = None


def _bfcl_preprocessing() -> Callable[[list[dict[str, Any]], str], list[dict[str, Any]]]:
    global _PREPROCESS
    if _PREPROCESS is None:
        # bfcl_eval.utils makes its result folders when imported, under BFCL_PROJECT_ROOT (default: next to
        # the package): where none is set, a scratch folder takes them instead of site-packages.
        unset = "BFCL_PROJECT_ROOT" not in os.environ
        if unset:
            os.environ["BFCL_PROJECT_ROOT"] = os.path.join(tempfile.gettempdir(), "toolace-r-bfcl-project")
        try:
            from bfcl_eval.utils import _func_doc_language_specific_pre_processing
        except ImportError as exc:
            raise RuntimeError(_MISSING.format("Java/JavaScript", exc)) from exc
        finally:
            if unset:
                os.environ.pop("BFCL_PROJECT_ROOT", None)
        _PREPROCESS = _func_doc_language_specific_pre_processing
    return _PREPROCESS


# --- how the answer is read -----------------------------------------------------------------------

class Decoded:
    """calls (None on failure) and BFCL's error_type for the failure, with a message."""

    __slots__ = ("calls", "error_type", "error")

    def __init__(self, calls: list[ToolCall] | None, error_type: str | None = None, error: str | None = None):
        self.calls = calls
        self.error_type = error_type
        self.error = error


_PARSERS: dict[str, Callable[[str], Any]] = {}


def _parser(language: str) -> Callable[[str], Any]:
    parse = _PARSERS.get(language)
    if parse is None:
        try:
            if language == "java":
                from bfcl_eval.model_handler.parser.java_parser import parse_java_function_call as parse
            else:
                from bfcl_eval.model_handler.parser.js_parser import parse_javascript_function_call as parse
        except ImportError as exc:
            raise RuntimeError(_MISSING.format(language, exc)) from exc
        _PARSERS[language] = parse
    return parse


def decode(text: str, language: str) -> Decoded:
    """BFCL's prompt-mode decoding of a Java/JS answer: trim "`", newlines and spaces, bracket it, drop
    the brackets again (BFCL's own round trip), parse the call with the language's grammar."""
    if not isinstance(text, str):
        raise TypeError(f"decode() needs a str, got {type(text).__name__}")
    parse = _parser(language)  # a missing parser is the installation's fault, not the answer's
    if len(text) > MAX_INPUT_CHARS:
        return Decoded(None, "ast_decoder:decoder_failed", f"answer longer than {MAX_INPUT_CHARS} characters")
    text = text.strip("`\n ")
    if not text.startswith("["):
        text = "[" + text
    if not text.endswith("]"):
        text = text + "]"
    source = text[1:-1]
    if _nesting(source) > MAX_NESTING:
        return Decoded(None, "ast_decoder:decoder_failed", f"brackets nested deeper than {MAX_NESTING}")
    try:
        out = parse(source)
    except Exception as exc:  # noqa: BLE001 - BFCL counts any failure of its parser as a decode failure
        return Decoded(None, "ast_decoder:decoder_failed", f"{type(exc).__name__}: {exc}")
    if not _call_list(out):
        return Decoded(None, "ast_decoder:decoder_wrong_output_format", "no function call in the answer")
    return Decoded([ToolCall(name, {POSITIONAL if k is None else k: v for k, v in args.items()})
                    for item in out for name, args in item.items()])


def _nesting(text: str) -> int:
    if text.count("(") + text.count("[") + text.count("{") <= MAX_NESTING:  # the common case, counted in C
        return 0
    depth = deepest = 0
    for ch in text:
        if ch in "([{":
            depth += 1
            if depth > deepest:
                deepest = depth
        elif ch in ")]}" and depth:
            depth -= 1
    return deepest


def _call_list(out: Any) -> bool:
    """BFCL's is_function_calling_format_output: a list of one-key dicts whose value is a dict."""
    if type(out) is not list:
        return False
    return all(type(item) is dict and len(item) == 1 and type(next(iter(item.values()))) is dict for item in out)


# --- what the arguments are worth -----------------------------------------------------------------

class TypedParam:
    """One parameter's language type: `convert(text)` gives the value BFCL compares; `py_type` and
    `item_type` are the Python types of the schema type and of its elements (for the type check)."""

    __slots__ = ("language", "type_name", "nested", "py_type", "item_type", "error_type")

    def __init__(self, language: str, schema: Any):
        table = JAVA_TYPES if language == "java" else JS_TYPES
        self.language = language
        self.error_type = "type_error:java" if language == "java" else "type_error:js"
        self.type_name = schema.get("type") if isinstance(schema, dict) else None
        self.py_type = table.get(self.type_name)  # type: ignore[arg-type]
        self.nested = None
        self.item_type = None
        if self.type_name in NESTED_TYPES:
            items = schema.get("items") if isinstance(schema, dict) else None
            self.nested = items.get("type") if isinstance(items, dict) else None
            self.item_type = table.get(self.nested)  # type: ignore[arg-type]

    def convert(self, text: str) -> Any:
        if self.language == "java":
            return java_value(text, self.type_name, self.nested)  # type: ignore[arg-type]
        return js_value(text, self.type_name, self.nested)  # type: ignore[arg-type]
