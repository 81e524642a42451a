"""One fine-tuning stage: TRL's SFTTrainer on a prompt-completion corpus, LoRA (merged) or full.

Rows reach TRL tokenized (`tokenize_row`): the rendered prompt and prompt+completion are tokenized exactly
as the engines tokenize prompts (no special tokens added: a template that writes its BOS gets no second one,
as TRL's own tokenizer call would add for Llama-style tokenizers), and the completion tokens are marked; TRL
then sets the labels of every other token to -100 (`completion_only_loss=True`), so the loss covers the
answer tokens only. The stage ends with a plain
checkpoint (adapters merged into the weights, tokenizer beside it, the adapter itself in adapter/ unless
`sft.keep_adapter` is off) that the next iteration samples from.

The same code runs under `accelerate launch` (DDP, FSDP, DeepSpeed ZeRO-3; see training/launch.py): the
Trainer shards batches over the ranks; at the end every rank takes part in gathering the weights
(`trainer.save_model`), then rank 0 alone merges and writes the model folder while the others wait.

Trainer checkpoints are written in place (transformers writes checkpoint-N/ file by file, trainer_state.json
last, and no rank waits for the others), so a kill during a save leaves a checkpoint-N/ that looks like any
other. A callback therefore seals each checkpoint once every rank has written its files (`SEAL`: the list of
files and their sizes, written atomically), and prunes older checkpoints only after that; `--resume` takes
the newest sealed checkpoint whose files are all there and removes the others (`last_checkpoint`).
"""
from __future__ import annotations

import json
import logging
import os
import re
import shutil
from pathlib import Path
from typing import Any, Sequence

from toolace_r.files import write_json

from .config import SFTStageConfig, check_model_args, check_trl_args

log = logging.getLogger(__name__)

FINETUNE = ("lora", "full")
ADAPTER_DIR = "adapter"  # in a model folder: the LoRA adapter its merged weights came from (sft.keep_adapter)
SEAL = "checkpoint.sealed.json"  # in checkpoint-N/: the checkpoint is whole (see the module docstring)
_CHECKPOINT_DIR = re.compile(r"^checkpoint-(\d+)$")


def build_trainer(model_dir: str, rows: Sequence[dict[str, Any]], work_dir: str | Path, cfg: SFTStageConfig,
                  progress: bool = False):
    """An SFTTrainer over `rows` ({"prompt", "completion", ...}), writing checkpoints under work_dir."""
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    if cfg.finetune not in FINETUNE:
        raise ValueError(f"unknown sft.finetune {cfg.finetune!r}; known: {', '.join(FINETUNE)}")
    # Again here, for a cfg changed after it was built: still before any model loads.
    check_trl_args(cfg.trl_args)
    check_model_args(cfg.model_args)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    tokenizer.padding_side = "right"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    use_cpu = not torch.cuda.is_available()
    precision = stage_precision(cfg)
    model = AutoModelForCausalLM.from_pretrained(model_dir, **model_kwargs(cfg, precision))
    # Several CPU ranks (tests, CI) talk over gloo; on GPUs accelerate picks nccl unless told otherwise.
    backend = cfg.ddp_backend or ("gloo" if use_cpu and world_size() > 1 else None)
    # Defaults that sft.trl_args may change (check_trl_args keeps it off the `owned` keys below).
    defaults = dict(packing=False, report_to="none", disable_tqdm=not progress, dataset_num_proc=None)
    chosen = {**defaults, **cfg.trl_args}
    # Padding-free rows are truncated here (tokenize_row), as TRL would truncate padded ones; TRL refuses a
    # max_length it cannot enforce.
    truncate_here = bool(chosen.get("padding_free")) and not chosen.get("packing")
    owned = dict(
        output_dir=str(Path(work_dir) / "checkpoints"),
        completion_only_loss=True,
        max_length=None if truncate_here else cfg.max_length,
        per_device_train_batch_size=cfg.batch_size,
        gradient_accumulation_steps=grad_accum_steps(cfg, world_size()),
        num_train_epochs=cfg.epochs,
        max_steps=cfg.max_steps,
        learning_rate=cfg.learning_rate,
        lr_scheduler_type=cfg.scheduler,
        warmup_steps=cfg.warmup,
        logging_steps=cfg.logging_steps,
        save_strategy="steps",
        save_steps=cfg.save_steps,
        # The Trainer would delete older checkpoints before the new one is sealed; _CheckpointSeal prunes.
        save_total_limit=None,
        seed=cfg.seed,
        data_seed=cfg.seed,
        train_sampling_strategy=cfg.sampling_strategy,
        bf16=precision.autocast_bf16,
        gradient_checkpointing=cfg.gradient_checkpointing,
        use_cpu=use_cpu,
        ddp_backend=backend,
    )
    args = SFTConfig(**{**chosen, **owned})
    peft_config = None
    if cfg.finetune == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=cfg.lora_dropout,
                                 target_modules=cfg.target_modules, task_type="CAUSAL_LM")
    tokenized = [tokenize_row(tokenizer, r, cfg.max_length if truncate_here else None) for r in rows]
    # TRL drops the rows its truncation leaves without a completion token; so do padding-free rows.
    dataset = Dataset.from_list([t for t in tokenized if any(t["completion_mask"])])
    trainer_cls = SFTTrainer
    if cfg.compact_logits:
        from .compact_loss import trainer_class

        trainer_cls = trainer_class()
    trainer = trainer_cls(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                          peft_config=peft_config, callbacks=[_checkpoint_seal(cfg.save_total_limit)])
    trainer.toolace_r_precision = precision
    return trainer


def stage_precision(cfg: SFTStageConfig, quiet: bool = False):
    """The stage's resolved precision (precision.TrainingPrecision), logged with its reason."""
    import torch

    from toolace_r.precision import log_choice, training_precision

    device = "cuda" if torch.cuda.is_available() else "cpu"
    precision = training_precision(cfg.model_dtype, cfg.bf16, cfg.finetune, device)
    if not quiet:
        log_choice("sft precision", precision)
    return precision


def _checkpoint_seal(keep: int | None):
    """A TrainerCallback that seals each checkpoint when all ranks have saved it, then keeps the newest `keep`."""
    from transformers import TrainerCallback

    class CheckpointSeal(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            # on_save runs on every rank right after its part of the checkpoint is on disk.
            _barrier()
            if state.is_world_process_zero:
                ckpt = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                seal_checkpoint(ckpt)
                prune_checkpoints(ckpt, keep)
            return control

    return CheckpointSeal()


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def seal_checkpoint(ckpt: Path) -> None:
    """Record every file of `ckpt` with its size: from now on `ckpt` counts as complete."""
    files = {str(p.relative_to(ckpt)): p.stat().st_size for p in sorted(ckpt.rglob("*"))
             if p.is_file() and p.name != SEAL}
    write_json(ckpt / SEAL, {"files": files})


def incomplete_reason(ckpt: Path) -> str | None:
    """None when `ckpt` is sealed and holds every file of its seal at its size; else what is wrong."""
    try:
        files = json.loads((ckpt / SEAL).read_text(encoding="utf-8"))["files"]
    except FileNotFoundError:
        return "not sealed: its save did not finish"
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return f"unreadable {SEAL}: {exc}"
    if "trainer_state.json" not in files:
        return "no trainer_state.json"
    for name, size in files.items():
        try:
            actual = (ckpt / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} holds {actual} bytes, sealed with {size}"
    return None


def _checkpoints(root: Path) -> list[tuple[int, Path]]:
    """(step, path) of the checkpoint-N folders under `root`, oldest first."""
    found = []
    for path in root.iterdir() if root.is_dir() else ():
        match = _CHECKPOINT_DIR.match(path.name)
        if match and path.is_dir():
            found.append((int(match.group(1)), path))
    return sorted(found)


def _remove_checkpoint(path: Path) -> None:
    (path / SEAL).unlink(missing_ok=True)  # first, so a kill during the removal leaves it unsealed
    shutil.rmtree(path, ignore_errors=True)


def prune_checkpoints(newest: Path, keep: int | None) -> None:
    """Remove the checkpoints older than the sealed `newest` but the keep - 1 most recent of them.

    No limit when keep is None or < 1 (as the Trainer's save_total_limit).
    """
    if keep is None or keep < 1:
        return
    step = int(_CHECKPOINT_DIR.match(newest.name).group(1))
    older = [path for s, path in _checkpoints(newest.parent) if s < step]
    for path in older[:max(0, len(older) - (keep - 1))]:
        _remove_checkpoint(path)


def world_size() -> int:
    """The number of training processes (set by `accelerate launch` / torchrun; 1 otherwise)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def grad_accum_steps(cfg: SFTStageConfig, n_processes: int) -> int:
    """cfg.grad_accum, or the steps that make cfg.global_batch_size from batch_size x processes."""
    if cfg.global_batch_size is None:
        return cfg.grad_accum
    per_step = cfg.batch_size * n_processes
    if cfg.global_batch_size % per_step:
        raise ValueError(f"sft.global_batch_size {cfg.global_batch_size} is not a multiple of sft.batch_size "
                         f"{cfg.batch_size} x {n_processes} processes; change one of them")
    return cfg.global_batch_size // per_step


def model_kwargs(cfg: SFTStageConfig, precision: Any = None) -> dict[str, Any]:
    """The keyword arguments of `from_pretrained` for the model trained: sft.model_dtype (as resolved in
    `precision`, a precision.TrainingPrecision, when given) and sft.model_args, a quantization_config
    mapping turned into the `BitsAndBytesConfig` transformers expects."""
    kwargs = dict(cfg.model_args)
    quant = kwargs.get("quantization_config")
    if isinstance(quant, dict):
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(**quant)
    precision = precision or stage_precision(cfg, quiet=True)
    return {**kwargs, "dtype": _dtype(precision.model_dtype)}


def _dtype(name: str):
    import torch

    value = getattr(torch, name, None)
    if not isinstance(value, torch.dtype):
        raise ValueError(f"sft.model_dtype {name!r} is not a torch dtype (e.g. float32, bfloat16)")
    return value


def rank() -> int:
    """This process's global rank (set by `accelerate launch` / torchrun; 0 otherwise)."""
    return int(os.environ.get("RANK", "0"))


def last_checkpoint(work_dir: str | Path, clean: bool = False) -> str | None:
    """The newest complete trainer checkpoint under work_dir/checkpoints, or None.

    Incomplete ones (`incomplete_reason`) are skipped with a log line, and with `clean` removed, so the
    Trainer never writes a new checkpoint into the remains of a torn one. Every rank may call this at
    once with only rank 0 cleaning: removing incomplete folders never changes which one is chosen.
    """
    chosen = None
    for _, path in reversed(_checkpoints(Path(work_dir) / "checkpoints")):
        reason = incomplete_reason(path)
        if reason is None:
            chosen = chosen or path
            continue
        log.warning("skipping incomplete checkpoint %s (%s)%s", path, reason, "; removing it" if clean else "")
        if clean:
            _remove_checkpoint(path)
    return str(chosen) if chosen else None


def train_sft(model_dir: str, rows: Sequence[dict[str, Any]], work_dir: str | Path, cfg: SFTStageConfig,
              resume: bool = False, progress: bool = False) -> dict[str, Any]:
    """Train, then save the merged full model to work_dir/model; returns loss figures.

    With `resume`, training continues from the newest complete trainer checkpoint under work_dir, if any.
    """
    trainer = build_trainer(model_dir, rows, work_dir, cfg, progress=progress)
    checkpoint = last_checkpoint(work_dir, clean=rank() == 0) if resume else None
    if checkpoint:
        log.info("resuming training from %s", checkpoint)
    result = trainer.train(resume_from_checkpoint=checkpoint)
    n_ranks = world_size()
    if n_ranks > 1:
        _save_distributed(trainer, model_dir, work_dir, cfg)
    else:
        _save_single(trainer, work_dir, cfg)
    # The restored trainer state keeps the logs of the steps before a resume, so their mean is the
    # loss of the whole stage (TRL's `training_loss` counts only the steps of this call).
    losses = [float(h["loss"]) for h in trainer.state.log_history if "loss" in h]
    return {
        "precision": trainer.toolace_r_precision.as_dict(),
        "train_loss": sum(losses) / len(losses) if losses else float(result.training_loss),
        "losses": losses,
        "steps": int(trainer.state.global_step),
        "examples": len(rows),
        "resumed_from": checkpoint,
        "world_size": n_ranks,
        "grad_accum": grad_accum_steps(cfg, n_ranks),
    }


def _save_single(trainer, work_dir: str | Path, cfg: SFTStageConfig) -> None:
    """One process holds the whole model: merge in memory and write the folder."""
    model = trainer.model
    adapter = None
    if cfg.finetune == "lora":
        if cfg.keep_adapter:  # the adapter alone, before merging changes the weights in place
            adapter = _fresh(Path(work_dir) / ".adapter.tmp")
            model.save_pretrained(adapter)
        model = model.merge_and_unload()
    tmp = _fresh(Path(work_dir) / ".model.tmp")
    model.save_pretrained(tmp)
    if adapter is not None:
        adapter.rename(tmp / ADAPTER_DIR)
    _finish_model_dir(trainer, tmp, Path(work_dir) / "model")


def _save_distributed(trainer, model_dir: str, work_dir: str | Path, cfg: SFTStageConfig) -> None:
    """Every rank joins `save_model` (FSDP and ZeRO-3 gather the sharded weights there); rank 0 then
    writes the model folder, merging a LoRA adapter into a fresh copy of the base weights on CPU."""
    work = Path(work_dir)
    saved = work / (".adapter.tmp" if cfg.finetune == "lora" else ".model.tmp")
    if trainer.is_world_process_zero():
        _fresh(saved)
    trainer.accelerator.wait_for_everyone()
    trainer.save_model(str(saved))  # collective; only the main process writes
    trainer.accelerator.wait_for_everyone()
    if trainer.is_world_process_zero():
        if cfg.finetune == "lora":
            from peft import PeftModel
            from transformers import AutoModelForCausalLM

            dtype = _dtype(trainer.toolace_r_precision.model_dtype)
            base = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype)
            merged = PeftModel.from_pretrained(base, str(saved)).merge_and_unload()
            tmp = _fresh(work / ".model.tmp")
            merged.save_pretrained(tmp)
            if cfg.keep_adapter:
                (saved / "training_args.bin").unlink(missing_ok=True)
                saved.rename(tmp / ADAPTER_DIR)
            else:
                shutil.rmtree(saved)
            saved = tmp
        _finish_model_dir(trainer, saved, work / "model")
    trainer.accelerator.wait_for_everyone()  # no rank returns before the folder is there


def _fresh(path: Path) -> Path:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)
    return path


def _finish_model_dir(trainer, tmp: Path, out: Path) -> None:
    tokenizer = trainer.processing_class
    tokenizer.padding_side = "left"  # the engines batch with left padding
    tokenizer.save_pretrained(tmp)
    for leftover in ("training_args.bin",):  # save_model's extra file is not part of a model folder
        (tmp / leftover).unlink(missing_ok=True)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)  # a model folder appears whole or not at all


# --- tokens trained on ------------------------------------------------------------------------------

def tokenize_row(tokenizer: Any, row: dict[str, Any], max_length: int | None = None) -> dict[str, list[int]]:
    """{"input_ids", "completion_mask"} of one prompt-completion row, as training sees it.

    The prompt's ids are those an engine computes for the same text (`add_special_tokens=False`: the
    chat template already wrote every special token it wants, BOS included); the completion starts where
    the tokenisations of prompt and prompt+completion part. An EOS token is appended when the completion
    does not end with one (TRL's rule for text completions), so every row teaches the model to stop.
    """
    from toolace_r.engines.base import common_prefix_len

    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    ids = list(tokenizer(row["prompt"] + row["completion"], add_special_tokens=False)["input_ids"])
    eos = tokenizer.eos_token_id
    if eos is not None and (not ids or ids[-1] != eos):
        ids.append(eos)
    start = common_prefix_len(prompt, ids)
    mask = [0] * start + [1] * (len(ids) - start)
    if max_length is not None:  # TRL's "keep_start" truncation
        ids, mask = ids[:max_length], mask[:max_length]
    return {"input_ids": ids, "completion_mask": mask}


def row_tokens(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens one training row puts through the model: prompt + completion (TRL adds nothing to a
    completion that already ends with the template's end-of-turn token but EOS, counted here too)."""
    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"]
    return len(prompt) + len(completion) + 1


def training_tokens(run_dir: Path, summary: dict[str, Any], base_model: str, sft: Any) -> dict[str, Any]:
    """Tokens the ToolACE-R run trained on: each iteration's corpus x the passes over it, summed
    (`sft.epochs`, or with `sft.max_steps` the rows its steps drew)."""
    from transformers import AutoTokenizer

    from .corpus import read_corpus

    tok = AutoTokenizer.from_pretrained(base_model)
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
