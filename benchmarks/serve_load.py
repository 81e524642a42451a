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
"""
from __future__ import annotations

import argparse
import itertools
import os
import sys
import threading
import time
from pathlib import Path

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


def run_mode(name: str, hf, items: list[dict], args) -> dict:
    import openai

    from toolace_r.serve import BatchingEngine, ServeConfig, ServerThread, create_app

    max_batch = args.max_batch if name == "batched" else 1
    cfg = ServeConfig(served_model_name="bench", refine=args.refine, max_rounds=args.max_rounds,
                      default_max_tokens=args.max_tokens, max_batch=max_batch, batch_wait_ms=args.batch_wait_ms)
    engine = BatchingEngine(hf, max_batch, args.batch_wait_ms, close_inner=False)
    app = create_app(engine, cfg)
    latencies: list[float] = []
    tokens = {"completion": 0, "prompt": 0, "rounds": 0}
    errors: list[str] = []
    lock = threading.Lock()
    counter = itertools.count()
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

        warm = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=600)
        request(warm, items[0])
        hf.reset_prefix_cache()
        latencies.clear()
        tokens.update(completion=0, prompt=0, rounds=0)
        calls0, requests0 = engine.stats.engine_calls, engine.stats.requests
        deadline = time.perf_counter() + args.seconds

        def client_loop() -> None:
            client = openai.OpenAI(base_url=server.base_url, api_key="none", max_retries=0, timeout=600)
            while time.perf_counter() < deadline:
                try:
                    request(client, items[next(counter) % len(items)])
                except Exception as exc:  # noqa: BLE001 - counted, the load goes on
                    with lock:
                        errors.append(f"{type(exc).__name__}: {exc}")

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
        "requests": done, "errors": len(errors), "error_samples": errors[:3],
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
    parser.add_argument("--modes", default="one_by_one,batched")
    parser.add_argument("--threads", type=int, default=2,
                        help="torch threads; on a CPU that other jobs keep busy, 1 avoids threads waiting on "
                             "each other (measured here: 10x slower with 2 under a load average of 5)")
    args = parser.parse_args()

    common.setup(threads=args.threads)
    from toolace_r.engines import get_engine

    items = workload(args.items)
    hf = get_engine("hf", model=args.model, batch_size=max(args.max_batch, 1))
    rows = []
    for mode in args.modes.split(","):
        print(f"{mode}: {args.clients} clients for {args.seconds:.0f} s ...", flush=True)
        rows.append(run_mode(mode, hf, items, args))
        r = rows[-1]
        print(f"  {r['requests']} requests in {r['seconds']} s: {r['requests_per_s']} req/s, "
              f"{r['completion_tokens_per_s']} generated tok/s, p50 {r['latency_p50_s']} s, "
              f"p99 {r['latency_p99_s']} s, errors {r['errors']}, mean engine batch {r['mean_engine_batch']}, "
              f"load average {r['load_average_1min_after']}",
              flush=True)
    hf.close()
    by = {r["mode"]: r for r in rows}
    gain = None
    if "batched" in by and "one_by_one" in by and by["one_by_one"]["requests_per_s"]:
        gain = round(by["batched"]["requests_per_s"] / by["one_by_one"]["requests_per_s"], 2)
        print(f"batching gain: {gain}x requests/s")
    common.write_results("serve_load", {
        "model": args.model, "threads": args.threads, "max_tokens": args.max_tokens, "refine": args.refine, "max_rounds": args.max_rounds,
        "batch_wait_ms": args.batch_wait_ms, "modes": rows, "batching_gain_requests_per_s": gain,
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
