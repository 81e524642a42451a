"""The fast training/inference path: dtype "auto" (bf16 only where it is native), the LM head only on labelled
positions (same loss and gradients as the full-logits path), padding-free batches (no token attends across
examples: the packed loss is the per-example losses' token mean)."""
from __future__ import annotations

import pytest
import torch

from toolace_r.precision import CPU_BF16_ENV, choose_dtype, fast_bf16, training_precision
from toolace_r.training.config import SFTStageConfig

from test_training_sft_args import _rows


def test_auto_picks_bf16_only_where_the_cpu_has_it(monkeypatch):
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    assert choose_dtype("auto", "cpu").dtype == "float32"
    lora = training_precision("auto", "auto", "lora", "cpu")
    assert (lora.model_dtype, lora.autocast_bf16) == ("float32", False)
    monkeypatch.setenv(CPU_BF16_ENV, "1")
    assert choose_dtype("auto", "cpu").dtype == "bfloat16"
    assert CPU_BF16_ENV in choose_dtype("auto", "cpu").reason
    lora = training_precision("auto", "auto", "lora", "cpu")
    full = training_precision("auto", "auto", "full", "cpu")
    # LoRA: frozen base in bf16; full fine-tuning: fp32 master weights; both under bf16 autocast
    assert (lora.model_dtype, lora.autocast_bf16) == ("bfloat16", True)
    assert (full.model_dtype, full.autocast_bf16) == ("float32", True)
    # an explicit setting is kept whatever the hardware
    assert choose_dtype("float32", "cpu").dtype == "float32"
    kept = training_precision("float32", False, "lora", "cpu")
    assert (kept.model_dtype, kept.autocast_bf16, kept.reason) == ("float32", False, "set in the config")


def test_cpu_probe_reads_torch_flags(monkeypatch):
    monkeypatch.delenv(CPU_BF16_ENV, raising=False)
    fast, why = fast_bf16("cpu")
    has = torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()
    assert fast == has
    assert ("AVX512-BF16" in why or "AMX" in why) if has else "neither" in why


def test_bf16_setting_is_checked():
    with pytest.raises(ValueError, match="sft.bf16"):
        SFTStageConfig(bf16="sometimes")


def test_hf_engine_records_its_dtype_and_why(tiny_model_dir, monkeypatch):
    from toolace_r.engines.hf import HFEngine

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    with HFEngine(model=str(tiny_model_dir), dtype="auto", device="cpu") as engine:
        assert engine.precision.dtype == "bfloat16" and CPU_BF16_ENV in engine.precision.reason
        assert next(engine.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setenv(CPU_BF16_ENV, "0")
    with HFEngine(model=str(tiny_model_dir), dtype="auto", device="cpu") as engine:
        assert engine.precision.dtype == "float32"
        assert next(engine.model.parameters()).dtype == torch.float32


def _rows_of_varied_length(tokenizer, n=4):
    rows = _rows(tokenizer, n)
    for i, row in enumerate(rows):  # prompts of different lengths: the batch is padded
        row["prompt"] = row["prompt"].replace("City", "City " + "very " * (3 * i), 1)
    return rows


def _trainer(model_dir, rows, tmp_path, **cfg):
    from toolace_r.training.sft import build_trainer

    base = dict(finetune="full", max_steps=1, batch_size=len(rows), save_steps=100, model_dtype="float32",
                bf16=False)
    return build_trainer(str(model_dir), rows, tmp_path, SFTStageConfig(**{**base, **cfg}))


def _batch(trainer):
    return next(iter(trainer.get_train_dataloader()))


def _grads(model, loss):
    model.zero_grad()
    loss.backward()
    return {n: p.grad.detach().clone() for n, p in model.named_parameters() if p.grad is not None}


def test_compact_logits_give_the_full_logits_loss_and_gradients(tiny_model_dir, chatml_tokenizer, tmp_path):
    trainer = _trainer(tiny_model_dir, _rows_of_varied_length(chatml_tokenizer), tmp_path)
    assert type(trainer).__name__ == "CompactLossTrainer"
    model = trainer.model
    model.train()
    batch = _batch(trainer)
    assert (batch["attention_mask"] == 0).any()  # padded
    labels = batch["labels"]
    assert (labels[:, 1:] != -100).sum() < labels[:, 1:].numel() / 2  # most positions carry no label

    # The full-logits path: transformers' own causal-LM loss over the (batch, length, vocab) logits.
    full = model(**{k: v for k, v in batch.items() if k != "labels"}, labels=labels, use_cache=False)
    assert full.logits.shape[1] == labels.shape[1]
    full_grads = _grads(model, full.loss)
    compact = trainer.compute_loss(model, dict(batch))
    compact_grads = _grads(model, compact)
    assert compact.item() == pytest.approx(full.loss.item(), abs=1e-5)
    assert full_grads.keys() == compact_grads.keys() and full_grads
    for name, grad in full_grads.items():
        torch.testing.assert_close(compact_grads[name], grad, atol=1e-5, rtol=1e-4, msg=name)
    # TRL's own fused loss (every position scored on a CPU) agrees as well
    trl = super(type(trainer), trainer).compute_loss(model, dict(batch))
    assert trl.item() == pytest.approx(full.loss.item(), abs=1e-5)
    # under gradient accumulation the sum is divided by the step's label count, as TRL does
    n = int((labels[:, 1:] != -100).sum())
    scaled = trainer.compute_loss(model, dict(batch), num_items_in_batch=torch.tensor(2 * n))
    assert scaled.item() == pytest.approx(full.loss.item() / 2, abs=1e-5)


def test_compact_head_runs_on_labelled_positions_only(tiny_model_dir, chatml_tokenizer, tmp_path):
    from toolace_r.training.compact_loss import kept_positions

    trainer = _trainer(tiny_model_dir, _rows_of_varied_length(chatml_tokenizer), tmp_path)
    batch = _batch(trainer)
    seen = []
    head = trainer.model.get_output_embeddings()
    hook = head.register_forward_hook(lambda m, inp, out: seen.append(inp[0].shape[1]))
    try:
        trainer.compute_loss(trainer.model, dict(batch))
    finally:
        hook.remove()
    keep = kept_positions(batch["labels"])
    assert seen == [len(keep)] and len(keep) < batch["labels"].shape[1] - 1


def test_padding_free_batch_loss_is_the_per_example_losses(tiny_model_dir, chatml_tokenizer, tmp_path):
    rows = _rows_of_varied_length(chatml_tokenizer)
    packed = _trainer(tiny_model_dir, rows, tmp_path / "packed", trl_args={"padding_free": True})
    batch = _batch(packed)
    assert batch["input_ids"].shape[0] == 1 and "attention_mask" not in batch  # one row, no padding
    assert (batch["position_ids"] == 0).sum() == len(rows)  # each example restarts its positions
    model = packed.model
    model.eval()
    with torch.no_grad():
        loss = packed.compute_loss(model, dict(batch)).item()
        # each example alone, no padding: sum of its token NLLs, then the token mean over all of them
        total, count = 0.0, 0
        for row in packed.train_dataset:
            ids = torch.tensor([row["input_ids"]])
            labels = torch.tensor([row["labels"]])
            assert (labels == -100).any() and (labels != -100).any()
            n = int((labels[:, 1:] != -100).sum())
            total += model(input_ids=ids, labels=labels).loss.item() * n
            count += n
    assert loss == pytest.approx(total / count, abs=1e-5)
    # and it differs from what cross-example attention would give (no block-diagonal mask)
    with torch.no_grad():
        leaky = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss.item()
    assert abs(leaky - loss) > 1e-4


def test_padding_free_rows_are_truncated_as_trl_would(tiny_model_dir, chatml_tokenizer, tmp_path):
    rows = _rows_of_varied_length(chatml_tokenizer)
    lengths = [len(r["input_ids"]) for r in _trainer(tiny_model_dir, rows, tmp_path / "a").train_dataset]
    cut = sorted(lengths)[1]
    padded = _trainer(tiny_model_dir, rows, tmp_path / "b", max_length=cut)
    free = _trainer(tiny_model_dir, rows, tmp_path / "c", max_length=cut, trl_args={"padding_free": True})
    assert [r["input_ids"] for r in free.train_dataset] == [r["input_ids"] for r in padded.train_dataset]
    assert max(len(r["input_ids"]) for r in free.train_dataset) <= cut


def test_lora_in_bf16_keeps_adapters_in_float32(tiny_model_dir, chatml_tokenizer, tmp_path, monkeypatch):
    from toolace_r.training.sft import train_sft

    monkeypatch.setenv(CPU_BF16_ENV, "1")
    cfg = SFTStageConfig(finetune="lora", max_steps=1, batch_size=2, save_steps=100)
    from toolace_r.training.sft import build_trainer

    trainer = build_trainer(str(tiny_model_dir), _rows(chatml_tokenizer), tmp_path / "t", cfg)
    dtypes = {n: p.dtype for n, p in trainer.model.named_parameters()}
    assert {d for n, d in dtypes.items() if "lora_" in n} == {torch.float32}
    assert {d for n, d in dtypes.items() if "lora_" not in n} == {torch.bfloat16}
    assert trainer.args.bf16
    out = train_sft(str(tiny_model_dir), _rows(chatml_tokenizer), tmp_path / "work", cfg)
    assert out["precision"] == {"model_dtype": "bfloat16", "bf16_autocast": True, "reason": f"{CPU_BF16_ENV}=1"}
    assert out["losses"] and all(loss == loss for loss in out["losses"])  # finite, trained
