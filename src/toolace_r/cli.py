"""`toolace-r` command line: thin wrappers, no logic of their own.

Each subcommand is one `_add_<name>` function that declares its arguments and binds a handler that
calls into the library. Library imports happen inside handlers so `toolace-r --help` stays fast. The data
and artifact commands (parse, data, models, push) are in cli_data.py, serve in cli_serve.py; the one
error boundary (`main`) is here.
"""
from __future__ import annotations

import argparse
import sys
from typing import Any, Callable

from toolace_r.cli_data import add_data, add_models, add_parse, add_push, answer_format_argument, count, print_json
from toolace_r.cli_serve import add_serve


# --- eval ----------------------------------------------------------------------------------------

def _add_eval(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score predictions or a model on a benchmark")
    p.add_argument("--benchmark", default="bfcl", help="benchmark name (default bfcl)")
    p.add_argument("--categories", default="all",
                   help="comma-separated categories, e.g. simple_python,multiple; 'all' = the scored single-turn "
                        "Python ones; 'exec' = the unused exec sets")
    p.add_argument("--predictions", help='JSONL file of {"id": ..., "result": <raw model text or calls>}')
    p.add_argument("--model", help="generate the predictions with this model (a registered name or a path) "
                                   "instead of reading --predictions")
    p.add_argument("--out", required=True, help="directory for metrics.json, results.jsonl, report.md (with "
                                                "--model also predictions.jsonl, traces.jsonl, config.json, rounds.png)")
    p.add_argument("--data-dir", default=None, help="benchmark data dir (default: the installed bfcl-eval wheel)")
    p.add_argument("--limit", type=count, default=None, help="at most this many examples per category")
    p.add_argument("--lenient", action="store_true",
                   help="acebench: also score with the quirks that reject right answers fixed, written apart as "
                        "metrics.json's \"lenient\" block (the compatible score is unchanged)")
    p.add_argument("--parser", default="bfcl", choices=["bfcl", "hermes", "json", "auto"],
                   help="with --predictions: how answer text decodes: bfcl (BFCL's prompt-mode decoder, pythonic; "
                        "default), hermes (<tool_call> blocks), json (JSON call objects), auto (any of them)")
    p.add_argument("--export-bfcl", metavar="DIR", default=None,
                   help="also write the predictions as `bfcl generate` would, for `bfcl evaluate --result-dir DIR` "
                        "(DIR/<model>/<non_live|live>/BFCL_v4_<category>_result.json; see docs/bfcl.md)")
    p.add_argument("--bfcl-model-name", default=None, metavar="NAME",
                   help="the model name of the --export-bfcl layout: a name in BFCL's model config whose handler "
                        "decodes pythonic answers (default Team-ACE/ToolACE-2-8B, a prompt-mode entry)")
    p.add_argument("--max-steps", type=int, default=20,
                   help="BFCL multi-turn: a turn force-quits its item after more than this many steps with calls "
                        "(default 20, BFCL's limit)")
    p.add_argument("--multi-turn-group", type=int, default=4, metavar="N",
                   help="BFCL multi-turn: items run to their end together (default 4: the hf prefix cache holds "
                        "about four multi-turn conversations of a small model; raise both on a GPU)")
    _refine_arguments(p)
    p.set_defaults(func=_cmd_eval)


def _cmd_eval(args: argparse.Namespace) -> int:
    from toolace_r.evaluation import evaluate_predictions, load_predictions, write_outputs
    from toolace_r.evaluation.report import render_table
    from toolace_r.data.select import benchmark_slice

    from toolace_r.files import writable_dir

    _check_export_arguments(args)
    if args.lenient and args.benchmark != "acebench":  # before any model runs
        raise ValueError(f"--lenient applies to ACEBench's quirks; --benchmark is {args.benchmark!r}")
    if args.model:
        return _cmd_eval_model(args)
    if not args.predictions:
        raise ValueError("--predictions is required (or --model, to generate them)")
    examples = benchmark_slice(args.benchmark, args.categories, args.data_dir, args.limit)
    predictions = load_predictions(args.predictions)
    writable_dir(args.out, "--out")
    if args.export_bfcl:
        writable_dir(args.export_bfcl, "--export-bfcl")
    fmt = None if args.parser == "bfcl" else args.parser
    result = evaluate_predictions(examples, predictions, fmt)
    result.benchmark = args.benchmark
    if args.lenient:
        from toolace_r.evaluation.benchmarks import lenient_summary

        result.extra["lenient"] = lenient_summary(args.benchmark, examples, predictions, fmt)
    paths = write_outputs(result, args.out)
    sys.stdout.write(render_table(result) + "\n")
    sys.stdout.write(f"wrote {paths['metrics']}, {paths['results']}, {paths['report']}\n")
    # Answers BFCL's prompt-mode decoder would not read (another --parser) go out as their decoded calls.
    _export_bfcl(args, examples, predictions, result if fmt is not None else None)
    return 0


def _check_export_arguments(args: argparse.Namespace) -> None:
    if args.bfcl_model_name is not None and not args.export_bfcl:
        raise ValueError("--bfcl-model-name names the model of the --export-bfcl layout; give --export-bfcl DIR too")
    if args.export_bfcl and args.benchmark != "bfcl":
        raise ValueError(f"--export-bfcl writes BFCL's result layout; --benchmark is {args.benchmark!r}")


def _export_bfcl(args: argparse.Namespace, examples: Any, predictions: dict[str, Any], decoded_from: Any) -> None:
    """--export-bfcl: the predictions as BFCL result files (evaluation/bfcl_export.py)."""
    if not args.export_bfcl:
        return
    from toolace_r.evaluation.bfcl_export import DEFAULT_MODEL_NAME, export_bfcl

    decoded = None if decoded_from is None else {item.id: item.calls for item in decoded_from.items}
    name = args.bfcl_model_name or DEFAULT_MODEL_NAME
    paths = export_bfcl(examples, predictions, args.export_bfcl, name, decoded)
    sys.stdout.write(f"exported {len(paths)} BFCL result file(s) for model {name} under {args.export_bfcl}: "
                     f"score them with `bfcl evaluate --model {name} --result-dir {args.export_bfcl}`\n")


def _refine_arguments(p: argparse.ArgumentParser) -> None:
    """The options of generation with refinement, shared by `eval --model` and `refine`."""
    from toolace_r.engines import add_engine_arguments

    p.add_argument("--refine", default="adaptive", metavar="POLICY",
                   help="stop policy: adaptive (stop when the parsed calls stop changing), adaptive:exact "
                        "(when the text stops changing), checked (refine only answers that do not fit the tool list, telling "
                        "the model what the check found; checked:silent without telling), fixed:N (N refinement "
                        "rounds), vote:N (majority vote of the greedy answer and N-1 samples of the same prompt), "
                        "none (single pass)")
    p.add_argument("--max-rounds", type=int, default=None,
                   help="cap on refinement rounds (default 3, or N for fixed:N above 3)")
    p.add_argument("--guard", default="off", choices=["off", "error", "call"],
                   help="keep the previous answer when a refined one is a parse error (error) or not calls (call)")
    p.add_argument("--max-new-tokens", type=int, default=128, help="tokens per answer (default 128)")
    p.add_argument("--stop", action="append", default=[], metavar="TEXT",
                   help="stop generating at TEXT (repeatable; backslash escapes such as \\n are read)")
    p.add_argument("--chunk-size", type=int, default=32,
                   help="items taken through every round together (the hf prefix cache holds ~40 sequences)")
    answer_format_argument(p)
    p.add_argument("--instruction", default="toolace", choices=["toolace", "bfcl", "benchmark"],
                   help="what opens a pythonic prompt: toolace (ToolACE's system prompt and the tool list, default) or "
                        "bfcl (BFCL's own prompt-mode system prompt, read from the installed bfcl-eval: scores "
                        "comparable with BFCL's prompt-mode leaderboard rows; see docs/bfcl.md) or benchmark "
                        "(the benchmark's own prompts: ACEBench's, read from --data-dir)")
    add_engine_arguments(p)


def _refine_config(args: argparse.Namespace):
    from toolace_r.prompts import PromptConfig
    from toolace_r.refine import RefineConfig

    # "\\n" typed on a command line becomes a newline; other characters pass through unchanged.
    stop = [s.encode("latin-1", "backslashreplace").decode("unicode_escape") for s in args.stop]
    return RefineConfig.from_options(args.refine, args.max_rounds, guard=args.guard, stop=stop,
                                     max_new_tokens=args.max_new_tokens, chunk_size=args.chunk_size,
                                     prompt=PromptConfig(answer_format=args.answer_format,
                                                         instruction=args.instruction))


def _cmd_eval_model(args: argparse.Namespace) -> int:
    from toolace_r.engines import engine_from_args
    from toolace_r.evaluation.report import render_table
    from toolace_r.data.select import benchmark_slice
    from toolace_r.evaluation.multi_turn_loop import is_multi_turn, run_multi_turn
    from toolace_r.evaluation.multi_turn_report import render_multi_turn_table
    from toolace_r.evaluation.rounds import render_rounds_table, write_refine_outputs
    from toolace_r.refine import refine

    if args.predictions:
        raise ValueError("give --predictions (score a file) or --model (generate and score), not both")
    from toolace_r.files import writable_dir

    cfg = _refine_config(args)
    if args.max_steps < 0:
        raise ValueError(f"--max-steps must be >= 0, got {args.max_steps}")
    if args.multi_turn_group < 1:
        raise ValueError(f"--multi-turn-group must be >= 1, got {args.multi_turn_group}")
    examples = benchmark_slice(args.benchmark, args.categories, args.data_dir, args.limit)
    if cfg.prompt.instruction == "benchmark":
        from toolace_r.evaluation.benchmarks import own_prompts

        examples = own_prompts(args.benchmark, examples, args.data_dir)
    single = [ex for ex in examples if not is_multi_turn(ex)]
    multi = [ex for ex in examples if is_multi_turn(ex)]
    if multi and args.export_bfcl:
        raise ValueError("--export-bfcl writes single-turn result files; leave the multi_turn categories out of it")
    writable_dir(args.out, "--out")  # before generating: nothing computed is lost to a wrong path
    if args.export_bfcl:
        writable_dir(args.export_bfcl, "--export-bfcl")
    sys.stderr.write(f"eval: {len(single)} single-turn and {len(multi)} multi-turn examples, model {args.model} "
                     f"({args.engine} engine), refine {cfg.policy} (cap {cfg.max_rounds}); outputs go to {args.out}\n")
    with engine_from_args(args, model=args.model) as engine:
        result = refine(single, engine, cfg, progress=bool(single))
        mt = run_multi_turn(multi, engine, cfg, max_steps=args.max_steps, group_size=args.multi_turn_group,
                            progress=True) if multi else None
    run = {"benchmark": args.benchmark, "categories": args.categories, "limit": args.limit,
           "data_dir": args.data_dir, "model": args.model, "engine": args.engine,
           "engine_options": list(args.engine_option), "examples": len(examples),
           "precision": engine.precision.as_dict() if engine.precision else None}
    report = write_refine_outputs(examples, result, args.out, run, args.benchmark, lenient=args.lenient,
                                  multi_turn=mt)
    text = render_table(report.scored) + "\n"
    if report.rounds is not None and single:
        text += "\n" + render_rounds_table(report.rounds) + "\n"
    if report.multi_turn is not None:
        text += "\n" + render_multi_turn_table(report.multi_turn) + "\n"
    sys.stdout.write(text)
    seconds = result.seconds + (mt.seconds if mt is not None else 0.0)
    sys.stdout.write(f"{seconds:.1f} s; wrote " + ", ".join(str(p) for p in report.paths.values()) + "\n")
    finals = {t.id: t.final for t in result.traces}
    _export_bfcl(args, examples, finals, report.scored if result.answer_format == "native" else None)
    return 0


# --- refine (adaptive self-refinement, one query or a dataset) ---------------------------------------

def _add_refine(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("refine", help="answer and refine: show every round for one query, or write "
                                      "predictions and traces for a dataset")
    p.add_argument("query", nargs="?", help="the user's question (with --tools)")
    p.add_argument("--model", required=True, help="a registered model name or a path (or the served name)")
    p.add_argument("--tools", help="the tools: a JSON file (or JSON text) with a list of tool schemas")
    p.add_argument("--data", metavar="SOURCE", help='a dataset source, e.g. "bfcl:simple_python"')
    p.add_argument("--out", help="with --data: the predictions file to write (BFCL format)")
    p.add_argument("--traces", help="with --data: the traces file (default: beside --out, .traces.jsonl)")
    p.add_argument("--limit", type=count, default=None, help="with --data: at most this many examples")
    _refine_arguments(p)
    p.set_defaults(func=_cmd_refine)


def _cmd_refine(args: argparse.Namespace) -> int:
    if args.data:
        if args.query or args.tools or not args.out:
            raise ValueError("--data needs --out and takes no query or --tools")
        return _cmd_refine_data(args)
    if not (args.query and args.tools):
        raise ValueError('give --tools TOOLS.json "QUERY" (one query) or --data SOURCE --out FILE')
    return _cmd_refine_query(args)


def _cmd_refine_query(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolace_r.engines import engine_from_args
    from toolace_r.refine import STOP_REASONS, Conversation, describe_round, refine
    from toolace_r.tools import normalize_tools

    cfg = _refine_config(args)
    path = Path(args.tools)
    tools = normalize_tools(path.read_text(encoding="utf-8") if path.is_file() else args.tools)
    conv = Conversation("query", tools, [{"role": "user", "content": args.query}])
    with engine_from_args(args, model=args.model) as engine:
        result = refine([conv], engine, cfg)
    trace = result.traces[0]
    for rnd in trace.rounds:
        sys.stdout.write(describe_round(rnd) + "\n\n")
    sys.stdout.write(f"stopped after {trace.refinements} refinement round(s): {trace.stop_reason} "
                     f"({STOP_REASONS.get(trace.stop_reason, '')}); {result.seconds:.1f} s\n")
    return 0


def _cmd_refine_data(args: argparse.Namespace) -> int:
    from collections import Counter

    from toolace_r.data import load
    from toolace_r.engines import engine_from_args
    from toolace_r.refine import refine, write_predictions, write_traces

    from toolace_r.files import writable_file

    out = writable_file(args.out, "--out")
    traces_path = writable_file(args.traces if args.traces else out.with_name(out.stem + ".traces.jsonl"),
                                "traces file")
    examples = load(args.data, limit=args.limit)
    from toolace_r.evaluation.multi_turn_loop import is_multi_turn

    if any(is_multi_turn(ex) for ex in examples):
        raise ValueError(f"{args.data} holds multi-turn conversations, which refine answers one turn at a time; "
                         "run them with `toolace-r eval --model ... --categories multi_turn_base`")
    cfg = _refine_config(args)
    sys.stderr.write(f"refine: {len(examples)} examples, policy {cfg.policy}; writing {out} and {traces_path}\n")
    with engine_from_args(args, model=args.model) as engine:
        result = refine(examples, engine, cfg, progress=True)
    write_predictions(result.traces, out)
    write_traces(result.traces, traces_path)
    n = max(len(result.traces), 1)
    reasons = Counter(t.stop_reason for t in result.traces)
    sys.stdout.write(f"{len(result.traces)} examples, {sum(t.refinements for t in result.traces) / n:.2f} "
                     f"refinement rounds on average ({', '.join(f'{k} {v}' for k, v in reasons.most_common())}); "
                     f"{result.seconds:.1f} s; wrote {out}, {traces_path}\n")
    return 0


# --- train (model-aware iterative training) --------------------------------------------------------

def _add_train(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="model-aware iterative training (sample, select, corpus, SFT, repeat)")
    p.add_argument("--config", default=None, help="a YAML recipe, e.g. configs/train_smollm2_quick.yaml "
                                                  "(with --resume: the run's own config.yaml by default)")
    p.add_argument("--output-dir", default=None, help="the run directory (default: the config's output_dir)")
    p.add_argument("--resume", action="store_true", help="continue a run from its last finished phase")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="override any config field, e.g. selection.policy=window sft.max_steps=2")
    p.set_defaults(func=_cmd_train)


def _cmd_train(args: argparse.Namespace) -> int:
    from pathlib import Path

    from toolace_r.config import load_config
    from toolace_r.training import TrainConfig, run_training

    from toolace_r.files import writable_dir

    config = args.config
    if config is None and args.resume and args.output_dir:
        # Resuming without --config continues the run as it was configured (its own config.yaml).
        saved = Path(args.output_dir) / "config.yaml"
        config = str(saved) if saved.is_file() else None
    cfg = load_config(TrainConfig, config, args.overrides)
    writable_dir(args.output_dir or cfg.output_dir, "the run directory")
    summary = run_training(cfg, output_dir=args.output_dir, resume=args.resume)
    print_json({"stop_reason": summary["stop_reason"], "final_model": summary["final_model"],
                 "iterations": len(summary["iterations"]), "best_iteration": summary["best_iteration"],
                 "best_by": summary["best_by"], "best_model": summary["best_model"]})
    return 0


# --- demo (the end-to-end pipeline) ---------------------------------------------------------------

def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="the ToolACE-R pipeline end to end, with a report: base model, ToolACE-R "
                                    "iterations, a token-matched SFT control, each under every refine policy")
    p.add_argument("--config", default=None, help="a pipeline recipe, e.g. configs/demo.yaml")
    p.add_argument("--output-dir", default=None, help="the output directory (default: the config's output_dir)")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE",
                   help="config overrides, e.g. eval.limit=4 training.sft.learning_rate=2e-4")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from toolace_r.config import load_config
    from toolace_r.pipeline import PipelineConfig, run_pipeline

    from pathlib import Path

    from toolace_r.files import writable_dir

    cfg = load_config(PipelineConfig, args.config, args.overrides)
    out = args.output_dir or cfg.output_dir
    writable_dir(out, "the output directory")
    report = run_pipeline(cfg, args.output_dir)
    sys.stdout.write((Path(out) / "report.md").read_text(encoding="utf-8"))
    return 0 if report else 1


SUBCOMMANDS: list[Callable[[argparse._SubParsersAction], None]] = [
    add_parse,
    add_data,
    add_models,
    _add_eval,
    _add_refine,
    _add_train,
    _add_demo,
    add_serve,
    add_push,
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="toolace-r", description=__doc__.splitlines()[0])
    from toolace_r import __version__

    parser.add_argument("--version", action="version", version=f"toolace-r {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(sub)
    return parser


def _error_line(exc: BaseException) -> str:
    if isinstance(exc, RecursionError):
        return f"input nested too deeply to read ({exc})"
    if isinstance(exc, OSError) and exc.strerror and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror}"  # "[Errno 21] Is a directory: 'x'" reads worse
    return str(exc) or type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    from toolace_r.engines.base import EngineError

    for stream in (sys.stdout, sys.stderr):
        # Text that cannot be encoded (lone surrogates from a model or from argv) is escaped, not fatal.
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    # The one error boundary: a person's mistake or the machine's refusal is one line and exit status 2.
    except (OSError, ValueError, RecursionError, KeyError, EngineError) as exc:
        sys.stderr.write(f"toolace-r {args.command}: error: {_error_line(exc)}\n")
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
