"""The child-process side of training/launch.py: `python -m toolace_r.training.worker {train,sample}`.

    train  --dir ITER_DIR              read ITER_DIR/train.job.json (model, corpus path, sft stage config),
                                       run `sft.train_sft`, rank 0 writes ITER_DIR/train.result.json
    sample --dir ITER_DIR --shard I    read ITER_DIR/sample.job.json (the whole TrainConfig, the item ids),
                                       sample and score shard I of the items, write sample.shards/shard_I.jsonl

The worker re-loads the training items from the data config and refuses to run if they are not the ones
the orchestrator saw (their hash differs), so a shard can never score a different item list.
"""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from toolace_r.config import from_dict
from toolace_r.files import read_jsonl, write_json

from . import launch


def run_train(iter_dir: Path) -> int:
    from . import sft
    from .config import SFTStageConfig

    job = json.loads((iter_dir / launch.TRAIN_JOB).read_text(encoding="utf-8"))
    cfg = from_dict(SFTStageConfig, job["sft"], where=str(iter_dir / launch.TRAIN_JOB))
    rows = read_jsonl(job["corpus"])
    result = sft.train_sft(job["model_dir"], rows, iter_dir, cfg, resume=job["resume"], progress=job["progress"])
    if sft.world_size() == 1 or sft.rank() == 0:
        write_json(iter_dir / launch.TRAIN_RESULT, result)
    return 0


def run_sample(iter_dir: Path, shard: int) -> int:
    from toolace_r.stages import hash_obj

    from . import difficulty
    from .config import TrainConfig
    from .items import training_items
    from .loop import sample_records

    job = json.loads((iter_dir / launch.SAMPLE_JOB).read_text(encoding="utf-8"))
    cfg = from_dict(TrainConfig, job["config"], where=str(iter_dir / launch.SAMPLE_JOB))
    examples, targets, _ = training_items(cfg)
    if hash_obj([[ex.id, targets[ex.id]] for ex in examples]) != job["items_hash"]:
        raise SystemExit(f"the training items loaded from {cfg.data.train!r} differ from the orchestrator's "
                         "(did the data change during the run?)")
    start, end = launch.shard_bounds(len(examples), shard, job["num_shards"])
    records = sample_records(launch.shard_config(cfg, start), examples[start:end], model_dir=job["model_dir"],
                             it=job["iteration"], targets=targets, engine_factory=difficulty.default_engine_factory,
                             progress=job["progress"]) if end > start else []
    difficulty.write_samples(launch.shard_path(iter_dir / launch.SAMPLE_SHARDS, shard), records)
    return 0


def main(argv: list[str] | None = None) -> int:
    launch.die_with_parent()  # before the slow imports: no orphan of a killed run keeps working
    parser = argparse.ArgumentParser(prog="python -m toolace_r.training.worker")
    sub = parser.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train")
    p.add_argument("--dir", required=True, type=Path)
    p = sub.add_parser("sample")
    p.add_argument("--dir", required=True, type=Path)
    p.add_argument("--shard", required=True, type=int)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.cmd == "train":
        return run_train(args.dir)
    return run_sample(args.dir, args.shard)


if __name__ == "__main__":
    sys.exit(main())
