"""The GPU recipes in configs/recipes and configs/accelerate: their settings, a dry run of each on CPU with
a tiny model (through the recipes' own child-process code paths), and the data paths they rely on
(hub datasets streamed through `datasets`, several sources mixed)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.config import load_config
from toolace_r.training import TrainConfig, run_training
from toolace_r.training.sft import grad_accum_steps

ROOT = Path(__file__).resolve().parents[1]
RECIPES = sorted((ROOT / "configs/recipes").glob("*.yaml"))
ACCELERATE = sorted((ROOT / "configs/accelerate").glob("*.yaml"))

SYSTEM = ("You are an expert in composing functions. You are given a question and a set of possible functions. "
          "Here is a list of functions in JSON format that you can invoke.\n{tools}\n"
          "Should you decide to return the function call(s), put them in the format above.")
WEATHER = {"name": "get_weather", "description": "Current weather.", "parameters": {
    "type": "dict", "properties": {"city": {"type": "string", "description": "City"}}, "required": ["city"]}}
TIME = {"name": "get_time", "description": "Current time.", "parameters": {
    "type": "dict", "properties": {"zone": {"type": "string", "description": "Zone"}}, "required": ["zone"]}}


def toolace_rows() -> list[dict]:
    """Six rows in the shape of `Team-ACE/ToolACE` on the Hub (system prompt with the tool list, turns)."""
    rows = []
    for city in ("Oslo", "Rome", "Lima"):
        rows.append({"system": SYSTEM.format(tools=json.dumps([WEATHER, TIME])), "conversations": [
            {"from": "user", "value": f"Weather in {city}?"},
            {"from": "assistant", "value": f'[get_weather(city="{city}")]'}]})
    rows.append({"system": SYSTEM.format(tools=json.dumps([TIME])), "conversations": [
        {"from": "user", "value": "Time in UTC and CET?"},
        {"from": "assistant", "value": '[get_time(zone="UTC"), get_time(zone="CET")]'}]})
    rows.append({"system": SYSTEM.format(tools=json.dumps([WEATHER])), "conversations": [
        {"from": "user", "value": "Tell me a joke."},
        {"from": "assistant", "value": "None of the functions can tell a joke."}]})
    rows.append({"system": SYSTEM.format(tools=json.dumps([WEATHER, TIME])), "conversations": [
        {"from": "user", "value": "Weather in Nice?"},
        {"from": "assistant", "value": '[get_weather(city="Nice")]'},
        {"from": "tool", "value": '[{"name": "get_weather", "results": {"temp": 20}}]'},
        {"from": "assistant", "value": "It is 20 degrees in Nice."}]})
    return rows


def write_toolace(path: Path) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in toolace_rows()))
    return path


def test_there_are_recipes_for_both_models():
    names = {p.name for p in RECIPES}
    assert {"llama31_8b_toolace.yaml", "qwen25_7b_toolace.yaml"} <= names
    assert {p.name for p in ACCELERATE} == {"ddp.yaml", "fsdp.yaml", "zero3.yaml"}


@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_keeps_toolace_hyper_parameters(recipe):
    cfg = load_config(TrainConfig, recipe)
    s = cfg.sft
    assert (s.finetune, s.lora_r, s.lora_alpha, s.target_modules) == ("lora", 16, 32, "all-linear")
    assert (s.learning_rate, s.warmup, s.scheduler, s.epochs) == (1e-4, 0.1, "cosine", 3)
    assert s.bf16 and s.model_dtype == "bfloat16" and s.global_batch_size == 48
    # ToolACE's batch of 48 on 8 GPUs, and on one GPU through accumulation
    assert s.batch_size * s.num_processes * grad_accum_steps(s, s.num_processes) == 48
    assert s.batch_size * grad_accum_steps(s, 1) == 48
    assert s.launcher == "accelerate" and (ROOT / s.accelerate_config).is_file()
    assert cfg.sampling.engine == "vllm" and cfg.sampling.launcher == "subprocess"
    assert {"tensor_parallel_size", "gpu_memory_utilization"} <= set(cfg.sampling.engine_options)
    assert "toolace:Team-ACE/ToolACE" in cfg.data.train and cfg.data.eval == "bfcl:all"
    assert cfg.data.train_limit is None and cfg.data.eval_limit is None  # the whole data sets
    # every recipe states its answer format; Qwen trains its native Hermes calls
    assert cfg.prompt.answer_format == ("native" if recipe.stem.startswith("qwen") else "pythonic")
    from toolace_r.engines.vllm import VLLMEngineConfig

    VLLMEngineConfig(**cfg.sampling.engine_options)  # every engine option is one the vllm engine takes


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.stem)
def test_accelerate_configs_parse(path):
    from accelerate.commands.config.config_args import load_config_from_file

    c = load_config_from_file(str(path))
    assert c.mixed_precision == "bf16" and c.num_machines == 1
    kind = {"ddp": "MULTI_GPU", "fsdp": "FSDP", "zero3": "DEEPSPEED"}[path.stem]
    assert str(c.distributed_type).endswith(kind)
    if kind == "FSDP":  # the model folder is written from a gathered full state dict
        assert c.fsdp_config["fsdp_state_dict_type"] == "FULL_STATE_DICT"
    if kind == "DEEPSPEED":
        assert c.deepspeed_config["zero_stage"] == 3 and c.deepspeed_config["zero3_save_16bit_model"]


@pytest.mark.slow
@pytest.mark.parametrize("recipe", RECIPES, ids=lambda p: p.stem)
def test_recipe_dry_run_on_cpu(recipe, hermes_model_dir, llama31_model_dir, tmp_path):
    """The recipe as it stands, with a tiny model and data, the hf engine and one step: sampling runs in
    two child processes and training in a child, as on GPUs; evaluation covers every BFCL category.
    The tiny model's chat template behaves like the recipe's model family's (Qwen2.5: Hermes tool calls;
    Llama-3.1: BOS in the template, JSON calls). A recipe that mixes sources gets the tiny ToolACE file
    mixed with the xLAM fixture."""
    tiny_model_dir = hermes_model_dir if recipe.stem.startswith("qwen") else llama31_model_dir
    data = f"toolace:{write_toolace(tmp_path / 'toolace.jsonl')}"
    mixed = load_config(TrainConfig, recipe).data.train.startswith("mix:")
    if mixed:
        data = f"mix:{data};xlam:{ROOT / 'tests/fixtures/xlam.json'}"
    cfg = load_config(TrainConfig, recipe, [
        f"model={tiny_model_dir}", f"data.train={data}", "data.eval_limit=11",
        "sampling.engine=hf", "sampling.engine_options={dtype: float32, device: cpu, batch_size: 8, num_threads: 1}",
        "sampling.num_processes=2", "sampling.max_new_tokens=8", "eval.max_new_tokens=4",
        "sft.launcher=subprocess", "sft.max_steps=1", "sft.num_threads=2",
        "loop.max_iterations=1", "loop.eval_base=false", "loop.progress=false",
    ])
    root = tmp_path / "run"
    summary = run_training(cfg, root, echo=lambda s: None)
    it = summary["iterations"][0]
    assert (it["items"] > 7 if mixed else it["items"] == 7) and it["train_steps"] == 1 and it["train_loss"] > 0
    assert len(list((root / "iter_0/sample.shards").glob("shard_*.jsonl"))) == 2
    corpus = [json.loads(line) for line in (root / "iter_0/corpus.jsonl").read_text().splitlines()]
    calls = [r["completion"] for r in corpus if r["kind"] == "sft" and "get_weather" in r["completion"]]
    written = '<tool_call>\n{"name": "get_weather"' if recipe.stem.startswith("qwen") else "[get_weather(city="
    assert calls and all(c.startswith(written) for c in calls)  # the recipe's answer format, in training
    train = json.loads((root / "iter_0/train.json").read_text())
    assert train["grad_accum"] == 8 and train["world_size"] == 1  # 48 / batch 6 on one process
    ev = json.loads((root / "iter_0/eval.json").read_text())
    # bfcl:all, taken round-robin: every scored category but live_relevance (it has no single right answer)
    assert ev["items"] == 11 and len(ev["by_category"]) == 10 and "live_relevance" not in ev["by_category"]
    assert (root / "iter_0/model/model.safetensors").exists()


# --- data paths the recipes use -----------------------------------------------------------------------

def _redirect_hub(monkeypatch, local: Path) -> list[dict]:
    """`datasets.load_dataset(<hub id>)` reads `local` through datasets' own JSON builder instead; the
    returned list records each call's hub id, streaming flag and the type of dataset it got."""
    import datasets

    real = datasets.load_dataset
    calls: list[dict] = []

    def fake(path, split=None, streaming=False, **kw):
        ds = real("json", data_files=str(local), split=split, streaming=streaming)
        calls.append({"path": path, "streaming": streaming, "type": type(ds).__name__})
        return ds

    monkeypatch.setattr(datasets, "load_dataset", fake)
    return calls


def test_toolace_hub_dataset_streams(tmp_path, monkeypatch):
    from toolace_r.data import load

    local = write_toolace(tmp_path / "toolace.jsonl")
    calls = _redirect_hub(monkeypatch, local)
    streamed = load("toolace:Team-ACE/ToolACE", streaming=True)
    assert calls == [{"path": "Team-ACE/ToolACE", "streaming": True, "type": "IterableDataset"}]
    from_file = load(f"toolace:{local}")
    assert len(streamed) == 7
    assert [(e.id, e.gold.text, e.messages, len(e.tools)) for e in streamed] == \
        [(e.id, e.gold.text, e.messages, len(e.tools)) for e in from_file]
    assert streamed[0].metadata["source"] == "Team-ACE/ToolACE record 1"


def test_hub_streams_by_default_only_when_large(tmp_path, monkeypatch):
    from toolace_r.data import load, records

    calls = _redirect_hub(monkeypatch, write_toolace(tmp_path / "toolace.jsonl"))
    monkeypatch.setattr(records, "hub_size_bytes", lambda hub_id: records.STREAM_ABOVE_BYTES + 1)
    assert len(load("toolace:Team-ACE/ToolACE")) == 7
    monkeypatch.setattr(records, "hub_size_bytes", lambda hub_id: None)  # offline: no size known
    assert len(load("toolace:Team-ACE/ToolACE")) == 7
    assert [(c["streaming"], c["type"]) for c in calls] == [(True, "IterableDataset"), (False, "Dataset")]


def test_mix_loader_concatenates_sources_and_rejects_duplicate_ids(tmp_path):
    from toolace_r.data import load

    toolace = write_toolace(tmp_path / "toolace.jsonl")
    xlam = ROOT / "tests/fixtures/xlam.json"
    mixed = load(f"mix:toolace:{toolace};xlam:{xlam}", skip_invalid=True)
    alone = load(f"toolace:{toolace}", skip_invalid=True), load(f"xlam:{xlam}", skip_invalid=True)
    assert [e.id for e in mixed] == [e.id for e in alone[0]] + [e.id for e in alone[1]]
    twice = load(f"mix:toolace:{toolace};toolace:{toolace}", skip_invalid=True)
    assert len(twice) == len(alone[0]) and len(twice.skipped) == len(alone[0])
    assert "already yielded" in str(twice.skipped[0])
    with pytest.raises(ValueError, match="unknown dataset source"):
        load("mix:toolace:x.jsonl;nope:y")
