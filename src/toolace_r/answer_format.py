"""The answer format of a run: what the model is told to emit, how gold answers are written, and what its
answers are parsed as (docs/method.md#answer-format).

- "pythonic": ToolACE's instruction and the tool list in the system message (the chat template never sees
  the tools, so it adds no instruction of its own); answers are call lists `[f(a=1)]`.
- "native": the chat template's own tool format. The tools go to the template; a gold answer is an
  assistant message with `tool_calls`, whose text is what the template writes for it; the parser is the
  call format that reads back a probe call the template renders (`resolve`), not a table of model names.
- "auto": native when the template renders an assistant message's tool_calls, else pythonic.

Settings that would tell a model two formats are refused where they are made (`check_settings`).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Sequence

from toolace_r.calls import ParseResult, ToolCall, parse

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


ANSWER_FORMATS = ("auto", "pythonic", "native")
# What opens the system message of a pythonic prompt (docs/bfcl.md#prompt): "toolace" (ToolACE's
# instruction, then the tool list as one JSON line) or "bfcl" (BFCL's own prompt-mode system prompt, read
# from the installed bfcl-eval package at run time, tool list included, as `bfcl generate` sends it).
INSTRUCTIONS = ("toolace", "bfcl", "benchmark")

# A conversation to render probes in (also prompts.refine_suffix's).
PROBE_MESSAGES = [{"role": "user", "content": "<<toolace-r probe question>>"}]
# The calls and tool a template is asked to render to find its native call format.
_PROBE_CALLS = (ToolCall("toolace_r_probe", {"text": "probe value", "count": 2}),
                ToolCall("toolace_r_probe", {"text": "second value", "count": 3}))
_PROBE_TOOL = {"type": "function", "function": {
    "name": "toolace_r_probe", "description": "A probe.",
    "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "count": {"type": "integer"}}}}}


def check_settings(cfg: Any) -> None:
    """ValueError, naming the setting to change, when a PromptConfig's settings contradict each other."""
    if cfg.answer_format not in ANSWER_FORMATS:
        raise ValueError(f"PromptConfig.answer_format: unknown value {cfg.answer_format!r}; "
                         f"known: {list(ANSWER_FORMATS)}")
    instruction = getattr(cfg, "instruction", "toolace")
    if instruction not in INSTRUCTIONS:
        raise ValueError(f"PromptConfig.instruction: unknown value {instruction!r}; known: {list(INSTRUCTIONS)}")
    if instruction in ("bfcl", "benchmark"):
        _check_bfcl_settings(cfg, instruction)
    if cfg.answer_format == "pythonic" and cfg.tools_in == "template":
        raise ValueError(_CONTRADICTION_TEMPLATE)
    if cfg.answer_format == "native":
        _check_native_settings(cfg)


_CONTRADICTION_TEMPLATE = (
    "prompt.tools_in: template hands the tools to the chat template, which instructs in its own call format, "
    "while prompt.answer_format: pythonic asks for pythonic calls; set prompt.tools_in: auto (or system), "
    "or prompt.answer_format: native")


def _check_native_settings(cfg: Any) -> None:
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


def _check_bfcl_settings(cfg: Any, instruction: str = "bfcl") -> None:
    """bfcl (BFCL's prompt-mode prompt) and benchmark (the prompt an example of ACEBench carries from the
    benchmark's own code, docs/acebench.md) ask for pythonic calls and bring their own tool list."""
    own = "BFCL's prompt-mode system prompt" if instruction == "bfcl" else "the benchmark's own system prompt"
    if cfg.answer_format == "native":
        raise ValueError(
            f"prompt.instruction: {instruction} is {own}, which asks for pythonic calls, while "
            "prompt.answer_format: native trains and parses the chat template's own call format; set "
            "prompt.answer_format: pythonic (or auto), or prompt.instruction: toolace")
    if cfg.tools_in == "template":
        raise ValueError(
            f"prompt.tools_in: template hands the tools to the chat template, while prompt.instruction: "
            f"{instruction} puts them in {own}; set prompt.tools_in: auto (or system)")
    if cfg.system_prompt is not None:
        raise ValueError(
            f"prompt.system_prompt replaces the instruction, while prompt.instruction: {instruction} asks for "
            f"{own}; remove prompt.system_prompt, or set prompt.instruction: toolace")


_BFCL_MISSING = ("prompt.instruction: bfcl reads BFCL's own system prompt from the bfcl-eval package, which is "
                 "not installed; install it with `pip install --no-deps bfcl-eval` (or set prompt.instruction: "
                 "toolace)")


def bfcl_system_prompt(functions: Sequence[dict[str, Any]]) -> str:
    """BFCL's prompt-mode system prompt for `functions` (BFCL-shaped {"name", "description", "parameters"}
    dicts), as its prompt-mode handlers build it for a test entry without a format-sensitivity id:
    `formulate_system_prompt(DEFAULT_SYSTEM_PROMPT_FORMAT, functions)` of the installed bfcl-eval.

    A `--no-deps` install cannot import `bfcl_eval.model_handler.utils` (it imports tree-sitter and
    tenacity for other handlers); then the same steps run on the package's own templates
    (`bfcl_eval.constants.default_prompts`), so the text still comes from the installed version.
    tests/test_prompts.py checks the two give the same text."""
    try:
        from bfcl_eval.constants import default_prompts
    except ImportError as exc:
        raise RuntimeError(_BFCL_MISSING) from exc
    functions = [dict(f) for f in functions]
    try:
        from bfcl_eval.model_handler.utils import formulate_system_prompt
    except ImportError:
        return _formulate_system_prompt(default_prompts, default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT, functions)
    return formulate_system_prompt(default_prompts.DEFAULT_SYSTEM_PROMPT_FORMAT, functions)


def _formulate_system_prompt(dp: Any, config: str, functions: list[dict[str, Any]]) -> str:
    """bfcl_eval.model_handler.utils.formulate_system_prompt's steps, on bfcl-eval's own templates."""
    opts = dict(part.split("=", 1) for part in config.split("&"))
    if opts.get("func_doc_fmt") != "json":
        raise ValueError(f"BFCL's default prompt format {config!r} documents the functions as "
                         f"{opts.get('func_doc_fmt')!r}; only json can be built without bfcl-eval's handler module")
    style = dp.PROMPT_STYLE_TEMPLATES[opts["style"]]
    ret = opts["ret_fmt"]
    key = "tool_call_with_tag" if opts["tool_call_tag"] == "True" else "tool_call_no_tag"
    tool_call_format = style[key].format(output_format=dp.OUTPUT_FORMAT_MAPPING[ret],
                                         param_types=dp.PARAM_TYPE_MAPPING[ret])
    available_tools = style["available_tools"].format(format="json", functions=json.dumps(functions, indent=4))
    return dp.PROMPT_TEMPLATE_MAPPING[opts["prompt_fmt"]].format(
        persona=style["persona"], task=style["task"], tool_call_format=tool_call_format,
        multiturn_behavior=style["multiturn_behavior"], available_tools=available_tools)


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


# --- the template we render with ------------------------------------------------------------------

# A model folder written by a run carries its trained prompt as a wrapper around the base template
# (servable.py); these comments delimit the wrapper. Rendering here always uses the base template, so a
# later iteration renders exactly as the first and nothing is added twice.
WRAPPER_BEGIN = "{#- toolace-r: the prompt this model was trained with (docs/serving.md) -#}"
WRAPPER_END = "{#- toolace-r: end of the trained prompt; the base chat template follows -#}"


def base_template(template: str) -> str:
    """`template` without the trained-prompt wrapper a run's model folder adds (unchanged if it has none)."""
    if template.startswith(WRAPPER_BEGIN) and WRAPPER_END in template:
        return template[template.index(WRAPPER_END) + len(WRAPPER_END):]
    return template


def apply_template(tokenizer: Any, chat: list[dict[str, Any]], **kwargs: Any) -> str:
    """`tokenizer.apply_chat_template(chat, tokenize=False, ...)` with the base template: a wrapped one is
    unwrapped, any other is left to the tokenizer (which may pick a named template for tools)."""
    template = tokenizer.chat_template if isinstance(getattr(tokenizer, "chat_template", None), str) else None
    if template is not None and template.startswith(WRAPPER_BEGIN):
        kwargs["chat_template"] = base_template(template)
    return tokenizer.apply_chat_template(chat, tokenize=False, **kwargs)


# --- resolution ----------------------------------------------------------------------------------

_RESOLVED: dict[tuple, tuple[Any, AnswerFormat]] = {}


def resolve(tokenizer: Any, cfg: Any) -> AnswerFormat:
    """A PromptConfig's `answer_format` resolved for `tokenizer` (cached per tokenizer, template and settings).

    Without a tokenizer (a chat endpoint renders) "auto" is pythonic and "native" an error. ValueError
    when "native" is asked of a template that does not render tool calls, or writes calls no known
    format reads back; the message says which setting to change.
    """
    if tokenizer is None:
        if cfg.answer_format == "native":
            raise ValueError("prompt.answer_format: native needs the model's tokenizer to render its chat template")
        return AnswerFormat("pythonic", "pythonic", True, _system_prompt(cfg, native=False))
    if getattr(cfg, "instruction", "toolace") in ("bfcl", "benchmark"):  # they ask for pythonic calls
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


def _resolve(tokenizer: Any, cfg: Any) -> AnswerFormat:
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
    _check_native_settings(cfg)  # auto resolved native: the settings must suit native
    parser, parallel = found
    return AnswerFormat("native", parser, parallel, _system_prompt(cfg, native=True), call_text)


def _system_prompt(cfg: Any, native: bool) -> str:
    if cfg.system_prompt is not None:
        return cfg.system_prompt
    if getattr(cfg, "instruction", "toolace") == "bfcl":
        return ""  # BFCL's prompt holds the tool list: prompts.system_content builds it per example
    return "" if native else TOOLACE_SYSTEM_PROMPT


def native_call_text(tokenizer: Any, calls: Sequence[ToolCall], template_kwargs: dict[str, Any] | None = None) -> str:
    """The text `tokenizer`'s chat template writes for an assistant turn holding `calls` as tool_calls,
    up to (not including) its end-of-turn token. Raises whatever the template raises."""
    kwargs = dict(template_kwargs or {})
    tools = [_PROBE_TOOL]
    prompt = apply_template(tokenizer, PROBE_MESSAGES, tools=tools, add_generation_prompt=True, **kwargs)
    full = apply_template(tokenizer, [*PROBE_MESSAGES, tool_calls_message(calls)], tools=tools,
                          add_generation_prompt=False, **kwargs)
    if not full.startswith(prompt):
        raise ValueError("the chat template renders the conversation with a tool-call answer so that it does not "
                         "start with the generation prompt")
    text = cut_after_end_of_turn(tokenizer, full[len(prompt):])
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


def cut_after_end_of_turn(tokenizer: Any, completion: str) -> str:
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
