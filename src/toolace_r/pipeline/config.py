"""The configuration of the end-to-end pipeline (`toolace-r demo`): one `PipelineConfig`.

It nests the ToolACE-R training run as it stands (`training: TrainConfig`, the same sections
`toolace-r train` reads), and adds the control arm and the evaluation grid. Loaded from YAML with
`key=value` overrides (`eval.limit=4`, `training.sft.learning_rate=2e-4`) and saved as `config.yaml`
in the output directory.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from toolace_r.training.config import TrainConfig

# The held-out BFCL categories: the non-live single-turn Python AST sets and irrelevance (the
# training pool takes only live and exec sets, so no held-out item is trained on).
HELD_OUT = "simple_python,multiple,parallel,parallel_multiple,irrelevance"


@dataclass
class EvalConfig:
    """The evaluation grid: every model on the same held-out items under each refinement policy.

    policies: refine stop policies (and `vote:N`) run for trained models, each beside the single pass
    `none`; one shared run per model computes them all (round 0 once: docs/method.md#grid), so a policy
    costs only its own rounds. base_policies: the same for the untrained model ([]: `none` alone);
    iteration_policies: for the other ToolACE-R iterations than the reported one (the training run's
    best_iteration: by validation accuracy with training.data.validation_limit, else the last;
    docs/method.md#validation).
    limit: items per category (the first ones in file order: the same items for every arm).
    """

    benchmark: str = "bfcl"
    categories: str = HELD_OUT
    limit: int | None = 10
    data_dir: str | None = None
    policies: list[str] = field(default_factory=lambda: ["adaptive", "fixed:3"])
    base_policies: list[str] = field(default_factory=lambda: ["adaptive"])
    max_rounds: int = 3
    guard: str = "off"
    max_new_tokens: int = 128
    stop: list[str] = field(default_factory=list)
    chunk_size: int = 32
    engine: str = "hf"
    engine_options: dict[str, Any] = field(default_factory=lambda: {"dtype": "auto", "batch_size": 16})
    # Models of the iterations other than the reported (best) one: these policies ([] leaves them out).
    iteration_policies: list[str] = field(default_factory=lambda: ["adaptive"])


@dataclass
class ControlConfig:
    """Plain SFT on the whole pool (gold answers only, no selection, no refinement rows), with as many
    training tokens as the ToolACE-R run used (`match: tokens`), or `rows` rows (`match: rows`).
    Hyper-parameters are the ToolACE-R run's `sft` section with `sft_overrides` applied."""

    enabled: bool = True
    match: str = "tokens"
    rows: int | None = None
    seed: int = 0
    sft_overrides: dict[str, Any] = field(default_factory=dict)


@dataclass
class GoalsConfig:
    """What report.md gives a verdict on (pipeline/report.py); a verdict left off is not computed.

    beat_control: does the reported ToolACE-R model (`Pipeline.reported_arm`, its best policy) score above
    the control (its best)? refinement: does each refine policy that stops by itself (adaptive, checked)
    fix more answers than it breaks on the reported ToolACE-R model, within `max_compute_ratio` times the
    single pass's computed tokens?
    Either counts as yes only when the item-by-item test finds the difference significant (exact McNemar
    p < 0.05, docs/method.md#paired-tests); a smaller lead is "no detectable difference".
    """

    beat_control: bool = True
    refinement: bool = True
    max_compute_ratio: float = 1.5


@dataclass
class PipelineConfig:
    """model: the starting model of every arm (it replaces training.model)."""

    model: str = "smollm2-135m"
    output_dir: str = "runs/demo"
    training: TrainConfig = field(default_factory=TrainConfig)
    control: ControlConfig = field(default_factory=ControlConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    goals: GoalsConfig = field(default_factory=GoalsConfig)
    progress: bool = True
