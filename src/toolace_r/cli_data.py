"""`toolace-r` commands about data and artifacts: `parse`, `data show|convert|render`, `models`, `push`, and
the small helpers every command shares (JSON output, a count argument, the answer-format option). Kept
apart from `cli.py` (evaluation, refinement, training, the demo) so that each file stays readable; thin
wrappers, the library does the work.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any


def print_json(obj: Any) -> None:
    from toolace_r.files import dumps

    sys.stdout.write(dumps(obj) + "\n")


def count(text: str) -> int:
    """An argparse type: a whole number >= 0 (a negative --limit is a mistake, not "no limit")."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


# --- parse ---------------------------------------------------------------------------------------

def add_parse(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("parse", help="parse a model's answer into tool calls (prints JSON)")
    p.add_argument("text", nargs="?", default="-", help="the text, or - for standard input")
    p.add_argument("--format", default="auto", help="auto|pythonic|json|hermes|openai")
    p.set_defaults(func=_cmd_parse)


def _cmd_parse(args: argparse.Namespace) -> int:
    from toolace_r.calls import parse

    text = sys.stdin.read() if args.text == "-" else args.text
    print_json(parse(text, fmt=args.format).to_dict())
    return 0


# --- data ----------------------------------------------------------------------------------------

def add_data(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="show or convert datasets")
    p.set_defaults(func=lambda a: p.print_help() or 2)
    dsub = p.add_subparsers(dest="data_command")
    source_help = ('"bfcl:<category>[,<category>][@<dir>]", "toolace:<path|hub id>", '
                   '"xlam:<path|hub id>" or "jsonl:<path>"')
    show = dsub.add_parser("show", help="print examples as JSON lines")
    show.add_argument("source", help=source_help)
    convert = dsub.add_parser("convert", help="write examples as OpenAI/TRL conversational JSONL")
    convert.add_argument("source", help=source_help + "; with --corpus, a corpus.jsonl or an iteration folder")
    convert.add_argument("out", help="the .jsonl file to write")
    convert.add_argument("--corpus", action="store_true",
                         help="SOURCE is a training run's corpus (runs/x/iter_1 or its corpus.jsonl): write its "
                              "rows as TRL conversational prompt-completion rows")
    for q in (show, convert):
        q.add_argument("--limit", type=count, default=None, help="at most this many examples")
        q.add_argument("--skip-invalid", action="store_true", help="skip malformed records (listed on stderr)")
    show.set_defaults(func=_cmd_data_show)
    convert.set_defaults(func=_cmd_data_convert)
    render = dsub.add_parser("render", help="print, as JSON lines, the exact prompt and completion strings (and "
                                            "their token counts) training would use for each example")
    render.add_argument("source", help=source_help)
    render.add_argument("--model", required=True, help="a registered model name, a folder or a Hub id: its "
                                                       "tokenizer and chat template render the rows")
    answer_format_argument(render)
    render.add_argument("--limit", type=count, default=None,
                        help="at most this many examples (taken round-robin over categories, as training does)")
    render.add_argument("--refine-rows", action="store_true",
                        help="also the refinement rows: the model answers each item once (greedy) and each answer "
                             "becomes a fix (wrong) or keep (right) row")
    render.add_argument("--max-new-tokens", type=int, default=128, help="with --refine-rows: tokens per answer")
    render.add_argument("--data-dir", default=None, help="benchmark data dir (default: the installed bfcl-eval)")
    render.set_defaults(func=_cmd_data_render)


def answer_format_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument("--answer-format", default="auto", choices=["auto", "pythonic", "native"],
                   help="pythonic (ToolACE's call lists, tools in the system prompt), native (the chat template's "
                        "own tool calls) or auto (native when the template renders tool calls; default)")


def _cmd_data_examples(args: argparse.Namespace):
    from toolace_r.data import load

    examples = load(args.source, limit=args.limit, skip_invalid=args.skip_invalid)
    if examples.skipped:
        sys.stderr.write(examples.skipped_summary() + "\n")
    return examples


def _cmd_data_show(args: argparse.Namespace) -> int:
    for ex in _cmd_data_examples(args):
        print_json(ex.to_dict())
    return 0


def _cmd_data_convert(args: argparse.Namespace) -> int:
    from toolace_r.data import write_jsonl
    from toolace_r.files import writable_file

    writable_file(args.out)  # before reading: a wrong path fails at once
    if args.corpus:
        from toolace_r.training.corpus import export_corpus

        if args.skip_invalid:
            raise ValueError("--skip-invalid does not apply to --corpus (a corpus row that cannot be read "
                             "means the corpus should be rebuilt)")
        written = export_corpus(args.source, args.out, limit=args.limit)
        sys.stdout.write(f"wrote {written} rows to {args.out}\n")
        return 0
    examples = _cmd_data_examples(args)
    written = write_jsonl(examples, args.out)
    left_out = len(examples) - written
    note = f" ({left_out} left out: no concrete gold answer)" if left_out else ""
    sys.stdout.write(f"wrote {written} examples to {args.out}{note}\n")
    return 0


def _cmd_data_render(args: argparse.Namespace) -> int:
    from toolace_r.prompts import PromptConfig
    from toolace_r.training.preview import render_rows

    line, skipped, rows = render_rows(args.source, args.model, PromptConfig(answer_format=args.answer_format),
                                      limit=args.limit, refine_rows=args.refine_rows, data_dir=args.data_dir,
                                      max_new_tokens=args.max_new_tokens)
    sys.stderr.write(line + (f"; {skipped} examples left out (no single right answer, or calls this format "
                             "cannot write)" if skipped else "") + "\n")
    for row in rows:
        print_json(row)
    return 0


# --- models --------------------------------------------------------------------------------------

def add_models(sub: argparse._SubParsersAction) -> None:
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
            print_json(row)
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


# --- push ----------------------------------------------------------------------------------------

def add_push(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("push", help="upload a run's final model, its LoRA adapter or its training corpora to the "
                                    "Hugging Face Hub")
    p.add_argument("run_dir", metavar="RUN_DIR", help="a training or demo run directory, or a model folder")
    p.add_argument("--repo-id", required=True, help="the Hub repository, e.g. you/qwen2.5-7b-toolace-r")
    p.add_argument("--what", default="model", choices=["model", "adapter", "corpus"],
                   help="model (weights, tokenizer, trained chat template, model card; default), adapter "
                        "(the LoRA adapter alone) or corpus (each iteration's corpus as TRL rows, a dataset repo)")
    p.add_argument("--private", action="store_true", help="create the repository as private")
    p.add_argument("--token", default=None, help="a Hub token (default: $HF_TOKEN or `hf auth login`'s)")
    p.set_defaults(func=_cmd_push)


def _cmd_push(args: argparse.Namespace) -> int:
    from toolace_r.push import push

    url = push(args.run_dir, args.repo_id, what=args.what, private=args.private, token=args.token)
    sys.stdout.write(f"pushed {args.what} to {args.repo_id}: {url}\n")
    return 0
