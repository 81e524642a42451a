"""`toolace-r` command line: thin wrappers, no logic of their own.

Each subcommand is one `_add_<name>` function that declares its arguments and binds a handler that
calls into the library. Library imports happen inside handlers so `toolace-r --help` stays fast.
"""
from __future__ import annotations

import argparse
import json
import sys
from typing import Any, Callable


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, ensure_ascii=False) + "\n")


# --- parse ---------------------------------------------------------------------------------------

def _add_parse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse a model's answer into tool calls (prints JSON)")
    p.add_argument("text", nargs="?", default="-", help="the text, or - for standard input")
    p.add_argument("--format", default="auto", help="auto|pythonic|json|hermes|openai")
    p.set_defaults(func=_cmd_parse)


def _cmd_parse(args: argparse.Namespace) -> int:
    from toolace_r.calls import parse

    text = sys.stdin.read() if args.text == "-" else args.text
    _print_json(parse(text, fmt=args.format).to_dict())
    return 0


# --- data (filled in by the datasets work) -------------------------------------------------------

def _add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="show or convert datasets")
    p.set_defaults(func=lambda a: p.print_help() or 2)


# --- models (filled in by the models work) -------------------------------------------------------

def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or pull named models")
    p.set_defaults(func=lambda a: p.print_help() or 2)


# --- eval (filled in by the evaluation work) -----------------------------------------------------

def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score predictions or a model on a benchmark")
    p.set_defaults(func=lambda a: p.print_help() or 2)


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    _add_parse,
    _add_data,
    _add_models,
    _add_eval,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolace-r", description=__doc__.splitlines()[0])
    from toolace_r import __version__

    parser.add_argument("--version", action="version", version=f"toolace-r {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, KeyError) as exc:  # user errors: one clear line, no trace
        sys.stderr.write(f"toolace-r {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
