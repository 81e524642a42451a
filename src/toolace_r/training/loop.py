"""The iterative training loop, one directory per iteration, resumable phase by phase.

    iter_N/  samples.jsonl (sample) -> selection.json (select) -> corpus.jsonl (corpus)
             -> model/ + train.json (train) -> eval.json (eval, optional) -> metrics.json

Each phase writes its outputs atomically, then `<phase>.done` holding the hashes of its inputs (config
sections, upstream files, the model it read) and of its outputs. A phase counts as finished only when its
marker's input hashes equal the current ones, so `--resume` after a crash or kill skips finished phases,
redoes an unfinished one from scratch (training continues from its last complete trainer checkpoint), and
redoes whatever a changed config section feeds. The run stops when an iteration's selection gains no more
than `loop.min_growth` new items (from iteration 1 on; an iteration that trains on the warm-up never stops
the run) or after `loop.max_iterations`. One process at a time works in a run directory (`run_dir_lock`),
and the children of a phase die with the process that started them (training/launch.py).
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

try:
    import fcntl
except ImportError:  # not POSIX: runs go unlocked
    fcntl = None  # type: ignore[assignment]

from toolace_r.config import save_config
from toolace_r.files import write_json

from . import corpus as corpus_mod
from . import difficulty, launch, selection
from .config import TrainConfig

PHASES = ("sample", "select", "corpus", "train", "eval")
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


# --- hashing and markers ---------------------------------------------------------------------------

def _hash_bytes(data: bytes) -> str:
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
    return _hash_bytes(json.dumps(obj, sort_keys=True, ensure_ascii=False, default=str).encode())


def model_fingerprint(model_dir: str | Path) -> str:
    """A hash of a model folder's weight and config files (what sampling from it depends on)."""
    root = Path(model_dir)
    parts = []
    for path in sorted(root.iterdir()):
        if path.is_file() and (path.suffix in (".safetensors", ".json", ".jinja", ".bin", ".model")):
            parts.append(f"{path.name}:{hash_file(path)}")
    return _hash_bytes("\n".join(parts).encode())


def _marker(d: Path, phase: str) -> Path:
    return d / f"{phase}.done"


def phase_done(d: Path, phase: str, inputs: dict[str, Any]) -> bool:
    """Finished with these inputs, and every output it recorded is still there."""
    path = _marker(d, phase)
    if not path.exists():
        return False
    marker = json.loads(path.read_text(encoding="utf-8"))
    if marker.get("inputs") != inputs:
        return False
    return all((d / name).exists() for name in marker.get("outputs", {}))


_STARTED: dict[tuple[str, str], float] = {}  # (dir, phase) -> when the phase started, for its wall time


def finish_phase(d: Path, phase: str, inputs: dict[str, Any], outputs: list[str]) -> None:
    recorded = {name: (hash_file(d / name) if (d / name).is_file() else "dir") for name in outputs}
    marker = {"inputs": inputs, "outputs": recorded}
    started = _STARTED.pop((str(d), phase), None)
    if started is not None:
        marker["seconds"] = round(time.perf_counter() - started, 2)
    write_json(_marker(d, phase), marker)


def clear_marker(d: Path, phase: str) -> None:
    """A phase about to run drops its own marker first, so a kill mid-phase leaves it unfinished.

    Later phases keep theirs: each one's inputs hold the hashes of the files it read, so they rerun
    only if this phase's outputs come out different.
    """
    _marker(d, phase).unlink(missing_ok=True)
    _STARTED[(str(d), phase)] = time.perf_counter()


def train_resumable(model_dir: str, rows: list, d: Path, sft_cfg: Any, inputs: dict[str, Any],
                    progress: bool) -> dict[str, Any]:
    """Fine-tune on d/corpus.jsonl's `rows` into d/model (in process, or a child: accelerate launch).

    A restart continues from the trainer's last checkpoint only if it trained on these same `inputs`.
    """
    same = (d / "train.inputs.json").exists() and json.loads((d / "train.inputs.json").read_text()) == inputs
    if not same and (d / "checkpoints").exists():
        shutil.rmtree(d / "checkpoints")  # checkpoints of other inputs must not be resumed
    write_json(d / "train.inputs.json", inputs, indent=None)
    result = launch.train(model_dir, rows, d / "corpus.jsonl", d, sft_cfg, resume=same, progress=progress)
    result["model_dir"] = str(d / "model")
    return result


# --- data ------------------------------------------------------------------------------------------

def load_items(source: str, limit: int | None, no_call_text: str, data_dir: str | None,
               max_prompt_tokens: int | None = None, tokenizer: Any = None,
               prompt_cfg: Any = None) -> tuple[list, dict, int]:
    """Trainable examples (round-robin over categories up to `limit`), their gold targets, and how many
    were skipped: no single right answer (any_call, unscored), or, with `max_prompt_tokens`, a prompt
    longer than that under `tokenizer` (what keeps a CPU run's cost bounded)."""
    from toolace_r.data import load

    if max_prompt_tokens is not None and tokenizer is None:
        raise ValueError("data.max_prompt_tokens needs the model's tokenizer")
    options = {"data_dir": data_dir} if data_dir else {}
    examples = load(source, skip_invalid=True, **options)
    kept, targets, skipped = [], {}, 0
    for ex in examples:
        target = difficulty.gold_target(ex, no_call_text)
        if target is None or (max_prompt_tokens is not None and
                              _prompt_tokens(tokenizer, ex, prompt_cfg) > max_prompt_tokens):
            skipped += 1
            continue
        kept.append(ex)
        targets[ex.id] = target
    if limit is not None and len(kept) > limit:
        kept = _round_robin(kept, limit)
        targets = {ex.id: targets[ex.id] for ex in kept}
    return kept, targets, skipped


def training_items(cfg: TrainConfig) -> tuple[list, dict, int]:
    """The training pool of `cfg` (data.train, train_limit, max_prompt_tokens), as `load_items` returns it.
    Every process that needs the pool (sampling workers, the pipeline's control arm) goes through here."""
    d = cfg.data
    length: dict[str, Any] = {}
    if d.max_prompt_tokens is not None:
        from transformers import AutoTokenizer

        from toolace_r.models import local_model_dir

        length = {"max_prompt_tokens": d.max_prompt_tokens, "prompt_cfg": cfg.prompt,
                  "tokenizer": AutoTokenizer.from_pretrained(local_model_dir(cfg.model))}
    return load_items(d.train, d.train_limit, d.no_call_text, d.data_dir, **length)


def _prompt_tokens(tokenizer: Any, example: Any, prompt_cfg: Any) -> int:
    from toolace_r.prompts import render_example

    return len(tokenizer(render_example(tokenizer, example, cfg=prompt_cfg), add_special_tokens=False)["input_ids"])


def _round_robin(examples: list, limit: int) -> list:
    by_cat: dict[str, list] = {}
    for ex in examples:
        by_cat.setdefault(ex.category, []).append(ex)
    queues = list(by_cat.values())
    out: list = []
    i = 0
    while len(out) < limit:
        q = queues[i % len(queues)]
        if q:
            out.append(q.pop(0))
        i += 1
    return out


# --- the loop --------------------------------------------------------------------------------------

class TrainingRun:
    """One run directory. `run()` executes (or resumes) the iterations and returns the summary."""

    def __init__(self, cfg: TrainConfig, output_dir: str | Path | None = None, resume: bool = False,
                 engine_factory: difficulty.EngineFactory | None = None,
                 echo: Callable[[str], None] | None = None):
        self.cfg = cfg
        self.root = Path(output_dir or cfg.output_dir)
        self.resume = resume
        self.engine_factory = engine_factory or difficulty.default_engine_factory
        self.echo = echo or (lambda line: print(line, file=sys.stderr))
        self.progress = cfg.loop.progress

    # - setup -
    def _prepare(self) -> None:
        cfg = self.cfg
        if (self.root / "config.yaml").exists() and not self.resume:
            raise ValueError(f"{self.root} already holds a run; pass --resume to continue it "
                             "or choose another --output-dir")
        self.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.root / "config.yaml")
        from toolace_r.models import local_model_dir

        self.base_model = local_model_dir(cfg.model)
        self.examples, self.targets, skipped = training_items(cfg)
        if not self.examples:
            raise ValueError(f"data.train {cfg.data.train!r}: no trainable examples")
        self.by_id = {ex.id: ex for ex in self.examples}
        self.items_hash = hash_obj([[ex.id, self.targets[ex.id]] for ex in self.examples])
        self.eval_examples = []
        if cfg.data.eval:
            self.eval_examples, _, _ = load_items(cfg.data.eval, cfg.data.eval_limit, cfg.data.no_call_text,
                                                  cfg.data.data_dir)
        self.echo(f"train items: {len(self.examples)} ({skipped} skipped: no single right answer or prompt "
                  f"too long); eval items: {len(self.eval_examples)}; run dir: {self.root}")
        self.manifest = {
            "model": {"source": cfg.model, "path": self.base_model},
            "data": {"train": cfg.data.train, "items": len(self.examples), "skipped_untrainable": skipped,
                     "items_hash": self.items_hash, "eval": cfg.data.eval, "eval_items": len(self.eval_examples)},
            "iterations": [],
        }

    def run(self) -> dict[str, Any]:
        with run_dir_lock(self.root):
            return self._run()

    def _run(self) -> dict[str, Any]:
        self._prepare()
        iterations: list[dict[str, Any]] = []
        model_dir, prev_sel = self.base_model, None
        stop_reason = "max_iterations"
        base_eval = self._eval_phase(self.root / "base", self.base_model) if self.eval_examples and \
            self.cfg.loop.eval_base else None
        if base_eval is not None:
            self.echo(f"base model held-out accuracy: {base_eval:.3f}")
        for it in range(self.cfg.loop.max_iterations):
            metrics, model_dir, prev_sel, stop = self._iteration(it, model_dir, prev_sel)
            iterations.append(metrics)
            self.echo(format_metrics(metrics))
            if stop:
                stop_reason = stop
                break
        summary = {"base_eval": base_eval, "iterations": iterations, "stop_reason": stop_reason,
                   "final_model": str(model_dir),
                   "final_selection": prev_sel["selected"] if prev_sel else []}
        write_json(self.root / "summary.json", summary)
        write_json(self.root / "manifest.json", self.manifest)
        try:
            plot_summary(summary, self.root / "summary.png")
        except Exception as exc:  # a figure is a convenience; the JSON above is the record
            self.echo(f"could not draw summary.png: {exc}")
        self.echo(f"stopped: {stop_reason}; final model: {model_dir}")
        return summary

    def _iteration(self, it: int, model_in: str, prev_sel: dict | None):
        cfg, d = self.cfg, self.root / f"iter_{it}"
        d.mkdir(parents=True, exist_ok=True)
        model_hash = model_fingerprint(model_in)

        # sample: k answers per item from the current model, scored; optional gold NLL
        inputs = {"iteration": it, "model": model_hash, "sampling": hash_obj(cfg.sampling),
                  "prompt": hash_obj(cfg.prompt), "items": self.items_hash}
        if not phase_done(d, "sample", inputs):
            clear_marker(d, "sample")
            self.echo(f"[iter {it}] sampling k={cfg.sampling.k} answers for {len(self.examples)} items")
            records = launch.sample(self, model_in, it, d)  # in process, or sharded over child processes
            difficulty.write_samples(d / "samples.jsonl", records)
            finish_phase(d, "sample", inputs, ["samples.jsonl"])
        records = difficulty.read_samples(d / "samples.jsonl")

        # select
        inputs = {"samples": hash_file(d / "samples.jsonl"), "selection": hash_obj(cfg.selection),
                  "previous": hash_obj(prev_sel) if prev_sel else None, "iteration": it}
        if not phase_done(d, "select", inputs):
            clear_marker(d, "select")
            ever = set(prev_sel["ever_solved"]) if prev_sel else set()
            sel = selection.select(records, cfg.selection, ever,
                                   prev_sel["selected"] if prev_sel else None, it)
            write_json(d / "selection.json", sel)
            finish_phase(d, "select", inputs, ["selection.json"])
        sel = json.loads((d / "selection.json").read_text(encoding="utf-8"))
        metrics = {"iteration": it, "model_in": str(model_in), "items": len(records),
                   "solve_rate_hist": difficulty.solve_rate_histogram(records, cfg.sampling.k),
                   "mean_solve_rate": sum(r["solve_rate"] for r in records) / max(1, len(records)),
                   "selected": len(sel["selected"]), "growth": sel["growth"], "warmup": len(sel["warmup"]),
                   "train_items": len(sel["train_ids"]), "train_by_group": sel["train_by_group"]}
        if it > 0 and not sel["warmup"] and sel["growth"] <= cfg.loop.min_growth:
            metrics["stopped"] = f"selection grew by {sel['growth']} <= min_growth {cfg.loop.min_growth}"
            self._finish_iteration(d, it, metrics)
            return metrics, model_in, sel, "selection_stopped_growing"

        # corpus
        inputs = {"selection": hash_file(d / "selection.json"), "samples": hash_file(d / "samples.jsonl"),
                  "corpus": hash_obj(cfg.corpus), "prompt": hash_obj(cfg.prompt), "items": self.items_hash}
        if not phase_done(d, "corpus", inputs):
            clear_marker(d, "corpus")
            rows = corpus_mod.build_corpus(self.by_id, {r["id"]: r for r in records}, sel["train_ids"],
                                           self.targets, self._tokenizer(model_in), cfg.corpus, cfg.prompt)
            corpus_mod.write_corpus(d / "corpus.jsonl", rows)
            finish_phase(d, "corpus", inputs, ["corpus.jsonl"])
        rows = corpus_mod.read_corpus(d / "corpus.jsonl")
        metrics["corpus"] = corpus_mod.corpus_counts(rows)

        # train
        inputs = {"corpus": hash_file(d / "corpus.jsonl"), "sft": hash_obj(cfg.sft), "model": model_hash}
        if not phase_done(d, "train", inputs):
            clear_marker(d, "train")
            if rows:
                self.echo(f"[iter {it}] training on {len(rows)} examples ({metrics['corpus']})")
                result = train_resumable(model_in, rows, d, cfg.sft, inputs, self.progress)
            else:
                result = {"train_loss": None, "losses": [], "steps": 0, "examples": 0, "model_dir": str(model_in),
                          "note": "empty corpus: the model is unchanged"}
            write_json(d / "train.json", result)
            finish_phase(d, "train", inputs, ["train.json"] + (["model"] if rows else []))
        train = json.loads((d / "train.json").read_text(encoding="utf-8"))
        metrics.update(train_loss=train["train_loss"], train_steps=train["steps"])
        model_out = train["model_dir"]

        # eval (optional): greedy accuracy on the held-out set
        if self.eval_examples:
            metrics["eval"] = self._eval_phase(d, model_out)
        self._finish_iteration(d, it, metrics)
        return metrics, model_out, sel, None

    def _eval_phase(self, d: Path, model_dir: str) -> float:
        """Greedy held-out accuracy of `model_dir`, written to d/eval.json (skipped when done)."""
        cfg = self.cfg
        d.mkdir(parents=True, exist_ok=True)
        inputs = {"model": model_fingerprint(model_dir), "data": hash_obj([e.id for e in self.eval_examples]),
                  "sampling": hash_obj(cfg.sampling), "prompt": hash_obj(cfg.prompt)}
        if not phase_done(d, "eval", inputs):
            clear_marker(d, "eval")
            self.echo(f"[{d.name}] evaluating on {len(self.eval_examples)} held-out items")
            write_json(d / "eval.json", self._evaluate(model_dir))
            finish_phase(d, "eval", inputs, ["eval.json"])
        return json.loads((d / "eval.json").read_text(encoding="utf-8"))["accuracy"]

    def _finish_iteration(self, d: Path, it: int, metrics: dict[str, Any]) -> None:
        write_json(d / "metrics.json", metrics)
        phases = {}
        for phase in PHASES:
            if _marker(d, phase).exists():
                phases[phase] = json.loads(_marker(d, phase).read_text(encoding="utf-8"))
        self.manifest["iterations"].append({"iteration": it, "dir": d.name, "phases": phases})

    # - work of the phases -
    def _tokenizer(self, model_dir: str):
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(model_dir)

    def _sample(self, model_dir: str, it: int) -> list[dict[str, Any]]:
        cfg = self.cfg
        tokenizer = self._tokenizer(model_dir)
        engine = self.engine_factory(model_dir, cfg.sampling)
        try:
            seed = cfg.sampling.seed + 1_000_003 * it  # each iteration draws fresh samples
            records = difficulty.sample_and_score(engine, tokenizer, self.examples, cfg.sampling, cfg.prompt,
                                                  seed=seed, progress=self.progress)
            if cfg.sampling.gold_nll:
                model = getattr(engine, "model", None)
                if model is None or not hasattr(model, "parameters"):
                    from toolace_r.models import load_model

                    # vLLM (or a server) sampled: free its memory before loading the weights here, in
                    # bf16 on a GPU ("auto"): fp32 would double the memory and run far slower.
                    engine.close()
                    model, _ = load_model(model_dir, dtype="auto", device="auto")
                nlls = difficulty.gold_nll(model, tokenizer, self.examples,
                                           [self.targets[ex.id] for ex in self.examples], cfg.prompt,
                                           batch_size=cfg.sampling.nll_batch_size, progress=self.progress)
                for r, v in zip(records, nlls):
                    r["gold_nll"] = v
        finally:
            engine.close()
        return records

    def _evaluate(self, model_dir: str) -> dict[str, Any]:
        from toolace_r.engines import GenerationRequest, SamplingParams
        from toolace_r.evaluation import check
        from toolace_r.prompts import render_example

        cfg = self.cfg
        tokenizer = self._tokenizer(model_dir)
        engine = self.engine_factory(model_dir, cfg.sampling)
        try:
            params = SamplingParams(n=1, temperature=0.0, max_new_tokens=cfg.sampling.eval_max_new_tokens)
            requests = [GenerationRequest(prompt=render_example(tokenizer, ex, cfg=cfg.prompt), params=params)
                        for ex in self.eval_examples]
            results = engine.generate(requests, progress=self.progress)
        finally:
            engine.close()
        right: Counter = Counter()
        total: Counter = Counter()
        for ex, res in zip(self.eval_examples, results):
            total[ex.category] += 1
            right[ex.category] += bool(check(ex, res.texts[0]).valid)
        n = sum(total.values())
        return {"accuracy": sum(right.values()) / n if n else 0.0, "items": n,
                "by_category": {c: right[c] / total[c] for c in sorted(total)}}


def run_training(cfg: TrainConfig, output_dir: str | Path | None = None, resume: bool = False,
                 engine_factory: difficulty.EngineFactory | None = None,
                 echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or with `resume`, continue) the iterative training described by `cfg`; returns the summary."""
    return TrainingRun(cfg, output_dir, resume, engine_factory, echo).run()


def format_metrics(m: dict[str, Any]) -> str:
    """One iteration's summary as a few readable lines."""
    lines = [f"iteration {m['iteration']}: items {m['items']}, mean solve rate {m['mean_solve_rate']:.3f}, "
             f"selected {m['selected']} (+{m['growth']}), warm-up {m['warmup']}, trained on {m['train_items']}"]
    lines.append(f"  solve-rate histogram: {m['solve_rate_hist']}")
    lines.append(f"  train items by group: {m['train_by_group']}")
    if "corpus" in m:
        loss = m.get("train_loss")
        lines.append(f"  corpus {m['corpus']}, steps {m.get('train_steps')}, "
                     f"loss {'-' if loss is None else f'{loss:.4f}'}")
    if "eval" in m:
        lines.append(f"  held-out accuracy: {m['eval']:.3f}")
    if "stopped" in m:
        lines.append(f"  stop: {m['stopped']}")
    return "\n".join(lines)


def plot_summary(summary: dict[str, Any], path: str | Path) -> None:
    """Per-iteration figures as one PNG: selection size, mean solve rate, training loss, held-out accuracy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = summary["iterations"]
    x = [m["iteration"] for m in its]
    panels = [("selected items", [m["selected"] for m in its]),
              ("mean solve rate", [m["mean_solve_rate"] for m in its]),
              ("training loss", [m.get("train_loss") for m in its]),
              ("held-out accuracy", [m.get("eval") for m in its])]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (title, ys) in zip(axes, panels):
        points = [(a, b) for a, b in zip(x, ys) if b is not None]
        if points:
            ax.plot(*zip(*points), marker="o")
        ax.set_title(title)
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
