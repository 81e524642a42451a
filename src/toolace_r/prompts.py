"""Prompt rendering: the ONLY place that turns (tools, messages, previous answers) into model input.

Training, sampling, evaluation and serving all call this module, so a format change is one edit here
and one visible diff in the golden files under tests/golden/.

Two ideas:
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
import re
from dataclasses import dataclass, field
from typing import Any, Sequence

from toolace_r.tools import Tool

# The ToolACE system prompt (docs/method.md#prompt), byte-exact: the models of that lineage were trained
# with it, so it is a fact about the format, not a wording of ours.
TOOLACE_SYSTEM_PROMPT = (
    "You are an expert in composing functions. You are given a question and a set of possible functions. "
    "Based on the question, you will need to make one or more function/tool calls to achieve the purpose. "
    "If none of the function can be used, point it out. If the given question lacks the parameters "
    "required by the function, also point it out. You should only return the function call in tools call "
    "sections. If you decide to invoke any of the function(s), you MUST put it in the format of "
    "[func_name1(params_name1=params_value1, params_name2=params_value2...), func_name2(params)]. You "
    "SHOULD NOT include any other text in the response. Here is a list of functions in JSON format that "
    "you can invoke."
)

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
_PROBE_MESSAGES = [{"role": "user", "content": "<<toolace-r probe question>>"}]


@dataclass
class PromptConfig:
    """How prompts are built. Every field has the default used for training and evaluation."""

    # The instruction that opens the system message.
    system_prompt: str = TOOLACE_SYSTEM_PROMPT
    # What follows the instruction when the tools go into the system message; "{functions}" becomes
    # the JSON list of tools.
    tools_block: str = "\n{functions}"
    # Where the tool list goes: "system" (appended to the system prompt), "template" (passed to the
    # chat template's own `tools` section), "auto" ("template" when the template reads `tools`).
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


def template_uses_tools(tokenizer: Any) -> bool:
    """Whether the tokenizer's chat template reads a `tools` variable."""
    template = tokenizer.get_chat_template()
    try:
        from transformers.utils.chat_template_utils import _get_template_variables

        return "tools" in _get_template_variables(template)
    except Exception:  # private helper moved, or a template jinja cannot parse alone: search the text
        return re.search(r"\btools\b", template) is not None


def _tools_go_to_template(tokenizer: Any, cfg: PromptConfig) -> bool:
    if cfg.tools_in == "auto":
        return template_uses_tools(tokenizer)
    return cfg.tools_in == "template"


# --- messages ------------------------------------------------------------------------------------

def system_content(tools: Sequence[Tool | dict[str, Any]], cfg: PromptConfig, with_tools: bool = True) -> str:
    """Our system prompt, with the tool list unless the chat template shows the tools itself."""
    if not with_tools:
        return cfg.system_prompt
    return cfg.system_prompt + cfg.tools_block.replace("{functions}", tools_json(tools))


def build_messages(
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    *,
    tools_in_system: bool = True,
    feedback: Sequence[str | None] = (),
) -> list[dict[str, Any]]:
    """system(tools) . messages . (assistant(answer) . user(refine instruction)) per previous answer.

    feedback: per previous answer, what a check of it found (None or "": nothing); a non-empty entry
    is appended to that answer's refine turn through `cfg.feedback_template`."""
    cfg = cfg or PromptConfig()
    system = system_content(tools, cfg, with_tools=tools_in_system)
    rest = [dict(m) for m in messages]
    if rest and rest[0].get("role") == "system":
        # An example's own system message keeps its content, after ours (as BFCL merges them).
        system = system + cfg.system_join + str(rest.pop(0).get("content") or "")
    out = [{"role": "system", "content": system}, *rest]
    for i, answer in enumerate(previous_answers):
        if not isinstance(answer, str):
            raise TypeError(f"previous_answers[{i}]: expected the answer text (str), got {type(answer).__name__}")
        out.append({"role": "assistant", "content": answer})
        out.append({"role": "user", "content": refine_turn(cfg, feedback[i] if i < len(feedback) else None)})
    return out


def refine_turn(cfg: PromptConfig, feedback: str | None = None) -> str:
    """The user turn that opens a refinement round, with the check's findings when there are any."""
    if not feedback:
        return cfg.refine_instruction
    return cfg.refine_instruction + cfg.feedback_template.replace("{problems}", feedback)


def _apply(tokenizer: Any, chat: list[dict[str, Any]], tools: Sequence[Any], cfg: PromptConfig,
           add_generation_prompt: bool) -> str:
    to_template = _tools_go_to_template(tokenizer, cfg)
    return tokenizer.apply_chat_template(
        chat,
        tools=[_template_tool(t) for t in tools] if to_template else None,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **cfg.chat_template_kwargs,
    )


def _chat(tokenizer: Any, tools: Sequence[Any], messages: Sequence[dict[str, Any]],
          previous_answers: Sequence[str], cfg: PromptConfig,
          feedback: Sequence[str | None] = ()) -> list[dict[str, Any]]:
    in_system = not _tools_go_to_template(tokenizer, cfg)
    return build_messages(tools, messages, previous_answers, cfg, tools_in_system=in_system, feedback=feedback)


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
    chat = _chat(tokenizer, tools, messages, previous_answers, cfg, feedback)
    return _apply(tokenizer, chat, tools, cfg, add_generation_prompt=True)


def render_example(tokenizer: Any, example: Any, previous_answers: Sequence[str] = (),
                   cfg: PromptConfig | None = None) -> str:
    """`render_prompt` for an `Example`."""
    return render_prompt(tokenizer, example.tools, example.messages, previous_answers, cfg)


def _cut_after_end_of_turn(tokenizer: Any, completion: str) -> str:
    """Drop what a template writes *after* the answer's end-of-turn token (e.g. ChatML's "\\n").

    The model stops generating at that token, so it never produces the separator; training on it would
    only teach a token that inference never reaches.
    """
    eos = getattr(tokenizer, "eos_token", None)
    if not eos:
        return completion
    end = completion.rfind(eos)
    if end < 0:
        return completion
    end += len(eos)
    return completion[:end] if completion[end:].strip() == "" else completion


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
    through its end-of-turn token.
    """
    cfg = cfg or PromptConfig()
    chat = _chat(tokenizer, tools, messages, previous_answers, cfg, feedback)
    prompt = _apply(tokenizer, chat, tools, cfg, add_generation_prompt=True)
    full = _apply(tokenizer, [*chat, {"role": "assistant", "content": target}], tools, cfg,
                  add_generation_prompt=False)
    if not full.startswith(prompt):
        raise ValueError(
            "chat template does not extend the generation prompt with the answer (the conversation with "
            "the answer does not start with the prompt), so the completion cannot be separated for training"
        )
    return prompt, _cut_after_end_of_turn(tokenizer, full[len(prompt):])


def refine_suffix(tokenizer: Any, cfg: PromptConfig | None = None) -> str:
    """The text that follows a generated answer to open the next refinement round.

    For ChatML: "<|im_end|>\\n<|im_start|>user\\n<instruction><|im_end|>\\n<|im_start|>assistant\\n".
    Guarantees render_prompt(..., previous + [a]) == render_prompt(..., previous) + a + suffix, and
    raises ValueError when the chat template does not have that property (then an engine cannot
    extend its cache and must re-render each round).
    """
    cfg = cfg or PromptConfig()
    a1, a2 = _PROBE_ANSWERS
    p0 = render_prompt(tokenizer, [], _PROBE_MESSAGES, (), cfg)
    p1 = render_prompt(tokenizer, [], _PROBE_MESSAGES, (a1,), cfg)
    p2 = render_prompt(tokenizer, [], _PROBE_MESSAGES, (a1, a2), cfg)
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
