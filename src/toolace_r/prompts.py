"""Prompt rendering: the ONLY place that turns (tools, messages, previous answers) into model input.

Training, sampling, evaluation and serving all call this module, so a format change is one edit here
and one visible diff in the golden files under tests/golden/.

Three ideas:
- One answer format per run (docs/method.md#answer-format), resolved once per tokenizer by
  `answer_format`: "pythonic" (ToolACE's instruction and tool list in the system prompt, the template
  never sees the tools) or "native" (the tools go to the chat template, which instructs in its own
  format; gold calls are an assistant message with `tool_calls`). The parser for native answers is the
  call format that reads back a probe call the template renders, never a table of model names.
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

from toolace_r.calls import ParseResult, ToolCall, parse
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

ANSWER_FORMATS = ("auto", "pythonic", "native")
TOOLS_IN = ("auto", "system", "template")

# Placeholder answers used to discover the text a chat template wraps around an answer. They only need
# to be strings no template would rewrite (no surrounding whitespace, no special tokens).
_PROBE_ANSWERS = ("<<toolace-r probe answer 1>>", "<<toolace-r probe answer 2>>")
_PROBE_MESSAGES = [{"role": "user", "content": "<<toolace-r probe question>>"}]
# The calls and tool a template is asked to render to find its native call format.
_PROBE_CALLS = (ToolCall("toolace_r_probe", {"text": "probe value", "count": 2}),
                ToolCall("toolace_r_probe", {"text": "second value", "count": 3}))
_PROBE_TOOL = {"type": "function", "function": {
    "name": "toolace_r_probe", "description": "A probe.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "count": {"type": "integer"}}}}}


@dataclass
class PromptConfig:
    """How prompts are built. Every field has the default used for training and evaluation."""

    # What the model answers in (docs/method.md#answer-format): "pythonic" (ToolACE's call lists),
    # "native" (the chat template's own tool-call format), "auto" (native when the template renders
    # an assistant message's tool_calls, else pythonic).
    answer_format: str = "auto"
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
        if self.answer_format not in ANSWER_FORMATS:
            raise ValueError(f"PromptConfig.answer_format: unknown value {self.answer_format!r}; "
                             f"known: {list(ANSWER_FORMATS)}")
        if self.tools_in not in TOOLS_IN:
            raise ValueError(f"PromptConfig.tools_in: unknown value {self.tools_in!r}; known: {list(TOOLS_IN)}")
        if self.answer_format == "pythonic" and self.tools_in == "template":
            raise ValueError(_CONTRADICTION_TEMPLATE)
        if self.answer_format == "native":
            _check_native_settings(self)


_CONTRADICTION_TEMPLATE = (
    "prompt.tools_in: template hands the tools to the chat template, which instructs in its own call format, "
    "while prompt.answer_format: pythonic asks for pythonic calls; set prompt.tools_in: auto (or system), "
    "or prompt.answer_format: native")


def _check_native_settings(cfg: PromptConfig) -> None:
    if cfg.tools_in == "system":
        raise ValueError(
            "prompt.tools_in: system puts the tools under the pythonic instruction, while "
            "prompt.answer_format: native trains and parses the chat template's own call format; "
            "set prompt.tools_in: auto (or template), or prompt.answer_format: pythonic")
    if cfg.system_prompt and _PYTHONIC_INSTRUCTION in cfg.system_prompt:
        raise ValueError(
            "prompt.system_prompt asks for pythonic calls ([func_name1(params_name1=...)]), while "
            "prompt.answer_format: native trains the chat template's own call format; remove "
            "prompt.system_prompt (or write one without a format instruction), or set "
            "prompt.answer_format: pythonic")


# The part of ToolACE's prompt that names its call syntax: a system prompt holding it asks for pythonic.
_PYTHONIC_INSTRUCTION = "[func_name1(params_name1=params_value1"


@dataclass(frozen=True)
class AnswerFormat:
    """A run's answer format resolved for one tokenizer (`answer_format`): what the model is shown and
    what its answers are parsed as.

    name: "pythonic" | "native". parser: the `calls` format answers are parsed with ("pythonic"; for
    native the one that reads back the template's own calls, e.g. "hermes" or "json"). parallel:
    whether one answer can hold several calls (a Llama-3.1-style template writes one). system_prompt:
    what opens the system message ("" for none). call_text: native only, the text the template writes
    for an assistant turn holding given calls (None without a tokenizer).
    """

    name: str
    parser: str
    parallel: bool
    system_prompt: str
    call_text: Any = None

    @property
    def native(self) -> bool:
        return self.name == "native"

    def parse(self, text: str) -> ParseResult:
        """An answer parsed as this format's calls (pythonic answers: any known format, as before)."""
        return parse(text, "auto" if self.name == "pythonic" else self.parser)

    def target(self, calls: Sequence[ToolCall]) -> str:
        """The text of a gold answer holding `calls`: what training teaches the model to write.
        ValueError when the format cannot write them (several calls under a one-call template)."""
        if not self.native:
            from toolace_r.calls import render

            return render(list(calls), "pythonic")
        if len(calls) > 1 and not self.parallel:
            raise ValueError(f"the chat template writes one tool call per message; this answer has {len(calls)}")
        if self.call_text is None:
            raise ValueError("native answers need the model's tokenizer to be written")
        return self.call_text(list(calls))

    def assistant_message(self, text: str) -> dict[str, Any]:
        """An answer as the assistant message that shows it: native calls go back as `tool_calls` when
        the template writes them back byte for byte (so a refine round holds the model's own text and
        extends the previous prompt); anything else, and every pythonic answer, as content."""
        if self.native:
            parsed = parse(text, self.parser)
            if parsed.is_call and parsed.calls and (len(parsed.calls) == 1 or self.parallel):
                try:
                    same = self.call_text is None or self.call_text(parsed.calls) == text
                except Exception:  # values the template cannot write: the text is still the answer
                    same = False
                if same:
                    return tool_calls_message(parsed.calls)
        return {"role": "assistant", "content": text}


def tool_calls_message(calls: Sequence[ToolCall], content: str = "") -> dict[str, Any]:
    """An OpenAI/TRL assistant message with `tool_calls` whose `arguments` are objects (chat templates
    `tojson` them: a JSON string would be encoded twice)."""
    return {"role": "assistant", "content": content, "tool_calls": [
        {"type": "function", "function": {"name": c.name, "arguments": dict(c.arguments)}} for c in calls]}


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


# --- the answer format ---------------------------------------------------------------------------

_RESOLVED: dict[tuple, tuple[Any, AnswerFormat]] = {}


def answer_format(tokenizer: Any, cfg: PromptConfig | None = None) -> AnswerFormat:
    """`cfg.answer_format` resolved for `tokenizer` (cached per tokenizer, template and settings).

    Without a tokenizer (a chat endpoint renders) "auto" is pythonic and "native" an error. ValueError
    when "native" is asked of a template that does not render tool calls, or writes calls no known
    format reads back; the message says which setting to change.
    """
    cfg = cfg or PromptConfig()
    if tokenizer is None:
        if cfg.answer_format == "native":
            raise ValueError("prompt.answer_format: native needs the model's tokenizer to render its chat template")
        return AnswerFormat("pythonic", "pythonic", True, _system_prompt(cfg, native=False))
    template = tokenizer.get_chat_template()
    key = (id(tokenizer), template, cfg.answer_format, cfg.tools_in, cfg.system_prompt,
           json.dumps(cfg.chat_template_kwargs, sort_keys=True, default=str))
    hit = _RESOLVED.get(key)
    if hit is not None and hit[0] is tokenizer:
        return hit[1]
    resolved = _resolve(tokenizer, cfg)
    if len(_RESOLVED) >= 32:
        _RESOLVED.clear()
    _RESOLVED[key] = (tokenizer, resolved)
    return resolved


def _resolve(tokenizer: Any, cfg: PromptConfig) -> AnswerFormat:
    pythonic_format = AnswerFormat("pythonic", "pythonic", True, _system_prompt(cfg, native=False))
    if cfg.answer_format == "pythonic":
        return pythonic_format
    kwargs = dict(cfg.chat_template_kwargs)

    def call_text(calls: list[ToolCall]) -> str:
        return native_call_text(tokenizer, calls, kwargs)

    found, reason = _probe_native(call_text)
    if found is None:
        if cfg.answer_format == "native":
            raise ValueError(f"prompt.answer_format: native, but {reason}; set prompt.answer_format: pythonic")
        if cfg.tools_in == "template":
            raise ValueError(f"prompt.tools_in: template, but {reason}, so the model would be shown the tools "
                             "without a call format it is trained in; set prompt.tools_in: auto")
        return pythonic_format
    probe_cfg = PromptConfig(**{**cfg.__dict__, "answer_format": "native"})  # auto -> native: check as native
    parser, parallel = found
    return AnswerFormat("native", parser, parallel, _system_prompt(probe_cfg, native=True), call_text)


def _system_prompt(cfg: PromptConfig, native: bool) -> str:
    if cfg.system_prompt is not None:
        return cfg.system_prompt
    return "" if native else TOOLACE_SYSTEM_PROMPT


def native_call_text(tokenizer: Any, calls: Sequence[ToolCall], template_kwargs: dict[str, Any] | None = None) -> str:
    """The text `tokenizer`'s chat template writes for an assistant turn holding `calls` as tool_calls,
    up to (not including) its end-of-turn token. Raises whatever the template raises."""
    kwargs = dict(template_kwargs or {})
    tools = [_PROBE_TOOL]
    prompt = tokenizer.apply_chat_template(_PROBE_MESSAGES, tools=tools, tokenize=False,
                                           add_generation_prompt=True, **kwargs)
    full = tokenizer.apply_chat_template([*_PROBE_MESSAGES, tool_calls_message(calls)], tools=tools,
                                         tokenize=False, add_generation_prompt=False, **kwargs)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the conversation with a tool-call answer so that it does not "
                         "start with the generation prompt")
    text = _cut_after_end_of_turn(tokenizer, full[len(prompt):])
    eos = getattr(tokenizer, "eos_token", None)
    return text[:-len(eos)] if eos and text.endswith(eos) else text


def _probe_native(call_text: Any) -> tuple[tuple[str, bool] | None, str]:
    """((parser, parallel), "") when the template renders tool calls some known format reads back,
    else (None, why not)."""
    one = list(_PROBE_CALLS[:1])
    try:
        text = call_text(one)
    except Exception as exc:  # a template without tool-call support may raise on the message
        return None, f"the chat template fails on an assistant message with tool_calls ({exc})"
    if one[0].name not in text:
        return None, "the chat template does not render an assistant message's tool_calls"
    for fmt in ("hermes", "json", "pythonic"):
        result = parse(text, fmt)
        if result.is_call and result.calls == one:
            parser = fmt
            break
    else:
        return None, f"no known call format reads back the tool call the chat template writes ({text[:200]!r})"
    try:
        parallel = parse(call_text(list(_PROBE_CALLS)), parser).calls == list(_PROBE_CALLS)
    except Exception:  # e.g. "one tool call per message"
        parallel = False
    return (parser, parallel), ""


# --- messages ------------------------------------------------------------------------------------

def system_content(tools: Sequence[Tool | dict[str, Any]], cfg: PromptConfig, with_tools: bool = True,
                   fmt: AnswerFormat | None = None) -> str:
    """Our system prompt, with the tool list when the answer format is pythonic."""
    prompt = fmt.system_prompt if fmt is not None else _system_prompt(cfg, native=False)
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
        # An example's own system message keeps its content, after ours (as BFCL merges them).
        own = str(rest.pop(0).get("content") or "")
        system = system + cfg.system_join + own if system else own
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
    return tokenizer.apply_chat_template(
        chat,
        tools=[_template_tool(t) for t in tools] if fmt.native and tools else None,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **cfg.chat_template_kwargs,
    )


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
    through its end-of-turn token. target is answer text in the run's format (`AnswerFormat.target`
    writes gold calls); native calls enter the chat as a `tool_calls` message.
    """
    cfg = cfg or PromptConfig()
    fmt = answer_format(tokenizer, cfg)
    chat = _chat(tokenizer, tools, messages, previous_answers, cfg, fmt, feedback)
    prompt = _apply(tokenizer, chat, tools, cfg, True, fmt)
    full = _apply(tokenizer, [*chat, fmt.assistant_message(target)], tools, cfg, False, fmt)
    if not full.startswith(prompt):
        raise ValueError(
            "chat template does not extend the generation prompt with the answer (the conversation with "
            "the answer does not start with the prompt), so the completion cannot be separated for training"
        )
    return prompt, _cut_after_end_of_turn(tokenizer, full[len(prompt):])


def pair_conversation(
    tokenizer: Any,
    tools: Sequence[Tool | dict[str, Any]],
    messages: Sequence[dict[str, Any]],
    target: str,
    previous_answers: Sequence[str] = (),
    cfg: PromptConfig | None = None,
    feedback: Sequence[str | None] = (),
) -> dict[str, Any]:
    """The training pair of `render_pair` as a TRL conversational prompt-completion row:
    {"prompt": [messages], "completion": [the assistant message], "tools"?, "chat_template_kwargs"?}.

    Rendered by the same chat template (as TRL's SFTTrainer does: tools and chat_template_kwargs read
    from the row) it gives `render_pair`'s strings. "tools" (OpenAI schemas) only in the native format:
    a pythonic prompt already lists them in its system message, and a template shown them again would
    add its own instruction."""
    cfg = cfg or PromptConfig()
    fmt = answer_format(tokenizer, cfg)
    row: dict[str, Any] = {"prompt": _chat(tokenizer, tools, messages, previous_answers, cfg, fmt, feedback),
                           "completion": [fmt.assistant_message(target)]}
    if fmt.native and tools:
        row["tools"] = [_template_tool(t) for t in tools]
    if cfg.chat_template_kwargs:
        row["chat_template_kwargs"] = dict(cfg.chat_template_kwargs)
    return row


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
