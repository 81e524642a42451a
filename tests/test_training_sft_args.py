"""sft.trl_args and sft.model_args: TRL's and transformers' own knobs reach the trainer, and a key that
toolace-r owns or that TRL does not know fails when the config is built, before any model loads."""
from __future__ import annotations

import pytest

from toolace_r.config import load_config
from toolace_r.training.config import CorpusConfig, SFTStageConfig, TrainConfig
from toolace_r.training.corpus import build_corpus
from toolace_r.training.difficulty import gold_target

from test_training_corpus import PCFG, example


def _rows(tokenizer, n=2):
    """n prompt->gold SFT rows (no sampled answers: no refinement rows)."""
    exs = {f"e{i}": example(f"e{i}", f"City{i}") for i in range(n)}
    return build_corpus(exs, {k: {"samples": []} for k in exs}, list(exs),
                        {k: gold_target(v, "") for k, v in exs.items()}, tokenizer, CorpusConfig(), PCFG)


def test_trl_args_report_to_tensorboard_writes_events(tiny_model_dir, chatml_tokenizer, tmp_path, monkeypatch):
    from toolace_r.training.sft import train_sft

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    # transformers 5 has no TrainingArguments.logging_dir; its TensorBoard callback reads this variable.
    monkeypatch.setenv("TENSORBOARD_LOGGING_DIR", str(tmp_path / "tb"))
    cfg = SFTStageConfig(finetune="full", max_steps=2, batch_size=1, save_steps=100,
                         trl_args={"report_to": "tensorboard", "run_name": "knobs", "weight_decay": 0.01})
    out = train_sft(str(tiny_model_dir), _rows(chatml_tokenizer), tmp_path / "work", cfg)
    assert out["steps"] == 2
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    assert (tmp_path / "work" / "model").is_dir()  # the stage ends with its model folder as before


def test_trl_args_override_defaults_and_packing_trains(tiny_model_dir, chatml_tokenizer, tmp_path):
    from toolace_r.training.sft import build_trainer

    cfg = SFTStageConfig(max_steps=1, batch_size=2, save_steps=100,
                         trl_args={"packing": True, "max_grad_norm": 0.5, "optim": "adamw_torch"})
    trainer = build_trainer(str(tiny_model_dir), _rows(chatml_tokenizer, 3), tmp_path, cfg)
    assert trainer.args.packing and trainer.args.max_grad_norm == 0.5
    assert trainer.args.completion_only_loss and trainer.args.report_to in ("none", [])  # defaults kept
    # The three rows share one packed row, and their prompts stay out of the loss: TRL 1.16 turns the
    # completion masks into labels before packing, TRL 1.0 packs the masks themselves.
    packed = trainer.train_dataset[0]
    assert len(trainer.train_dataset) == 1 and len(packed["seq_lengths"]) == 3
    assert -100 in packed["labels"] if "labels" in packed else 0 in packed["completion_mask"]
    result = trainer.train()
    assert trainer.state.global_step == 1 and result.training_loss > 0


@pytest.mark.parametrize(("key", "fix"), [
    ("per_device_train_batch_size", "sft.batch_size"),
    ("save_total_limit", "sft.save_total_limit"),
    ("output_dir", "top-level output_dir"),
    ("learning_rate", "sft.learning_rate"),
    ("activation_checkpointing", "sft.gradient_checkpointing"),
    ("logging_dir", "TENSORBOARD_LOGGING_DIR"),
])
def test_trl_args_refuses_owned_keys_naming_the_field(key, fix):
    import dataclasses

    from trl import SFTConfig

    if key == "logging_dir" and "logging_dir" in {f.name for f in dataclasses.fields(SFTConfig)}:
        pytest.skip("this transformers still has its (deprecated) logging_dir")
    with pytest.raises(ValueError, match=rf"sft\.trl_args\.{key}:.*{fix}"):
        SFTStageConfig(trl_args={key: 1})


def test_trl_args_unknown_key_lists_close_matches_before_any_model_loads(tmp_path):
    with pytest.raises(ValueError, match=r"sft\.trl_args\.weight_decy: not a field of trl\.SFTConfig "
                                         r"\(close matches: weight_decay.*dataclasses\.fields"):
        load_config(TrainConfig, None, ["sft.trl_args.weight_decy=0.1"])
    from toolace_r.training.sft import build_trainer

    cfg = SFTStageConfig()
    cfg.trl_args = {"report_too": "none"}  # changed after the config was built: still caught first
    with pytest.raises(ValueError, match="report_to"):
        build_trainer(str(tmp_path / "no-such-model"), [], tmp_path, cfg)


def test_model_args_reach_from_pretrained(tiny_model_dir, chatml_tokenizer, tmp_path):
    from toolace_r.training.sft import build_trainer, model_kwargs

    cfg = load_config(TrainConfig, None, ["sft.model_args.attn_implementation=eager", "sft.max_steps=1"]).sft
    trainer = build_trainer(str(tiny_model_dir), _rows(chatml_tokenizer, 1), tmp_path, cfg)
    assert trainer.model.config._attn_implementation == "eager"
    # QLoRA: a mapping becomes the BitsAndBytesConfig from_pretrained expects (bitsandbytes itself needs a GPU)
    quant = model_kwargs(SFTStageConfig(model_args={"quantization_config": {"load_in_4bit": True}}))
    assert type(quant["quantization_config"]).__name__ == "BitsAndBytesConfig"
    assert quant["quantization_config"].load_in_4bit
    with pytest.raises(ValueError, match="sft.model_dtype"):
        SFTStageConfig(model_args={"dtype": "bfloat16"})
    with pytest.raises(ValueError, match="quantization_config: expected a mapping"):
        SFTStageConfig(model_args={"quantization_config": "4bit"})
