"""Tests for prompts.py: message building, rendering, training pairs, the refine suffix, golden files."""
from __future__ import annotations

import json

import pytest

from toolace_r.data.example import Example, Gold
from toolace_r.prompts import (
    DEFAULT_REFINE_INSTRUCTION,
    TOOLACE_SYSTEM_PROMPT,
    PromptConfig,
    answer_format,
    build_messages,
    refine_suffix,
    render_example,
    render_pair,
    render_prompt,
    tool_schema,
    tools_json,
)
from toolace_r.tools import Tool

WEATHER = Tool(
    name="get_weather",
    description="Température actuelle d'une ville.",
    parameters={
        "type": "dict",
        "properties": {
            "city": {"type": "string", "description": "City name"},
            "unit": {"type": "string", "enum": ["celsius", "fahrenheit"], "description": "Unit"},
        },
        "required": ["city"],
    },
)
FACTORIAL = Tool(
    name="math.factorial",
    description="Factorial of n.",
    parameters={"type": "dict", "properties": {"n": {"type": "integer", "description": "n"}}, "required": ["n"]},
)
TOOLS = [WEATHER, FACTORIAL]
QUESTION = [{"role": "user", "content": "What is the weather in Paris in celsius?"}]
ANSWER_1 = '[get_weather(city="Paris")]'
ANSWER_2 = '[get_weather(city="Paris", unit="celsius")]'

# A template with its own tools section (the shape of Qwen/Hermes templates, much reduced).
TOOLS_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
    "{% if loop.first and tools %}{{ '\n<tools>' }}{% for t in tools %}{{ '\n' + t.function.name }}{% endfor %}"
    "{{ '\n</tools>' }}{% endif %}"
    "{{ '<|im_end|>\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


# --- the system prompt and the tool list ---------------------------------------------------------

def test_system_prompt_is_the_toolace_text_byte_for_byte():
    assert TOOLACE_SYSTEM_PROMPT.startswith("You are an expert in composing functions. You are given a question")
    assert "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]. You " \
           "SHOULD NOT include any other text in the response." in TOOLACE_SYSTEM_PROMPT
    assert TOOLACE_SYSTEM_PROMPT.endswith("Here is a list of functions in JSON format that you can invoke.")
    assert "\n" not in TOOLACE_SYSTEM_PROMPT and "  " not in TOOLACE_SYSTEM_PROMPT


def test_tool_schema_has_exactly_the_bfcl_keys():
    assert tool_schema(WEATHER) == {
        "name": "get_weather",
        "description": "Température actuelle d'une ville.",
        "parameters": WEATHER.parameters,
    }
    assert tool_schema({"name": "f", "description": "d", "parameters": {}, "extra": 1}) == {
        "name": "f", "description": "d", "parameters": {}}


def test_tools_json_is_one_compact_line_keeping_unicode():
    text = tools_json(TOOLS)
    assert "\n" not in text
    assert "Température" in text  # ensure_ascii=False: a non-ASCII letter is one letter, not \\u00e9
    assert '"name": "get_weather", "description"' in text  # json.dumps' default separators
    assert json.loads(text) == [tool_schema(t) for t in TOOLS]


# --- build_messages ------------------------------------------------------------------------------

def test_build_messages_puts_system_with_tools_first():
    msgs = build_messages(TOOLS, QUESTION)
    assert msgs[0] == {"role": "system", "content": TOOLACE_SYSTEM_PROMPT + "\n" + tools_json(TOOLS)}
    assert msgs[1:] == QUESTION


def test_build_messages_merges_an_existing_system_message_after_ours():
    given = [{"role": "system", "content": "Answer in French."}, *QUESTION]
    msgs = build_messages(TOOLS, given)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert msgs[0]["content"] == TOOLACE_SYSTEM_PROMPT + "\n" + tools_json(TOOLS) + "\n\nAnswer in French."
    assert given[0] == {"role": "system", "content": "Answer in French."}  # input not mutated


def test_build_messages_adds_one_assistant_and_refine_turn_per_previous_answer():
    cfg = PromptConfig(refine_instruction="Check it.")
    msgs = build_messages(TOOLS, QUESTION, [ANSWER_1, ANSWER_2], cfg)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert [m["content"] for m in msgs[2:]] == [ANSWER_1, "Check it.", ANSWER_2, "Check it."]
    with pytest.raises(TypeError, match="previous_answers\\[0\\]"):
        build_messages(TOOLS, QUESTION, [["not", "text"]])


def test_prompt_config_rejects_unknown_tools_placement():
    with pytest.raises(ValueError, match="known: \\['auto', 'system', 'template'\\]"):
        PromptConfig(tools_in="user")


# --- rendering -----------------------------------------------------------------------------------

def test_render_prompt_chatml_exact(chatml_tokenizer):
    text = render_prompt(chatml_tokenizer, TOOLS, QUESTION)
    system = TOOLACE_SYSTEM_PROMPT + "\n" + tools_json(TOOLS)
    assert text == (
        f"<|im_start|>system\n{system}<|im_end|>\n"
        f"<|im_start|>user\n{QUESTION[0]['content']}<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_render_example_equals_render_prompt(chatml_tokenizer):
    ex = Example(id="x1", messages=QUESTION, tools=TOOLS, gold=Gold(kind="no_call"))
    assert render_example(chatml_tokenizer, ex, [ANSWER_1]) == render_prompt(chatml_tokenizer, TOOLS, QUESTION,
                                                                              [ANSWER_1])


def test_refine_suffix_chatml(chatml_tokenizer):
    assert refine_suffix(chatml_tokenizer) == (
        f"<|im_end|>\n<|im_start|>user\n{DEFAULT_REFINE_INSTRUCTION}<|im_end|>\n<|im_start|>assistant\n"
    )


@pytest.mark.parametrize("given_system", [False, True])
def test_refine_rounds_extend_the_previous_prompt(chatml_tokenizer, given_system):
    msgs = ([{"role": "system", "content": "Be brief."}] if given_system else []) + QUESTION
    suffix = refine_suffix(chatml_tokenizer)
    p0 = render_prompt(chatml_tokenizer, TOOLS, msgs)
    p1 = render_prompt(chatml_tokenizer, TOOLS, msgs, [ANSWER_1])
    p2 = render_prompt(chatml_tokenizer, TOOLS, msgs, [ANSWER_1, ANSWER_2])
    assert p1 == p0 + ANSWER_1 + suffix
    assert p2 == p1 + ANSWER_2 + suffix


def test_refine_suffix_refuses_a_template_without_the_prefix_property(chatml_tokenizer):
    # Writing the number of messages up front changes the start of the text every round.
    chatml_tokenizer.chat_template = "{{ messages|length }}" + chatml_tokenizer.chat_template
    with pytest.raises(ValueError, match="cannot continue a conversation"):
        refine_suffix(chatml_tokenizer)


def test_refine_suffix_refuses_rounds_rendered_differently(chatml_tokenizer):
    # Numbering assistant turns makes each round's wrapper different.
    chatml_tokenizer.chat_template = (
        "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] }}"
        "{% if message['role'] == 'assistant' %}{{ '#' ~ loop.index }}{% endif %}{{ '<|im_end|>\n' }}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
    )
    with pytest.raises(ValueError, match="differently from one round to the next"):
        refine_suffix(chatml_tokenizer)


def test_render_pair_prompt_is_the_generation_prompt_and_completion_ends_at_end_of_turn(chatml_tokenizer):
    prompt, completion = render_pair(chatml_tokenizer, TOOLS, QUESTION, ANSWER_2, [ANSWER_1])
    assert prompt == render_prompt(chatml_tokenizer, TOOLS, QUESTION, [ANSWER_1])
    assert completion == ANSWER_2 + "<|im_end|>"
    # The full conversation the template writes starts with prompt + completion.
    chat = build_messages(TOOLS, QUESTION, [ANSWER_1]) + [{"role": "assistant", "content": ANSWER_2}]
    full = chatml_tokenizer.apply_chat_template(chat, tokenize=False)
    assert full.startswith(prompt + completion) and full[len(prompt + completion):] == "\n"


def test_render_pair_refuses_template_that_rewrites_the_prompt(chatml_tokenizer):
    # Renders a different header when the conversation ends with an assistant message.
    chatml_tokenizer.chat_template = (
        "{% if messages[-1]['role'] == 'assistant' %}X{% endif %}" + chatml_tokenizer.chat_template
    )
    with pytest.raises(ValueError, match="completion cannot be separated"):
        render_pair(chatml_tokenizer, TOOLS, QUESTION, ANSWER_1)


def test_a_template_with_a_tools_section_but_no_tool_calls_stays_pythonic(chatml_tokenizer):
    # Reading `tools` is not enough for native answers: the template must render tool_calls too.
    chatml_tokenizer.chat_template = TOOLS_TEMPLATE
    assert answer_format(chatml_tokenizer).name == "pythonic"
    auto = render_prompt(chatml_tokenizer, TOOLS, QUESTION)
    assert tools_json(TOOLS) in auto and "<tools>" not in auto  # one instruction, one tool list
    with pytest.raises(ValueError, match="does not render an assistant message's tool_calls"):
        render_prompt(chatml_tokenizer, TOOLS, QUESTION, cfg=PromptConfig(answer_format="native"))
    with pytest.raises(ValueError, match="prompt.tools_in: auto"):
        render_prompt(chatml_tokenizer, TOOLS, QUESTION, cfg=PromptConfig(tools_in="template"))


def test_template_kwargs_reach_the_template(chatml_tokenizer):
    chatml_tokenizer.chat_template = (
        "{% if enable_thinking is defined and not enable_thinking %}NOTHINK{% endif %}"
        + chatml_tokenizer.chat_template
    )
    assert render_prompt(chatml_tokenizer, TOOLS, QUESTION).startswith("NOTHINK")
    cfg = PromptConfig(chat_template_kwargs={})
    assert not render_prompt(chatml_tokenizer, TOOLS, QUESTION, cfg=cfg).startswith("NOTHINK")


# --- golden files --------------------------------------------------------------------------------

def test_golden_simple(chatml_tokenizer, golden):
    golden("chatml_simple.txt", render_prompt(chatml_tokenizer, TOOLS, QUESTION))


def test_golden_existing_system(chatml_tokenizer, golden):
    msgs = [{"role": "system", "content": "Answer in French."}, *QUESTION]
    golden("chatml_existing_system.txt", render_prompt(chatml_tokenizer, TOOLS, msgs))


def test_golden_two_refine_rounds(chatml_tokenizer, golden):
    golden("chatml_two_refine_rounds.txt", render_prompt(chatml_tokenizer, TOOLS, QUESTION, [ANSWER_1, ANSWER_2]))


def test_golden_training_pair(chatml_tokenizer, golden):
    prompt, completion = render_pair(chatml_tokenizer, TOOLS, QUESTION, ANSWER_2, [ANSWER_1])
    golden("chatml_training_pair.json", json.dumps({"prompt": prompt, "completion": completion},
                                                   ensure_ascii=False, indent=1) + "\n")


@pytest.mark.slow
def test_golden_embedded_model_tokenizer(embedded_model_dir, golden):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(embedded_model_dir)
    golden("smollm2_refine_round.txt", render_prompt(tok, TOOLS, QUESTION, [ANSWER_1]))
    suffix = refine_suffix(tok)
    assert suffix.startswith("<|im_end|>\n<|im_start|>user\n")
    p0 = render_prompt(tok, TOOLS, QUESTION)
    p2 = render_prompt(tok, TOOLS, QUESTION, [ANSWER_1, ANSWER_2])
    assert p2 == p0 + ANSWER_1 + suffix + ANSWER_2 + suffix
    # Token level too: the cached prefix's ids are a prefix of the next round's ids.
    ids0 = tok(p0, add_special_tokens=False).input_ids
    ids2 = tok(p2, add_special_tokens=False).input_ids
    assert ids2[: len(ids0)] == ids0
    prompt, completion = render_pair(tok, TOOLS, QUESTION, ANSWER_2)
    assert completion == ANSWER_2 + "<|im_end|>"
    assert tok.convert_tokens_to_ids("<|im_end|>") == tok(completion, add_special_tokens=False).input_ids[-1]


# --- instruction: bfcl (BFCL's own prompt-mode system prompt) --------------------------------------

BFCL = PromptConfig(answer_format="pythonic", instruction="bfcl")


def _bfcl_expected(utils, tools, msgs):
    """What BFCL's own prompt-mode handler makes of the same entry (its function, called here)."""
    entry = [dict(m) for m in msgs]
    return utils.system_prompt_pre_processing_chat_model(entry, [tool_schema(t) for t in tools], "simple_python_0")


def test_bfcl_instruction_is_bfcls_own_prompt(bfcl_handler_utils):
    from toolace_r.answer_format import _formulate_system_prompt
    from bfcl_eval.constants import default_prompts

    got = build_messages(TOOLS, QUESTION, cfg=BFCL)
    assert got == _bfcl_expected(bfcl_handler_utils, TOOLS, QUESTION)
    expected = bfcl_handler_utils.formulate_system_prompt(default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT,
                                                          [tool_schema(t) for t in TOOLS])
    assert got[0]["content"] == expected
    assert TOOLACE_SYSTEM_PROMPT not in got[0]["content"] and tools_json(TOOLS) not in got[0]["content"]
    # the --no-deps path (bfcl-eval's templates, its handler module not importable) gives the same text
    assert _formulate_system_prompt(default_prompts, default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT,
                                    [tool_schema(t) for t in TOOLS]) == expected


def test_bfcl_instruction_merges_an_own_system_message_as_bfcl_does(bfcl_handler_utils):
    msgs = [{"role": "system", "content": "Answer in French."}, *QUESTION]
    assert build_messages(TOOLS, msgs, cfg=BFCL) == _bfcl_expected(bfcl_handler_utils, TOOLS, msgs)


def test_bfcl_instruction_golden_and_auto_is_pythonic(chatml_tokenizer, golden, bfcl_handler_utils):
    text = render_prompt(chatml_tokenizer, TOOLS, QUESTION, cfg=BFCL)
    golden("chatml_bfcl_instruction.txt", text)
    auto = PromptConfig(instruction="bfcl")
    assert answer_format(chatml_tokenizer, auto).name == "pythonic"
    assert render_prompt(chatml_tokenizer, TOOLS, QUESTION, cfg=auto) == text


@pytest.mark.parametrize("kwargs, setting", [
    ({"answer_format": "native"}, "prompt.answer_format: native"),
    ({"system_prompt": "Be brief."}, "prompt.system_prompt"),
    ({"tools_in": "template"}, "prompt.tools_in: template"),
])
def test_bfcl_instruction_contradictions_name_the_setting(kwargs, setting):
    with pytest.raises(ValueError, match=setting):
        PromptConfig(instruction="bfcl", **kwargs)


def test_unknown_instruction_is_refused():
    with pytest.raises(ValueError, match="PromptConfig.instruction"):
        PromptConfig(instruction="gorilla")


def test_bfcl_instruction_without_bfcl_eval_says_how_to_install(monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "bfcl_eval", None)  # makes `import bfcl_eval...` raise ImportError
    monkeypatch.setitem(sys.modules, "bfcl_eval.constants", None)
    with pytest.raises(RuntimeError, match=r"pip install --no-deps bfcl-eval"):
        build_messages(TOOLS, QUESTION, cfg=BFCL)
