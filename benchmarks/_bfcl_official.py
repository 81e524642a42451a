"""The official BFCL checker, kept at arm's length: its own virtual environment, run as a subprocess.

bfcl-eval pins heavy dependencies (numpy 1.26, a dozen API clients), so it never enters the
project's environment. `ensure_venv()` builds a separate venv under the cache dir (once) and installs
bfcl-eval there with --no-deps (from PyPI, or by copying the package the project venv already holds
when PyPI cannot be reached); `run_worker()` runs `_bfcl_official_worker.py` in it, which stubs the
third-party modules that the checker's import chain names but never uses.

Cache dir: $TOOLACE_R_CACHE, else ~/.cache/toolace-r.
"""
from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
WORKER = HERE / "_bfcl_official_worker.py"
DEFAULT_VERSION = "2026.3.23"


def cache_dir() -> Path:
    root = os.environ.get("TOOLACE_R_CACHE") or Path.home() / ".cache" / "toolace-r"
    path = Path(root)
    path.mkdir(parents=True, exist_ok=True)
    return path


def bfcl_version() -> str:
    """Use the same bfcl-eval release as the project's data comes from."""
    try:
        return importlib.metadata.version("bfcl-eval")
    except importlib.metadata.PackageNotFoundError:
        return DEFAULT_VERSION


def ensure_venv(version: str | None = None) -> Path:
    """Path to the python of a venv holding bfcl-eval==version (created on first use)."""
    version = version or bfcl_version()
    venv = cache_dir() / f"bfcl-official-{version}"
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if stamp.exists() and python.exists():
        return python
    print(f"[bfcl-official] creating {venv} (bfcl-eval=={version}, --no-deps)", file=sys.stderr)
    if venv.exists():
        shutil.rmtree(venv)
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                          "--disable-pip-version-check", f"bfcl-eval=={version}"],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        print(f"[bfcl-official] pip failed ({pip.stderr.strip()[-300:]}); copying the installed package",
              file=sys.stderr)
        _copy_installed_package(python)
    stamp.write_text(version + "\n")
    return python


# What bfcl-eval 2026.3.23 pins for its Java/JavaScript parsers (used when its metadata is not readable here).
TREE_SITTER_PINS = ("tree_sitter==0.21.3", "tree-sitter-java==0.21.0", "tree-sitter-javascript==0.21.4")


def tree_sitter_pins() -> list[str]:
    """bfcl-eval's own pins of tree-sitter and its Java/JavaScript grammars (its Requires-Dist)."""
    try:
        pins = [r.split(";")[0].strip() for r in importlib.metadata.requires("bfcl-eval") or []
                if r.lower().replace("-", "_").startswith("tree_sitter")]
    except importlib.metadata.PackageNotFoundError:
        pins = []
    return pins or list(TREE_SITTER_PINS)


def ensure_tree_sitter(python: Path | None = None) -> Path:
    """The official venv's python, with tree-sitter and the two grammars at bfcl-eval's pins installed
    (its Java/JavaScript decoding needs them for real; the Python worker stubs them)."""
    python = python or ensure_venv()
    pins = tree_sitter_pins()
    stamp = python.parent.parent / ".tree-sitter"
    if stamp.exists() and stamp.read_text().split() == pins:
        return python
    print(f"[bfcl-official] installing {' '.join(pins)} into {python.parent.parent}", file=sys.stderr)
    subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--disable-pip-version-check",
                    *pins], check=True)
    stamp.write_text(" ".join(pins) + "\n")
    return python


def _copy_installed_package(python: Path) -> None:
    spec = importlib.util.find_spec("bfcl_eval")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("bfcl-eval is neither installable from PyPI nor installed in this environment")
    source = Path(list(spec.submodule_search_locations)[0])
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    shutil.copytree(source, Path(site) / "bfcl_eval", ignore=shutil.ignore_patterns("__pycache__"))


def ensure_module(python: Path, name: str) -> None:
    """Make the pure-Python package `name` importable in the official venv: BFCL's simulated MathAPI
    needs mpmath, which --no-deps leaves out. The version the project venv holds, from PyPI, else copied."""
    if subprocess.run([str(python), "-c", f"import {name}"], capture_output=True).returncode == 0:
        return
    try:
        pinned = f"{name}=={importlib.metadata.version(name)}"
    except importlib.metadata.PackageNotFoundError:
        pinned = name
    print(f"[bfcl-official] installing {pinned} into the official venv", file=sys.stderr)
    pip = subprocess.run([str(python), "-m", "pip", "install", "--quiet", "--no-deps",
                          "--disable-pip-version-check", pinned], capture_output=True, text=True)
    if pip.returncode == 0:
        return
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(f"{name} is neither installable from PyPI nor installed in this environment")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          check=True, capture_output=True, text=True).stdout.strip()
    shutil.copytree(Path(list(spec.submodule_search_locations)[0]), Path(site) / name,
                    ignore=shutil.ignore_patterns("__pycache__"))


def run_worker(mode: str, cases: Path, out: Path, extra: list[str] | None = None,
               env: dict[str, str] | None = None) -> None:
    """Run the official worker in its venv: `mode` is "check" (verdicts), "time" (speed), "inline" or
    "evaluate" (the official evaluator on a result folder); `env`: variables added for it (with
    REAL_TREE_SITTER set, the venv gets tree-sitter and the worker uses it: Java/JavaScript)."""
    env = dict(env or {})
    python = ensure_tree_sitter() if env.get(REAL_TREE_SITTER) else ensure_venv()
    cmd = [str(python), str(WORKER), mode, str(cases), str(out), *(extra or [])]
    subprocess.run(cmd, check=True, env={**os.environ, **env})


# Set (to "1") in run_worker's env: the worker imports the real tree-sitter instead of its stand-in, so that
# BFCL's Java/JavaScript decoding runs (see ensure_tree_sitter).
REAL_TREE_SITTER = "BFCL_REAL_TREE_SITTER"
