"""Scale-out on CPU: training under `accelerate launch --num_processes 2` (gloo) and sampling sharded over
child processes give the same results as the single-process run; failed children report their log."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.config import load_config
from toolace_r.training import TrainConfig, run_training
from toolace_r.training import launch

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather.", "parameters": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
TIME = {"type": "function", "function": {"name": "get_time", "description": "Time.", "parameters": {
    "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}
CITIES = ["Oslo", "Rome", "Nice", "Lima", "Kyiv", "Baku", "Doha", "Riga"]
ZONES = ["UTC", "CET", "EST", "PST", "JST", "IST", "MSK", "AEST"]


def _call(name, **args):
    return {"type": "function", "function": {"name": name, "arguments": json.dumps(args)}}


def write_items(path: Path) -> Path:
    """16 items: single weather and time calls and a parallel one. No no-call item: a random model's text
    would solve it, and the warm-up (what iteration 1's selection is tested on) runs only while nothing is."""
    rows = []
    for i, city in enumerate(CITIES):
        rows.append((f"w{i}", f"weather in {city}?", [WEATHER], {"tool_calls": [_call("get_weather", city=city)]}))
    for i, zone in enumerate(ZONES[:7]):
        rows.append((f"t{i}", f"time in {zone}?", [WEATHER, TIME], {"tool_calls": [_call("get_time", zone=zone)]}))
    rows.append(("p0", "weather in Oslo and Rome?", [WEATHER],
                 {"tool_calls": [_call("get_weather", city="Oslo"), _call("get_weather", city="Rome")]}))
    with path.open("w") as fh:
        for rid, q, tools, answer in rows:
            msg = {"role": "assistant", "content": None, **answer}
            fh.write(json.dumps({"id": rid, "messages": [{"role": "user", "content": q}, msg], "tools": tools}) + "\n")
    return path


def make_cfg(model_dir, data, *extra):
    return load_config(TrainConfig, None, [
        f"model={model_dir}", f"data.train=jsonl:{data}", "prompt.system_prompt=Call tools.",
        "sampling.k=2", "sampling.max_new_tokens=6", "sampling.gold_nll=true", "sampling.nll_batch_size=8",
        "sampling.engine_options={dtype: float32, device: cpu, batch_size: 8, num_threads: 1}",
        "selection.quotas={}", "selection.warmup.policy=nll", "selection.warmup.size=4",
        "selection.warmup.when=while_nothing_selected:2", "corpus.max_keep_per_item=0", "corpus.max_fix_per_item=0",
        "sft.max_steps=2", "sft.batch_size=2", "sft.global_batch_size=4", "sft.lora_r=4", "sft.lora_alpha=8",
        "sft.warmup=0", "sft.learning_rate=0.05", "sft.save_steps=100", "sft.num_threads=1",
        "loop.progress=false", "loop.max_iterations=2", "loop.min_growth=-1", *extra])


def _selected(root: Path, it: int) -> dict:
    sel = json.loads((root / f"iter_{it}/selection.json").read_text())
    return {"selected": sel["selected"], "train_ids": sel["train_ids"]}


@pytest.mark.slow
def test_accelerate_two_processes_matches_single_process(tiny_model_dir, tmp_path):
    data = write_items(tmp_path / "items.jsonl")
    single, ddp = tmp_path / "single", tmp_path / "ddp"
    run_training(make_cfg(tiny_model_dir, data), single, echo=lambda s: None)
    run_training(make_cfg(tiny_model_dir, data, "sft.launcher=accelerate", "sft.num_processes=2"), ddp,
                 echo=lambda s: None)

    # Iteration 0 samples the same base model with the same seeds: the same records and selection.
    assert (single / "iter_0/samples.jsonl").read_text() == (ddp / "iter_0/samples.jsonl").read_text()
    assert _selected(single, 0) == _selected(ddp, 0) and len(_selected(ddp, 0)["train_ids"]) == 4
    for it in (0, 1):
        train = json.loads((ddp / f"iter_{it}/train.json").read_text())
        assert train["world_size"] == 2 and train["grad_accum"] == 1 and train["steps"] == 2
        ref = json.loads((single / f"iter_{it}/train.json").read_text())
        assert ref["world_size"] == 1 and ref["grad_accum"] == 2
        # Same rows per optimiser step (rank r takes the r-th micro-batch), loss averaged over all tokens.
        assert train["losses"] == pytest.approx(ref["losses"], rel=1e-3)
    # Iteration 1 warms up again, ranked by the gold NLL under the model iteration 0 trained: the DDP-trained
    # model ranks the items as the single-process one does.
    sel1 = json.loads((ddp / "iter_1/selection.json").read_text())
    assert sel1["warmup_policy"] == "nll" and len(sel1["warmup"]) == 4
    assert _selected(single, 1) == _selected(ddp, 1)
    # the ranking came from the trained model (it differs from iteration 0's, ranked by the base model)
    assert set(sel1["warmup"]) != set(json.loads((ddp / "iter_0/selection.json").read_text())["warmup"])
    # ...and both trained models sample the same answers (same seeds, weights equal up to float rounding)
    texts = {name: [[s["text"] for s in json.loads(line)["samples"]]
                    for line in (root / "iter_1/samples.jsonl").read_text().splitlines()]
             for name, root in (("single", single), ("ddp", ddp))}
    assert texts["ddp"] == texts["single"] and len(texts["ddp"]) == 16
    nll = {}
    for name, root in (("single", single), ("ddp", ddp)):
        nll[name] = [json.loads(line)["gold_nll"] for line in (root / "iter_1/samples.jsonl").read_text().splitlines()]
    assert nll["ddp"] == pytest.approx(nll["single"], rel=1e-3)

    # The DDP model folder is whole, loads, differs from the base model and generates.
    import torch
    from safetensors.torch import load_file

    from toolace_r.models import load_model

    out = ddp / "iter_1/model"
    assert not list(ddp.glob("iter_*/.model.tmp")) and not list(ddp.glob("iter_*/.adapter.tmp"))
    assert not (out / "training_args.bin").exists() and not (out / "adapter_config.json").exists()
    base = load_file(str(Path(tiny_model_dir) / "model.safetensors"))
    tuned = load_file(str(out / "model.safetensors"))
    assert set(tuned) == set(base)
    assert any(not torch.equal(base[k], tuned[k]) for k in base)
    single_w = load_file(str(single / "iter_1/model/model.safetensors"))
    assert max(float((single_w[k] - tuned[k]).abs().max()) for k in base) < 1e-3
    model, tok = load_model(str(out), dtype="float32", device="cpu")
    ids = tok("<|im_start|>user\nhi<|im_end|>\n", return_tensors="pt")
    gen = model.generate(**ids, max_new_tokens=4, do_sample=False)
    assert gen.shape[1] == ids["input_ids"].shape[1] + 4 or gen[0, -1].item() == tok.eos_token_id


@pytest.mark.slow
def test_sharded_sampling_equals_single_process(tiny_model_dir, tmp_path):
    data = write_items(tmp_path / "items.jsonl")
    one, three = tmp_path / "one", tmp_path / "three"
    common = ("loop.max_iterations=1", "sft.launcher=subprocess")
    run_training(make_cfg(tiny_model_dir, data, *common), one, echo=lambda s: None)
    run_training(make_cfg(tiny_model_dir, data, *common, "sampling.launcher=subprocess",
                          "sampling.num_processes=3"), three, echo=lambda s: None)
    a = [json.loads(line) for line in (one / "iter_0/samples.jsonl").read_text().splitlines()]
    b = [json.loads(line) for line in (three / "iter_0/samples.jsonl").read_text().splitlines()]
    assert [r["id"] for r in b] == [r["id"] for r in a]  # merged back in the items' order
    assert [[s["text"] for s in r["samples"]] for r in b] == [[s["text"] for s in r["samples"]] for r in a]
    assert [r["gold_nll"] for r in b] == pytest.approx([r["gold_nll"] for r in a], rel=1e-4)
    assert sorted(p.name for p in (three / "iter_0/sample.shards").glob("*.jsonl")) == \
        ["shard_0.jsonl", "shard_1.jsonl", "shard_2.jsonl"]
    # the subprocess launcher trained in a child and produced the same model as in-process training would
    train = json.loads((three / "iter_0/train.json").read_text())
    assert train["world_size"] == 1 and (three / "iter_0/train.log").exists()
    assert (three / "iter_0/model/model.safetensors").exists()


def test_shard_bounds_cover_the_items_once():
    for n in (0, 1, 5, 16, 17):
        for shards in (1, 2, 3, 7):
            bounds = [launch.shard_bounds(n, i, shards) for i in range(shards)]
            assert bounds[0][0] == 0 and bounds[-1][1] == n
            assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
            sizes = [e - s for s, e in bounds]
            assert max(sizes) - min(sizes) <= 1


def test_shard_config_shifts_only_the_seed():
    cfg = load_config(TrainConfig, None, ["sampling.seed=7", "sampling.k=3"])
    shifted = launch.shard_config(cfg, 5)
    assert shifted.sampling.seed == 12 and shifted.sampling.k == 3 and cfg.sampling.seed == 7


def test_shard_gpus_slice_the_visible_devices(monkeypatch):
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert [launch.shard_gpus(i, 2) for i in range(3)] == ["0,1", "2,3", "4,5"]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5,6,7")
    assert [launch.shard_gpus(i, 1) for i in range(4)] == ["4", "5", "6", "7"]
    with pytest.raises(ValueError, match="holds 4"):
        launch.shard_gpus(2, 2)


def test_subprocess_sampling_refuses_an_in_code_engine(tiny_model_dir, tmp_path):
    cfg = make_cfg(tiny_model_dir, write_items(tmp_path / "items.jsonl"), "sampling.launcher=subprocess")
    with pytest.raises(ValueError, match="cannot reach"):
        run_training(cfg, tmp_path / "run", engine_factory=lambda m, c: None, echo=lambda s: None)


def test_merge_shards_restores_order_and_rejects_missing(tmp_path):
    from toolace_r.training.difficulty import write_samples

    write_samples(launch.shard_path(tmp_path, 0), [{"id": "b"}, {"id": "a"}])
    write_samples(launch.shard_path(tmp_path, 1), [{"id": "c"}])
    assert [r["id"] for r in launch.merge_shards(tmp_path, 2, ["a", "b", "c"])] == ["a", "b", "c"]
    with pytest.raises(launch.LaunchError, match="missing"):
        launch.merge_shards(tmp_path, 2, ["a", "b", "c", "d"])


def test_accelerate_command_line(tmp_path):
    cmd = launch.worker_command(["train", "--dir", "D"], "accelerate", 2)
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"] and "--multi_gpu" in cmd
    assert cmd[cmd.index("--num_processes") + 1] == "2" and cmd[-5:] == ["-m", launch.WORKER_MODULE,
                                                                         "train", "--dir", "D"]
    cfg_file = tmp_path / "fsdp.yaml"
    cfg_file.write_text("distributed_type: FSDP\n")
    cmd = launch.worker_command(["train"], "accelerate", 8, str(cfg_file), "bf16")
    assert cmd[cmd.index("--config_file") + 1] == str(cfg_file) and "--multi_gpu" not in cmd
    assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"
    with pytest.raises(FileNotFoundError, match="accelerate_config"):
        launch.worker_command(["train"], "accelerate", 2, str(tmp_path / "missing.yaml"))


def test_failed_child_names_its_log(tiny_model_dir, tmp_path):
    """A training child that fails surfaces as one LaunchError with the log path and the log's tail."""
    from toolace_r.engines import Engine, GenerationResult
    from toolace_r.engines.base import Completion

    class Wrong(Engine):
        def generate(self, requests, progress=False):
            return [GenerationResult([Completion("[nope(x=1)]", [], "stop")] * r.params.n) for r in requests]

    data = write_items(tmp_path / "items.jsonl")
    cfg = make_cfg(tiny_model_dir, data, "loop.max_iterations=1", "sampling.gold_nll=false",
                   "selection.warmup.policy=seed", "sft.launcher=subprocess", "sft.model_dtype=no_such_dtype")
    with pytest.raises(launch.LaunchError) as err:
        run_training(cfg, tmp_path / "run", engine_factory=lambda m, c: Wrong(), echo=lambda s: None)
    message = str(err.value)
    assert "exit status 1" in message and str(tmp_path / "run/iter_0/train.log") in message
    assert "no_such_dtype" in message  # the child's own error, from the log's tail
    assert not (tmp_path / "run/iter_0/train.done").exists()
