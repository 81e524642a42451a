"""Tiny tokenizers whose chat templates behave like the model families users train (written here, not
copied from a vendor's file): what the library has to get right depends on those behaviours.

- `build_hermes_tokenizer`: like Qwen2.5/Qwen3. The tool list goes into the system turn (a `# Tools`
  section, one JSON schema per line inside <tools></tools>, an instruction to answer with
  <tool_call>{"name", "arguments"}</tool_call>); an assistant `tool_calls` message renders one
  <tool_call> block per call, `arguments` through `tojson`; tool results come back in a user turn as
  <tool_response> blocks; a default system prompt when the conversation has none; no BOS token.
- `build_llama31_tokenizer`: like Llama-3.1-Instruct. The template writes `<|begin_of_text|>` itself and
  the tokenizer *also* adds it when called with special tokens (the double-BOS trap); the tool list goes
  into the first user turn with an instruction to answer with {"name", "parameters"} JSON; an assistant
  `tool_calls` message renders that JSON and the template raises for more than one call.

Both are byte-level (one token per byte) plus their special tokens, so any text round-trips.
"""
from __future__ import annotations

from pathlib import Path

HERMES_TEMPLATE = (
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = 'You are a helpful assistant.' -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<|im_start|>system\\n' + system -}}"
    "{%- if tools -%}"
    "{{- '\\n\\n# Tools\\n\\nThese functions are available, one JSON schema per line:\\n<tools>' -}}"
    "{%- for tool in tools -%}{{- '\\n' + (tool | tojson) -}}{%- endfor -%}"
    "{{- '\\n</tools>\\n\\nTo call functions, write one JSON object per call, with the keys \"name\" and "
    "\"arguments\", each inside <tool_call></tool_call> tags:\\n<tool_call>\\n{\"name\": <function name>, "
    "\"arguments\": <arguments as an object>}\\n</tool_call>' -}}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- for m in rest -%}"
    "{%- if m.role == 'assistant' -%}"
    "{{- '<|im_start|>assistant' -}}"
    "{%- if m.content -%}{{- '\\n' + m.content -}}{%- endif -%}"
    "{%- if m.tool_calls -%}{%- for call in m.tool_calls -%}"
    "{%- set f = call.function if call.function is defined else call -%}"
    "{{- '\\n<tool_call>\\n{\"name\": \"' + f.name + '\", \"arguments\": ' + (f.arguments | tojson) + '}\\n</tool_call>' -}}"
    "{%- endfor -%}{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- elif m.role == 'tool' -%}"
    "{%- if loop.first or loop.previtem.role != 'tool' -%}{{- '<|im_start|>user' -}}{%- endif -%}"
    "{{- '\\n<tool_response>\\n' + m.content + '\\n</tool_response>' -}}"
    "{%- if loop.last or loop.nextitem.role != 'tool' -%}{{- '<|im_end|>\\n' -}}{%- endif -%}"
    "{%- else -%}"
    "{{- '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

LLAMA31_TEMPLATE = (
    "{{- bos_token -}}"
    "{%- if messages and messages[0].role == 'system' -%}"
    "{%- set system = messages[0].content | trim -%}{%- set rest = messages[1:] -%}"
    "{%- else -%}{%- set system = '' -%}{%- set rest = messages -%}{%- endif -%}"
    "{{- '<|start_header_id|>system<|end_header_id|>\\n\\n' -}}"
    "{%- if tools -%}{{- 'Environment: ipython\\n' -}}{%- endif -%}"
    "{{- 'Knowledge cutoff: 2023-12\\n\\n' + system + '<|eot_id|>' -}}"
    "{%- for m in rest -%}"
    "{%- if loop.first and tools and m.role == 'user' -%}"
    "{{- '<|start_header_id|>user<|end_header_id|>\\n\\n' -}}"
    "{{- 'To call a function, answer with one JSON object of the form {\"name\": function name, "
    "\"parameters\": object of argument names and values}. The functions:\\n\\n' -}}"
    "{%- for tool in tools -%}{{- (tool | tojson(indent=4)) + '\\n\\n' -}}{%- endfor -%}"
    "{{- m.content | trim + '<|eot_id|>' -}}"
    "{%- elif m.role == 'assistant' and m.tool_calls -%}"
    "{%- if m.tool_calls | length != 1 -%}{{- raise_exception('This template writes one tool call per message.') -}}"
    "{%- endif -%}"
    "{%- set f = m.tool_calls[0].function -%}"
    "{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}"
    "{{- '{\"name\": \"' + f.name + '\", \"parameters\": ' + (f.arguments | tojson) + '}' -}}"
    "{{- '<|eot_id|>' -}}"
    "{%- elif m.role == 'tool' -%}"
    "{{- '<|start_header_id|>ipython<|end_header_id|>\\n\\n' + m.content + '<|eot_id|>' -}}"
    "{%- else -%}"
    "{{- '<|start_header_id|>' + m.role + '<|end_header_id|>\\n\\n' + (m.content | trim) + '<|eot_id|>' -}}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}{%- endif -%}"
)

HERMES_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
LLAMA31_SPECIALS = ("<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>",
                    "<|eot_id|>", "<|eom_id|>")


def byte_level(specials: tuple[str, ...], extra: tuple[str, ...] = ()):
    """A byte-level BPE backend (one token per byte, no merges) with `specials` first, then `extra` tokens."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    vocab = {tok: i for i, tok in enumerate([*specials, *alphabet])}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens(list(specials))
    if extra:
        backend.add_tokens(list(extra))
    return backend


def build_hermes_tokenizer():
    """Qwen2.5-like: ChatML specials, <tool_call> tags as added (non-special) tokens, no BOS."""
    from transformers import PreTrainedTokenizerFast

    tok = PreTrainedTokenizerFast(
        tokenizer_object=byte_level(HERMES_SPECIALS, ("<tool_call>", "</tool_call>")),
        eos_token="<|im_end|>", pad_token="<|endoftext|>", model_max_length=8192)
    tok.chat_template = HERMES_TEMPLATE
    return tok


def build_llama31_tokenizer():
    """Llama-3.1-like: the tokenizer adds <|begin_of_text|> when asked for special tokens, and the
    template writes it too; the end of an assistant turn is <|eot_id|>, the EOS; no pad token."""
    from tokenizers import processors
    from transformers import PreTrainedTokenizerFast

    backend = byte_level(LLAMA31_SPECIALS)
    backend.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", pair="<|begin_of_text|> $A <|begin_of_text|> $B",
        special_tokens=[("<|begin_of_text|>", 0)])
    tok = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<|begin_of_text|>",
                                  eos_token="<|eot_id|>", model_max_length=8192)
    tok.chat_template = LLAMA31_TEMPLATE
    return tok


def build_model_dir(path: Path, tokenizer) -> Path:
    """A tiny random-weight Llama (hidden 32, 2 layers) saved with `tokenizer` into `path`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    eos = tokenizer.eos_token_id
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else eos
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                         bos_token_id=bos, eos_token_id=eos, pad_token_id=pad, tie_word_embeddings=True)
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos, pad_token_id=pad)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path
