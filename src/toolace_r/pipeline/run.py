"""The ToolACE-R pipeline end to end: base model, ToolACE-R training, a token-matched SFT control, and
every model scored under every refinement policy on the same held-out items.

    out/  config.yaml
          toolace_r/          the training run (toolace_r.training: iter_N/ ... summary.json)
          control/            corpus.jsonl, model/, train.json, control.json
          eval/<arm>/<policy>/   predictions, traces, metrics.json, report.md, rounds.png (one per run)
          stages.json         wall seconds and tokens of every stage
          report.md, report.json, report.png

Arms: `base` (the starting model), `toolace_r@N` (the model after iteration N), `control`. The reported
ToolACE-R arm (`reported_arm`) is the training run's `best_iteration`: chosen on its validation slice
when it has one, else its last iteration that trained (docs/method.md#validation); it alone is scored
under `eval.policies`, the other iterations under `eval.iteration_policies`. Every stage
is a `toolace_r.stages.Stage` of the output directory (a `.done` marker with the hashes of its inputs, as
in the training loop), so a rerun after an interruption picks up where it stopped and a rerun of a
finished pipeline only rewrites the report.
Greedy decoding and fixed seeds make a rerun give the same verdicts.
"""
from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path
from typing import Any, Callable

from toolace_r.config import save_config, to_dict
from toolace_r.stages import RunDir, Stage, eval_stage, hash_obj, model_fingerprint, read_json
from toolace_r.training.config import require_train_source
from toolace_r.training.loop import run_training, train_stage
from toolace_r.training.sft import training_tokens

from .config import PipelineConfig
from .control import control_corpus

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
        self.reported_arm: str | None = None  # set by run(): the toolace_r@N arm reported as ToolACE-R
        # stages.json, the manifest: wall seconds and tokens of every stage that ran
        self.dir = RunDir(self.root, manifest="stages.json", echo=self.echo)

    def run(self) -> dict[str, Any]:
        if not self.root.exists():  # a config mistake leaves no empty output directory behind
            require_train_source(self.cfg.training.data, "training.data.train")
        with self.dir:  # one pipeline per output directory at a time (a busy one is reported first)
            # before the model, or the base model's scoring
            require_train_source(self.cfg.training.data, "training.data.train")
            cfg = self.cfg
            save_config(cfg, self.root / "config.yaml")
            from toolace_r.data.select import benchmark_slice
            from toolace_r.models import local_model_dir

            cfg.training.model = cfg.model
            self.base_model = local_model_dir(cfg.model)
            e = cfg.eval
            self.examples = benchmark_slice(e.benchmark, e.categories, e.data_dir, e.limit)
            self.echo(f"pipeline: model {cfg.model}; {len(self.examples)} held-out items "
                      f"({e.categories}, {e.limit} per category); output {self.root}")
            arms: dict[str, str] = {"base": self.base_model}
            self._evaluate("base", self.base_model, e.base_policies)
            summary = self._toolace_r()
            iteration_models = trained_models(self.root / "toolace_r", summary)
            self.reported_arm = reported_arm(summary, iteration_models)
            if self.reported_arm:
                self.echo(f"pipeline: reporting {self.reported_arm} as ToolACE-R (best iteration by "
                          f"{summary.get('best_by', 'last')})")
            for arm, model_dir in iteration_models.items():
                policies = e.policies if arm == self.reported_arm else e.iteration_policies
                if policies:
                    arms[arm] = model_dir
                    self._evaluate(arm, model_dir, policies)
            if cfg.control.enabled:
                control_model = self._control()
                if control_model:
                    arms["control"] = control_model
                    self._evaluate("control", control_model, e.policies)
            from .report import write_report

            report = write_report(self.root, cfg, arms, self.examples, summary, self.dir.manifest(),
                                  reported=self.reported_arm)
            self._cards(summary, report)
            self.echo(f"report: {self.root / 'report.md'}")
            return report

    def _cards(self, summary: dict[str, Any], report: dict[str, Any]) -> None:
        """The arms' held-out scores in the model cards of the ToolACE-R iterations and of the control."""
        from transformers import AutoTokenizer

        from toolace_r.servable import model_card, write_model_card, write_run_cards

        scores = arm_scores(report)
        training = self.cfg.training
        write_run_cards(self.root / "toolace_r", training, summary, self.base_model, extra_scores=scores)
        control = self.root / "control" / "model"
        if (control / "config.json").exists():
            write_model_card(control, model_card(
                name=f"{Path(self.cfg.model).name} · toolace-r control (plain SFT)", base_model=self.cfg.model,
                model_dir=str(control), tokenizer=AutoTokenizer.from_pretrained(self.base_model),
                prompt_cfg=training.prompt, data_train=training.data.train,
                settings={"arm": "control: plain SFT on gold answers of the whole pool, as many training tokens "
                                 "as the ToolACE-R run"},
                scores=scores, note="The control arm of a toolace-r comparison, not the method's model."))

    def _toolace_r(self) -> dict[str, Any]:
        training = to_dict(self.cfg.training)
        training["loop"].pop("progress", None)  # showing progress bars changes no result
        run_dir = self.root / "toolace_r"

        def work(d: Path, inputs: dict) -> None:
            run_training(self.cfg.training, d, resume=True, engine_factory=self.train_engine_factory, echo=self.echo)

        def record(summary: dict[str, Any], seconds: float) -> dict[str, Any]:
            # Rerun after a config change, the loop redoes only the phases it must: the stage's wall time is
            # what this run took plus what the earlier, completed one recorded.
            before = self.dir.manifest().get("toolace_r", {}).get("seconds", 0.0)
            tokens = training_tokens(run_dir, summary, self.base_model, self.cfg.training.sft)
            return {"seconds": round(seconds + before, 2), "config": hash_obj(training), **tokens,
                    "iterations": len(summary["iterations"])}

        return self.dir.run(Stage("toolace_r", "toolace_r", ["summary.json"], work, config={"training": training},
                                  read=read_json("summary.json"), key="toolace_r", record=record,
                                  note="[toolace_r] model-aware iterative training"))

    def _control(self) -> str | None:
        from toolace_r.training.corpus import read_corpus

        cfg = self.cfg
        if cfg.control.match not in ("tokens", "rows"):
            raise ValueError(f"control.match must be tokens or rows, got {cfg.control.match!r}")
        target = cfg.control.rows if cfg.control.match == "rows" else \
            self.dir.manifest().get("toolace_r", {}).get("train_tokens")
        if not target:
            self.echo("[control] skipped: the ToolACE-R run trained on nothing")
            return None
        sft_cfg = with_overrides(cfg.training.sft, {"epochs": 1.0, "max_steps": -1, **cfg.control.sft_overrides})
        # The control trains on the pool alone, which data.validation_limit never changes: leaving it out keeps
        # the control's stages (and their hashes in runs made before it existed) as they are.
        data = {k: v for k, v in dataclasses.asdict(cfg.training.data).items() if k != "validation_limit"}
        inputs = {"target": target, "match": cfg.control.match, "seed": cfg.control.seed, "data": data,
                  "prompt": cfg.training.prompt, "sft": sft_cfg, "model": model_fingerprint(self.base_model)}

        def corpus(d: Path, _: dict) -> dict[str, Any]:
            rows, info = control_corpus(self.base_model, cfg, target)
            return {"corpus.jsonl": rows, "control.json": info}

        rows, info = self.dir.run(Stage(
            "corpus", "control", ["corpus.jsonl", "control.json"], corpus, config=inputs,
            read=lambda d: (read_corpus(d / "corpus.jsonl"), json.loads((d / "control.json").read_text()))))
        # The same training stage as the ToolACE-R iterations (launcher, checkpoint resume included).
        stage = train_stage("control", self.base_model, rows, sft_cfg, inputs, cfg.progress,
                            f"[control] plain SFT on {len(rows)} rows of the pool ({info['train_tokens']} tokens, "
                            f"target {target})", prompt_cfg=cfg.training.prompt)
        self.dir.run(dataclasses.replace(stage, key="control", record=lambda result, seconds: {
            "seconds": round(seconds, 2), "train_tokens": info["train_tokens"], "rows": len(rows),
            "target_tokens": target}))
        return str(self.root / "control" / "model")

    def _evaluate(self, arm: str, model_dir: str, policies: list[str]) -> None:
        """Score one arm under its policies and the single pass `none`, all from one shared run (a grid stage,
        eval/<arm>/grid.done; toolace_r/refine/grid.py): round 0 once, the policies that differ only in when
        they stop read off one refine chain. Each policy keeps its directory eval/<arm>/<policy>/ and its
        stages.json entry (the shared run's wall seconds, marked shared; its own tokens and accuracy).
        With BFCL multi-turn items, which the grid does not run, each policy runs alone (eval_stage)."""
        from toolace_r.engines import get_engine
        from toolace_r.evaluation.multi_turn_loop import is_multi_turn
        from toolace_r.refine import RefineConfig
        from toolace_r.stages import grid_stage

        e = self.cfg.eval
        make_engine = (lambda: self.engine_factory(model_dir)) if self.engine_factory else \
            (lambda: get_engine(e.engine, model=model_dir, **e.engine_options))
        if any(is_multi_turn(ex) for ex in self.examples):
            for policy in policies:
                rcfg = RefineConfig.from_options(policy, e.max_rounds, guard=e.guard, stop=e.stop,
                                                 max_new_tokens=e.max_new_tokens, chunk_size=e.chunk_size,
                                                 prompt=self.cfg.training.prompt)
                run_info = {"arm": arm, "model": model_dir, "policy": policy, "examples": len(self.examples)}
                stage = eval_stage(f"eval/{arm}/{policy_slug(policy)}", self.examples, model_dir, rcfg, make_engine,
                                   {"engine": e.engine, "engine_options": e.engine_options}, run_info, e.benchmark,
                                   progress=self.cfg.progress,
                                   note=f"[eval] {arm}: refine {policy} on {len(self.examples)} items")

                def record_one(rounds: dict[str, Any], seconds: float, policy: str = policy) -> dict[str, Any]:
                    pooled = rounds["all"]
                    self.echo(f"[eval] {arm} {policy}: accuracy {pooled['final_accuracy']:.3f} "
                              f"(single pass {pooled['single_pass_accuracy']:.3f}), {rounds['wall_seconds']:.0f} s")
                    compute = pooled["tokens_per_example"]["refined"]["compute"] * pooled["examples"]
                    return {"seconds": round(rounds["wall_seconds"], 2), "compute_tokens": round(compute),
                            "accuracy": pooled["final_accuracy"]}

                self.dir.run(dataclasses.replace(stage, key=f"eval/{arm}/{policy_slug(policy)}", record=record_one))
            return
        names = ["none", *(p for p in policies if p != "none")]
        configs = {policy: RefineConfig.from_options(policy, e.max_rounds, guard=e.guard, stop=e.stop,
                                                     max_new_tokens=e.max_new_tokens, chunk_size=e.chunk_size,
                                                     prompt=self.cfg.training.prompt)
                   for policy in names}
        run_info = {"arm": arm, "model": model_dir, "examples": len(self.examples)}
        stage = grid_stage(f"eval/{arm}", self.examples, model_dir, configs, make_engine,
                           {"engine": e.engine, "engine_options": e.engine_options}, run_info, e.benchmark,
                           progress=self.cfg.progress,
                           note=f"[eval] {arm}: {', '.join(names)} on {len(self.examples)} items, one shared run")

        def record(result: dict[str, Any], seconds: float) -> dict[str, Any]:
            # one entry per policy, as when each ran alone; the wall time is the shared run's, said so
            fields = {}
            for policy in names:
                rounds = result["policies"][policy]
                pooled = rounds["all"]
                self.echo(f"[eval] {arm} {policy}: accuracy {pooled['final_accuracy']:.3f} "
                          f"(single pass {pooled['single_pass_accuracy']:.3f})")
                compute = pooled["tokens_per_example"]["refined"]["compute"] * pooled["examples"]
                fields[policy] = {"seconds": round(result["grid"]["seconds"], 2), "shared": f"eval/{arm}/grid.json",
                                  "compute_tokens": round(compute), "accuracy": pooled["final_accuracy"]}
                self.dir.record(f"eval/{arm}/{policy_slug(policy)}", **fields[policy])
            self.echo(f"[eval] {arm}: {len(names)} policies in {result['grid']['seconds']:.0f} s")
            return fields[names[0]]  # written again under its own key (RunDir.run records the stage's key)

        self.dir.run(dataclasses.replace(stage, key=f"eval/{arm}/{policy_slug(names[0])}", record=record))


def arm_scores(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The report's held-out accuracy of every arm under every policy, as model-card rows."""
    rows = []
    for arm, policies in report.get("grid", {}).items():
        for policy, cell in policies.items():
            setting = "single pass" if policy == "none" else f"refine {policy}"
            rows.append({"model": arm, "setting": setting, "accuracy": cell.get("accuracy"),
                         "items": cell.get("examples")})
    return rows


def with_overrides(section: Any, overrides: dict[str, Any]) -> Any:
    from toolace_r.config import from_dict, to_dict

    return from_dict(type(section), {**to_dict(section), **overrides}, where="control.sft_overrides")


def arm_name(iteration: int) -> str:
    """The arm of the model after ToolACE-R iteration `iteration`."""
    return f"toolace_r@{iteration}"


def reported_arm(summary: dict[str, Any], trained: dict[str, str]) -> str | None:
    """The arm reported as ToolACE-R: the run's `best_iteration` (summary.json), or, for a summary from
    before there was one, the last iteration that trained. None when no iteration trained."""
    best = summary.get("best_iteration")
    if best is not None:
        if arm_name(best) not in trained:
            raise ValueError(f"summary.json's best_iteration {best} has no trained model (trained: {sorted(trained)})")
        return arm_name(best)
    return list(trained)[-1] if trained else None


def trained_models(run_dir: Path, summary: dict[str, Any]) -> dict[str, str]:
    """arm name -> model folder, for every iteration that trained (in order)."""
    out: dict[str, str] = {}
    for m in summary["iterations"]:
        train = run_dir / f"iter_{m['iteration']}" / "train.json"
        if train.exists():
            info = json.loads(train.read_text(encoding="utf-8"))
            if info.get("steps"):
                out[arm_name(m["iteration"])] = info["model_dir"]
    return out
