"""Tool schemas: every common shape (OpenAI, BFCL/ToolACE, xLAM) normalised into one `Tool` type.

CONTRACT: `Tool.parameters` is a JSON-schema-like object whose property types use BFCL's vocabulary
(string, integer, float, boolean, array, tuple, dict, any), since the checker needs the distinctions
JSON Schema lacks (float vs integer, tuple). `Tool.to_openai()` converts back to JSON Schema names.

Two ideas live here:
- `normalize_tool` recognises a shape by its keys, then maps every type name it meets (JSON Schema,
  BFCL, ToolACE's Python-ish "str"/"list", xLAM's "List[int], optional") onto BFCL's eight names.
  Keys it does not know (`format`, `additionalProperties`, ...) are kept as they are.
Checking a call against these schemas is `toolace_r.schema_check`.

Tool lists also come from strangers (dataset rows, API requests), so `normalize_tool(s)` bounds what
it reads before reading it: nesting depth (`MAX_SCHEMA_DEPTH`, counted over every key of the tool
object, `$defs`, `anyOf` and `properties` alike), total size (`MAX_SCHEMA_NODES`) and names
(`MAX_NAME_CHARS`, no control characters). Anything outside the bounds, or anything that is not a
JSON value, is a ValueError; nothing in here recurses deeper than the depth bound, and the work is
linear in the size of the input.
"""
from __future__ import annotations

import copy
import json
import re
from dataclasses import dataclass, field
from typing import Any

from toolace_r.jsonvalues import check_tool_bounds, json_type, number_problem, short

BFCL_TYPES = ("string", "integer", "float", "boolean", "array", "tuple", "dict", "any")

# Every spelling of a type seen in the supported sources, lower-cased, onto BFCL's names.
_TYPE_NAMES: dict[str, str] = {
    "string": "string", "str": "string", "text": "string",
    "integer": "integer", "int": "integer",
    "float": "float", "number": "float", "double": "float",
    "boolean": "boolean", "bool": "boolean",
    "array": "array", "list": "array", "sequence": "array", "iterable": "array", "set": "array",
    "tuple": "tuple",
    "dict": "dict", "object": "dict", "mapping": "dict",
    "any": "any", "null": "any", "none": "any",
}

# BFCL type -> JSON Schema type for `to_openai` ("any" gets no type constraint at all).
_TO_JSON_SCHEMA = {
    "string": "string", "integer": "integer", "float": "number", "boolean": "boolean",
    "array": "array", "tuple": "array", "dict": "object",
}

_EMPTY_PARAMETERS = {"type": "dict", "properties": {}, "required": []}

# [ours] The largest tool list of the installed BFCL data nests 9 levels deep and holds 738 values;
# these leave ample room for real schemas while keeping every recursion below (normalisation,
# deepcopy, JSON encoding, validation) a few hundred frames from Python's limit.
MAX_SCHEMA_DEPTH = 64  # nesting of dicts and lists in one tool object
MAX_SCHEMA_NODES = 50_000  # values (containers and scalars) in one tool list
MAX_NAME_CHARS = 256  # a tool or parameter name; longer ones are not names anyone calls
MAX_TYPE_NESTING = 8  # brackets in a Python-ish type string ("List[Dict[str, int]]" is 2)

_CONTROL_CHARS = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass
class Tool:
    name: str
    description: str = ""
    # {"type": "dict", "properties": {p: {"type": <bfcl type>, "description": ..., "enum"?: [...],
    #  "items"?: {...}, "properties"?: {...}, "default"?: ...}}, "required": [...]}
    parameters: dict[str, Any] = field(default_factory=lambda: {"type": "dict", "properties": {}, "required": []})

    @property
    def properties(self) -> dict[str, Any]:
        return self.parameters.get("properties") or {}

    @property
    def required(self) -> list[str]:
        return list(self.parameters.get("required") or [])

    def to_bfcl(self) -> dict[str, Any]:
        """The BFCL/ToolACE shape `{"name", "description", "parameters"}` (what the system prompt lists)."""
        return {"name": self.name, "description": self.description, "parameters": copy.deepcopy(self.parameters)}

    def to_openai(self) -> dict[str, Any]:
        """`{"type": "function", "function": {...}}` with JSON Schema type names.

        Lossy on purpose where JSON Schema has no word: tuple becomes array, any loses its type.
        """
        params = _schema_to_json(self.parameters)
        params["type"] = "object"
        params.setdefault("properties", {})
        return {"type": "function", "function": {"name": self.name, "description": self.description,
                                                 "parameters": params}}

    @classmethod
    def from_openai(cls, obj: dict[str, Any]) -> "Tool":
        """Read the OpenAI tools-array shape; anything else is a ValueError."""
        if not (isinstance(obj, dict) and obj.get("type") == "function" and isinstance(obj.get("function"), dict)):
            raise ValueError(f'expected {{"type": "function", "function": {{...}}}}, got {short(obj)}')
        return normalize_tool(obj)


# --- normalisation ----------------------------------------------------------------------------------

def normalize_tool(obj: Any) -> Tool:
    """Turn any supported tool description into a `Tool` (see the module docstring for the shapes).

    ValueError for anything it cannot read, including a schema beyond the bounds above.
    """
    check_tool_bounds([obj], MAX_SCHEMA_DEPTH, MAX_SCHEMA_NODES, numbered=False)
    return _normalize_tool(obj)


def _normalize_tool(obj: Any) -> Tool:
    if isinstance(obj, Tool):
        return obj
    if not isinstance(obj, dict):
        raise ValueError(f"a tool must be a JSON object, got {json_type(obj)}: {short(obj)}")
    if obj.get("type") == "function" and isinstance(obj.get("function"), dict):
        obj = obj["function"]
    name = obj.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ValueError(
            'expected a tool as {"name", "description", "parameters"} or '
            f'{{"type": "function", "function": {{...}}}}, got {short(obj)}')
    _check_name(name, "tool name")
    description = obj.get("description") or ""
    if not isinstance(description, str):
        description = str(description)
    # ToolACE occasionally says "arguments" where everyone else says "parameters".
    params = obj.get("parameters", obj.get("arguments"))
    return Tool(name=name, description=description, parameters=_normalize_parameters(params, name))


def normalize_tools(tools: Any) -> list[Tool]:
    """A list of tools in any supported shape, or that list as a JSON string; a single tool is accepted.

    Every failure is a ValueError (never a RecursionError, whatever the input): see the bounds above.
    """
    if isinstance(tools, str):
        try:
            tools = json.loads(tools) if tools.strip() else []
        except json.JSONDecodeError as exc:
            raise ValueError(f"tools: not valid JSON ({exc.msg} at char {exc.pos})") from None
        except RecursionError:
            raise ValueError(f"tools: nested more than {MAX_SCHEMA_DEPTH} levels deep") from None
        except ValueError as exc:  # a number past Python's int-from-text digit limit
            raise ValueError(f"tools: not readable JSON ({number_problem(exc)})") from None
    if isinstance(tools, (dict, Tool)):
        tools = [tools]
    if not isinstance(tools, list):
        raise ValueError(f"tools: expected a list of tool objects, got {json_type(tools)}")
    check_tool_bounds(tools, MAX_SCHEMA_DEPTH, MAX_SCHEMA_NODES, numbered=True)
    out = []
    for i, tool in enumerate(tools):
        try:
            out.append(_normalize_tool(tool))
        except ValueError as exc:
            raise ValueError(f"tool {i}: {exc}") from None
    return out


def _check_name(name: str, what: str) -> None:
    if len(name) > MAX_NAME_CHARS:
        raise ValueError(f"{what} {name[:40]!r}... is {len(name)} characters long (at most {MAX_NAME_CHARS})")
    if _CONTROL_CHARS.search(name):
        raise ValueError(f"{what} {name[:80]!r} contains control characters")


def _normalize_parameters(params: Any, tool_name: str) -> dict[str, Any]:
    if params is None or params == {} or params == []:
        return copy.deepcopy(_EMPTY_PARAMETERS)
    if not isinstance(params, dict):
        raise ValueError(f"tool {tool_name!r}: 'parameters' must be an object, got {json_type(params)}")
    declared = params.get("type")
    is_object = isinstance(declared, str) and declared.strip().lower() in ("dict", "object")
    # xLAM: every value describes one parameter; a JSON Schema always has a non-dict value
    # ("type": "object", "required": [...]) unless it is a bare {"properties": {...}}.
    xlam_like = all(isinstance(v, dict) and isinstance(v.get("type", v.get("description")), str)
                    for v in params.values())
    if is_object or ("properties" in params and not xlam_like):
        out = _normalize_schema(params, tool_name)
        out["type"] = "dict"
        out.setdefault("properties", {})
        out.setdefault("required", [])
        return out
    if xlam_like:
        return _from_xlam(params, tool_name)
    raise ValueError(
        f"tool {tool_name!r}: expected 'parameters' as a JSON Schema object "
        '({"type": "object"|"dict", "properties": {...}}) or as xLAM\'s {param: {"type": ..., ...}}, '
        f"got {short(params)}")


def _normalize_schema(schema: Any, where: str) -> dict[str, Any]:
    """One (sub)schema: map its type, recurse into items/properties, lift per-property required flags.

    Keys keep their order (the BFCL shape is what the system prompt shows), unknown keys pass through.
    """
    if not isinstance(schema, dict):
        raise ValueError(f"{where}: a schema must be an object, got {json_type(schema)}")
    out: dict[str, Any] = {} if "type" in schema else {"type": None}
    required = schema.get("required")
    required = [r for r in required if isinstance(r, str)] if isinstance(required, list) else []
    required_set = set(required)  # membership tests stay O(1) however many properties there are
    for key, value in schema.items():
        if key == "type":
            out["type"] = None  # filled below, in this position
        elif key in ("anyOf", "oneOf"):
            continue  # folded into "type"
        elif key == "items" and isinstance(value, dict):
            out["items"] = _normalize_schema(value, f"{where}[]")
        elif key == "items" and isinstance(value, list):  # JSON Schema's tuple form
            out["items"] = [_normalize_schema(s, f"{where}[{i}]") for i, s in enumerate(value)]
        elif key == "properties" and isinstance(value, dict):
            out["properties"] = {pname: _normalize_property(pschema, f"{where}.{pname}", pname, required,
                                                            required_set)
                                 for pname, pschema in value.items()}
        elif key == "properties" and value is not None:
            raise ValueError(f"{where}: 'properties' must be an object, got {json_type(value)}")
        elif key == "required":
            out["required"] = required
        else:
            out[key] = copy.deepcopy(value)
    if "required" in out:
        out["required"] = required  # may have grown from per-property flags
    elif required:
        out["required"] = required
    out["type"] = _schema_type(schema, where)
    raw = schema.get("type")
    if isinstance(raw, str) and raw.strip().lower() not in _TYPE_NAMES and "items" not in schema:
        # ToolACE sometimes writes "List[str]": keep what the bracket says about the items.
        items = (_python_type(raw) or ({}, False))[0].get("items")
        if items:
            out["items"] = items
    return out


def _normalize_property(pschema: Any, where: str, pname: str, required: list[str],
                        required_set: set[str]) -> dict[str, Any]:
    _check_parameter_name(pname, where)
    if isinstance(pschema, dict) and isinstance(pschema.get("required"), bool):
        # ToolACE style: `"required": true` on the property itself; lift it into the parent's list.
        if pschema["required"] and pname not in required_set:
            required.append(pname)
            required_set.add(pname)
        pschema = {k: v for k, v in pschema.items() if k != "required"}
    return _normalize_schema(pschema, where)


def _check_parameter_name(pname: str, where: str) -> None:
    if not pname.strip():
        raise ValueError(f"{where}: a parameter name must not be empty")
    _check_name(pname, f"{where}: parameter name")


def _schema_type(schema: dict[str, Any], where: str) -> str:
    t = schema.get("type")
    if t is None:
        for key in ("anyOf", "oneOf"):  # a union spelled as alternatives
            if isinstance(schema.get(key), list):
                alts = [_schema_type(s, where) for s in schema[key] if isinstance(s, dict) and s.get("type") != "null"]
                return alts[0] if len(set(alts)) == 1 else "any"
        if "properties" in schema:
            return "dict"
        if "items" in schema:
            return "array"
        return "any"
    if isinstance(t, list):  # ["string", "null"]: null only says "optional"
        names = [x for x in t if x != "null"]
        mapped = {_map_type_name(x, where) for x in names}
        return mapped.pop() if len(mapped) == 1 else "any"
    return _map_type_name(t, where)


def _map_type_name(t: Any, where: str) -> str:
    if not isinstance(t, str):
        raise ValueError(f"{where}: 'type' must be a string, got {json_type(t)}")
    key = t.strip().lower()
    if key in _TYPE_NAMES:
        return _TYPE_NAMES[key]
    python_like = _python_type(t)
    if python_like is not None:
        return python_like[0]["type"]
    # A class name from another language or library ("HashMap", "datetime", "Callable"): the value
    # is still meant to be passed, only its type is beyond BFCL's words.
    return "any"


# --- xLAM's Python-ish types ------------------------------------------------------------------------

# "int, optional", "str, default='x'", "float (optional)": everything from the marker on is dropped.
_OPTIONAL_WORD = re.compile(r"(?:optional|default)\b", re.IGNORECASE)


def _optional_tail(s: str) -> int | None:
    """Where the optional marker starts: the leftmost "optional"/"default" word after ", ", " (" or " ".

    A scan rather than one regular expression: `(?:,|\\s\\(|\\s)\\s*optional` backtracks over
    every start inside a run of spaces, quadratic in the run's length (schemas come from strangers).
    Each whitespace run is stepped over once, before the word that follows it.
    """
    for m in _OPTIONAL_WORD.finditer(s):
        j = m.start()
        while j > 0 and s[j - 1].isspace():
            j -= 1
        if j > 0 and s[j - 1] == ",":
            return j - 1
        if j > 1 and s[j - 1] == "(" and s[j - 2].isspace():
            return j - 2
        if j < m.start():
            return j
    return None


def _from_xlam(params: dict[str, Any], tool_name: str) -> dict[str, Any]:
    """`{p: {"type": "List[int], optional", "description", "default"}}` -> BFCL parameters.

    A parameter is required unless its type says optional or it carries a default.
    """
    props: dict[str, Any] = {}
    required: list[str] = []
    for pname, spec in params.items():
        where = f"{tool_name}.{pname}"
        _check_parameter_name(pname, tool_name)
        raw = spec.get("type", "any")
        if not isinstance(raw, str):
            raise ValueError(f"{where}: 'type' must be a string, got {json_type(raw)}")
        schema, optional = _python_type(raw) or (None, False)
        if schema is None:
            # An unrecognised Python class (datetime, Callable, a DataFrame...): keep the call, lose the type.
            schema, optional = {"type": "any"}, _optional_tail(raw) is not None
        out = {k: copy.deepcopy(v) for k, v in spec.items() if k not in ("type", "required")}
        out = {**schema, **out}
        props[pname] = out
        explicit = spec.get("required")
        if isinstance(explicit, bool):
            is_required = explicit
        else:
            is_required = not optional and "default" not in spec
        if is_required:
            required.append(pname)
    return {"type": "dict", "properties": props, "required": required}


def _python_type(text: str) -> tuple[dict[str, Any], bool] | None:
    """Parse "List[int], optional" / "Optional[str]" / "str | None" -> (schema, optional), None if unknown."""
    s = text.strip()
    optional = False
    tail = _optional_tail(s)
    if tail is not None:
        optional, s = True, s[:tail].strip()
    if s.count("[") > MAX_TYPE_NESTING and _bracket_depth(s) > MAX_TYPE_NESTING:
        return None  # not a type anyone writes; parsing it would recurse once per bracket
    if s.lower().startswith("optional[") and s.endswith("]"):
        optional, s = True, s[len("optional["):-1].strip()
    parts = _split_top(s, "|")
    if len(parts) > 1:
        non_null = [p for p in parts if p.strip().lower() not in ("none", "null")]
        optional = optional or len(non_null) < len(parts)
        if len(non_null) != 1:
            return {"type": "any"}, optional
        s = non_null[0]
    schema = _python_type_core(s.strip())
    if schema is None:
        return None
    if schema.pop("_optional", False):
        optional = True
    return schema, optional


def _bracket_depth(s: str) -> int:
    depth = deepest = 0
    for ch in s:
        if ch == "[":
            depth += 1
            deepest = max(deepest, depth)
        elif ch == "]":
            depth -= 1
    return deepest


def _python_type_core(s: str) -> dict[str, Any] | None:
    base, _, rest = s.partition("[")
    base = base.strip().split(".")[-1].lower()  # typing.List -> list
    args = _split_top(rest[:-1], ",") if rest.endswith("]") else []
    if base == "union":
        non_null = [a for a in args if a.strip().lower() not in ("none", "nonetype", "null")]
        inner = _python_type_core(non_null[0].strip()) if len(non_null) == 1 else {"type": "any"}
        if inner is not None and len(non_null) < len(args):
            inner["_optional"] = True
        return inner
    if base == "optional" and len(args) == 1:
        inner = _python_type_core(args[0].strip())
        if inner is not None:
            inner["_optional"] = True
        return inner
    if base not in _TYPE_NAMES:
        return None
    t = _TYPE_NAMES[base]
    schema: dict[str, Any] = {"type": t}
    if t == "array" and len(args) == 1:
        schema["items"] = _python_type_core(args[0].strip()) or {"type": "any"}
        schema["items"].pop("_optional", None)
    return schema


def _split_top(s: str, sep: str) -> list[str]:
    """Split on `sep` outside brackets: "Dict[str, int], str" -> ["Dict[str, int]", " str"]."""
    parts, depth, cur = [], 0, []
    for ch in s:
        depth += ch == "["
        depth -= ch == "]"
        if ch == sep and depth == 0:
            parts.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    parts.append("".join(cur))
    return [p for p in parts if p.strip()] if sep == "," else parts


# --- back to JSON Schema ----------------------------------------------------------------------------

def _schema_to_json(schema: dict[str, Any]) -> dict[str, Any]:
    out = {k: copy.deepcopy(v) for k, v in schema.items() if k not in ("type", "items", "properties", "additionalProperties")}
    t = schema.get("type", "any")
    if t in _TO_JSON_SCHEMA:
        out["type"] = _TO_JSON_SCHEMA[t]
    if isinstance(schema.get("items"), dict):
        out["items"] = _schema_to_json(schema["items"])
    elif isinstance(schema.get("items"), list):
        out["items"] = [_schema_to_json(s) for s in schema["items"] if isinstance(s, dict)]
    if isinstance(schema.get("properties"), dict):
        out["properties"] = {k: _schema_to_json(v) if isinstance(v, dict) else v for k, v in schema["properties"].items()}
    if "additionalProperties" in schema:
        extra = schema["additionalProperties"]
        out["additionalProperties"] = _schema_to_json(extra) if isinstance(extra, dict) else extra
    return out
