"""Tests for answer_format.py: the answer format of a run (prompts.answer_format) on templates that
behave like the families users train, Qwen2.5-style Hermes calls and Llama-3.1-style JSON calls
(tests/chat_templates.py), beside the plain ChatML of the embedded model.

What must hold: the model is told one format; gold calls are written the way the template writes an
assistant `tool_calls` turn and parse back to the same calls; refine rounds keep the model's own bytes and
extend the previous prompt; training rows hold exactly the special tokens the engines see (one BOS).
"""
from __future__ import annotations

import json

import pytest

from toolace_r.calls import ToolCall, parse
from toolace_r.data.example import Example, Gold
from toolace_r.evaluation import check
from toolace_r.prompts import (
    TOOLACE_SYSTEM_PROMPT,
    PromptConfig,
    answer_format,
    build_messages,
    pair_conversation,
    refine_suffix,
    render_pair,
    render_prompt,
    tools_json,
)
from toolace_r.tools import Tool
from toolace_r.training.corpus import build_corpus
from toolace_r.training.config import CorpusConfig
from toolace_r.training.difficulty import gold_target

WEATHER = Tool(
    name="get_weather",
    description="Température actuelle d'une ville.",
    parameters={"type": "dict", "properties": {
        "city": {"type": "string", "description": "City name"},
        "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"}},
        "required": ["city"]},
)
TOOLS = [WEATHER]
QUESTION = [{"role": "user", "content": "What is the weather in Paris in celsius?"}]
ONE = [ToolCall("get_weather", {"city": "Paris", "unit": "celsius"})]
TWO = [ToolCall("get_weather", {"city": "Paris"}), ToolCall("get_weather", {"city": "Zürich", "unit": "celsius"})]
NATIVE, PYTHONIC = PromptConfig(answer_format="native"), PromptConfig(answer_format="pythonic")


def example(calls=ONE, ex_id="w1") -> Example:
    return Example(id=ex_id, messages=list(QUESTION), tools=list(TOOLS), gold=Gold("calls", calls=list(calls)),
                   category="simple")


@pytest.fixture(params=["hermes", "llama31"])
def native_tok(request, hermes_tokenizer, llama31_tokenizer):
    return {"hermes": hermes_tokenizer, "llama31": llama31_tokenizer}[request.param]


# --- resolution --------------------------------------------------------------------------------------

def test_auto_is_native_where_the_template_renders_tool_calls(chatml_tokenizer, hermes_tokenizer, llama31_tokenizer):
    plain, hermes, llama = (answer_format(t) for t in (chatml_tokenizer, hermes_tokenizer, llama31_tokenizer))
    assert (plain.name, plain.system_prompt) == ("pythonic", TOOLACE_SYSTEM_PROMPT)
    assert (hermes.name, hermes.parser, hermes.parallel) == ("native", "hermes", True)
    # the parser is found by reading back the template's own call, and one call per message is learnt
    assert (llama.name, llama.parser, llama.parallel) == ("native", "json", False)
    assert answer_format(hermes_tokenizer, PYTHONIC).name == "pythonic"


def test_a_template_change_is_seen_on_the_same_tokenizer(hermes_tokenizer):
    from conftest import CHATML_TEMPLATE

    assert answer_format(hermes_tokenizer).native
    hermes_tokenizer.chat_template = CHATML_TEMPLATE
    assert answer_format(hermes_tokenizer).name == "pythonic"


@pytest.mark.parametrize("settings, fix", [
    ({"answer_format": "pythonic", "tools_in": "template"}, "prompt.tools_in: auto"),
    ({"answer_format": "native", "tools_in": "system"}, "prompt.tools_in: auto"),
    ({"answer_format": "native", "system_prompt": TOOLACE_SYSTEM_PROMPT}, "remove prompt.system_prompt"),
])
def test_contradictory_settings_are_config_errors_naming_the_setting(settings, fix):
    with pytest.raises(ValueError, match=fix):
        PromptConfig(**settings)


def test_auto_with_the_toolace_prompt_on_a_native_template_is_an_error(hermes_tokenizer):
    cfg = PromptConfig(system_prompt=TOOLACE_SYSTEM_PROMPT)  # auto resolves native here: two formats
    with pytest.raises(ValueError, match="answer_format: pythonic"):
        render_prompt(hermes_tokenizer, TOOLS, QUESTION, cfg=cfg)


def test_native_on_a_template_without_tool_calls_says_what_to_change(chatml_tokenizer):
    with pytest.raises(ValueError, match="does not render an assistant message's tool_calls.*answer_format: pythonic"):
        answer_format(chatml_tokenizer, NATIVE)


# --- one instruction ---------------------------------------------------------------------------------

def test_pythonic_on_a_native_template_shows_the_tools_once_under_toolace_instruction(native_tok):
    prompt = render_prompt(native_tok, TOOLS, QUESTION, cfg=PYTHONIC)
    assert prompt.count(TOOLACE_SYSTEM_PROMPT) == 1 and tools_json(TOOLS) in prompt
    assert "# Tools" not in prompt and "To call a function" not in prompt  # the template's own instruction


def test_native_leaves_the_tools_and_the_instruction_to_the_template(native_tok):
    prompt = render_prompt(native_tok, TOOLS, QUESTION)
    assert "func_name1" not in prompt and tools_json(TOOLS) not in prompt
    assert ("# Tools" in prompt) or ("To call a function" in prompt)
    assert '"name": "get_weather"' in prompt  # the schema, as the template writes it


def test_native_keeps_an_examples_own_system_message(hermes_tokenizer):
    msgs = [{"role": "system", "content": "Answer in French."}, *QUESTION]
    prompt = render_prompt(hermes_tokenizer, TOOLS, msgs)
    assert prompt.startswith("<|im_start|>system\nAnswer in French.\n\n# Tools")
    assert "You are a helpful assistant" not in prompt


# --- gold -> render -> parse -------------------------------------------------------------------------

CASES = [ONE, [ToolCall("math.factorial", {"n": 5})], [ToolCall("f", {"xs": [1, 2.5, None, True],
                                                                      "nested": {"k": ["é", {"z": False}]}})]]


@pytest.mark.parametrize("calls", CASES)
def test_gold_render_parse_gives_the_same_calls_in_each_format(native_tok, chatml_tokenizer, calls):
    for tok, cfg in ((native_tok, NATIVE), (native_tok, PYTHONIC), (chatml_tokenizer, PromptConfig())):
        fmt = answer_format(tok, cfg)
        text = fmt.target(calls)
        assert fmt.parse(text).calls == calls, (fmt.name, text)
        # and the training completion is that text, through the end-of-turn token
        _, completion = render_pair(tok, TOOLS, QUESTION, text, cfg=cfg)
        assert completion == text + tok.eos_token


def test_parallel_calls_follow_what_the_template_can_write(hermes_tokenizer, llama31_tokenizer):
    hermes = answer_format(hermes_tokenizer)
    text = hermes.target(TWO)
    assert text.count("<tool_call>") == 2 and parse(text, "hermes").calls == TWO
    llama = answer_format(llama31_tokenizer)
    with pytest.raises(ValueError, match="one tool call per message"):
        llama.target(TWO)
    assert gold_target(example(TWO), "", llama) is None  # not trainable in this format
    assert gold_target(example(TWO), "", answer_format(llama31_tokenizer, PYTHONIC)).startswith("[get_weather(")


def test_native_answers_score_with_the_native_parser(native_tok):
    fmt = answer_format(native_tok)
    ex = example()
    text = fmt.target(ONE)
    assert check(ex, text, fmt.parser).valid
    assert not check(ex, text).valid  # BFCL's pythonic decoder does not read native calls
    wrong = fmt.target([ToolCall("get_weather", {"city": "Lyon", "unit": "celsius"})])
    assert check(ex, wrong, fmt.parser).error_type == "value"


# --- refinement in the native format -----------------------------------------------------------------

def test_native_refine_round_holds_the_previous_answer_as_tool_calls_and_extends_the_prompt(native_tok):
    fmt = answer_format(native_tok)
    answer = fmt.target(ONE)
    chat = build_messages(TOOLS, QUESTION, [answer], fmt=fmt)
    assert chat[-2]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": ONE[0].arguments}
    p0 = render_prompt(native_tok, TOOLS, QUESTION)
    p1 = render_prompt(native_tok, TOOLS, QUESTION, [answer])
    assert p1 == p0 + answer + refine_suffix(native_tok)  # the KV of round 0 is a prefix of round 1


def test_an_answer_the_template_would_write_differently_goes_back_verbatim(hermes_tokenizer):
    # Same call, other spacing: re-rendering it would change the bytes the model wrote.
    odd = '<tool_call>\n{"name":"get_weather","arguments":{"city":"Paris","unit":"celsius"}}\n</tool_call>'
    fmt = answer_format(hermes_tokenizer)
    assert fmt.assistant_message(odd) == {"role": "assistant", "content": odd}
    p0 = render_prompt(hermes_tokenizer, TOOLS, QUESTION)
    assert render_prompt(hermes_tokenizer, TOOLS, QUESTION, [odd]).startswith(p0 + odd)


def test_keep_rows_repeat_the_models_own_answer_byte_for_byte(native_tok):
    fmt = answer_format(native_tok)
    ex = example()
    right, wrong = fmt.target(ONE), fmt.target([ToolCall("get_weather", {"city": "Rome"})])
    records = {"w1": {"samples": [{"text": wrong, "valid": False}, {"text": right, "valid": True}]}}
    rows = build_corpus({"w1": ex}, records, ["w1"], {"w1": gold_target(ex, "", fmt)}, native_tok,
                        CorpusConfig(refine_share=1.0), PromptConfig())
    by_kind = {r["kind"]: r for r in rows}
    assert by_kind["keep"]["completion"] == right + native_tok.eos_token
    assert by_kind["fix"]["completion"] == right + native_tok.eos_token  # the gold, written natively
    assert by_kind["fix"]["prompt"].endswith(wrong + refine_suffix(native_tok))


def test_pair_conversation_renders_to_the_training_strings(native_tok, chatml_tokenizer):
    for tok in (native_tok, chatml_tokenizer):
        fmt = answer_format(tok)
        prev, goal = fmt.target([ToolCall("get_weather", {"city": "Rome"})]), fmt.target(ONE)
        prompt, completion = render_pair(tok, TOOLS, QUESTION, goal, [prev])
        row = pair_conversation(tok, TOOLS, QUESTION, goal, [prev])
        assert ("tools" in row) == fmt.native  # pythonic prompts list the tools in the system message
        kwargs = {"tools": row.get("tools"), "tokenize": False, **row.get("chat_template_kwargs", {})}
        assert tok.apply_chat_template(row["prompt"], add_generation_prompt=True, **kwargs) == prompt
        full = tok.apply_chat_template(row["prompt"] + row["completion"], **kwargs)
        assert full.startswith(prompt + completion)


# --- history -----------------------------------------------------------------------------------------

def test_past_tool_calls_in_the_context_are_shown_in_the_runs_format(hermes_tokenizer):
    history = [*QUESTION, {"role": "assistant", "content": "", "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "get_weather", "arguments": '{"city": "Paris"}'}}]},
        {"role": "tool", "content": '{"temp": 21}'}, {"role": "user", "content": "And in Rome?"}]
    native = render_prompt(hermes_tokenizer, TOOLS, history)
    assert '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' in native
    assert "<tool_response>" in native
    pythonic = render_prompt(hermes_tokenizer, TOOLS, history, cfg=PYTHONIC)
    assert '<|im_start|>assistant\n[get_weather(city="Paris")]<|im_end|>' in pythonic  # not an empty turn
    # a pythonic history (ToolACE data) becomes tool_calls under the native format
    toolace = [*QUESTION, {"role": "assistant", "content": '[get_weather(city="Paris")]'},
               {"role": "tool", "content": '{"temp": 21}'}, {"role": "user", "content": "And in Rome?"}]
    assert render_prompt(hermes_tokenizer, TOOLS, toolace) == native


# --- golden files ------------------------------------------------------------------------------------

@pytest.mark.parametrize("fmt_name", ["native", "pythonic"])
def test_golden_files_per_family_and_format(native_tok, fmt_name, golden):
    family = "hermes" if "<|im_start|>" in native_tok.chat_template else "llama31"
    cfg = PromptConfig(answer_format=fmt_name)
    fmt = answer_format(native_tok, cfg)
    gold, prev = fmt.target(ONE), fmt.target([ToolCall("get_weather", {"city": "Paris"})])
    golden(f"{family}_{fmt_name}_prompt.txt", render_prompt(native_tok, TOOLS, QUESTION, cfg=cfg))
    for name, previous in (("pair", ()), ("refine_pair", (prev,))):
        prompt, completion = render_pair(native_tok, TOOLS, QUESTION, gold, previous, cfg=cfg)
        golden(f"{family}_{fmt_name}_{name}.json",
               json.dumps({"prompt": prompt, "completion": completion}, ensure_ascii=False, indent=1) + "\n")


# --- special tokens exactly once ---------------------------------------------------------------------

def test_training_rows_hold_one_bos_and_the_engines_prompt_tokens(llama31_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from toolace_r.engines.base import GenerationRequest, SamplingParams
    from toolace_r.engines.hf import HFEngine
    from toolace_r.training.config import SFTStageConfig
    from toolace_r.training.sft import build_trainer, tokenize_row

    tok = AutoTokenizer.from_pretrained(llama31_model_dir)
    bos = tok.bos_token_id
    assert tok("x")["input_ids"][0] == bos  # the trap: this tokenizer adds a BOS of its own
    ex = example()
    rows = build_corpus({"w1": ex}, {}, ["w1"], {"w1": gold_target(ex, "", answer_format(tok))}, tok,
                        CorpusConfig(), PromptConfig())
    trainer = build_trainer(str(llama31_model_dir), rows, tmp_path, SFTStageConfig(max_steps=1, batch_size=1, max_length=4096))
    ids = list(trainer.train_dataset[0]["input_ids"])
    assert ids[0] == bos and ids.count(bos) == 1  # the template's BOS, and no second one from TRL
    assert ids == tokenize_row(tok, rows[0])["input_ids"]
    # the engine sees the same prompt tokens: its prompt length equals the row's masked part
    n_prompt = len(ids) - sum(tokenize_row(tok, rows[0])["completion_mask"])
    engine = HFEngine(model=str(llama31_model_dir), device="cpu", dtype="float32")
    result = engine.generate([GenerationRequest(prompt=rows[0]["prompt"], params=SamplingParams(max_new_tokens=1))])
    c = result[0].completions[0]
    assert c.prompt_tokens + c.cached_tokens == n_prompt
    prompt_ids = tok(rows[0]["prompt"], add_special_tokens=False)["input_ids"]
    assert prompt_ids == ids[:n_prompt] and prompt_ids.count(bos) == 1


# --- a short training run in the native format -------------------------------------------------------

@pytest.mark.slow
def test_a_model_trained_native_answers_in_native_calls(hermes_model_dir, tmp_path):
    from transformers import AutoTokenizer

    from toolace_r.engines.hf import HFEngine
    from toolace_r.evaluation.rounds import write_refine_outputs
    from toolace_r.refine import RefineConfig, refine
    from toolace_r.training.config import SFTStageConfig
    from toolace_r.training.sft import train_sft

    tok = AutoTokenizer.from_pretrained(hermes_model_dir)
    fmt = answer_format(tok)
    items = [example(ONE, "w1"), Example(id="w2", messages=[{"role": "user", "content": "Weather in Oslo?"}],
                                         tools=list(TOOLS), gold=Gold("calls", calls=[
                                             ToolCall("get_weather", {"city": "Oslo"})]), category="simple")]
    targets = {ex.id: gold_target(ex, "", fmt) for ex in items}
    rows = build_corpus({ex.id: ex for ex in items}, {}, list(targets), targets, tok, CorpusConfig(), PromptConfig())
    cfg = SFTStageConfig(finetune="full", learning_rate=3e-3, max_steps=120, batch_size=2, warmup=0,
                         scheduler="constant", save_steps=1000, logging_steps=20)
    train_sft(str(hermes_model_dir), rows, tmp_path / "sft", cfg)
    engine = HFEngine(model=str(tmp_path / "sft" / "model"), device="cpu", dtype="float32")
    result = refine(items, engine, RefineConfig(policy="none", round0=RefineConfig().round0))
    assert (result.answer_format, result.parse_format) == ("native", "hermes")
    for trace, ex in zip(result.traces, items):
        parsed = trace.rounds[0].parsed
        assert parsed.format == "hermes" and parsed.calls == ex.gold.calls, trace.final
    report = write_refine_outputs(items, result, tmp_path / "eval")
    assert report.rounds["all"]["final_accuracy"] == 1.0  # scored with the native parser


# --- toolace-r data render ---------------------------------------------------------------------------

def _render_cli(capsys, model_dir, *extra):
    from pathlib import Path

    from toolace_r.cli import main

    fixtures = Path(__file__).parent / "fixtures" / "bfcl"
    assert main(["data", "render", f"bfcl:simple_python@{fixtures}", "--model", str(model_dir),
                 "--limit", "2", *extra]) == 0
    out, err = capsys.readouterr()
    return [json.loads(line) for line in out.splitlines()], err


def test_data_render_native_prints_hermes_completions_and_no_pythonic_instruction(hermes_model_dir, capsys):
    from transformers import AutoTokenizer

    rows, err = _render_cli(capsys, hermes_model_dir, "--answer-format", "native")
    assert len(rows) == 2 and "answer format: native" in err and "hermes" in err
    tok = AutoTokenizer.from_pretrained(hermes_model_dir)
    for row in rows:
        assert row["kind"] == "sft" and row["completion"].startswith("<tool_call>\n{")
        assert parse(row["completion"].removesuffix("<|im_end|>"), "hermes").is_call
        assert "func_name1" not in row["prompt"] and "# Tools" in row["prompt"]
        # token counts are those of the training tokenisation
        assert row["completion_tokens"] == len(tok(row["completion"], add_special_tokens=False)["input_ids"])
        assert row["prompt_tokens"] == len(tok(row["prompt"], add_special_tokens=False)["input_ids"])


def test_data_render_pythonic_prints_pythonic_completions_and_tools_only_in_the_system_prompt(
        hermes_model_dir, capsys):
    rows, err = _render_cli(capsys, hermes_model_dir, "--answer-format", "pythonic")
    assert "answer format: pythonic" in err
    for row in rows:
        assert row["completion"].startswith("[") and parse(row["completion"].removesuffix("<|im_end|>"),
                                                           "pythonic").is_call
        system = row["prompt"].split("<|im_end|>")[0]
        assert TOOLACE_SYSTEM_PROMPT in system and "# Tools" not in row["prompt"] and "<tools>" not in row["prompt"]


def test_data_render_refine_rows_come_from_the_models_own_answers(hermes_model_dir, capsys):
    from pathlib import Path

    from conftest import RecordingEngine
    from toolace_r.training.preview import render_rows

    class Wrong(RecordingEngine):
        def answer(self, prompt, params):
            return '<tool_call>\n{"name": "calculate_triangle_area", "arguments": {"base": 1}}\n</tool_call>'

    fixtures = Path(__file__).parent / "fixtures" / "bfcl"
    line, skipped, rows = render_rows(f"bfcl:simple_python@{fixtures}", str(hermes_model_dir), limit=1,
                                      refine_rows=True, engine=Wrong())
    rows = list(rows)
    assert [r["kind"] for r in rows] == ["sft", "fix"]
    sft, fix = rows
    wrong = Wrong().answer("", None)
    assert fix["prompt"].startswith(sft["prompt"] + wrong)  # the refine round continues the first prompt
    assert fix["completion"] == sft["completion"]  # the gold, in the native format
