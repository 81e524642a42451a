"""Shared setup of the engine benchmarks: the embedded model, real BFCL prompts, timing, memory, output.

Not a benchmark itself. Every engine benchmark runs on the CPU with a fixed thread count, renders
BFCL prompts with toolace_r.prompts (the ToolACE system prompt and the tool list, as in evaluation),
warms up before timing, and writes its figures to benchmarks/results/<name>.json.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"


def setup(threads: int = 2) -> None:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    import torch

    torch.set_num_threads(threads)


def load_embedded(dtype: str = "float32"):
    """(model, tokenizer) of the embedded SmolLM2-135M-Instruct, pulled once into $TOOLACE_R_HOME."""
    from toolace_r.models import load_model

    return load_model("smollm2-135m", dtype=dtype, device="cpu")


def bfcl_examples(n: int, category: str = "simple_python"):
    from toolace_r.data import load

    return list(load(f"bfcl:{category}", limit=n))


def render(tokenizer, examples, previous: list[list[str]] | None = None) -> list[str]:
    from toolace_r.prompts import render_example

    previous = previous or [[] for _ in examples]
    return [render_example(tokenizer, ex, prev) for ex, prev in zip(examples, previous)]


def token_counts(tokenizer, prompts: list[str]) -> list[int]:
    return [len(tokenizer(p, add_special_tokens=False)["input_ids"]) for p in prompts]


def peak_rss_mb() -> float:
    """The process's peak resident memory (VmHWM) in MiB, read from /proc (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def reset_peak_rss() -> bool:
    """Restart the VmHWM high-water mark (Linux >= 4.0), so a peak excludes e.g. model loading."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


class Timer:
    def __enter__(self) -> "Timer":
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def write_results(name: str, figures: dict[str, Any]) -> Path:
    """benchmarks/results/<name>.json, written to a temporary file and renamed."""
    import platform

    import torch

    RESULTS.mkdir(parents=True, exist_ok=True)
    figures = {
        "benchmark": name,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {"cpu_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                    "python": platform.python_version(), "torch": torch.__version__},
        **figures,
    }
    from toolace_r.files import write_json

    path = RESULTS / f"{name}.json"
    write_json(path, figures, indent=2)  # strict JSON: a mode with no samples writes null, not NaN
    print(f"wrote {path}")
    return path
