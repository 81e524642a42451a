"""The end-to-end ToolACE-R pipeline (`toolace-r demo`): base, ToolACE-R, control, evaluation, report."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from .config import ControlConfig, EvalConfig, GoalsConfig, PipelineConfig
from .run import Pipeline


def run_pipeline(cfg: PipelineConfig, output_dir: str | Path | None = None,
                 echo: Callable[[str], None] | None = None, **engine_factories: Any) -> dict[str, Any]:
    """Run (or resume) every stage of `cfg` and write the report; returns report.json's content."""
    return Pipeline(cfg, output_dir, echo, **engine_factories).run()


__all__ = ["ControlConfig", "EvalConfig", "GoalsConfig", "Pipeline", "PipelineConfig", "run_pipeline"]
