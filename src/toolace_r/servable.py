"""A run's model folders, usable where their users work (docs/serving.md).

Every folder a training stage writes gets, besides the weights and the tokenizer:
- `chat_template.jinja`: the prompt the model was trained with. Where that prompt holds text of ours (the
  pythonic format's instruction and tool list, or a system prompt set in the config), the base template is
  wrapped: given `tools`, the wrapper writes our system message exactly as `prompts.build_messages` does
  (merged with the conversation's own system message) and hides the tools from the base template. So
  `vllm serve DIR`, transformers' `apply_chat_template(messages, tools=...)` and `toolace-r serve` render
  the prompt the model learned. Our own renderer unwraps it (`answer_format.base_template`): a later
  iteration renders exactly as the first, and nothing is added twice. A native run without a system
  prompt of ours keeps the base template as it is.
- `README.md`: a model card (Hub metadata, the answer format and the `vllm serve` command whose tool
  parser reads the model's answers, the run's settings and its held-out scores).
- `adapter/`: the LoRA adapter the merged weights came from (training/sft.py, `sft.keep_adapter`).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

from toolace_r.answer_format import WRAPPER_BEGIN, WRAPPER_END, base_template
from toolace_r.files import atomic_write_text
from toolace_r.prompts import PromptConfig, answer_format

# vLLM's --tool-call-parser for what a model answers in: the native parser found for its template, or
# the pythonic list format (vLLM's `pythonic` parser reads ToolACE-style answers).
VLLM_PARSERS = {"hermes": "hermes", "json": "llama3_json", "pythonic": "pythonic"}


def _literal(text: str) -> str:
    """A Jinja string literal holding `text` (JSON's escapes are Jinja's too)."""
    return json.dumps(text, ensure_ascii=False)


def trained_chat_template(tokenizer: Any, cfg: PromptConfig | None = None) -> str:
    """The chat template that renders, from (messages, tools), the prompt `cfg` trains with."""
    cfg = cfg or PromptConfig()
    base = base_template(tokenizer.get_chat_template())
    fmt = answer_format(tokenizer, cfg)
    if fmt.native and not fmt.system_prompt:
        return base
    system = _literal(fmt.system_prompt)
    join = _literal(cfg.system_join)
    lines = [WRAPPER_BEGIN]
    if fmt.native:  # our system prompt only; the tools stay with the template
        lines += _system_merge(system, join)
    else:
        before, after, listed = _tool_list_slots(fmt.system_prompt, cfg)
        lines += [
            "{%- if tools is defined and tools -%}",
            "{%- set toolace_ns = namespace(fns=[]) -%}",
            "{%- for toolace_t in tools -%}",
            "{%- set toolace_f = toolace_t.function if toolace_t.function is defined else toolace_t -%}",
            '{%- set toolace_ns.fns = toolace_ns.fns + [{"name": toolace_f.name, "description": '
            'toolace_f.description, "parameters": toolace_f.parameters}] -%}',
            "{%- endfor -%}",
            f"{{%- set toolace_system = {_literal(before)} + (toolace_ns.fns | {listed}) + {_literal(after)} -%}}",
            *_system_merge("toolace_system", join),
            "{%- set tools = none -%}",
            "{%- endif -%}",
        ]
    lines.append(WRAPPER_END)
    return "\n".join(lines) + base


def _tool_list_slots(prompt: str, cfg: PromptConfig) -> tuple[str, str, str]:
    """(text before the tool list, text after it, the Jinja filter writing the list) of the pythonic
    system message: ToolACE's prompt plus `tools_block`, or BFCL's own prompt, whose list BFCL writes
    with json.dumps(indent=4) (found by building that prompt around a marker)."""
    if cfg.instruction == "bfcl":
        from toolace_r.answer_format import bfcl_system_prompt

        marker = [{"name": "\x00toolace-r tool list\x00"}]
        text, listed = bfcl_system_prompt(marker), json.dumps(marker, indent=4)
        if text.count(listed) != 1:
            raise ValueError("BFCL's prompt does not hold the function list in one place; cannot write its template")
        before, _, after = text.partition(listed)
        return before, after, "tojson(ensure_ascii=True, indent=4)"
    before, _, after = cfg.tools_block.partition("{functions}")
    return prompt + before, after, "tojson"


def _system_merge(system: str, join: str) -> list[str]:
    return [
        '{%- if messages and messages[0].role == "system" -%}',
        f'{{%- set messages = [{{"role": "system", "content": {system} + {join} + (messages[0].content or "")}}]'
        " + messages[1:] -%}",
        "{%- else -%}",
        f'{{%- set messages = [{{"role": "system", "content": {system}}}] + messages -%}}',
        "{%- endif -%}",
    ]


def write_chat_template(model_dir: str | Path, tokenizer: Any, cfg: PromptConfig | None = None) -> Path:
    """Write the trained template as `model_dir`/chat_template.jinja (atomically) and return its path.

    transformers reads chat_template.jinja before a template in tokenizer_config.json, so a template left
    there by an older save cannot override it; it is removed all the same, so the folder holds one."""
    folder = Path(model_dir)
    path = folder / "chat_template.jinja"
    atomic_write_text(path, trained_chat_template(tokenizer, cfg))
    config = folder / "tokenizer_config.json"
    if config.exists():
        data = json.loads(config.read_text(encoding="utf-8"))
        if "chat_template" in data:
            del data["chat_template"]
            atomic_write_text(config, json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    return path


# --- the model card --------------------------------------------------------------------------------

def vllm_command(model_dir: str, fmt_parser: str, native: bool) -> str:
    """The `vllm serve` command whose tool parser reads this model's answers."""
    parser = VLLM_PARSERS.get(fmt_parser if native else "pythonic", "pythonic")
    return f"vllm serve {model_dir} --enable-auto-tool-choice --tool-call-parser {parser}"


def hub_base_model(name: str) -> str:
    """The base model as the Hub knows it: a registered name's Hub repository, else the name as given."""
    from toolace_r.models import MODELS

    spec = MODELS.get(name)
    return spec.hub_id if spec is not None and spec.hub_id else name


def hub_datasets(source: str | None) -> list[str]:
    """The Hub dataset ids a data source names (local files are left out), for the card's metadata."""
    if not source:
        return []
    out: list[str] = []
    for part in source.removeprefix("mix:").split(";"):
        kind, _, spec = part.partition(":")
        spec = spec.split("@")[0].strip()
        if kind == "bfcl":
            out.append("gorilla-llm/Berkeley-Function-Calling-Leaderboard")
        elif spec.count("/") == 1 and not Path(spec).exists() and not spec.startswith((".", "/", "~")):
            out.append(spec)
    return list(dict.fromkeys(out))


def model_card(*, name: str, base_model: str, model_dir: str, tokenizer: Any, prompt_cfg: PromptConfig,
               data_train: str | None, settings: dict[str, Any], scores: Sequence[dict[str, Any]],
               note: str = "") -> str:
    """README.md for a model folder: Hub metadata, what the model sees and emits, how to serve it, how
    it was trained and what it scored (`scores`: {"model", "setting", "accuracy", "items"} rows from the
    run's own eval files; empty when the run evaluated nothing)."""
    fmt = answer_format(tokenizer, prompt_cfg)
    base_model = hub_base_model(base_model)
    meta = {"base_model": base_model, "library_name": "transformers", "pipeline_tag": "text-generation",
            "tags": ["toolace-r", "function-calling", "tool-use"]}
    datasets = hub_datasets(data_train)
    if datasets:
        meta["datasets"] = datasets
    front = "---\n" + "".join(f"{k}: {json.dumps(v, ensure_ascii=False)}\n" for k, v in meta.items()) + "---\n"
    if fmt.native:
        emits = (f"native tool calls, the chat template's own format (parsed as `{fmt.parser}`"
                 f"{'' if fmt.parallel else '; one call per answer'}); the tools go to the template")
    else:
        emits = ("pythonic call lists such as `[get_weather(city=\"Paris\")]`, after ToolACE's instruction and "
                 "the tool list in the system message (this folder's chat template writes both from `tools`)")
    lines = [front, f"# {name}", "",
             f"Fine-tuned from `{base_model}` with toolace-r (ToolACE-R: model-aware "
             "iterative training with adaptive self-refinement).", "",
             "## Answer format", "", f"The model answers in {emits}. A plain answer without a call means no "
             "function fits or a parameter is missing.", "",
             "## Serving", "", "```bash", vllm_command(model_dir, fmt.parser, fmt.native),
             f"toolace-r serve --model {model_dir} --answer-format {fmt.name}   # with adaptive self-refinement",
             "```", "",
             "## Training", "", f"- data: `{data_train}`" if data_train else "- data: (not recorded)"]
    lines += [f"- {k}: {v}" for k, v in settings.items()]
    lines += ["", "## Scores", ""]
    if scores:
        lines += ["Held-out accuracy of the run's models, from the run's own evaluation files (greedy, "
                  "BFCL semantics):", "", "| model | setting | accuracy | items |", "|---|---|---|---|"]
        for row in scores:
            acc = row.get("accuracy")
            lines.append(f"| {row['model']} | {row.get('setting', '')} | "
                         f"{'' if acc is None else f'{acc:.3f}'} | {row.get('items') or ''} |")
    else:
        lines.append("The run evaluated no held-out set (set `data.eval` to score each iteration).")
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def write_model_card(model_dir: str | Path, text: str) -> Path:
    path = Path(model_dir) / "README.md"
    atomic_write_text(path, text)
    return path


SINGLE_PASS = "single pass"


def write_run_cards(run_dir: str | Path, cfg: Any, summary: dict[str, Any], base_model: str,
                    eval_items: int | None = None, extra_scores: Sequence[dict[str, Any]] = ()) -> list[Path]:
    """A model card in every model folder a training run wrote (`training.loop`), with the run's scores
    (summary.json: the base model's and each iteration's held-out accuracy, when data.eval was set) and
    `extra_scores` (the pipeline's arms under each refine policy)."""
    from transformers import AutoTokenizer

    root = Path(run_dir)
    tokenizer = AutoTokenizer.from_pretrained(base_model)
    scores: list[dict[str, Any]] = []
    if summary.get("base_eval") is not None:
        scores.append({"model": "base", "setting": SINGLE_PASS, "accuracy": summary["base_eval"], "items": eval_items})
    for m in summary.get("iterations", []):
        if m.get("eval") is not None:
            scores.append({"model": f"iter_{m['iteration']}", "setting": SINGLE_PASS, "accuracy": m["eval"],
                           "items": eval_items})
    settings = {"iterations trained": sum(1 for m in summary.get("iterations", []) if m.get("train_steps")),
                "stopped": summary.get("stop_reason"),
                "selection": f"{cfg.selection.policy}, warm-up {cfg.selection.warmup.policy}",
                "corpus": f"sft + fix/keep refinement rows (refine share {cfg.corpus.refine_share})",
                "fine-tuning": f"{cfg.sft.finetune}" + (f" r={cfg.sft.lora_r} alpha={cfg.sft.lora_alpha}"
                                                         if cfg.sft.finetune == "lora" else "")
                               + f", lr {cfg.sft.learning_rate}, {cfg.sft.epochs} epoch(s) per iteration"}
    written = []
    final = str(summary.get("final_model") or "")
    scores = [*scores, *extra_scores]
    for m in summary.get("iterations", []):
        folder = root / f"iter_{m['iteration']}" / "model"
        if not (folder / "config.json").exists():
            continue
        note = "This is the run's final model." if str(folder) == final else \
            f"An intermediate model (iteration {m['iteration']}); the run's final model is {final}."
        if summary.get("best_by") == "validation" and m["iteration"] == summary.get("best_iteration"):
            note += " It is the run's best iteration by accuracy on a validation slice of its training source."
        text = model_card(name=f"{Path(cfg.model).name} · toolace-r iteration {m['iteration']}", base_model=cfg.model,
                          model_dir=str(folder), tokenizer=tokenizer, prompt_cfg=cfg.prompt, data_train=cfg.data.train,
                          settings=settings, scores=scores, note=note)
        written.append(write_model_card(folder, text))
    return written
