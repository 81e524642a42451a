"""Model-aware iterative training: difficulty by sampling, selection, a self-refinement corpus, SFT, the loop.

    from toolace_r.training import TrainConfig, run_training
    summary = run_training(load_config(TrainConfig, "configs/train_smollm2_quick.yaml"), resume=True)
"""
from .config import (CorpusConfig, DataConfig, LoopConfig, LoopEvalConfig, SamplingConfig, SelectionConfig,
                     SFTStageConfig, TrainConfig, WarmupConfig)
from .loop import TrainingRun, run_training
from .selection import POLICIES, get_policy, register_policy

__all__ = [
    "CorpusConfig", "DataConfig", "LoopConfig", "LoopEvalConfig", "POLICIES", "SFTStageConfig", "SamplingConfig",
    "SelectionConfig", "TrainConfig", "TrainingRun", "WarmupConfig", "get_policy", "register_policy", "run_training",
]
