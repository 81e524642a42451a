"""The SFT loss with the LM head applied only where a label is (`sft.compact_logits`, docs/method.md#logits).

A training row is mostly prompt: ~400 prompt tokens carry no label (-100) for ~50 answer tokens that do.
TRL's SFTTrainer already avoids materialising the full `(batch, length, vocab)` logits with a fused,
chunked LM head, but on a device without Triton (any CPU) that head scores *every* position so that the tile
shapes stay fixed; only on CUDA/XPU does it drop the unlabelled ones. On a CPU that is ~85% of the head's
work, forward and backward, spent on positions the loss ignores.

`CompactLossTrainer` passes transformers' `logits_to_keep` instead: the model's forward runs the head on
the positions whose next token is labelled in some row of the batch (one index set for the batch, so the
call goes through the model's own forward and every wrapper around it: PEFT, DDP, FSDP), and the loss is
the same token mean TRL computes: the sum of the labelled tokens' negative log-likelihoods over the
batch's label count (`num_items_in_batch` under gradient accumulation). TRL's `entropy` and
`mean_token_accuracy` metrics are kept, computed from the same logits. Any other loss set-up (a
`compute_loss_func`, label smoothing, DFT, MoE auxiliary losses, sequence parallelism) goes to TRL's own
`compute_loss` unchanged.
"""
from __future__ import annotations

import inspect
from typing import Any

import torch

IGNORE = -100


def kept_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions p (0 <= p < length - 1) whose next token is labelled in at least one row."""
    return (labels[:, 1:] != IGNORE).any(dim=0).nonzero().flatten()


def compact_nll(model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None
                ) -> tuple[torch.Tensor, dict[str, torch.Tensor], Any]:
    """(loss, per-token stats, model outputs) for a causal-LM batch with `labels`, the head run only on
    `kept_positions`. stats: "nll", "entropy" (detached) and "correct" of every labelled token."""
    labels = inputs["labels"]
    keep = kept_positions(labels)
    model_inputs = {k: v for k, v in inputs.items() if k != "labels"}
    model_inputs["use_cache"] = False
    outputs = model(**model_inputs, logits_to_keep=keep)
    targets = labels[:, 1:].index_select(1, keep.to(labels.device))
    mask = targets != IGNORE
    logits = outputs.logits[mask].float()  # [labelled tokens, vocab]
    wanted = targets[mask]
    log_probs = torch.log_softmax(logits, dim=-1)
    nll = -log_probs.gather(-1, wanted[:, None]).squeeze(-1)
    count = mask.sum() if num_items_in_batch is None else num_items_in_batch
    loss = nll.sum() / torch.as_tensor(count, device=nll.device).clamp(min=1)
    with torch.no_grad():
        entropy = -(log_probs.exp() * log_probs).sum(-1)
        correct = logits.argmax(-1) == wanted
    return loss, {"nll": nll.detach(), "entropy": entropy, "correct": correct}, outputs


def accepts_logits_to_keep(model: Any) -> bool:
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    try:
        return "logits_to_keep" in inspect.signature(base.forward).parameters
    except (TypeError, ValueError):
        return False


def trainer_class():
    """trl.SFTTrainer with `compute_loss` taking the compact path when the run's loss allows it."""
    from trl import SFTTrainer

    class CompactLossTrainer(SFTTrainer):
        _compact_ok: bool | None = None  # the run's set-up does not change between steps: decided once

        def _compact(self, model: Any) -> bool:
            if self._compact_ok is None:
                args = self.args
                parallelism = getattr(self.accelerator, "parallelism_config", None)
                self._compact_ok = (self.compute_loss_func is None and self.label_smoother is None
                                    and args.loss_type == "nll" and not self.aux_loss_enabled
                                    and not getattr(parallelism, "sp_enabled", False)
                                    and accepts_logits_to_keep(self.model))
            return self._compact_ok

        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            if not self._compact(model):
                return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
            mode = "train" if self.model.training else "eval"
            loss, stats, outputs = compact_nll(model, inputs, num_items_in_batch)
            # As TRL: num_items_in_batch counts every rank's tokens and DDP averages the gradients.
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * (self.accelerator.num_processes // self.get_tp_size())
            gather = self.accelerator.gather_for_metrics
            labelled = gather(torch.as_tensor(stats["nll"].numel(), device=loss.device)).sum()
            entropy = gather(stats["entropy"].sum()).sum()
            correct = gather(stats["correct"].sum()).sum()
            self._metrics[mode]["entropy"].append((entropy / labelled).item() if labelled > 0 else 0.0)
            self._metrics[mode]["mean_token_accuracy"].append((correct / labelled).item() if labelled > 0 else 0.0)
            if mode == "train":
                if "attention_mask" in inputs:
                    local = inputs["attention_mask"].sum()
                else:  # padding-free: one row of real tokens
                    local = torch.tensor(inputs["position_ids"].size(1), device=loss.device)
                self._total_train_tokens += gather(local).sum().item() // self._tp_size
            self._metrics[mode]["num_tokens"] = [self._total_train_tokens]
            return (loss, outputs) if return_outputs else loss

    return CompactLossTrainer
