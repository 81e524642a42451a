"""Resumable stages in one run directory: the training loop's phases and the pipeline's stages.

A `Stage` names what it reads (config values and input files, each hashed), the files it writes and the
function that writes them. `RunDir.run(stage)`:

- skips the stage when its marker `<where>/<name>.done` holds the current input hashes and every output
  it recorded is still there, and reads its outputs back;
- otherwise drops that marker first (a kill mid-stage leaves the stage unfinished), runs the function,
  writes the outputs it returns atomically, all together (`toolace_r.files.write_files`), and only then
  writes the marker: the input hashes, the output hashes and the stage's wall seconds.

Later stages keep their markers when an earlier one reruns: their inputs hold the hashes of the files
they read, so they rerun only if those files come out different. One process at a time works in a run
directory: `RunDir` holds the directory's lock (`run_dir_lock`) while it is entered.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Sequence

try:
    import fcntl
except ImportError:  # not POSIX: runs go unlocked
    fcntl = None  # type: ignore[assignment]

from toolace_r.files import dumps, dumps_lines, write_files, write_json

LOCK_FILE = ".toolace-r.lock"


# --- one process per run directory -----------------------------------------------------------------

class RunDirLocked(ValueError):
    """Another process is working in the run directory (a ValueError: the CLI prints one line, exits 2)."""


@contextlib.contextmanager
def run_dir_lock(root: str | Path) -> Iterator[None]:
    """Hold `root`'s lock for the block; RunDirLocked at once if another process holds it.

    An flock on root/LOCK_FILE, which the kernel drops when its holder ends, however it ends: a run
    killed with SIGKILL leaves no stale lock. The file holds the holder's pid for the error message; it
    is written in place and never removed (a new or renamed file would be a different lock).
    """
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    if fcntl is None:
        yield
        return
    path = root / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 64, 0).decode("ascii", "replace").strip() or "not yet recorded"
            raise RunDirLocked(f"run directory {root} is in use by another toolace-r process (pid {holder}); "
                               "wait for it to finish or stop it, then retry (with --resume to continue it)") \
                from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode("ascii"), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


# --- hashes ----------------------------------------------------------------------------------------

def hash_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def hash_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def hash_obj(obj: Any) -> str:
    if dataclasses.is_dataclass(obj):
        obj = dataclasses.asdict(obj)
    return hash_bytes(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode())


def model_fingerprint(model_dir: str | Path) -> str:
    """A hash of a model folder's weight and config files (what sampling from it depends on)."""
    root = Path(model_dir)
    parts = []
    for path in sorted(root.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".json", ".jinja", ".bin", ".model")):
            parts.append(f"{path.name}:{hash_file(path)}")
    return hash_bytes("\n".join(parts).encode())


# --- stages ----------------------------------------------------------------------------------------

Work = Callable[[Path, dict], "Mapping[str, Any] | None"]


@dataclasses.dataclass(frozen=True)
class Stage:
    """One resumable unit of work in `where` (a folder relative to the run directory).

    config: named values the stage reads (config sections, item lists, a model's fingerprint): plain
        values (str, numbers, None) as they are, anything else hashed with `hash_obj`.
    files: named input files (relative to `where`), hashed by content.
    outputs: the files (or folders) it leaves in `where`; all must exist when `run` returns.
    run(dir, inputs): does the work; returns {output name: content} for the outputs the run directory
        writes (str as text; a list under a .jsonl name as JSON lines; anything else as JSON), or None
        for outputs it wrote itself. `inputs` is the hash dict the marker will hold.
    read(dir): the stage's result, read back from its outputs (None: the stage returns nothing).
    record(result, seconds): fields for the run directory's manifest under `key` (default where/name)
        when the stage ran.
    """

    name: str
    where: str
    outputs: Sequence[str]
    run: Work
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    files: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    read: Callable[[Path], Any] | None = None
    key: str | None = None
    record: Callable[[Any, float], dict] | None = None
    note: str = ""  # said (the run directory's echo) when the stage runs, not when it is skipped


def render(name: str, content: Any) -> str:
    """An output's text: str as is, a list under a .jsonl name as JSON lines, otherwise `write_json`'s."""
    if isinstance(content, str):
        return content
    if name.endswith(".jsonl"):
        return dumps_lines(content)
    return dumps(content, indent=1) + "\n"


class RunDir:
    """A run directory: where stages run, resume and leave their markers; `with` holds its lock."""

    def __init__(self, root: str | Path, manifest: str | None = None, echo: Callable[[str], None] | None = None):
        self.root = Path(root)
        self.manifest_path = self.root / manifest if manifest else None
        self.echo = echo or (lambda line: None)
        self._lock: contextlib.ExitStack | None = None

    def __enter__(self) -> "RunDir":
        stack = contextlib.ExitStack()
        stack.enter_context(run_dir_lock(self.root))
        self._lock = stack
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    # - markers -
    def path(self, stage: Stage) -> Path:
        return self.root / stage.where

    def marker_path(self, where: str, name: str) -> Path:
        return self.root / where / f"{name}.done"

    def marker(self, where: str, name: str) -> dict[str, Any] | None:
        path = self.marker_path(where, name)
        return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None

    def inputs(self, stage: Stage) -> dict[str, Any]:
        d = self.path(stage)
        # Plain values (an iteration number, a hash already taken) are kept as they are, readable.
        out = {k: v if v is None or isinstance(v, (str, int, float, bool)) else hash_obj(v)
               for k, v in stage.config.items()}
        out.update({k: hash_file(d / p) for k, p in stage.files.items()})  # d / an absolute path is that path
        return out

    def done(self, stage: Stage, inputs: dict[str, Any]) -> bool:
        """Finished with these inputs, and every output it recorded is still there."""
        marker = self.marker(stage.where, stage.name)
        if marker is None or marker.get("inputs") != inputs:
            return False
        return all((self.path(stage) / name).exists() for name in marker.get("outputs", {}))

    def finish(self, stage: Stage, inputs: dict[str, Any], seconds: float) -> None:
        """Write the stage's marker: its outputs are complete."""
        d = self.path(stage)
        recorded = {name: (hash_file(d / name) if (d / name).is_file() else "dir") for name in stage.outputs}
        write_json(self.marker_path(stage.where, stage.name),
                   {"inputs": inputs, "outputs": recorded, "seconds": round(seconds, 2)})

    # - running -
    def run(self, stage: Stage) -> Any:
        """Run `stage` unless it is done with its current inputs; its result read back either way."""
        d = self.path(stage)
        d.mkdir(parents=True, exist_ok=True)
        inputs = self.inputs(stage)
        if self.done(stage, inputs):
            return stage.read(d) if stage.read else None
        self.marker_path(stage.where, stage.name).unlink(missing_ok=True)
        if stage.note:
            self.echo(stage.note)
        start = time.perf_counter()
        written = stage.run(d, inputs) or {}
        if written:
            write_files({d / name: render(name, content) for name, content in written.items()})
        missing = [name for name in stage.outputs if not (d / name).exists()]
        if missing:
            raise RuntimeError(f"stage {stage.where}/{stage.name} left no {', '.join(missing)}")
        seconds = time.perf_counter() - start
        self.finish(stage, inputs, seconds)
        result = stage.read(d) if stage.read else None
        if stage.record is not None:
            self.record(stage.key or f"{stage.where}/{stage.name}", **stage.record(result, seconds))
        return result

    # - the manifest: one entry per stage that recorded one -
    def manifest(self) -> dict[str, Any]:
        if self.manifest_path is None or not self.manifest_path.exists():
            return {}
        return json.loads(self.manifest_path.read_text(encoding="utf-8"))

    def record(self, key: str, **fields: Any) -> None:
        if self.manifest_path is None:
            raise ValueError(f"run directory {self.root} keeps no manifest")
        entries = self.manifest()
        entries[key] = fields
        write_json(self.manifest_path, entries)


def read_json(name: str) -> Callable[[Path], Any]:
    """A `Stage.read` that loads one JSON output."""
    return lambda d: json.loads((d / name).read_text(encoding="utf-8"))


# --- the evaluation of a model: the pipeline's arms and the training loop's held-out score -------------

def eval_stage(where: str, examples: Sequence[Any], model_dir: str, rcfg: Any, make_engine: Callable[[], Any],
               engine_inputs: dict[str, Any], run_info: dict[str, Any], benchmark: str = "bfcl", *,
               subdir: str = "", summary_file: str | None = None, tokenizer: bool = False, progress: bool = False,
               note: str = "") -> Stage:
    """The evaluation of one model under one refine config, as a stage (marker where/eval.done).

    `make_engine()` serves `model_dir`; the refine run's files (predictions, traces, metrics.json,
    report.md, rounds.png: `write_refine_outputs`) go to where/subdir. The stage reads back metrics.json's
    refinement block, or with `summary_file` the final answers' accuracy overall and by category, written
    there as JSON. tokenizer: render prompts with model_dir's tokenizer even for an engine that has none.
    """
    from toolace_r.data.select import examples_digest

    def work(d: Path, inputs: dict) -> dict[str, Any] | None:
        from transformers import AutoTokenizer

        from toolace_r.evaluation.multi_turn_loop import is_multi_turn, run_multi_turn
        from toolace_r.evaluation.rounds import write_refine_outputs
        from toolace_r.refine import refine

        tok = AutoTokenizer.from_pretrained(model_dir) if tokenizer else None
        single = [ex for ex in examples if not is_multi_turn(ex)]
        multi = [ex for ex in examples if is_multi_turn(ex)]  # BFCL multi-turn: evaluation/multi_turn_loop.py
        # A fresh engine per run: a prefix cache warmed by another policy would lower this run's cost.
        with make_engine() as engine:
            result = refine(single, engine, rcfg, tokenizer=tok, progress=progress)
            mt = run_multi_turn(multi, engine, rcfg, tokenizer=tok, progress=progress) if multi else None
            precision = engine.precision.as_dict() if engine.precision else None
        report = write_refine_outputs(examples, result, d / subdir, {**run_info, "precision": precision}, benchmark,
                                      multi_turn=mt)
        if summary_file is None:
            return None
        if multi:  # the final answers' verdicts, multi-turn items among them
            scored = report.scored.metrics()
            cats = scored["categories"]
            counts = scored["counts"]
            return {summary_file: {"accuracy": counts["correct"] / counts["scored"] if counts["scored"] else 0.0,
                                   "items": counts["scored"],
                                   "by_category": {c: cats[c]["accuracy"] for c in sorted(cats)}}}
        pooled, cats = report.rounds["all"], report.rounds["categories"]
        return {summary_file: {"accuracy": pooled["final_accuracy"] or 0.0, "items": pooled["examples"],
                               "by_category": {c: cats[c]["final_accuracy"] for c in sorted(cats)}}}

    outputs = [str(Path(subdir) / name) for name in ("metrics.json", "traces.jsonl", "predictions.jsonl")]
    metrics = Path(subdir) / "metrics.json"
    read = read_json(summary_file) if summary_file else \
        (lambda d: json.loads((d / metrics).read_text(encoding="utf-8"))["refinement"])
    config = {"model": model_fingerprint(model_dir), "examples": examples_digest(examples), "refine": rcfg.to_dict(),
              **engine_inputs}
    return Stage("eval", where, outputs + ([summary_file] if summary_file else []), work, config=config, read=read,
                 note=note)


def grid_stage(where: str, examples: Sequence[Any], model_dir: str, configs: Mapping[str, Any],
               make_engine: Callable[[], Any], engine_inputs: dict[str, Any], run_info: dict[str, Any],
               benchmark: str = "bfcl", *, tokenizer: bool = False, progress: bool = False, note: str = "") -> Stage:
    """The evaluation of one model under several refine configs from one shared run (`refine_grid`,
    docs/method.md#grid), as one stage (marker where/grid.done).

    `configs` maps policy names to RefineConfigs; each policy's files (those `eval_stage` writes: predictions,
    traces, metrics.json, report.md, rounds.png) go to where/<policy slug> (":" -> "_"), and where/grid.json
    says what the shared run was (policies, its wall seconds, the engine's precision). One fresh engine serves
    every policy: the grid gives each its own fork of the prefix cache, so each one's tokens are those of a
    run alone. Single-turn items only (BFCL's multi-turn items run through `eval_stage`). The stage reads
    back {"policies": {policy: metrics.json's refinement block}, "grid": grid.json}.
    """
    from toolace_r.data.select import examples_digest
    from toolace_r.evaluation.multi_turn_loop import is_multi_turn

    multi = [ex for ex in examples if is_multi_turn(ex)]
    if multi:
        raise ValueError(f"grid_stage scores single-turn items only; {len(multi)} multi-turn item(s) "
                         f"(e.g. {getattr(multi[0], 'id', '?')}) need eval_stage, one policy at a time")
    slugs = {policy: policy.replace(":", "_") for policy in configs}
    if len(set(slugs.values())) != len(slugs):
        raise ValueError(f"grid_stage: two policies share a directory name: {sorted(configs)}")

    def work(d: Path, inputs: dict) -> dict[str, Any]:
        from transformers import AutoTokenizer

        from toolace_r.evaluation.rounds import write_refine_outputs
        from toolace_r.refine.grid import refine_grid

        tok = AutoTokenizer.from_pretrained(model_dir) if tokenizer else None
        with make_engine() as engine:  # fresh: nothing cached from another model or run
            results = refine_grid(examples, engine, configs, tokenizer=tok, progress=progress)
            precision = engine.precision.as_dict() if engine.precision else None
        for policy, result in results.items():
            write_refine_outputs(examples, result, d / slugs[policy],
                                 {**run_info, "policy": policy, "precision": precision,
                                  "shared_run": "grid.json"}, benchmark)
        return {"grid.json": {"policies": list(configs), "directories": slugs, "items": len(examples),
                              "seconds": round(results.seconds, 3), "round0_seconds": round(results.round0_seconds, 3),
                              "precision": precision}}

    outputs = [str(Path(slug) / name) for slug in slugs.values()
               for name in ("metrics.json", "traces.jsonl", "predictions.jsonl")] + ["grid.json"]

    def read(d: Path) -> dict[str, Any]:
        return {"policies": {policy: json.loads((d / slug / "metrics.json").read_text(encoding="utf-8"))["refinement"]
                             for policy, slug in slugs.items()},
                "grid": json.loads((d / "grid.json").read_text(encoding="utf-8"))}

    config = {"model": model_fingerprint(model_dir), "examples": examples_digest(examples),
              "refine": {policy: cfg.to_dict() for policy, cfg in configs.items()}, **engine_inputs}
    return Stage("grid", where, outputs, work, config=config, read=read, note=note)
