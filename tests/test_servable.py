"""Tests for servable.py: a run's model folders render, with their own chat template, the prompt the run
trained on, keep their adapter and describe themselves in a model card."""
from __future__ import annotations

import json

import pytest

from toolace_r.prompts import PromptConfig, answer_format, render_prompt
from toolace_r.servable import hub_datasets, trained_chat_template, vllm_command
from toolace_r.tools import Tool

WEATHER = Tool(name="get_weather", description="Température d'une ville.", parameters={
    "type": "dict", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]})
QUESTION = [{"role": "user", "content": "Weather in Paris?"}]
WITH_SYSTEM = [{"role": "system", "content": "Be brief. ✓"}, *QUESTION]


def _builders():
    from chat_templates import build_hermes_tokenizer, build_llama31_tokenizer
    from conftest import build_chatml_tokenizer

    return {"chatml": build_chatml_tokenizer, "hermes": build_hermes_tokenizer, "llama31": build_llama31_tokenizer}


BUILD = _builders()


def shown_tools(tok, cfg, tools):
    """The tools as a client hands them to the template: the shape the run's prompt lists them in."""
    if answer_format(tok, cfg).native:
        return [t.to_openai() for t in tools]
    return [{"type": "function", "function": t.to_bfcl()} for t in tools]


@pytest.mark.parametrize("family, cfg", [
    ("chatml", PromptConfig()),
    ("hermes", PromptConfig(answer_format="pythonic")),
    ("llama31", PromptConfig(answer_format="pythonic")),
    ("hermes", PromptConfig()),
    ("hermes", PromptConfig(system_prompt='A "careful" helper — über.')),
    ("llama31", PromptConfig(system_prompt="You call tools.")),
    ("chatml", PromptConfig(instruction="bfcl")),
])
def test_the_trained_template_renders_the_training_prompt_byte_for_byte(family, cfg):
    tok, served = BUILD[family](), BUILD[family]()  # served: an independent tokenizer given the folder's template
    template = trained_chat_template(tok, cfg)
    fmt = answer_format(tok, cfg)
    assert (template == tok.chat_template) == (fmt.native and not fmt.system_prompt)  # wrapped only if needed
    served.chat_template = template
    for messages in (QUESTION, WITH_SYSTEM):
        trained = render_prompt(tok, [WEATHER], messages, cfg=cfg)
        rendered = served.apply_chat_template(messages, tools=shown_tools(tok, cfg, [WEATHER]), tokenize=False,
                                              add_generation_prompt=True, **cfg.chat_template_kwargs)
        assert rendered == trained
        # our renderer unwraps the template: a model trained from this folder renders as the first did
        assert render_prompt(served, [WEATHER], messages, cfg=cfg) == trained
    if not fmt.native:  # pythonic without tools: plain chat stays the base template's
        assert served.apply_chat_template(QUESTION, tokenize=False) == tok.apply_chat_template(QUESTION, tokenize=False)


def test_a_template_wrapped_twice_is_not_wrapped_again(chatml_tokenizer):
    once = trained_chat_template(chatml_tokenizer)
    chatml_tokenizer.chat_template = once
    assert trained_chat_template(chatml_tokenizer) == once


def test_vllm_parser_follows_the_answer_format(hermes_tokenizer, llama31_tokenizer, chatml_tokenizer):
    def cmd(tok):
        fmt = answer_format(tok)
        return vllm_command("DIR", fmt.parser, fmt.native)
    assert cmd(hermes_tokenizer).endswith("--tool-call-parser hermes")
    assert cmd(llama31_tokenizer).endswith("--tool-call-parser llama3_json")
    assert cmd(chatml_tokenizer).endswith("--tool-call-parser pythonic")


def test_a_registered_base_model_is_named_by_its_hub_id():
    from toolace_r.servable import hub_base_model

    assert hub_base_model("smollm2-135m") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_base_model("Qwen/Qwen2.5-7B-Instruct") == "Qwen/Qwen2.5-7B-Instruct"


def test_hub_datasets_names_hub_ids_only(tmp_path):
    local = tmp_path / "a.jsonl"
    local.write_text("")
    assert hub_datasets(f"mix:toolace:Team-ACE/ToolACE;jsonl:{local};bfcl:simple_python") == [
        "Team-ACE/ToolACE", "gorilla-llm/Berkeley-Function-Calling-Leaderboard"]
    assert hub_datasets(None) == []


# --- a run's model folder ----------------------------------------------------------------------------

@pytest.mark.parametrize("family, extra", [("chatml", {}), ("hermes", {"prompt.system_prompt": "null"})])
def test_a_runs_model_folder_serves_the_prompt_it_trained_on(family, extra, tiny_model_dir, hermes_model_dir,
                                                             tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from test_training_loop import make_cfg, scripted_factory, write_data
    from toolace_r.data import load
    from toolace_r.training import run_training

    base = {"chatml": tiny_model_dir, "hermes": hermes_model_dir}[family]
    data = write_data(tmp_path / "train.jsonl")
    # chatml: pythonic with the loop tests' own system prompt; hermes: native, the template's own prompt
    cfg = make_cfg(base, data, **{"loop.max_iterations": 1, "sft.max_length": 4096, **extra})
    root = tmp_path / "run"
    run_training(cfg, root, engine_factory=scripted_factory(), echo=lambda s: None)
    folder = root / "iter_0" / "model"
    tok = AutoTokenizer.from_pretrained(folder)
    AutoModelForCausalLM.from_pretrained(folder)  # loads as any checkpoint
    assert (folder / "adapter" / "adapter_config.json").exists()  # LoRA kept beside the merged weights
    examples = {ex.id: ex for ex in load(f"jsonl:{data}")}
    rows = [json.loads(line) for line in (root / "iter_0" / "corpus.jsonl").read_text().splitlines()]
    sft = [r for r in rows if r["kind"] == "sft"]
    assert sft
    for row in sft:
        ex = examples[row["id"]]
        rendered = tok.apply_chat_template(ex.messages, tools=shown_tools(tok, cfg.prompt, ex.tools), tokenize=False,
                                           add_generation_prompt=True, **cfg.prompt.chat_template_kwargs)
        assert rendered == row["prompt"]
    card = (folder / "README.md").read_text()
    assert card.startswith("---\nbase_model: ") and "final model" in card
    parser = "hermes" if family == "hermes" else "pythonic"
    assert f"vllm serve {folder} --enable-auto-tool-choice --tool-call-parser {parser}" in card
