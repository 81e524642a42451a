"""The iterative training loop, one directory per iteration, resumable phase by phase.

    iter_N/  samples.jsonl (sample) -> selection.json (select) -> corpus.jsonl (corpus)
             -> model/ + train.json (train) -> validation.json + validation/ (validate, optional)
             -> eval.json + eval/ (eval, optional) -> metrics.json

Every phase is a `toolace_r.stages.Stage` of the run directory: it reruns only when the hashes of what it
reads (config sections, upstream files, the model) changed or it never finished, so `--resume` after a
crash or kill skips finished phases, redoes an unfinished one from scratch (training continues from its
last complete trainer checkpoint), and redoes whatever a changed config section feeds. The run stops when
an iteration's selection gains no more than `loop.min_growth` new items (from iteration 1 on; an iteration
that trains on the warm-up never stops the run) or after `loop.max_iterations` (docs/method.md#stopping).
The children of a phase die with the process that started them (training/launch.py).
With `data.validation_limit`, every iteration that trained is scored on a validation slice of the
training source that the pool never holds, and summary.json's `best_iteration` is the one with the
highest validation accuracy (the earlier on a tie); without one, the last that trained
(docs/method.md#validation). The held-out `data.eval` score is only reported, never used to choose.
"""
from __future__ import annotations

import dataclasses
import functools
import json
import shutil
import sys
from pathlib import Path
from typing import Any, Callable, Mapping

from toolace_r.config import save_config
from toolace_r.files import write_json
from toolace_r.stages import RunDir, Stage, eval_stage, hash_obj, model_fingerprint, read_json

from . import corpus as corpus_mod
from . import difficulty, launch, selection
from .config import TrainConfig, require_train_source
from .items import load_items, training_split
from .summary import format_metrics, plot_summary

PHASES = ("sample", "select", "corpus", "train", "validate", "eval")


def train_stage(where: str, model_dir: str, rows: list, sft_cfg: Any, config: Mapping[str, Any], progress: bool,
                note: str = "", prompt_cfg: Any = None) -> Stage:
    """Fine-tune `model_dir` on where/corpus.jsonl (its `rows`) into where/model; train.json is the result.

    A restart continues from the trainer's last checkpoint only if it trained on these same inputs
    (docs/method.md#sft). An empty corpus trains nothing: the model is unchanged. The model folder gets
    the chat template of the prompt `prompt_cfg` trained with (servable.py), so it serves as it learned.
    """
    def work(d: Path, inputs: dict) -> dict[str, Any]:
        if not rows:
            return {"train.json": {"train_loss": None, "losses": [], "steps": 0, "examples": 0,
                                   "model_dir": str(model_dir), "note": "empty corpus: the model is unchanged"}}
        same = (d / "train.inputs.json").exists() and json.loads((d / "train.inputs.json").read_text()) == inputs
        if not same and (d / "checkpoints").exists():
            shutil.rmtree(d / "checkpoints")  # checkpoints of other inputs must not be resumed
        write_json(d / "train.inputs.json", inputs, indent=None)
        result = launch.train(model_dir, rows, d / "corpus.jsonl", d, sft_cfg, resume=same, progress=progress)
        from transformers import AutoTokenizer

        from toolace_r.servable import write_chat_template

        write_chat_template(d / "model", AutoTokenizer.from_pretrained(model_dir), prompt_cfg)
        return {"train.json": {**result, "model_dir": str(d / "model")}}

    return Stage("train", where, ["train.json"] + (["model"] if rows else []), work,
                 config={**config, "sft": sft_cfg}, files={"corpus": "corpus.jsonl"}, read=read_json("train.json"),
                 note=note if rows else "")


def sample_records(cfg: TrainConfig, examples: list, *, model_dir: str, it: int, targets: dict,
                   engine_factory: difficulty.EngineFactory, progress: bool) -> list[dict[str, Any]]:
    """The sample phase's work on `examples`: k scored answers each from `model_dir`, and the gold NLL.
    It runs in the orchestrator or in a sampling child (training/launch.py, training/worker.py)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    engine = engine_factory(model_dir, cfg.sampling)
    try:
        seed = cfg.sampling.seed + 1_000_003 * it  # each iteration draws fresh samples
        if cfg.sampling.gold_nll and callable(getattr(engine, "score", None)):
            # the hf engine scores the gold answers and samples from the same cached prompt KV
            return difficulty.sample_and_nll(engine, tokenizer, examples, [targets[ex.id] for ex in examples],
                                             cfg.sampling, cfg.prompt, seed=seed, progress=progress)
        records = difficulty.sample_and_score(engine, tokenizer, examples, cfg.sampling, cfg.prompt,
                                              seed=seed, progress=progress)
        if cfg.sampling.gold_nll:
            model = getattr(engine, "model", None)
            if model is None or not hasattr(model, "parameters"):
                from toolace_r.models import load_model

                # vLLM (or a server) sampled: free its memory before loading the weights here, in
                # bf16 on a GPU ("auto"): fp32 would double the memory and run far slower.
                engine.close()
                model, _ = load_model(model_dir, dtype="auto", device="auto")
            nlls = difficulty.gold_nll(model, tokenizer, examples, [targets[ex.id] for ex in examples], cfg.prompt,
                                       batch_size=cfg.sampling.nll_batch_size, progress=progress)
            for r, v in zip(records, nlls):
                r["gold_nll"] = v
    finally:
        engine.close()
    return records


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
        self.dir = RunDir(self.root, echo=self.echo)

    def _prepare(self) -> None:
        cfg = self.cfg
        if (self.root / "config.yaml").exists() and not self.resume:
            raise ValueError(f"{self.root} already holds a run; pass --resume to continue it "
                             "or choose another --output-dir")
        save_config(cfg, self.root / "config.yaml")
        from toolace_r.models import local_model_dir

        self.base_model = local_model_dir(cfg.model)
        split = training_split(cfg)
        self.examples, self.targets, skipped = split.pool, split.targets, split.skipped
        self.validation = split.validation  # never trained on: not in the pool (training/items.py)
        if not self.examples:
            raise ValueError(f"data.train {cfg.data.train!r}: no trainable examples")
        self.by_id = {ex.id: ex for ex in self.examples}
        self.items_hash = hash_obj([[ex.id, self.targets[ex.id]] for ex in self.examples])
        self.eval_examples = []
        if cfg.data.eval:
            self.eval_examples, _, _ = load_items(cfg.data.eval, cfg.data.eval_limit, cfg.data.no_call_text,
                                                  cfg.data.data_dir)
        self.echo(f"train items: {len(self.examples)} ({skipped} skipped: no single right answer or prompt "
                  f"too long); validation items: {len(self.validation)}; eval items: {len(self.eval_examples)}; "
                  f"run dir: {self.root}")
        self.manifest = {
            "model": {"source": cfg.model, "path": self.base_model},
            "data": {"train": cfg.data.train, "items": len(self.examples), "skipped_untrainable": skipped,
                     "items_hash": self.items_hash, "validation_items": len(self.validation),
                     "validation_ids": [ex.id for ex in self.validation],
                     "eval": cfg.data.eval, "eval_items": len(self.eval_examples)},
            "iterations": [],
        }

    def run(self) -> dict[str, Any]:
        if not self.root.exists():
            require_train_source(self.cfg.data)  # a config mistake leaves no empty run directory behind
        with self.dir:  # a busy directory is reported before anything about the config
            require_train_source(self.cfg.data)  # before the model is touched
            self._prepare()
            iterations: list[dict[str, Any]] = []
            model_dir, prev_sel = self.base_model, None
            stop_reason = "max_iterations"
            base_eval = self._eval("base", self.base_model)["accuracy"] \
                if self.eval_examples and self.cfg.loop.eval_base else None
            if base_eval is not None:
                self.echo(f"base model held-out accuracy: {base_eval:.3f}")
            base_validation = self._validate("base", self.base_model) \
                if self.validation and self.cfg.loop.validate_base else None
            if base_validation is not None:
                self.echo(f"base model validation accuracy: {base_validation['accuracy']:.3f}")
            for it in range(self.cfg.loop.max_iterations):
                metrics, model_dir, prev_sel, stop = self._iteration(it, model_dir, prev_sel)
                iterations.append(metrics)
                self.echo(format_metrics(metrics))
                if stop:
                    stop_reason = stop
                    break
            best = best_iteration(iterations)
            summary = {"base_eval": base_eval, "iterations": iterations, "stop_reason": stop_reason,
                       "final_model": str(model_dir), "final_selection": prev_sel["selected"] if prev_sel else [],
                       **best, "best_model": str(self.root / f"iter_{best['best_iteration']}" / "model")
                       if best["best_iteration"] is not None else None}
            if base_validation is not None:
                summary["base_validation"] = base_validation
            write_json(self.root / "summary.json", summary)
            write_json(self.root / "manifest.json", self.manifest)
            from toolace_r.servable import write_run_cards

            write_run_cards(self.root, self.cfg, summary, self.base_model, len(self.eval_examples) or None)
            try:
                plot_summary(summary, self.root / "summary.png")
            except Exception as exc:  # a figure is a convenience; the JSON above is the record
                self.echo(f"could not draw summary.png: {exc}")
            self.echo(f"stopped: {stop_reason}; final model: {model_dir}; best iteration: "
                      f"{best['best_iteration']} (by {best['best_by']})")
            return summary

    def _iteration(self, it: int, model_in: str, prev_sel: dict | None):
        cfg, where = self.cfg, f"iter_{it}"
        model_hash = model_fingerprint(model_in)
        # sample: k answers per item from the current model, scored; optional gold NLL (docs/method.md#difficulty)
        work = functools.partial(sample_records, model_dir=model_in, it=it, targets=self.targets,
                                 engine_factory=self.engine_factory, progress=self.progress)
        custom_engine = self.engine_factory is not difficulty.default_engine_factory
        records = self.dir.run(Stage(
            "sample", where, ["samples.jsonl"],
            lambda d, _: {"samples.jsonl": launch.sample(work, cfg, self.examples, self.items_hash, model_in, it, d,
                                                         self.progress, custom_engine)},
            config={"iteration": it, "model": model_hash, "sampling": cfg.sampling, "prompt": cfg.prompt,
                    "items": self.items_hash},
            read=lambda d: difficulty.read_samples(d / "samples.jsonl"),
            note=f"[iter {it}] sampling k={cfg.sampling.k} answers for {len(self.examples)} items"))

        # select (docs/method.md#selection)
        def select(d: Path, _: dict) -> dict[str, Any]:
            ever = set(prev_sel["ever_solved"]) if prev_sel else set()
            return {"selection.json": selection.select(records, cfg.selection, ever,
                                                       prev_sel["selected"] if prev_sel else None, it)}

        sel = self.dir.run(Stage("select", where, ["selection.json"], select,
                                 config={"selection": cfg.selection, "previous": prev_sel, "iteration": it},
                                 files={"samples": "samples.jsonl"}, read=read_json("selection.json")))
        metrics = {"iteration": it, "model_in": str(model_in), "items": len(records),
                   "solve_rate_hist": difficulty.solve_rate_histogram(records, cfg.sampling.k),
                   "mean_solve_rate": sum(r["solve_rate"] for r in records) / max(1, len(records)),
                   "selected": len(sel["selected"]), "growth": sel["growth"], "warmup": len(sel["warmup"]),
                   "train_items": len(sel["train_ids"]), "train_by_group": sel["train_by_group"]}
        if it > 0 and not sel["warmup"] and sel["growth"] <= cfg.loop.min_growth:
            metrics["stopped"] = f"selection grew by {sel['growth']} <= min_growth {cfg.loop.min_growth}"
            self._finish_iteration(where, it, metrics)
            return metrics, model_in, sel, "selection_stopped_growing"

        # corpus (docs/method.md#corpus)
        def corpus(d: Path, _: dict) -> dict[str, Any]:
            from transformers import AutoTokenizer

            return {"corpus.jsonl": corpus_mod.build_corpus(
                self.by_id, {r["id"]: r for r in records}, sel["train_ids"], self.targets,
                AutoTokenizer.from_pretrained(model_in), cfg.corpus, cfg.prompt)}

        rows = self.dir.run(Stage("corpus", where, ["corpus.jsonl"], corpus,
                                  config={"corpus": cfg.corpus, "prompt": cfg.prompt, "items": self.items_hash},
                                  files={"selection": "selection.json", "samples": "samples.jsonl"},
                                  read=lambda d: corpus_mod.read_corpus(d / "corpus.jsonl")))
        metrics["corpus"] = corpus_mod.corpus_counts(rows)

        # train (docs/method.md#sft)
        train = self.dir.run(train_stage(where, model_in, rows, cfg.sft, {"model": model_hash}, self.progress,
                                         f"[iter {it}] training on {len(rows)} examples ({metrics['corpus']})",
                                         prompt_cfg=cfg.prompt))
        metrics.update(train_loss=train["train_loss"], train_steps=train["steps"])
        model_out = train["model_dir"]

        # validate (optional): greedy accuracy on the validation slice, which chooses the best iteration
        if self.validation and train["steps"]:
            metrics["validation"] = self._validate(where, model_out)
        # eval (optional): greedy accuracy on the held-out set
        if self.eval_examples:
            metrics["eval"] = self._eval(where, model_out)["accuracy"]
        self._finish_iteration(where, it, metrics)
        return metrics, model_out, sel, None

    def _validate(self, where: str, model_dir: str) -> dict[str, Any]:
        """Greedy single-pass accuracy of `model_dir` on the validation slice (where/validation.json,
        where/validation/), overall and by category: the `validate` phase."""
        return self._eval(where, model_dir, self.validation, "validate", "validation",
                          f"[{where}] validating on {len(self.validation)} items of the training source")

    def _eval(self, where: str, model_dir: str, examples: list | None = None, name: str = "eval",
              subdir: str = "eval", note: str = "") -> dict[str, Any]:
        """Greedy single-pass accuracy of `model_dir` on `examples` (default: the held-out set) as
        where/<subdir>.json ({accuracy, items, by_category}) and where/<subdir>/: the pipeline's evaluation
        of an arm (`eval_stage`) as the stage `name`, with the loop's engine and the `eval` section."""
        from toolace_r.refine import RefineConfig

        cfg = self.cfg
        rcfg = RefineConfig.from_options("none", max_new_tokens=cfg.eval.max_new_tokens, stop=cfg.eval.stop,
                                         prompt=cfg.prompt)
        engines = {"engine": cfg.sampling.engine, "engine_options": cfg.sampling.engine_options}
        make_engine = functools.partial(self.engine_factory, model_dir, cfg.sampling)
        from toolace_r.evaluation.benchmarks import benchmark_of

        examples = self.eval_examples if examples is None else examples
        benchmark = benchmark_of(examples[0])  # data.eval (or data.train) may name any benchmark's source
        stage = eval_stage(where, examples, model_dir, rcfg, make_engine, engines, {"model": model_dir},
                           benchmark, subdir=subdir, summary_file=f"{subdir}.json", tokenizer=True,
                           progress=self.progress,
                           note=note or f"[{where}] evaluating on {len(examples)} held-out items")
        return self.dir.run(dataclasses.replace(stage, name=name))

    def _finish_iteration(self, where: str, it: int, metrics: dict[str, Any]) -> None:
        write_json(self.root / where / "metrics.json", metrics)
        phases = {p: m for p in PHASES if (m := self.dir.marker(where, p)) is not None}
        self.manifest["iterations"].append({"iteration": it, "dir": where, "phases": phases})


def best_iteration(iterations: list[dict[str, Any]]) -> dict[str, Any]:
    """summary.json's choice of the run's model: `best_iteration`, the iteration that trained with the
    highest validation accuracy (the earlier one on a tie), `best_by` "validation"; without validation
    scores, the last iteration that trained, `best_by` "last". `best_iteration` is None if none trained."""
    trained = [m for m in iterations if m.get("train_steps")]
    scored = [m for m in trained if m.get("validation") is not None]
    if scored:
        # max keeps the first of equal keys: on a tie the earlier iteration wins
        best = max(scored, key=lambda m: m["validation"]["accuracy"])
        return {"best_iteration": best["iteration"], "best_by": "validation"}
    return {"best_iteration": trained[-1]["iteration"] if trained else None, "best_by": "last"}


def run_training(cfg: TrainConfig, output_dir: str | Path | None = None, resume: bool = False,
                 engine_factory: difficulty.EngineFactory | None = None,
                 echo: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Run (or with `resume`, continue) the iterative training described by `cfg`; returns the summary."""
    return TrainingRun(cfg, output_dir, resume, engine_factory, echo).run()
