"""Generation engines behind one protocol, chosen by name: `hf`, `openai`, `vllm`.

    engine = get_engine("hf", model="smollm2-135m", batch_size=16)
    results = engine.generate([GenerationRequest(prompt=text, params=SamplingParams(n=4, temperature=0.8))])

The registry maps a name to the engine class and its config dataclass as import paths, so that
importing this package pulls in neither torch, nor the openai client, nor vLLM: each loads only
when its engine is asked for. Command lines get `--engine NAME` and `--engine-option KEY=VALUE`
from `add_engine_arguments`, and `engine_from_args` turns them into an engine.
"""
from __future__ import annotations

import argparse
import dataclasses
import importlib
import inspect
import json
from typing import Any

from .base import (
    Completion,
    Engine,
    EngineError,
    GenerationRequest,
    GenerationResult,
    SamplingParams,
    continue_request,
)

# name -> (engine class, config dataclass), as "module:attribute" import paths.
ENGINES: dict[str, tuple[str, str]] = {
    "hf": ("toolace_r.engines.hf:HFEngine", "toolace_r.engines.hf:HFEngineConfig"),
    "openai": ("toolace_r.engines.openai:OpenAIEngine", "toolace_r.engines.openai:OpenAIEngineConfig"),
    "vllm": ("toolace_r.engines.vllm:VLLMEngine", "toolace_r.engines.vllm:VLLMEngineConfig"),
}


def register_engine(name: str, engine_path: str, config_path: str) -> None:
    """Add an engine: both paths are "module:attribute"; the config must be a dataclass."""
    ENGINES[name] = (engine_path, config_path)


def _import(path: str) -> Any:
    module, _, attr = path.partition(":")
    return getattr(importlib.import_module(module), attr)


def _entry(name: str) -> tuple[str, str]:
    try:
        return ENGINES[name]
    except KeyError:
        raise KeyError(f"unknown engine {name!r}; known engines: {', '.join(sorted(ENGINES))}") from None


def engine_config(name: str, **fields: Any) -> Any:
    """The config dataclass of engine `name` filled with `fields`; unknown fields are an error."""
    cls = _import(_entry(name)[1])
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for engine {name!r}; known: {sorted(known)}")
    return cls(**fields)


def get_engine(name: str, config: Any = None, **options: Any) -> Engine:
    """Build engine `name` from a config object and/or option fields (options override the config).

    Objects that are not config fields (the hf engine's `model=`/`tokenizer=` objects) pass through.
    """
    engine_cls = _import(_entry(name)[0])
    config_cls = _import(_entry(name)[1])
    known = {f.name for f in dataclasses.fields(config_cls)}
    fields = dataclasses.asdict(config) if config is not None else {}
    objects = {}
    for key, value in options.items():
        # A model object (not a name/path) goes to the engine itself, the rest to its config.
        if key in known and not (key == "model" and value is not None and not isinstance(value, str)):
            fields[key] = value
        else:
            objects[key] = value
    takes = {
        n for n, p in inspect.signature(engine_cls.__init__).parameters.items()
        if p.kind is p.KEYWORD_ONLY
    }
    unknown = sorted(set(objects) - takes)
    if unknown:
        raise ValueError(
            f"unknown option(s) {unknown} for engine {name!r}; known: {sorted(known | takes)}"
        )
    return engine_cls(engine_config(name, **fields), **objects)


def add_engine_arguments(parser: argparse.ArgumentParser, default: str = "hf") -> None:
    """--engine NAME and repeatable --engine-option KEY=VALUE (VALUE read as JSON when it parses)."""
    parser.add_argument("--engine", default=default, help=f"generation engine: {'|'.join(sorted(ENGINES))}")
    parser.add_argument(
        "--engine-option", action="append", default=[], metavar="KEY=VALUE",
        help="an engine config field, e.g. batch_size=32, base_url=http://host:8000/v1 (repeatable)",
    )


def parse_engine_options(pairs: list[str]) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"--engine-option expects KEY=VALUE, got {pair!r}")
        try:
            options[key.strip().replace("-", "_")] = json.loads(raw)
        except json.JSONDecodeError:
            options[key.strip().replace("-", "_")] = raw
    return options


def engine_from_args(args: argparse.Namespace, **defaults: Any) -> Engine:
    """The engine a command line asked for; `defaults` (e.g. model=...) yield to --engine-option."""
    options = {**defaults, **parse_engine_options(getattr(args, "engine_option", []) or [])}
    return get_engine(args.engine, **options)


__all__ = [
    "Completion",
    "ENGINES",
    "Engine",
    "EngineError",
    "GenerationRequest",
    "GenerationResult",
    "SamplingParams",
    "add_engine_arguments",
    "continue_request",
    "engine_config",
    "engine_from_args",
    "get_engine",
    "parse_engine_options",
    "register_engine",
]
