"""Load test of `toolace-r serve`: N concurrent OpenAI clients for T seconds, batched across requests
against one by one, on the loopback interface only.

    .venv/bin/python benchmarks/serve_load.py [--clients 8] [--seconds 30] [--model smollm2-135m]

The server runs in this process (uvicorn in a thread, 127.0.0.1, a free port) over one hf engine with
the embedded SmolLM2-135M-Instruct (fp32, CPU, --threads, default 2). Each client sends chat completions with
tools (BFCL simple_python items: their tool and question, in turn), greedy, `--max-tokens` per answer,
with the server's refinement (`--refine`, `--max-rounds`), and waits for each answer before sending the
next. A client sends no new request after T seconds; throughput counts the answers over the time until
the last one came back. Two modes in the same run, each after a warm-up request and with the prefix
cache emptied: `batched` (cross-request batching, --max-batch) and `one_by_one` (max batch 1: the engine
serves one request's round at a time). Reported: requests/s, generated tokens/s, p50/p99 latency,
errors (target 0), the engine calls and their mean batch size, and the gain of batching.
Writes benchmarks/results/serve_load.json.

    .venv/bin/python benchmarks/serve_load.py --hostile-share 0.2 --clients 20 --seconds 30

With --hostile-share S, two modes run instead, both batched: `clean` (valid requests only) and `hostile`
(the same load, a share S of whose requests are hostile, spread evenly: lone surrogates, tool schemas
nested deep under $defs, deep or huge past-call arguments, odd names, bodies too large or nested too
deep or not JSON, a head or a body sent byte by byte, a connection left idle, in turn). Valid requests
are reported apart (count, 5xx, other errors, p50/p99 latency); hostile ones by the status they got
("closed": cut off without an answer, "held": the server never cut a slow client off). The last line is
the valid-request latency of `hostile` over `clean` (target: 0 valid 5xx, within 1.5x at 20 clients,
30 s). Writes benchmarks/results/serve_load_hostile.json.

--quick: a smoke run of a few seconds (4 clients, 3 s, short answers, 1 s server timeouts) that writes
no results file.
"""
from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import select
import socket
import sys
import threading
import time
from pathlib import Path
from typing import Any, Callable

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import engine_common as common  # noqa: E402


def percentile(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); nan for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * q // 100))  # ceil
    return ordered[int(min(rank, len(ordered))) - 1]


def workload(n: int) -> list[dict]:
    """(tools, messages) of the first n BFCL simple_python items, in the OpenAI request shape."""
    out = []
    for ex in common.bfcl_examples(n):
        out.append({"tools": [t.to_openai() for t in ex.tools], "messages": list(ex.messages)})
    return out


# --- hostile requests -------------------------------------------------------------------------------

class Hostile:
    """What a hostile request needs: the server, an httpx client of this load client, a valid item."""

    def __init__(self, server, http, item: dict, args) -> None:
        self.server, self.http, self.item, self.args = server, http, item, args

    def post(self, content: bytes | str, path: str = "/chat/completions", **headers: str) -> str:
        r = self.http.post(self.server.base_url + path, content=content,
                           headers={"Content-Type": "application/json", **headers})
        return str(r.status_code)

    def chat(self, **fields: Any) -> str:
        return self.post(json.dumps({"model": "bench", "max_tokens": self.args.max_tokens, **fields}))

    def history(self, name: str, arguments: str) -> str:
        call = {"id": "c1", "type": "function", "function": {"name": name, "arguments": arguments}}
        return self.chat(tools=self.item["tools"], messages=[
            *self.item["messages"], {"role": "assistant", "content": None, "tool_calls": [call]},
            {"role": "tool", "tool_call_id": "c1", "content": "ok"}, {"role": "user", "content": "again"}])

    def raw(self, head: bytes, trickle: bytes = b"") -> str:
        """Send `head` on a fresh connection, then `trickle` a byte every 0.1 s (nothing: stay idle),
        until the server answers or closes; "held" if it has not after the server's longest timeout."""
        limit = max(self.args.header_timeout, self.args.body_timeout, self.args.keep_alive_timeout) + 5
        with socket.create_connection((self.server.host, self.server.port), timeout=limit) as sock:
            sock.sendall(head)
            deadline, i = time.monotonic() + limit, 0
            while time.monotonic() < deadline:
                readable, _, _ = select.select([sock], [], [], 0.1)
                if readable:
                    try:
                        data = sock.recv(4096)
                    except OSError:
                        return "closed"
                    return data[9:12].decode("ascii", "replace") if data.startswith(b"HTTP/1.1 ") else "closed"
                if trickle:
                    try:
                        sock.sendall(trickle[i % len(trickle):][:1])
                    except OSError:
                        return "closed"
                    i += 1
        return "held"


def _deep_schema(levels: int) -> dict:
    schema: dict = {}
    for _ in range(levels):
        schema = {"$defs": {"a": schema}}
    return {"type": "function", "function": {"name": "deep", "parameters": {"type": "object", "$defs": {"d": schema}}}}


HOSTILE: list[tuple[str, Callable[[Hostile], str]]] = [
    ("surrogate_content", lambda h: h.post('{"model": "bench", "max_tokens": %d, "tools": %s, "messages": '
                                           '[{"role": "user", "content": "caf\\ud800 \\udfff"}]}'
                                           % (h.args.max_tokens, json.dumps(h.item["tools"])))),
    ("deep_schema", lambda h: h.chat(messages=h.item["messages"], tools=[_deep_schema(200)])),
    ("deep_arguments", lambda h: h.history("f", '{"a": ' + "[" * 5000 + "]" * 5000 + "}")),
    ("odd_names", lambda h: h.history("get weather(", '{"": 1, "a b": 2}')),
    ("huge_arguments", lambda h: h.history("f", '{"a": ' + "9" * 20000 + "}")),
    ("oversized_body", lambda h: h.chat(messages=[{"role": "user", "content": "x" * (2 << 20)}])),
    ("deep_body", lambda h: h.post('{"messages": ' + "[" * 50000 + "]" * 50000 + "}")),
    ("not_json", lambda h: h.post('{"messages": [{"role": "user", "content": "unterminated')),
    ("slow_head", lambda h: h.raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\nX-Slow: ", b"a")),
    ("slow_body", lambda h: h.raw(b"POST /v1/chat/completions HTTP/1.1\r\nHost: bench\r\n"
                                  b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", b" ")),
    ("idle_connection", lambda h: h.raw(b"")),
]


def _is_hostile(k: int, share: float) -> bool:
    """Request k of the run is hostile for an even spread of `share` (0.2: every fifth)."""
    return share > 0 and int((k + 1) * share) > int(k * share)


def run_mode(name: str, hf, items: list[dict], args) -> dict:
    import httpx
    import openai

    from toolace_r.serve import BatchingEngine, ServeConfig, ServerThread, create_app

    max_batch = 1 if name == "one_by_one" else args.max_batch
    share = args.hostile_share if name == "hostile" else 0.0
    cfg = ServeConfig(served_model_name="bench", refine=args.refine, max_rounds=args.max_rounds,
                      default_max_tokens=args.max_tokens, max_batch=max_batch, batch_wait_ms=args.batch_wait_ms,
                      header_timeout=args.header_timeout, body_timeout=args.body_timeout,
                      keep_alive_timeout=args.keep_alive_timeout)
    engine = BatchingEngine(hf, max_batch, args.batch_wait_ms, close_inner=False)
    app = create_app(engine, cfg)
    latencies: list[float] = []
    tokens = {"completion": 0, "prompt": 0, "rounds": 0}
    errors: list[str] = []
    valid_5xx = 0
    hostile: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    lock = threading.Lock()
    counter = itertools.count()
    kinds = itertools.count()
    with ServerThread(app) as server:
        def request(client, item) -> None:
            start = time.perf_counter()
            r = client.chat.completions.create(model="bench", messages=item["messages"], tools=item["tools"],
                                               max_tokens=args.max_tokens)
            with lock:
                latencies.append(time.perf_counter() - start)
                tokens["completion"] += r.usage.completion_tokens
                tokens["prompt"] += r.usage.prompt_tokens
                tokens["rounds"] += r.model_extra["refinement"]["rounds"]

        def hostile_request(http, item) -> None:
            kind, send = HOSTILE[next(kinds) % len(HOSTILE)]
            try:
                status = send(Hostile(server, http, item, args))
            except Exception as exc:  # noqa: BLE001 - a status of its own: the server cut it off oddly
                status = type(exc).__name__
            with lock:
                hostile[kind][status] += 1

        warm = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=600)
        request(warm, items[0])
        hf.reset_prefix_cache()
        latencies.clear()
        tokens.update(completion=0, prompt=0, rounds=0)
        calls0, requests0 = engine.stats.engine_calls, engine.stats.requests
        deadline = time.perf_counter() + args.seconds

        def client_loop() -> None:
            nonlocal valid_5xx
            client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=600)
            http = httpx.Client(timeout=600)
            while time.perf_counter() < deadline:
                k = next(counter)
                item = items[k % len(items)]
                if _is_hostile(k, share):
                    hostile_request(http, item)
                    continue
                try:
                    request(client, item)
                except Exception as exc:  # noqa: BLE001 - counted, the load goes on
                    with lock:
                        if getattr(exc, "status_code", 0) >= 500:
                            valid_5xx += 1
                        errors.append(f"{type(exc).__name__}: {exc}")
            http.close()

        start = time.perf_counter()
        threads = [threading.Thread(target=client_loop) for _ in range(args.clients)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        elapsed = time.perf_counter() - start
    engine.close()
    load = os.getloadavg()[0]  # other work on the machine skews the figures: keep the evidence
    calls = engine.stats.engine_calls - calls0
    gen_requests = engine.stats.requests - requests0
    done = len(latencies)
    return {
        "mode": name, "max_batch": max_batch, "clients": args.clients, "seconds": round(elapsed, 2),
        "hostile_share": share,
        "requests": done, "errors": len(errors), "valid_5xx": valid_5xx, "error_samples": errors[:3],
        "hostile": {kind: dict(sorted(counts.items())) for kind, counts in sorted(hostile.items())},
        "hostile_requests": sum(sum(c.values()) for c in hostile.values()),
        "requests_per_s": round(done / elapsed, 3),
        "completion_tokens_per_s": round(tokens["completion"] / elapsed, 2),
        "prompt_tokens_per_s": round(tokens["prompt"] / elapsed, 2),
        "latency_p50_s": round(percentile(latencies, 50), 3), "latency_p99_s": round(percentile(latencies, 99), 3),
        "mean_refinement_rounds": round(tokens["rounds"] / done, 3) if done else None,
        "engine_calls": calls, "mean_engine_batch": round(gen_requests / calls, 2) if calls else None,
        "load_average_1min_after": round(load, 2),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--refine", default="adaptive")
    parser.add_argument("--max-rounds", type=int, default=1)
    parser.add_argument("--max-batch", type=int, default=16)
    parser.add_argument("--batch-wait-ms", type=float, default=10.0)
    parser.add_argument("--items", type=int, default=32, help="BFCL simple_python items the clients cycle through")
    parser.add_argument("--modes", default=None,
                        help="default one_by_one,batched; with --hostile-share: clean,hostile")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; on a CPU that other jobs keep busy, 1 avoids threads waiting on "
                             "each other (measured here: 10x slower with 2 under a load average of 5)")
    parser.add_argument("--hostile-share", type=float, default=0.0,
                        help="share of hostile requests in the `hostile` mode (e.g. 0.2); runs clean,hostile")
    parser.add_argument("--header-timeout", type=float, default=None, help="server's (default: ServeConfig's)")
    parser.add_argument("--body-timeout", type=float, default=None, help="server's (default: ServeConfig's)")
    parser.add_argument("--keep-alive-timeout", type=float, default=None, help="server's (default: ServeConfig's)")
    parser.add_argument("--quick", action="store_true", help="a smoke run of a few seconds; writes no results")
    args = parser.parse_args()
    if not 0 <= args.hostile_share < 1:
        parser.error("--hostile-share must be in [0, 1)")
    from toolace_r.serve import ServeConfig

    defaults = ServeConfig()
    for name in ("header_timeout", "body_timeout", "keep_alive_timeout"):
        if getattr(args, name) is None:
            setattr(args, name, 1.0 if args.quick else getattr(defaults, name))
    if args.quick:
        args.clients, args.seconds, args.items, args.max_tokens = min(args.clients, 4), min(args.seconds, 3.0), \
            min(args.items, 4), min(args.max_tokens, 8)
    if args.modes is None:
        args.modes = "clean,hostile" if args.hostile_share else "one_by_one,batched"

    common.setup(threads=args.threads)
    from toolace_r.engines import get_engine

    items = workload(args.items)
    hf = get_engine("hf", model=args.model, batch_size=max(args.max_batch, 1))
    rows = []
    for mode in args.modes.split(","):
        print(f"{mode}: {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        rows.append(run_mode(mode, hf, items, args))
        r = rows[-1]
        print(f"  {r['requests']} valid requests in {r['seconds']} s: {r['requests_per_s']} req/s, "
              f"{r['completion_tokens_per_s']} generated tok/s, p50 {r['latency_p50_s']} s, "
              f"p99 {r['latency_p99_s']} s, errors {r['errors']} (5xx {r['valid_5xx']}), "
              f"mean engine batch {r['mean_engine_batch']}, load average {r['load_average_1min_after']}",
              flush=True)
        if r["hostile_requests"]:
            print(f"  {r['hostile_requests']} hostile requests, status by kind: "
                  + "; ".join(f"{kind} {counts}" for kind, counts in r["hostile"].items()), flush=True)
    hf.close()
    by = {r["mode"]: r for r in rows}
    gain = None
    if "batched" in by and "one_by_one" in by and by["one_by_one"]["requests_per_s"]:
        gain = round(by["batched"]["requests_per_s"] / by["one_by_one"]["requests_per_s"], 2)
        print(f"batching gain: {gain}x requests/s")
    ratio = None
    if "clean" in by and "hostile" in by:
        clean, mixed = by["clean"], by["hostile"]
        ratio = {q: (round(mixed[f"latency_{q}_s"] / clean[f"latency_{q}_s"], 2)
                     if clean[f"latency_{q}_s"] and clean[f"latency_{q}_s"] == clean[f"latency_{q}_s"] else None)
                 for q in ("p50", "p99")}
    figures = {
        "model": args.model, "threads": args.threads, "max_tokens": args.max_tokens, "refine": args.refine,
        "max_rounds": args.max_rounds, "batch_wait_ms": args.batch_wait_ms, "modes": rows,
    }
    if ratio is None:
        figures["batching_gain_requests_per_s"] = gain
    else:
        figures.update(hostile_share=args.hostile_share, valid_latency_ratio_hostile_over_clean=ratio,
                       server_timeouts_s={"header": args.header_timeout, "body": args.body_timeout,
                                          "keep_alive": args.keep_alive_timeout})
    if args.quick:
        print("quick run: no results file written")
    else:
        common.write_results("serve_load_hostile" if ratio is not None else "serve_load", figures)
    if ratio is not None:
        valid_5xx = sum(r["valid_5xx"] for r in rows)
        print(f"valid-request latency, hostile-mixed over clean: p50 {ratio['p50']}x, p99 {ratio['p99']}x; "
              f"valid 5xx {valid_5xx} (target: 0 and within 1.5x)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
