"""The configuration of a training run: one `TrainConfig` with a nested dataclass per stage.

Loaded with `toolace_r.config.load_config(TrainConfig, path, overrides)`, so every field can be set from
YAML or the command line (`selection.policy=window`, `sft.max_steps=2`). The resolved config is saved as
`config.yaml` in the run directory; each phase's done-marker records the hash of the sections it read,
so changing a section on `--resume` redoes exactly the phases that depend on it.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from toolace_r.prompts import PromptConfig

# [ours] The gold text for a no-call item whose data carries none (BFCL irrelevance keys hold no text).
DEFAULT_NO_CALL_TEXT = "None of the given functions can be used to answer this question."


@dataclass
class DataConfig:
    """train: a toolace_r.data source, required (`require_train_source`); train_limit: at most this many
    items, taken round-robin over the categories so a small limit still sees every category. eval
    (optional): held-out source scored greedily after each iteration. validation_limit (optional): that
    many items of data.train the pool did not take (round-robin over categories, never trained on), scored
    after each iteration to choose the run's best one (docs/method.md#validation)."""

    # No default: the one that was here (BFCL's live and exec categories) trained on the benchmark the
    # runs are scored on whenever a config forgot to name its pool.
    train: str | None = None
    train_limit: int | None = None
    eval: str | None = None
    eval_limit: int | None = None
    no_call_text: str = DEFAULT_NO_CALL_TEXT
    data_dir: str | None = None  # passed to the loaders as data_dir= when set (BFCL data folder)
    max_prompt_tokens: int | None = None  # leave out training items whose prompt is longer (bounds CPU cost)
    validation_limit: int | None = None

    def __post_init__(self) -> None:
        if self.validation_limit is not None and self.validation_limit < 0:
            raise ValueError(f"data.validation_limit: a number of items >= 0, not {self.validation_limit!r}")


def require_train_source(data: DataConfig, where: str = "data.train") -> str:
    """data.train, or a ValueError that lists the sources it may name (`where`: the key in this config)."""
    if data.train:
        return data.train
    from toolace_r.data.registry import describe_sources

    raise ValueError(f"{where} is not set: name the training pool, there is no default. A source is one of: "
                     f"{describe_sources()}. E.g. the override {where}=toolace:Team-ACE/ToolACE, or in the YAML "
                     f"{where.rpartition('.')[0]}: {{train: \"jsonl:items.jsonl\"}}")


@dataclass
class SamplingConfig:
    """How difficulty is measured: k samples per item from the current model, scored by the checker."""

    engine: str = "hf"
    engine_options: dict[str, Any] = field(default_factory=dict)
    k: int = 4
    temperature: float = 0.8
    top_p: float = 1.0
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)  # stop strings for the samples (e.g. "\n\n" after a call)
    seed: int = 0
    gold_nll: bool = True  # also compute each item's mean gold-answer NLL under the model
    # A no-call item's sample counts as solved only if it is a text answer: BFCL also accepts a broken
    # call there (it decodes to no call), which would teach "keep" rows of half-written calls.
    strict_no_call: bool = True
    nll_batch_size: int = 8
    # Where sampling runs (training/launch.py): "inprocess" (the orchestrator itself), or "subprocess":
    # `num_processes` child processes, each sampling a contiguous shard of the items, so GPU memory (a
    # vLLM engine's above all) is given back before training. Results do not depend on num_processes.
    launcher: str = "inprocess"
    num_processes: int = 1
    gpus_per_process: int = 0  # > 0: child i sees GPUs [i*g, (i+1)*g) through CUDA_VISIBLE_DEVICES


WARMUP_WHEN = ("first", "while_nothing_selected:N", "every_iteration_below:N")


def parse_warmup_when(when: str) -> tuple[str, int]:
    """`warmup.when` as (mode, N); "first" is iteration 0 alone, so its N is 1."""
    mode, sep, n = when.partition(":")
    if mode == "first" and not sep:
        return mode, 1
    if mode in ("while_nothing_selected", "every_iteration_below") and n.isdigit() and int(n) >= 1:
        return mode, int(n)
    raise ValueError(f"selection.warmup.when: unknown value {when!r}; known: {', '.join(WARMUP_WHEN)} (N >= 1)")


@dataclass
class WarmupConfig:
    """Extra training items for a model that solves (almost) nothing yet (docs/method.md#warmup).

    policy: "nll" (the items with the lowest gold NLL: ToolACE's model-aware signal), "seed" (a random
    draw with `seed`), "none". size: a share of the items (a float, 0.25) or a number of items (an int, 12).
    stratify: each quota group gets its least share of the warm-up before the rest is ranked overall.
    when: "first": iteration 0 only, ranked over all items (it may overlap the selection).
    "while_nothing_selected:N": iteration 0, then iterations below N while the policy selects nothing,
    ranked by the *current* model. "every_iteration_below:N": iterations 0..N-1, beside the selection,
    from the items it left out: a small model solves too few items early on for the selection alone to
    teach it much. An iteration that warms up never triggers the stop rule.
    """

    policy: str = "nll"
    size: int | float = 0.25  # int before float: a YAML integer is a count, not a share
    seed: int = 0
    when: str = "first"
    stratify: bool = True  # apply selection.quotas to the warm-up too

    def __post_init__(self) -> None:
        parse_warmup_when(self.when)
        if self.size < 0 or (isinstance(self.size, float) and self.size > 1):
            raise ValueError(f"selection.warmup.size: {self.size!r} is neither a share in [0, 1] nor a count")

    def count(self, n_items: int) -> int:
        """How many of `n_items` the warm-up takes."""
        n = self.size if isinstance(self.size, int) else math.ceil(self.size * n_items)
        return max(0, min(n, n_items))

    def warms(self, iteration: int, selected_any: bool) -> bool:
        mode, n = parse_warmup_when(self.when)
        if mode == "every_iteration_below":
            return iteration < n
        return iteration == 0 or (mode == "while_nothing_selected" and iteration < n and not selected_any)

    @property
    def beside_selection(self) -> bool:
        """The warm-up passes over the selected items (its size still counts all items)."""
        return parse_warmup_when(self.when)[0] == "every_iteration_below"


@dataclass
class SelectionConfig:
    """policy: a key of selection.POLICIES (grow | window | all).
    window keeps lo < s < hi plus `replay_share` (of the window's size) of mastered items (s >= hi).
    quotas: the least share of the selection each category group (parallel, multiple, irrelevance,
    simple) must have; items are added from the group, the closest to solvable first."""

    policy: str = "grow"
    lo: float = 0.0
    hi: float = 1.0
    replay_share: float = 0.1
    quotas: dict[str, float] = field(
        default_factory=lambda: {"parallel": 0.1, "multiple": 0.1, "irrelevance": 0.1, "simple": 0.1}
    )
    seed: int = 0
    warmup: WarmupConfig = field(default_factory=WarmupConfig)


@dataclass
class CorpusConfig:
    """sft: one prompt->gold example per selected item. fix/keep: refinement examples built from the
    item's own sampled answers (wrong -> gold, right -> the answer byte for byte), at most
    max_fix/max_keep per item; refine_share caps the refinement examples' share of the corpus."""

    sft: bool = True
    max_fix_per_item: int = 1
    max_keep_per_item: int = 1
    refine_share: float = 0.5
    max_previous_chars: int = 2000  # longer sampled answers (runaway generations) are not used
    # "schema" [ours]: a refinement row whose previous answer does not fit the item's tool list says what
    # the check found in its refine turn, as the `checked` refine policy does at inference; wrong answers
    # with such findings are preferred for the fix rows. "off": the paper's refine turn only.
    feedback: str = "off"
    seed: int = 0

    def __post_init__(self) -> None:
        if self.feedback not in ("off", "schema"):
            raise ValueError(f"corpus.feedback: unknown value {self.feedback!r}; known: off, schema")


@dataclass
class SFTStageConfig:
    """One fine-tuning stage with TRL's SFTTrainer. finetune: "lora" (merged after training) or "full".

    Beside the fields below, `trl_args` passes keyword arguments to `trl.SFTConfig` and `model_args` to
    `AutoModelForCausalLM.from_pretrained` (see their comments; `check_trl_args` says which keys it refuses).
    """

    finetune: str = "lora"
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.0
    target_modules: str = "all-linear"
    learning_rate: float = 1e-4
    epochs: float = 1.0
    max_steps: int = -1
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    warmup: float = 0.1  # share of the steps (< 1) or a number of steps
    scheduler: str = "cosine"
    # bf16 autocast (fp32 master weights): true, false, or "auto": on where bf16 is fast (toolace_r/precision.py).
    bf16: bool | str = "auto"
    # TRL turns it on by default; for small models and short rows it only costs time (a second forward).
    gradient_checkpointing: bool = False
    save_steps: int = 50
    save_total_limit: int = 2
    # A LoRA run's model folder also holds the adapter (model/adapter/), to share or apply elsewhere.
    keep_adapter: bool = True
    logging_steps: int = 1
    seed: int = 0
    num_threads: int | None = None
    # Scale-out (training/launch.py, docs/scaling.md). launcher: "inprocess" (the default: SFT runs in the
    # orchestrator's own process), "subprocess" (`python -m toolace_r.training.worker`), or "accelerate"
    # (`accelerate launch` with `num_processes` ranks, optionally an accelerate YAML: DDP, FSDP or
    # DeepSpeed ZeRO-3).
    launcher: str = "inprocess"
    num_processes: int = 1
    accelerate_config: str | None = None
    mixed_precision: str | None = None  # passed to `accelerate launch --mixed_precision` when set
    ddp_backend: str | None = None  # None: gloo on CPU, the accelerate default (nccl) on GPUs
    # dtype the base weights are loaded in (bfloat16 halves a LoRA run's memory); "auto": bfloat16 for a LoRA
    # run where bf16 is fast, else float32 (toolace_r/precision.py).
    model_dtype: str = "auto"
    # The LM head runs only on the positions whose next token is labelled (training/compact_loss.py); off:
    # TRL's own loss, whose fused head scores every position on a CPU.
    compact_logits: bool = True
    # When set, grad_accum is derived so that batch_size x grad_accum x world size equals it (an error if
    # it does not divide): the recipes keep ToolACE's batch of 48 on any number of GPUs.
    # "random", or "group_by_length": batches of similar lengths, so far less padding is computed
    # (transformers' train_sampling_strategy; docs/scaling.md measures the padding a random order costs).
    sampling_strategy: str = "random"
    global_batch_size: int | None = None
    # TRL's and transformers' own knobs, for what the fields above do not cover (docs/method.md#sft).
    # trl_args: keyword arguments of `trl.SFTConfig` (report_to, run_name, optim, weight_decay,
    # max_grad_norm, packing, padding_free, ...); they win over build_trainer's defaults (report_to="none",
    # packing=False, ...), but not over the fields toolace-r owns (`OWNED_TRL_ARGS`: the checkpoint
    # layout the run's sealing depends on, and whatever a field above sets). Checked when the config is
    # built, so a typo fails before any model loads.
    trl_args: dict[str, Any] = field(default_factory=dict)
    # model_args: keyword arguments of `AutoModelForCausalLM.from_pretrained` for the model trained
    # (attn_implementation, quantization_config as a mapping of `transformers.BitsAndBytesConfig` for QLoRA,
    # ...). Only the training stage reads them; the engines that sample load the model their own way.
    model_args: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.bf16, str) and self.bf16 != "auto":
            raise ValueError(f"sft.bf16: true, false or auto, not {self.bf16!r}")
        check_trl_args(self.trl_args)
        check_model_args(self.model_args)


# `SFTConfig` keys that toolace-r sets itself, and what to set instead: the checkpoint layout (the run seals
# and prunes its checkpoints itself, training/sft.py) and the keys an `sft.*` field already sets.
OWNED_TRL_ARGS = {
    "output_dir": "the top-level output_dir (checkpoints go under the run directory)",
    "completion_only_loss": "nothing: the loss covers the answer tokens only, by design",
    "save_strategy": "sft.save_steps (checkpoints are saved every save_steps and sealed)",
    "save_steps": "sft.save_steps",
    "save_total_limit": "sft.save_total_limit (the run prunes checkpoints only once the newest is sealed)",
    "per_device_train_batch_size": "sft.batch_size",
    "gradient_accumulation_steps": "sft.grad_accum or sft.global_batch_size",
    "num_train_epochs": "sft.epochs",
    "max_steps": "sft.max_steps",
    "learning_rate": "sft.learning_rate",
    "lr_scheduler_type": "sft.scheduler",
    "warmup_steps": "sft.warmup",
    "logging_steps": "sft.logging_steps",
    "bf16": "sft.bf16",
    "seed": "sft.seed",
    "data_seed": "sft.seed",
    "max_length": "sft.max_length",
    "gradient_checkpointing": "sft.gradient_checkpointing",
    # transformers 5's new name for it, which would win over gradient_checkpointing without a word
    "activation_checkpointing": "sft.gradient_checkpointing",
    "train_sampling_strategy": "sft.sampling_strategy",
    "use_cpu": "nothing: the CPU is used exactly when no GPU is visible",
    "ddp_backend": "sft.ddp_backend",
    "model_init_kwargs": "sft.model_args (toolace-r loads the model itself)",
}
# Keys that once were TrainingArguments fields, with where the setting lives now.
MOVED_TRL_ARGS = {
    "logging_dir": "transformers 5 dropped TrainingArguments.logging_dir (after 5.2): TensorBoard writes under "
                   "<run>/iter_N/checkpoints/runs/, or under the TENSORBOARD_LOGGING_DIR environment variable",
    "warmup_ratio": "sft.warmup (a share of the steps when < 1)",
    "overwrite_output_dir": "nothing: transformers 5 dropped it (toolace-r writes each stage's folder afresh)",
}
OWNED_MODEL_ARGS = {
    "dtype": "sft.model_dtype",
    "torch_dtype": "sft.model_dtype",
    "pretrained_model_name_or_path": "the top-level model (or the iteration's checkpoint, which the loop picks)",
}


def check_trl_args(trl_args: dict[str, Any]) -> None:
    """A ValueError for a key of `sft.trl_args` that toolace-r owns or that `trl.SFTConfig` does not have."""
    if not trl_args:
        return  # no TRL import for the common case: building a config stays cheap
    import dataclasses
    import difflib

    from trl import SFTConfig

    known = {f.name for f in dataclasses.fields(SFTConfig) if f.init}
    for key in sorted(trl_args):
        if key in OWNED_TRL_ARGS:
            raise ValueError(f"sft.trl_args.{key}: toolace-r sets this SFTConfig field itself; "
                             f"set {OWNED_TRL_ARGS[key]} instead")
        if key in MOVED_TRL_ARGS and key not in known:
            raise ValueError(f"sft.trl_args.{key}: not a field of trl.SFTConfig; set {MOVED_TRL_ARGS[key]}")
        if key not in known:
            close = difflib.get_close_matches(key, sorted(known), n=5, cutoff=0.6)
            hint = f"close matches: {', '.join(close)}; " if close else ""
            raise ValueError(f"sft.trl_args.{key}: not a field of trl.SFTConfig ({hint}the full list is "
                             "`trl.SFTConfig`'s documentation, or `dataclasses.fields(trl.SFTConfig)`)")


def check_model_args(model_args: dict[str, Any]) -> None:
    """A ValueError for a key of `sft.model_args` that another field sets, or a quantization_config that is
    not a mapping (it becomes `transformers.BitsAndBytesConfig(**quantization_config)`)."""
    for key in sorted(model_args):
        if key in OWNED_MODEL_ARGS:
            raise ValueError(f"sft.model_args.{key}: set {OWNED_MODEL_ARGS[key]} instead")
    quant = model_args.get("quantization_config")
    if quant is not None and not isinstance(quant, dict):
        raise ValueError("sft.model_args.quantization_config: expected a mapping of BitsAndBytesConfig's "
                         f"arguments (e.g. {{load_in_4bit: true}}), got {type(quant).__name__}")


@dataclass
class LoopConfig:
    """Stop when the selection gains no more than `min_growth` new items, or after max_iterations."""

    max_iterations: int = 3
    min_growth: int = 0
    progress: bool = True
    eval_base: bool = True  # also score the starting model on data.eval (written to base/eval.json)
    validate_base: bool = False  # also score the starting model on the validation slice (base/validation.json)


@dataclass
class LoopEvalConfig:
    """The greedy held-out evaluation of every iteration's model on data.eval: one pass through the refine
    code the pipeline scores its arms with (`toolace_r.stages.eval_stage`), under this token budget and
    these stop strings."""

    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)


@dataclass
class TrainConfig:
    model: str = "smollm2-135m"
    output_dir: str = "runs/train"
    data: DataConfig = field(default_factory=DataConfig)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    selection: SelectionConfig = field(default_factory=SelectionConfig)
    corpus: CorpusConfig = field(default_factory=CorpusConfig)
    sft: SFTStageConfig = field(default_factory=SFTStageConfig)
    loop: LoopConfig = field(default_factory=LoopConfig)
    eval: LoopEvalConfig = field(default_factory=LoopEvalConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
