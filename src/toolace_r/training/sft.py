"""One fine-tuning stage: TRL's SFTTrainer on a prompt-completion corpus, LoRA (merged) or full.

TRL does what we need as it stands: for prompt-completion rows it tokenises prompt and prompt+completion,
marks the completion tokens, and its collator sets the labels of every other token to -100
(`completion_only_loss=True`), so the loss covers the answer tokens only. The stage ends with a plain
checkpoint (adapters merged into the weights, tokenizer beside it) that the next iteration samples from.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

from .config import SFTStageConfig

log = logging.getLogger(__name__)

FINETUNE = ("lora", "full")


def build_trainer(model_dir: str, rows: Sequence[dict[str, Any]], work_dir: str | Path, cfg: SFTStageConfig,
                  progress: bool = False):
    """An SFTTrainer over `rows` ({"prompt", "completion", ...}), writing checkpoints under work_dir."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if cfg.finetune not in FINETUNE:
        raise ValueError(f"unknown sft.finetune {cfg.finetune!r}; known: {', '.join(FINETUNE)}")
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    use_cpu = not torch.cuda.is_available()
    args = SFTConfig(
        output_dir=str(Path(work_dir) / "checkpoints"),
        completion_only_loss=True,
        packing=False,
        max_length=cfg.max_length,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=cfg.grad_accum,
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        save_total_limit=cfg.save_total_limit,
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=cfg.bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        use_cpu=use_cpu,
        report_to="none",
        disable_tqdm=not progress,
        dataset_num_proc=None,
    )
    peft_config = None
    if cfg.finetune == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    dataset = Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])
    return SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                      peft_config=peft_config)


def last_checkpoint(work_dir: str | Path) -> str | None:
    from transformers.trainer_utils import get_last_checkpoint

    ckpt = Path(work_dir) / "checkpoints"
    return get_last_checkpoint(str(ckpt)) if ckpt.is_dir() else None


def train_sft(model_dir: str, rows: Sequence[dict[str, Any]], work_dir: str | Path, cfg: SFTStageConfig,
              resume: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train, then save the merged full model to work_dir/model; returns loss figures.

    With `resume`, training continues from the newest trainer checkpoint under work_dir, if any.
    """
    trainer = build_trainer(model_dir, rows, work_dir, cfg, progress=progress)
    checkpoint = last_checkpoint(work_dir) if resume else None
    if checkpoint:
        log.info("resuming training from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    model = trainer.model
    if cfg.finetune == "lora":
        model = model.merge_and_unload()
    out = Path(work_dir) / "model"
    tmp = Path(work_dir) / ".model.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    model.save_pretrained(tmp)
    tokenizer = trainer.processing_class
    tokenizer.padding_side = "left"  # the engines batch with left padding
    tokenizer.save_pretrained(tmp)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # a model folder appears whole or not at all
    # The restored trainer state keeps the logs of the steps before a resume, so their mean is the
    # loss of the whole stage (TRL's `training_loss` counts only the steps of this call).
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {
        "train_loss": sum(losses) / len(losses) if losses else float(result.training_loss),
        "losses": losses,
        "steps": int(trainer.state.global_step),
        "examples": len(rows),
        "resumed_from": checkpoint,
    }
