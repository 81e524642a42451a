"""`toolace-r serve`: the server's command-line options (bounds, timeouts, refinement defaults) and the
handler that builds the back end and runs it. Kept apart from `cli.py` because it has the most options;
nothing heavy is imported until the command runs.
"""
from __future__ import annotations

import argparse
import sys


def add_serve(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="OpenAI-compatible server with adaptive refinement")
    p.add_argument("--model", help="a registered model name or a checkpoint path (with --upstream: optional, "
                                   "its tokenizer renders prompts here)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1, loopback only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--api-key", default=None,
                   help="require 'Authorization: Bearer KEY' (default: $TOOLACE_R_API_KEY; none = open)")
    p.add_argument("--served-model-name", default=None, help="the model id clients use (default: --model)")
    p.add_argument("--refine", default="adaptive", metavar="POLICY",
                   help="default stop policy: adaptive, adaptive:exact, checked, checked:silent, fixed:N, none "
                        "(requests may override)")
    p.add_argument("--max-rounds", type=int, default=3, help="default cap on refinement rounds (default 3)")
    p.add_argument("--max-rounds-cap", type=int, default=3, help="most rounds a request may ask for (default 3)")
    p.add_argument("--guard", default="off", choices=["off", "error", "call"], help="the refine loop's guard")
    p.add_argument("--answer-format", default="auto", choices=["auto", "pythonic", "native"],
                   help="the format the model was trained to answer in (default auto: the chat template's "
                        "own tool calls when it renders them, else pythonic)")
    p.add_argument("--upstream", default=None, metavar="URL",
                   help="generate on this OpenAI-compatible server (e.g. http://127.0.0.1:8001/v1); refine here")
    p.add_argument("--upstream-model", default=None, help="the upstream's model id (default: its first)")
    p.add_argument("--upstream-api-key", default=None, help="key for the upstream (default: $OPENAI_API_KEY)")
    p.add_argument("--max-batch", type=int, default=16, help="most requests per batched engine call (1: one by one)")
    p.add_argument("--batch-wait-ms", type=float, default=10.0, help="how long a batch waits for more requests")
    p.add_argument("--max-tokens", type=int, default=256, help="tokens per answer when a request gives none")
    p.add_argument("--max-tokens-cap", type=int, default=2048, help="most tokens a request may ask for")
    p.add_argument("--max-body-bytes", type=int, default=1 << 20, help="largest request body (default 1 MiB)")
    p.add_argument("--max-tools", type=int, default=128)
    p.add_argument("--max-messages", type=int, default=256)
    p.add_argument("--max-connections", type=int, default=512,
                   help="open connections answered; a request on one more gets 503 (default 512)")
    p.add_argument("--keep-alive-timeout", type=float, default=5.0,
                   help="seconds an idle connection stays open (default 5)")
    p.add_argument("--header-timeout", type=float, default=10.0,
                   help="seconds a request head may take to arrive; else 408 and closed (default 10)")
    p.add_argument("--body-timeout", type=float, default=30.0,
                   help="seconds a request body may take to arrive; else 408 and closed (default 30)")
    p.add_argument("--max-header-bytes", type=int, default=16 * 1024, help="largest request head (default 16 KiB)")
    p.add_argument("--docs", action="store_true",
                   help="serve /docs, /redoc and /openapi.json (behind --api-key when set; default off)")
    p.add_argument("--engine-option", action="append", default=[], metavar="KEY=VALUE",
                   help="an engine config field, e.g. batch_size=16, num_threads=2 (repeatable)")
    p.add_argument("--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"])
    p.set_defaults(func=cmd_serve)


def cmd_serve(args: argparse.Namespace) -> int:
    import os

    from toolace_r.engines import parse_engine_options
    from toolace_r.serve import API_KEY_ENV, ServeConfig, create_app, serve_forever
    from toolace_r.serve.server import build_backend

    name = args.served_model_name or args.model or args.upstream_model or "toolace-r"
    cfg = ServeConfig(
        served_model_name=name, api_key=args.api_key or os.environ.get(API_KEY_ENV) or None,
        refine=args.refine, max_rounds=args.max_rounds, max_rounds_cap=args.max_rounds_cap, guard=args.guard,
        answer_format=args.answer_format,
        default_max_tokens=args.max_tokens, max_tokens_cap=args.max_tokens_cap, max_body_bytes=args.max_body_bytes,
        max_tools=args.max_tools, max_messages=args.max_messages, max_batch=args.max_batch,
        batch_wait_ms=args.batch_wait_ms, max_connections=args.max_connections,
        keep_alive_timeout=args.keep_alive_timeout, header_timeout=args.header_timeout,
        body_timeout=args.body_timeout, max_header_bytes=args.max_header_bytes, docs=args.docs,
    )
    engine, tokenizer, batching = build_backend(
        args.model, upstream=args.upstream, upstream_model=args.upstream_model,
        upstream_api_key=args.upstream_api_key, engine_options=parse_engine_options(args.engine_option))
    app = create_app(engine, cfg, tokenizer=tokenizer, batching=batching)
    where = f"upstream {args.upstream}" if args.upstream else f"hf engine, batches of up to {cfg.max_batch}"
    sys.stderr.write(f"serve: model {name!r} ({where}), refine {cfg.refine} (cap {cfg.max_rounds}), "
                     f"{'Bearer key required' if cfg.api_key else 'no API key'}; "
                     f"http://{args.host}:{args.port}/v1\n")
    try:
        serve_forever(app, args.host, args.port, args.log_level)
    finally:
        app.state.engine.close()
    return 0
