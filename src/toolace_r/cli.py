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
    dsub = p.add_subparsers(dest="data_command")
    source_help = ('"bfcl:<category>[,<category>][@<dir>]", "toolace:<path|hub id>", '
                   '"xlam:<path|hub id>" or "jsonl:<path>"')
    show = dsub.add_parser("show", help="print examples as JSON lines")
    show.add_argument("source", help=source_help)
    convert = dsub.add_parser("convert", help="write examples as OpenAI/TRL conversational JSONL")
    convert.add_argument("source", help=source_help)
    convert.add_argument("out", help="the .jsonl file to write")
    for q in (show, convert):
        q.add_argument("--limit", type=int, default=None, help="at most this many examples")
        q.add_argument("--skip-invalid", action="store_true", help="skip malformed records (listed on stderr)")
    show.set_defaults(func=_cmd_data_show)
    convert.set_defaults(func=_cmd_data_convert)


def _cmd_data_examples(args: argparse.Namespace):
    from toolace_r.data import load

    examples = load(args.source, limit=args.limit, skip_invalid=args.skip_invalid)
    if examples.skipped:
        sys.stderr.write(examples.skipped_summary() + "\n")
    return examples


def _cmd_data_show(args: argparse.Namespace) -> int:
    for ex in _cmd_data_examples(args):
        _print_json(ex.to_dict())
    return 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from toolace_r.data import write_jsonl

    examples = _cmd_data_examples(args)
    written = write_jsonl(examples, args.out)
    left_out = len(examples) - written
    note = f" ({left_out} left out: no concrete gold answer)" if left_out else ""
    sys.stdout.write(f"wrote {written} examples to {args.out}{note}\n")
    return 0


# --- models (filled in by the models work) -------------------------------------------------------

def _add_models(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("models", help="list or pull named models")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    msub = p.add_subparsers(dest="models_command")
    ls = msub.add_parser("list", help="the registered models and whether they are pulled")
    ls.add_argument("--json", action="store_true", help="one JSON object per line instead of a table")
    ls.set_defaults(func=_cmd_models_list)
    pl = msub.add_parser("pull", help="convert a registered model into a local checkpoint; prints its path")
    pl.add_argument("name", help="a registered model name (see `toolace-r models list`)")
    pl.add_argument("--force", action="store_true", help="convert again even if already pulled")
    pl.set_defaults(func=_cmd_models_pull)


def _cmd_models_list(args: argparse.Namespace) -> int:
    from toolace_r.models import list_models

    rows = list_models()
    if args.json:
        for row in rows:
            _print_json(row)
        return 0
    cols = ["name", "pulled", "source", "path", "description"]
    table = [cols] + [[str(r[c]).lower() if c == "pulled" else str(r[c]) for c in cols] for r in rows]
    widths = [max(len(line[i]) for line in table) for i in range(len(cols) - 1)]
    for line in table:
        sys.stdout.write("  ".join(v.ljust(w) for v, w in zip(line, widths)) + "  " + line[-1] + "\n")
    return 0


def _cmd_models_pull(args: argparse.Namespace) -> int:
    from toolace_r.models import pull

    sys.stdout.write(f"{pull(args.name, force=args.force)}\n")
    return 0


# --- eval (filled in by the evaluation work) -----------------------------------------------------

def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score predictions or a model on a benchmark")
    p.add_argument("--benchmark", default="bfcl", help="benchmark name (default bfcl)")
    p.add_argument("--categories", default="all",
                   help="comma-separated categories, e.g. simple_python,multiple; 'all' = the scored single-turn "
                        "Python ones; 'exec' = the unused exec sets")
    p.add_argument("--predictions", help='JSONL file of {"id": ..., "result": <raw model text or calls>}')
    p.add_argument("--out", required=True, help="directory for metrics.json, results.jsonl, report.md")
    p.add_argument("--data-dir", default=None, help="benchmark data dir (default: the installed bfcl-eval wheel)")
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from toolace_r.evaluation import evaluate_predictions, load_predictions, write_outputs
    from toolace_r.evaluation.report import render_table
    from toolace_r.evaluation.runner import load_benchmark

    if not args.predictions:
        raise ValueError("--predictions is required (generating predictions from a model is not supported yet)")
    examples = load_benchmark(args.benchmark, args.categories, args.data_dir)
    predictions = load_predictions(args.predictions)
    result = evaluate_predictions(examples, predictions)
    result.benchmark = args.benchmark
    paths = write_outputs(result, args.out)
    sys.stdout.write(render_table(result) + "\n")
    sys.stdout.write(f"wrote {paths['metrics']}, {paths['results']}, {paths['report']}\n")
    return 0


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
    from toolace_r.engines.base import EngineError

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except (ValueError, FileNotFoundError, KeyError, EngineError) as exc:  # one clear line, no trace
        sys.stderr.write(f"toolace-r {args.command}: error: {exc}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
