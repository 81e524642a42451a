"""Prompt rendering: the ONLY place that turns (tools, messages, previous answers) into model input.

Training, sampling, evaluation and serving all call this module, so a format change is one edit here
and one visible diff in the golden files under tests/golden/.

Three ideas:
- One answer format per run (answer_format.py, docs/method.md#answer-format), resolved once per
  tokenizer by `answer_format`: pythonic puts ToolACE's instruction and the tool list into the system
  message; native hands the tools to the chat template and shows answers as `tool_calls` turns.
- A refinement round is a *continued conversation* (docs/method.md#refine-prompt): system(tools) .
  messages . assistant(y_prev) . user(refine instruction) . assistant(?). Each round's prompt therefore
  extends the previous one byte for byte, which `refine_suffix` exposes so an engine can keep its KV
  cache.
- Everything model-specific comes from the tokenizer's own chat template (`apply_chat_template`); the
  pieces we need (the training completion, the refine suffix) are found by rendering twice and taking
  the difference, and we check the prefix property instead of assuming it.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Sequence

from toolace_r.answer_format import (  # noqa: F401  (TOOLACE_SYSTEM_PROMPT: part of this module's API)
    TOOLACE_SYSTEM_PROMPT,
    AnswerFormat,
    PROBE_MESSAGES,
    apply_template,
    bfcl_system_prompt,
    check_settings,
    cut_after_end_of_turn,
    resolve,
    tool_calls_message,
)
from toolace_r.calls import ToolCall, parse
from toolace_r.tools import Tool

# [ours] The paper gives no wording for the refine turn; this one asks for exactly the two behaviours
# the refinement corpus teaches: repeat a right answer unchanged, or correct a wrong one.
DEFAULT_REFINE_INSTRUCTION = (
    "Review your previous answer. If it is correct, repeat it exactly; otherwise give the corrected "
    "function call(s) in the same format."
)

# [ours] Beyond the paper (which refines without feedback): with a schema-checked refine policy the
# refine turn also says what a check of the previous answer against the function list found.
DEFAULT_FEEDBACK_TEMPLATE = "\nA check of your answer against the function list found: {problems}"

TOOLS_IN = ("auto", "system", "template")

# Placeholder answers used to discover the text a chat template wraps around an answer. They only need
# to be strings no template would rewrite (no surrounding whitespace, no special tokens).
_PROBE_ANSWERS = ("<<toolace-r probe answer 1>>", "<<toolace-r probe answer 2>>")


@dataclass
class PromptConfig:
    """How prompts are built. Every field has the default used for training and evaluation."""

    # What the model answers in (docs/method.md#answer-format): "pythonic" (ToolACE's call lists),
    # "native" (the chat template's own tool-call format), "auto" (native when the template renders
    # an assistant message's tool_calls, else pythonic).
    answer_format: str = "auto"
    # Which instruction opens a pythonic prompt (docs/bfcl.md#prompt): "toolace" (ToolACE's, then
    # `tools_block`), "bfcl" (BFCL's own prompt-mode system prompt with the tool list, read from the
    # installed bfcl-eval) or "benchmark" (none of ours: the examples carry their benchmark's own system
    # prompt, as `evaluation.benchmarks.own_prompts` gives ACEBench's); pythonic only, and an explicit
    # system_prompt is then an error.
    instruction: str = "toolace"
    # The instruction that opens the system message; None: the answer format's own (ToolACE's
    # instruction for pythonic; none for native, whose template instructs).
    system_prompt: str | None = None
    # What follows the instruction when the tools go into the system message (pythonic); "{functions}"
    # becomes the JSON list of tools.
    tools_block: str = "\n{functions}"
    # Where the tool list goes: "auto" (where the answer format needs it: the system message for
    # pythonic, the template's `tools` for native); "system" or "template" only state that, and a
    # value that contradicts the answer format is an error (the model would be told two formats).
    tools_in: str = "auto"
    # The user turn that opens each refinement round.
    refine_instruction: str = DEFAULT_REFINE_INSTRUCTION
    # Appended to the refine turn when the previous answer has feedback; "{problems}" becomes it.
    feedback_template: str = DEFAULT_FEEDBACK_TEMPLATE
    # Joins our system prompt and a system message the example already has (BFCL does the same).
    system_join: str = "\n\n"
    # Extra variables for the chat template; reasoning modes stay off so answers are the calls alone.
    chat_template_kwargs: dict[str, Any] = field(default_factory=lambda: {"enable_thinking": False})

    def __post_init__(self) -> None:
        if self.tools_in not in TOOLS_IN:
            raise ValueError(f"PromptConfig.tools_in: unknown value {self.tools_in!r}; known: {list(TOOLS_IN)}")
        check_settings(self)


def answer_format(tokenizer: Any, cfg: PromptConfig | None = None) -> AnswerFormat:
    """`cfg.answer_format` resolved for `tokenizer` (see answer_format.resolve; cached)."""
    return resolve(tokenizer, cfg or PromptConfig())


# --- tools ---------------------------------------------------------------------------------------

def tool_schema(tool: Tool | dict[str, Any]) -> dict[str, Any]:
    """The {"name", "description", "parameters"} dict a tool is shown to the model as (BFCL shape)."""
    if isinstance(tool, dict):  # already a schema (e.g. from a request): keep only the three keys
        return {k: tool[k] for k in ("name", "description", "parameters") if k in tool}
    return tool.to_bfcl()


def tools_json(tools: Sequence[Tool | dict[str, Any]]) -> str:
    """The tool list as one line of JSON: compact enough for a CPU's prompt budget, still readable."""
    return json.dumps([tool_schema(t) for t in tools], ensure_ascii=False)


def _template_tool(tool: Tool | dict[str, Any]) -> dict[str, Any]:
    """A tool in the OpenAI shape that chat templates with a `tools` section expect."""
    if isinstance(tool, dict):
        return {"type": "function", "function": tool_schema(tool)}
    return tool.to_openai()


# --- messages ------------------------------------------------------------------------------------

def system_content(tools: Sequence[Tool | dict[str, Any]], cfg: PromptConfig, with_tools: bool = True,
                   fmt: AnswerFormat | None = None) -> str:
    """Our system prompt, with the tool list when the answer format is pythonic."""
    if cfg.instruction == "bfcl" and with_tools:
        return bfcl_system_prompt([tool_schema(t) for t in tools])
    if cfg.instruction == "benchmark":  # the example's messages carry the benchmark's own instruction
        return ""
    prompt = (fmt or answer_format(None, cfg)).system_prompt
    if not with_tools:
        return prompt
    return prompt + cfg.tools_block.replace("{functions}", tools_json(tools))


def build_messages(
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    *,
    fmt: AnswerFormat | None = None,
    feedback: Sequence[str | None] = (),
) -> list[dict[str, Any]]:
    """system(tools) . messages . (assistant(answer) . user(refine instruction)) per previous answer.

    fmt: the resolved answer format (default: `answer_format(None, cfg)`, pythonic). Pythonic puts the
    tool list into the system message; native leaves it to the template and adds no system message
    unless there is a prompt or the example's own. Past assistant calls in `messages` (OpenAI
    `tool_calls`, or content that is only calls) are shown in the run's format, and previous answers
    through `AnswerFormat.assistant_message`.
    feedback: per previous answer, what a check of it found (None or "": nothing); a non-empty entry
    is appended to that answer's refine turn through `cfg.feedback_template`."""
    cfg = cfg or PromptConfig()
    fmt = fmt or answer_format(None, cfg)
    system = system_content(tools, cfg, with_tools=not fmt.native, fmt=fmt)
    rest = [_history_message(m, fmt) for m in messages]
    if rest and rest[0].get("role") == "system":
        # An example's own system message keeps its content, after ours (as BFCL merges them; under
        # instruction bfcl with BFCL's own join).
        own = str(rest.pop(0).get("content") or "")
        join = "\n\n" if cfg.instruction == "bfcl" else cfg.system_join
        system = system + join + own if system else own
    out = [{"role": "system", "content": system}] if system or not fmt.native else []
    out += rest
    for i, answer in enumerate(previous_answers):
        if not isinstance(answer, str):
            raise TypeError(f"previous_answers[{i}]: expected the answer text (str), got {type(answer).__name__}")
        out.append(fmt.assistant_message(answer))
        out.append({"role": "user", "content": refine_turn(cfg, feedback[i] if i < len(feedback) else None)})
    return out


def _history_message(message: dict[str, Any], fmt: AnswerFormat) -> dict[str, Any]:
    """A context message as the run's format shows it: past calls as tool_calls (native) or pythonic text."""
    m = dict(message)
    if m.get("role") != "assistant":
        return m
    calls = _past_calls(m.get("tool_calls"))
    if fmt.native:
        if calls is None:  # text that is only calls (ToolACE histories are pythonic) becomes tool_calls
            parsed = parse(str(m.get("content") or ""), "auto")
            if parsed.is_call and parsed.calls:
                return tool_calls_message(parsed.calls)
            return m
        return tool_calls_message(calls, str(m.get("content") or ""))
    if calls:
        from toolace_r.calls import render

        content = str(m.get("content") or "")
        m = {k: v for k, v in m.items() if k != "tool_calls"}
        m["content"] = (content + "\n" if content else "") + render(calls, "pythonic")
    return m


def _past_calls(tool_calls: Any) -> list[ToolCall] | None:
    """OpenAI/TRL tool_calls (arguments as an object or a JSON string) as ToolCalls; None if absent."""
    if not tool_calls:
        return None
    out = []
    for i, call in enumerate(tool_calls):
        fn = call.get("function", call) if isinstance(call, dict) else None
        if not (isinstance(fn, dict) and isinstance(fn.get("name"), str)):
            raise ValueError(f"tool_calls[{i}]: expected {{\"function\": {{\"name\", \"arguments\"}}}}")
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            from toolace_r.data.records import parse_json

            args = parse_json(args) if args.strip() else {}
        if not isinstance(args, dict):
            raise ValueError(f"tool_calls[{i}].function.arguments: expected an object")
        out.append(ToolCall(fn["name"], args))
    return out


def refine_turn(cfg: PromptConfig, feedback: str | None = None) -> str:
    """The user turn that opens a refinement round, with the check's findings when there are any."""
    if not feedback:
        return cfg.refine_instruction
    return cfg.refine_instruction + cfg.feedback_template.replace("{problems}", feedback)


def _apply(tokenizer: Any, chat: list[dict[str, Any]], tools: Sequence[Any], cfg: PromptConfig,
           add_generation_prompt: bool, fmt: AnswerFormat) -> str:
    return apply_template(tokenizer, chat, tools=[_template_tool(t) for t in tools] if fmt.native and tools else None,
                          add_generation_prompt=add_generation_prompt, **cfg.chat_template_kwargs)


def _chat(tokenizer: Any, tools: Sequence[Any], messages: Sequence[dict[str, Any]],
          previous_answers: Sequence[str], cfg: PromptConfig, fmt: AnswerFormat,
          feedback: Sequence[str | None] = ()) -> list[dict[str, Any]]:
    return build_messages(tools, messages, previous_answers, cfg, fmt=fmt, feedback=feedback)


# --- rendering -----------------------------------------------------------------------------------

def render_prompt(
    tokenizer: Any,
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    feedback: Sequence[str | None] = (),
) -> str:
    """The text the model continues to produce its next answer (ends with the assistant header).
    feedback: see `build_messages`."""
    cfg = cfg or PromptConfig()
    fmt = answer_format(tokenizer, cfg)
    chat = _chat(tokenizer, tools, messages, previous_answers, cfg, fmt, feedback)
    return _apply(tokenizer, chat, tools, cfg, True, fmt)


def render_example(tokenizer: Any, example: Any, previous_answers: Sequence[str] = (),
                   cfg: PromptConfig | None = None) -> str:
    """`render_prompt` for an `Example`."""
    return render_prompt(tokenizer, example.tools, example.messages, previous_answers, cfg)


def render_pair(
    tokenizer: Any,
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    target: str,
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    feedback: Sequence[str | None] = (),
) -> tuple[str, str]:
    """(prompt, completion) for training: the loss goes on the completion tokens only.

    prompt is exactly `render_prompt(...)`; completion is the answer as the template writes it,
    through its end-of-turn token. target is answer text in the run's format (`AnswerFormat.target`
    writes gold calls); native calls enter the chat as a `tool_calls` message.
    """
    prompt, completion, _ = training_pair(tokenizer, tools, messages, target, previous_answers, cfg, feedback)
    return prompt, completion


def pair_conversation(
    tokenizer: Any,
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    target: str,
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    feedback: Sequence[str | None] = (),
) -> dict[str, Any]:
    """The training pair of `render_pair` as a TRL conversational prompt-completion row (see
    `training_pair`)."""
    return training_pair(tokenizer, tools, messages, target, previous_answers, cfg, feedback)[2]


def training_pair(
    tokenizer: Any,
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    target: str,
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    feedback: Sequence[str | None] = (),
) -> tuple[str, str, dict[str, Any]]:
    """(prompt, completion, conversation) of one training pair, from one chat built once.

    prompt and completion are `render_pair`'s strings. conversation is the same pair as a TRL
    conversational prompt-completion row: {"prompt": [messages], "completion": [the assistant message],
    "tools"?, "chat_template_kwargs"?}; rendered by the same chat template (as TRL's SFTTrainer does: tools
    and chat_template_kwargs read from the row) it gives those strings. "tools" (OpenAI schemas) only in the
    native format: a pythonic prompt already lists them in its system message, and a template shown them
    again would add its own instruction.
    """
    cfg = cfg or PromptConfig()
    fmt = answer_format(tokenizer, cfg)
    chat = _chat(tokenizer, tools, messages, previous_answers, cfg, fmt, feedback)
    answer = fmt.assistant_message(target)
    prompt = _apply(tokenizer, chat, tools, cfg, True, fmt)
    full = _apply(tokenizer, [*chat, answer], tools, cfg, False, fmt)
    if not full.startswith(prompt):
        raise ValueError(
            "chat template does not extend the generation prompt with the answer (the conversation with "
            "the answer does not start with the prompt), so the completion cannot be separated for training"
        )
    conversation: dict[str, Any] = {"prompt": chat, "completion": [answer]}
    if fmt.native and tools:
        conversation["tools"] = [_template_tool(t) for t in tools]
    if cfg.chat_template_kwargs:
        conversation["chat_template_kwargs"] = dict(cfg.chat_template_kwargs)
    return prompt, cut_after_end_of_turn(tokenizer, full[len(prompt):]), conversation


def refine_suffix(tokenizer: Any, cfg: PromptConfig | None = None) -> str:
    """The text that follows a generated answer to open the next refinement round.

    For ChatML: "<|im_end|>\\n<|im_start|>user\\n<instruction><|im_end|>\\n<|im_start|>assistant\\n".
    Guarantees render_prompt(..., previous + [a]) == render_prompt(..., previous) + a + suffix, and
    raises ValueError when the chat template does not have that property (then an engine cannot
    extend its cache and must re-render each round).
    """
    cfg = cfg or PromptConfig()
    a1, a2 = _PROBE_ANSWERS
    p0 = render_prompt(tokenizer, [], PROBE_MESSAGES, (), cfg)
    p1 = render_prompt(tokenizer, [], PROBE_MESSAGES, (a1,), cfg)
    p2 = render_prompt(tokenizer, [], PROBE_MESSAGES, (a1, a2), cfg)
    if not p1.startswith(p0 + a1):
        raise ValueError(
            "chat template cannot continue a conversation by appending: the prompt with one refine round "
            "does not start with the first prompt followed by the answer"
        )
    suffix = p1[len(p0) + len(a1):]
    if p2 != p1 + a2 + suffix:
        raise ValueError(
            "chat template renders refine rounds differently from one round to the next, so there is "
            "no single suffix that opens the next round"
        )
    return suffix
