"""ACEBench's own evaluation code, kept at arm's length: a separate venv, run as a subprocess.

ACEBench's evaluation imports only the standard library plus pandas/openpyxl (for its Excel report,
which the worker replaces), so the venv needs no packages: `ensure_venv()` creates it once under the
cache dir ($TOOLACE_R_CACHE, else ~/.cache/toolace-r) and `run_worker()` runs
`_acebench_official_worker.py` there with the checkout on its path.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_acebench_official_worker.py"


def cache_dir() -> Path:
    path = Path(os.environ.get("TOOLACE_R_CACHE") or Path.home() / ".cache" / "toolace-r")
    path.mkdir(parents=True, exist_ok=True)
    return path


def ensure_venv() -> Path:
    venv = cache_dir() / "acebench-official"
    python = venv / "bin" / "python"
    if not python.exists():
        print(f"[acebench-official] creating {venv}", file=sys.stderr)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", "--without-pip", str(venv)], check=True)
    return python


def run_worker(acebench_dir: Path, cases: Path, out: Path) -> None:
    subprocess.run([str(ensure_venv()), str(WORKER), str(acebench_dir), str(cases), str(out)], check=True)
