"""The ToolACE-R pipeline end to end: base model, ToolACE-R training, a token-matched SFT control, and
every model scored under every refinement policy on the same held-out items.

    out/  config.yaml
          toolace_r/          the training run (toolace_r.training: iter_N/ ... summary.json)
          control/            corpus.jsonl, model/, train.json, control.json
          eval/<arm>/<policy>/   predictions, traces, metrics.json, report.md, rounds.png (one per run)
          stages.json         wall seconds and tokens of every stage
          report.md, report.json, report.png

Arms: `base` (the starting model), `toolace_r@N` (the model after iteration N), `control`. Every stage
leaves a `.done` marker with the hashes of its inputs (the training loop's markers), so a rerun after an
interruption picks up where it stopped and a rerun of a finished pipeline only rewrites the report.
Greedy decoding and fixed seeds make a rerun give the same verdicts.
"""
from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path
from typing import Any, Callable

from toolace_r.config import save_config, to_dict
from toolace_r.files import write_json
from toolace_r.training.loop import (
    clear_marker,
    finish_phase,
    hash_file,
    hash_obj,
    model_fingerprint,
    phase_done,
    run_dir_lock,
    run_training,
    train_resumable,
    training_items,
)

from .config import PipelineConfig

Echo = Callable[[str], None]


def policy_slug(policy: str) -> str:
    return policy.replace(":", "_")


class Pipeline:
    """One output directory; `run()` executes or resumes every stage and writes the report."""

    def __init__(self, cfg: PipelineConfig, output_dir: str | Path | None = None, echo: Echo | None = None,
                 engine_factory: Callable[[str], Any] | None = None,
                 train_engine_factory: Callable[[str, Any], Any] | None = None):
        """engine_factory(model_dir) -> Engine for evaluation (default: `eval.engine` with its options);
        train_engine_factory is handed to the training loop (default: its `sampling.engine`)."""
        self.cfg = cfg
        self.root = Path(output_dir or cfg.output_dir)
        self.echo = echo or (lambda line: print(line, file=sys.stderr, flush=True))
        self.engine_factory = engine_factory
        self.train_engine_factory = train_engine_factory
        self.stages_path = self.root / "stages.json"

    # - bookkeeping -
    def _stages(self) -> dict[str, Any]:
        if self.stages_path.exists():
            return json.loads(self.stages_path.read_text(encoding="utf-8"))
        return {}

    def _record_stage(self, name: str, **fields: Any) -> None:
        stages = self._stages()
        stages[name] = fields
        write_json(self.stages_path, stages)

    # - the run -
    def run(self) -> dict[str, Any]:
        with run_dir_lock(self.root):  # one pipeline per output directory at a time
            return self._run()

    def _run(self) -> dict[str, Any]:
        cfg = self.cfg
        self.root.mkdir(parents=True, exist_ok=True)
        save_config(cfg, self.root / "config.yaml")
        from toolace_r.models import local_model_dir

        cfg.training.model = cfg.model
        self.base_model = local_model_dir(cfg.model)
        self.examples = self._held_out()
        self.echo(f"pipeline: model {cfg.model}; {len(self.examples)} held-out items "
                  f"({cfg.eval.categories}, {cfg.eval.limit} per category); output {self.root}")

        arms: dict[str, str] = {"base": self.base_model}
        self._evaluate("base", self.base_model, cfg.eval.base_policies)

        summary = self._toolace_r()
        iteration_models = trained_models(self.root / "toolace_r", summary)
        for i, (arm, model_dir) in enumerate(iteration_models.items()):
            last = i == len(iteration_models) - 1
            policies = cfg.eval.policies if last else cfg.eval.iteration_policies
            if policies:
                arms[arm] = model_dir
                self._evaluate(arm, model_dir, policies)

        if cfg.control.enabled:
            control_model = self._control()
            if control_model:
                arms["control"] = control_model
                self._evaluate("control", control_model, cfg.eval.policies)

        from .report import write_report

        report = write_report(self.root, cfg, arms, self.examples, summary, self._stages())
        self.echo(f"report: {self.root / 'report.md'}")
        return report

    def _held_out(self) -> list[Any]:
        from toolace_r.data.select import benchmark_slice

        e = self.cfg.eval
        return benchmark_slice(e.benchmark, e.categories, e.data_dir, e.limit)

    # - ToolACE-R -
    def _toolace_r(self) -> dict[str, Any]:
        run_dir = self.root / "toolace_r"
        done = run_dir / "summary.json"
        training = to_dict(self.cfg.training)
        training["loop"].pop("progress", None)  # showing progress bars changes no result
        config_hash = hash_obj(training)
        stage = self._stages().get("toolace_r", {})
        if done.exists() and stage.get("config") == config_hash:
            return json.loads(done.read_text(encoding="utf-8"))
        self.echo("[toolace_r] model-aware iterative training")
        start = time.perf_counter()
        summary = run_training(self.cfg.training, run_dir, resume=True, engine_factory=self.train_engine_factory,
                               echo=self.echo)
        # Rerun after a config change, the loop redoes only the phases it must: the stage's wall time is
        # what this call took plus what the earlier, completed call recorded.
        seconds = time.perf_counter() - start + stage.get("seconds", 0.0)
        tokens = training_tokens(run_dir, summary, self.base_model, self.cfg.training.sft)
        self._record_stage("toolace_r", seconds=round(seconds, 2), config=config_hash, **tokens,
                           iterations=len(summary["iterations"]))
        return summary

    # - control -
    def _control(self) -> str | None:
        from toolace_r.training.corpus import read_corpus, write_corpus

        cfg, d = self.cfg, self.root / "control"
        d.mkdir(parents=True, exist_ok=True)
        tr = self._stages().get("toolace_r", {})
        target = cfg.control.rows if cfg.control.match == "rows" else tr.get("train_tokens")
        if cfg.control.match not in ("tokens", "rows"):
            raise ValueError(f"control.match must be tokens or rows, got {cfg.control.match!r}")
        if not target:
            self.echo("[control] skipped: the ToolACE-R run trained on nothing")
            return None
        sft_cfg = _with_overrides(cfg.training.sft, {"epochs": 1.0, "max_steps": -1, **cfg.control.sft_overrides})
        inputs = {"target": target, "match": cfg.control.match, "seed": cfg.control.seed,
                  "data": hash_obj(cfg.training.data), "prompt": hash_obj(cfg.training.prompt),
                  "sft": hash_obj(sft_cfg), "model": model_fingerprint(self.base_model)}
        if not phase_done(d, "corpus", inputs):
            rows, info = control_corpus(self.base_model, cfg, target)
            write_corpus(d / "corpus.jsonl", rows)
            write_json(d / "control.json", info)
            finish_phase(d, "corpus", inputs, ["corpus.jsonl", "control.json"])
        rows = read_corpus(d / "corpus.jsonl")
        train_inputs = {"corpus": hash_file(d / "corpus.jsonl"), **inputs}
        if not phase_done(d, "train", train_inputs):
            clear_marker(d, "train")
            info = json.loads((d / "control.json").read_text(encoding="utf-8"))
            self.echo(f"[control] plain SFT on {len(rows)} rows of the pool ({info['train_tokens']} tokens, "
                      f"target {target})")
            start = time.perf_counter()
            # The same training step as the ToolACE-R iterations (launcher, checkpoint resume included).
            result = train_resumable(self.base_model, rows, d, sft_cfg, train_inputs, cfg.progress)
            write_json(d / "train.json", result)
            finish_phase(d, "train", train_inputs, ["train.json", "model"])
            self._record_stage("control", seconds=round(time.perf_counter() - start, 2),
                               train_tokens=info["train_tokens"], rows=len(rows), target_tokens=target)
        return str(d / "model")

    # - evaluation -
    def _evaluate(self, arm: str, model_dir: str, policies: list[str]) -> None:
        from toolace_r.engines import get_engine
        from toolace_r.data.select import examples_digest
        from toolace_r.evaluation.rounds import write_refine_outputs
        from toolace_r.refine import RefineConfig, refine

        e = self.cfg.eval
        fingerprint = model_fingerprint(model_dir)
        digest = examples_digest(self.examples)
        for policy in policies:
            d = self.root / "eval" / arm / policy_slug(policy)
            rcfg = RefineConfig.from_options(policy, e.max_rounds, guard=e.guard, stop=e.stop,
                                             max_new_tokens=e.max_new_tokens, chunk_size=e.chunk_size,
                                             prompt=self.cfg.training.prompt)
            inputs = {"model": fingerprint, "examples": digest, "refine": rcfg.to_dict(), "engine": e.engine,
                      "engine_options": e.engine_options}
            if phase_done(d, "eval", inputs):
                continue
            d.mkdir(parents=True, exist_ok=True)
            clear_marker(d, "eval")
            self.echo(f"[eval] {arm}: refine {policy} on {len(self.examples)} items")
            # A fresh engine per run: a prefix cache warmed by another policy would lower this run's cost.
            engine = self.engine_factory(model_dir) if self.engine_factory else \
                get_engine(e.engine, model=model_dir, **e.engine_options)
            with engine:
                result = refine(self.examples, engine, rcfg, progress=self.cfg.progress)
            run = {"arm": arm, "model": model_dir, "policy": policy, "examples": len(self.examples)}
            report = write_refine_outputs(self.examples, result, d, run, e.benchmark)
            finish_phase(d, "eval", inputs, ["metrics.json", "traces.jsonl", "predictions.jsonl"])
            pooled = report.rounds["all"]
            self._record_stage(f"eval/{arm}/{policy_slug(policy)}", seconds=round(result.seconds, 2),
                               compute_tokens=round(pooled["tokens_per_example"]["refined"]["compute"]
                                                    * pooled["examples"]),
                               accuracy=pooled["final_accuracy"])
            self.echo(f"[eval] {arm} {policy}: accuracy {pooled['final_accuracy']:.3f} "
                      f"(single pass {pooled['single_pass_accuracy']:.3f}), {result.seconds:.0f} s")


def _with_overrides(section: Any, overrides: dict[str, Any]) -> Any:
    from toolace_r.config import from_dict, to_dict

    return from_dict(type(section), {**to_dict(section), **overrides}, where="control.sft_overrides")


def trained_models(run_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    """arm name -> model folder, for every iteration that trained (in order)."""
    out: dict[str, str] = {}
    for m in summary["iterations"]:
        train = run_dir / f"iter_{m['iteration']}" / "train.json"
        if train.exists():
            info = json.loads(train.read_text(encoding="utf-8"))
            if info.get("steps"):
                out[f"toolace_r@{m['iteration']}"] = info["model_dir"]
    return out


def _tokenizer(model_dir: str):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(model_dir)


def row_tokens(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens one training row puts through the model: prompt + completion (TRL adds nothing to a
    completion that already ends with the template's end-of-turn token but EOS, counted here too)."""
    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
    return len(prompt) + len(completion) + 1


def training_tokens(run_dir: Path, summary: dict[str, Any], base_model: str, sft: Any) -> dict[str, Any]:
    """Tokens the ToolACE-R run trained on: each iteration's corpus x the passes over it, summed
    (`sft.epochs`, or with `sft.max_steps` the rows its steps drew)."""
    from toolace_r.training.corpus import read_corpus

    tok = _tokenizer(base_model)
    per_iter = []
    for m in summary["iterations"]:
        d = run_dir / f"iter_{m['iteration']}"
        if not (d / "train.json").exists() or not (d / "corpus.jsonl").exists():
            continue
        train = json.loads((d / "train.json").read_text(encoding="utf-8"))
        if not train.get("steps"):
            continue
        rows = read_corpus(d / "corpus.jsonl")
        if sft.max_steps and sft.max_steps > 0:
            epochs = train["steps"] * sft.batch_size * sft.grad_accum / max(1, len(rows))
        else:
            epochs = float(sft.epochs)
        n = sum(row_tokens(tok, r) for r in rows)
        per_iter.append({"iteration": m["iteration"], "rows": len(rows), "corpus_tokens": n, "epochs": epochs,
                         "tokens": round(n * epochs)})
    return {"train_tokens": sum(p["tokens"] for p in per_iter), "per_iteration": per_iter}


def control_corpus(base_model: str, cfg: PipelineConfig, target: int) -> tuple[list[dict[str, Any]], dict]:
    """Gold SFT rows over the whole pool, in seeded shuffled passes, until `target` tokens
    (match: tokens) or rows (match: rows) are reached."""
    from toolace_r.prompts import render_pair

    data = cfg.training.data
    examples, targets, skipped = training_items(cfg.training)
    tok = _tokenizer(base_model)
    pool = []
    for ex in examples:
        prompt, completion = render_pair(tok, ex.tools, ex.messages, targets[ex.id], cfg=cfg.training.prompt)
        row = {"prompt": prompt, "completion": completion, "kind": "sft", "id": ex.id}
        pool.append((row, row_tokens(tok, row)))
    if not pool:
        raise ValueError(f"control: the pool {data.train!r} has no trainable items")
    rng = random.Random(cfg.control.seed)
    rows: list[dict[str, Any]] = []
    tokens = passes = 0
    by_tokens = cfg.control.match == "tokens"
    while (tokens if by_tokens else len(rows)) < target:
        order = list(range(len(pool)))
        rng.shuffle(order)
        passes += 1
        for i in order:
            row, n = pool[i]
            if by_tokens and tokens + n - target > target - tokens:
                break  # adding this row would land further from the target than stopping here
            rows.append(row)
            tokens += n
            if (tokens if by_tokens else len(rows)) >= target:
                break
        else:
            continue
        break
    info = {"pool_items": len(pool), "skipped_untrainable": skipped, "rows": len(rows),
            "distinct_items": len({r["id"] for r in rows}), "passes": passes, "train_tokens": tokens,
            "target": target, "match": cfg.control.match}
    return rows, info
