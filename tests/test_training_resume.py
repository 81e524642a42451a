"""kill -9 and --resume: a run killed at any phase (a trainer checkpoint torn half-way included) and resumed
ends as the uninterrupted run does; children die with the process that started them; one process per
run directory.

A killed run is a subprocess (KILLER below) that wraps one library function to SIGKILL itself at a
precise point; the resume runs here, in process, and its outputs are compared with one uninterrupted
reference run shared by the module.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from test_training_loop import make_cfg, scripted_factory, write_data
from toolace_r.training import launch, run_training, sft
from toolace_r.stages import RunDirLocked, run_dir_lock

TESTS = Path(__file__).resolve().parent
SRC = TESTS.parent / "src"
OVERRIDES = {"sft.max_steps": 2, "loop.max_iterations": 2, "loop.eval_base": "false"}
WAIT_S = 300  # generous: the machine may be loaded; nothing here is timed

KILLER = r'''
import json, os, signal, sys
from pathlib import Path

job = json.loads(sys.argv[1])
from test_training_loop import make_cfg, scripted_factory
from toolace_r import stages
from toolace_r.training import launch, run_training


def die():
    os.kill(os.getpid(), signal.SIGKILL)


kill, where = job["kill"], job.get("where", "")
if kill == "finish_phase":  # the phase's outputs are written, its marker is not
    finish = stages.RunDir.finish

    def finish_phase(self, stage, inputs, seconds):
        if stage.name == job["phase"] and stage.where == where:
            die()
        return finish(self, stage, inputs, seconds)

    stages.RunDir.finish = finish_phase
elif kill == "torch_save":  # a checkpoint file torn half-way through its write
    import torch

    save = torch.save

    def torn_save(obj, f, *args, **kwargs):
        save(obj, f, *args, **kwargs)
        if isinstance(f, (str, os.PathLike)) and str(f).endswith(where):
            os.truncate(f, os.path.getsize(f) // 2)
            die()

    torch.save = torn_save
elif kill == "trainer_state":  # trainer_state.json, the Trainer's last file of a checkpoint, torn
    from transformers.trainer_callback import TrainerState

    save_state = TrainerState.save_to_json

    def torn_state(self, json_path):
        save_state(self, json_path)
        if str(json_path).endswith(where):
            text = Path(json_path).read_text()
            Path(json_path).write_text(text[: len(text) // 2])
            die()

    TrainerState.save_to_json = torn_state
elif kill == "children":  # every sampling shard is started: record their pids, then die
    pids = []
    start = launch.start_child

    def start_child(*args, **kwargs):
        proc = start(*args, **kwargs)
        pids.append(proc.pid)
        return proc

    def wait_child(*args, **kwargs):
        Path(job["pids"]).write_text(json.dumps(pids))
        die()

    launch.start_child, launch.wait_child = start_child, wait_child

cfg = make_cfg(job["model"], Path(job["data"]), **job["overrides"])
run_training(cfg, job["root"], resume=job["resume"], engine_factory=scripted_factory() if job["scripted"] else None,
             echo=print)
'''


def script_env() -> dict[str, str]:
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", TOKENIZERS_PARALLELISM="false")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(SRC), str(TESTS), env.get("PYTHONPATH")) if p)
    return env


def start_killer(tmp_path: Path, model: Path, data: Path, root: Path, kill: dict, overrides: dict,
                 resume: bool = False, scripted: bool = True) -> subprocess.Popen:
    script = tmp_path / "killer.py"
    script.write_text(KILLER)
    job = {"model": str(model), "data": str(data), "root": str(root), "overrides": overrides, "resume": resume,
           "scripted": scripted, **kill}
    with open(tmp_path / f"killer-{kill['kill']}.log", "w") as log:
        return subprocess.Popen([sys.executable, str(script), json.dumps(job)], stdout=log,
                                stderr=subprocess.STDOUT, env=script_env(), cwd=tmp_path)


def run_killed(tmp_path, model, data, root, kill, overrides, **kw) -> None:
    proc = start_killer(tmp_path, model, data, root, kill, overrides, **kw)
    rc = proc.wait(timeout=WAIT_S * 2)
    log = (tmp_path / f"killer-{kill['kill']}.log").read_text()
    assert rc == -signal.SIGKILL, f"the run was to be killed, it exited {rc}:\n{log[-3000:]}"


def outputs(root: Path) -> dict:
    """What a finished run produced, with its own directory's name taken out of the paths it records."""
    from safetensors.torch import load_file

    def read(path: Path) -> str:
        return path.read_text().replace(str(root), "ROOT")

    out: dict = {}
    for it in (0, 1):
        d = root / f"iter_{it}"
        for name in ("samples.jsonl", "selection.json", "corpus.jsonl", "eval.json", "metrics.json"):
            out[f"iter_{it}/{name}"] = read(d / name)
        train = json.loads(read(d / "train.json"))
        out[f"iter_{it}/train.json"] = {k: train[k] for k in ("losses", "train_loss", "steps", "examples",
                                                              "model_dir")}
        weights = load_file(str(d / "model/model.safetensors"))
        out[f"iter_{it}/model"] = {k: v.tolist() for k, v in sorted(weights.items())}
    summary = json.loads(read(root / "summary.json"))
    out["summary"] = summary
    return out


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data(tmp_path_factory.mktemp("data") / "train.jsonl")


def overrides_for(data: Path) -> dict:
    return {**OVERRIDES, "data.eval": f"jsonl:{data}"}


def cfg_for(tiny_model_dir, data):
    return make_cfg(tiny_model_dir, data, **overrides_for(data))


@pytest.fixture(scope="module")
def reference(tiny_model_dir, data, tmp_path_factory) -> dict:
    """The uninterrupted run: two iterations, two SFT steps each (checkpoints at steps 1 and 2), eval."""
    root = tmp_path_factory.mktemp("reference") / "run"
    summary = run_training(cfg_for(tiny_model_dir, data), root, engine_factory=scripted_factory(), echo=lambda s: None)
    assert summary["stop_reason"] == "max_iterations" and len(summary["iterations"]) == 2
    assert summary["final_selection"] == ["w1", "w2", "p1"]
    for it in (0, 1):
        assert json.loads((root / f"iter_{it}/train.json").read_text())["steps"] == 2
    return outputs(root)


# (test id, how the run is killed, the file the kill leaves behind, the marker it leaves missing)
PHASE_KILLS = [
    ("sample", {"kill": "finish_phase", "phase": "sample", "where": "iter_1"}, "iter_1/samples.jsonl",
     "iter_1/sample.done"),
    ("select", {"kill": "finish_phase", "phase": "select", "where": "iter_1"}, "iter_1/selection.json",
     "iter_1/select.done"),
    ("corpus", {"kill": "finish_phase", "phase": "corpus", "where": "iter_1"}, "iter_1/corpus.jsonl",
     "iter_1/corpus.done"),
    ("train", {"kill": "finish_phase", "phase": "train", "where": "iter_1"}, "iter_1/train.json",
     "iter_1/train.done"),
    ("eval", {"kill": "finish_phase", "phase": "eval", "where": "iter_1"}, "iter_1/eval.json",
     "iter_1/eval.done"),
]


@pytest.mark.slow
@pytest.mark.parametrize("kill,left,missing", [p[1:] for p in PHASE_KILLS], ids=[p[0] for p in PHASE_KILLS])
def test_kill_at_a_phase_then_resume_ends_as_the_uninterrupted_run(tiny_model_dir, data, reference, tmp_path,
                                                                   kill, left, missing):
    root = tmp_path / "run"
    run_killed(tmp_path, tiny_model_dir, data, root, kill, overrides_for(data))
    assert (root / left).exists() and not (root / missing).exists()  # killed where it was meant to be
    assert (root / "iter_0/eval.done").exists()  # iteration 0 had finished
    run_training(cfg_for(tiny_model_dir, data), root, resume=True, engine_factory=scripted_factory(),
                 echo=lambda s: None)
    assert outputs(root) == reference


# (test id, the file torn, the checkpoint the resume must start from)
CHECKPOINT_KILLS = [
    ("optimizer_of_the_second_checkpoint",
     {"kill": "torch_save", "where": "iter_1/checkpoints/checkpoint-2/optimizer.pt"}, "checkpoint-1"),
    ("trainer_state_of_the_second_checkpoint",
     {"kill": "trainer_state", "where": "iter_1/checkpoints/checkpoint-2/trainer_state.json"}, "checkpoint-1"),
    ("optimizer_of_the_first_checkpoint",
     {"kill": "torch_save", "where": "iter_0/checkpoints/checkpoint-1/optimizer.pt"}, None),
]


@pytest.mark.slow
@pytest.mark.parametrize("kill,resumed_from", [p[1:] for p in CHECKPOINT_KILLS],
                         ids=[p[0] for p in CHECKPOINT_KILLS])
def test_kill_during_a_checkpoint_write_resumes_from_the_last_complete_one(tiny_model_dir, data, reference,
                                                                          tmp_path, caplog, kill, resumed_from):
    root = tmp_path / "run"
    run_killed(tmp_path, tiny_model_dir, data, root, kill, overrides_for(data))
    torn = root / Path(kill["where"]).parent
    it_dir = torn.parent.parent
    assert torn.is_dir() and sft.incomplete_reason(torn) is not None
    if resumed_from:
        assert sft.incomplete_reason(torn.parent / resumed_from) is None  # the step before was sealed
    assert sft.last_checkpoint(it_dir) == (str(torn.parent / resumed_from) if resumed_from else None)
    caplog.set_level("WARNING", logger=sft.__name__)
    run_training(cfg_for(tiny_model_dir, data), root, resume=True, engine_factory=scripted_factory(),
                 echo=lambda s: None)
    assert f"skipping incomplete checkpoint {torn}" in caplog.text
    train = json.loads((it_dir / "train.json").read_text())
    assert train["resumed_from"] == (str(torn.parent / resumed_from) if resumed_from else None)
    assert sft.incomplete_reason(torn) is None  # written again, whole this time
    assert outputs(root) == reference


# --- children die with the process that started them ------------------------------------------------

needs_proc = pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table in /proc")


def alive(pid: int) -> bool:
    """Running (a zombie that its new parent has not reaped yet has ended too)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def descendants(root_pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry.name))
    out, todo = [], [root_pid]
    while todo:
        for child in children.get(todo.pop(), []):
            out.append(child)
            todo.append(child)
    return out


def wait_until(condition, timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def still_running(pids: list[int]) -> list[int]:
    """The pids still running after a generous wait for all of them to end."""
    wait_until(lambda: not any(alive(p) for p in pids))
    return [p for p in pids if alive(p)]


def kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass


@needs_proc
def test_killed_run_takes_its_sampling_shards_with_it(tiny_model_dir, data, tmp_path):
    root, pids_file = tmp_path / "run", tmp_path / "pids.json"
    overrides = {**OVERRIDES, "loop.max_iterations": 1, "sampling.launcher": "subprocess",
                 "sampling.num_processes": 2}
    run_killed(tmp_path, tiny_model_dir, data, root, {"kill": "children", "pids": str(pids_file)}, overrides,
               scripted=False)
    pids = json.loads(pids_file.read_text())
    assert len(pids) == 2
    try:
        assert still_running(pids) == []
    finally:
        kill_all(pids)
    # killed, not finished: no shard wrote its records (each needs seconds to import torch and sample)
    shards = root / "iter_0" / launch.SAMPLE_SHARDS
    assert sorted(p.name for p in shards.iterdir()) == ["shard_0.log", "shard_1.log"]
    with run_dir_lock(root):  # and the kill left no stale lock
        pass


@needs_proc
@pytest.mark.slow
def test_killed_run_takes_its_training_ranks_with_it(tiny_model_dir, data, tmp_path, capsys):
    """accelerate launch with two ranks, which torchrun starts in sessions of their own; a second run on
    the directory is refused while they train."""
    from toolace_r import cli

    root = tmp_path / "run"
    overrides = {**OVERRIDES, "loop.max_iterations": 1, "sft.max_steps": 100_000, "sft.save_steps": 1,
                 "sft.launcher": "accelerate", "sft.num_processes": 2}
    proc = start_killer(tmp_path, tiny_model_dir, data, root, {"kill": "none"}, overrides)
    kids: list[int] = []
    try:
        sealed = root / "iter_0/checkpoints/checkpoint-1" / sft.SEAL  # both ranks are past their first step
        assert wait_until(lambda: sealed.exists() or proc.poll() is not None) and proc.poll() is None, \
            (tmp_path / "killer-none.log").read_text()[-3000:]
        assert cli.main(["train", "--output-dir", str(root), "--resume", f"model={tmp_path / 'no-such-model'}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and f"run directory {root} is in use" in err and f"pid {proc.pid}" in err
        kids = descendants(proc.pid)
        workers = [p for p in kids if b"toolace_r.training.worker" in Path(f"/proc/{p}/cmdline").read_bytes()]
        assert len(workers) >= 3  # the launcher and its two ranks
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=WAIT_S)
        assert still_running(kids) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_all(kids)


GROUP_CHILD = r'''
import signal, sys
from pathlib import Path
from toolace_r.training import launch

# Ctrl-C as at a terminal: a shell's background job (how a CI step may start the suite) inherits SIGINT
# ignored, and Python then leaves it ignored.
signal.signal(signal.SIGINT, signal.default_int_handler)

out = Path(sys.argv[1])
# sh puts a sleeper in its process group and waits: the sleeper has no parent-death signal of its own
# (a fork clears it), so only the kill of the group can end it.
launch.run_child(["sh", "-c", f"sleep 600 & echo $! > {out}/sleeper.pid; wait"], out / "child.log", "sleeper")
'''


@needs_proc
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["sigterm", "ctrl_c"])
def test_a_stopped_run_kills_the_whole_group_of_its_child(tmp_path, sig):
    script = tmp_path / "group.py"
    script.write_text(GROUP_CHILD)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)], stderr=subprocess.DEVNULL,
                            env={**script_env(), "CUDA_VISIBLE_DEVICES": ""})  # "": no torch import
    pid_file = tmp_path / "sleeper.pid"
    sleeper = None
    try:
        assert wait_until(lambda: pid_file.exists() and pid_file.read_text().strip() or proc.poll() is not None)
        sleeper = int(pid_file.read_text())
        assert alive(sleeper)
        proc.send_signal(sig)
        rc = proc.wait(timeout=WAIT_S)
        if sig == signal.SIGTERM:
            assert rc == -signal.SIGTERM  # it still ends the way SIGTERM ends a process
        assert still_running([sleeper]) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        if sleeper:
            kill_all([sleeper])


# --- one process per run directory -----------------------------------------------------------------

HOLD_LOCK = r'''
import sys, time
from toolace_r.stages import run_dir_lock

lock = run_dir_lock(sys.argv[1])  # held while this reference lives
lock.__enter__()
print("locked", flush=True)
time.sleep(600)
'''


def test_a_second_run_on_a_busy_directory_fails_at_once_naming_the_holder(tiny_model_dir, data, tmp_path, capsys):
    from toolace_r import cli
    from toolace_r.stages import LOCK_FILE

    root = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(root)], stdout=subprocess.PIPE, text=True,
                              env=script_env())
    try:
        assert holder.stdout.readline().strip() == "locked"
        # a model that does not exist: were the directory free, these runs would fail another way
        missing = f"model={tmp_path / 'no-such-model'}"
        for args in (["train", "--output-dir", str(root), "--resume", missing],
                     ["demo", "--output-dir", str(root), missing]):
            assert cli.main(args) == 2
            err = capsys.readouterr().err
            assert err.count("\n") == 1 and f"run directory {root} is in use" in err and f"pid {holder.pid}" in err
        assert not (root / "config.yaml").exists()  # refused before anything was written
    finally:
        holder.kill()
        holder.wait()
    # the holder was killed with SIGKILL: its lock went with it
    with run_dir_lock(root):
        assert (root / LOCK_FILE).read_text().strip() == str(os.getpid())
        # held by this process, the directory is busy for a run started here too
        with pytest.raises(RunDirLocked, match=f"pid {os.getpid()}"):
            run_training(cfg_for(tiny_model_dir, data), root, engine_factory=scripted_factory())


# --- which checkpoint is complete ------------------------------------------------------------------

def fake_checkpoint(root: Path, step: int, seal: bool = True) -> Path:
    ckpt = root / "checkpoints" / f"checkpoint-{step}"
    ckpt.mkdir(parents=True)
    (ckpt / "adapter_model.safetensors").write_bytes(b"w" * step)
    (ckpt / "optimizer.pt").write_bytes(b"o" * 10)
    (ckpt / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if seal:
        sft.seal_checkpoint(ckpt)
    return ckpt


def test_last_checkpoint_takes_the_newest_complete_one_and_removes_the_others(tmp_path, caplog):
    ok1, ok2 = fake_checkpoint(tmp_path, 1), fake_checkpoint(tmp_path, 2)
    unsealed = fake_checkpoint(tmp_path, 3, seal=False)
    truncated = fake_checkpoint(tmp_path, 4)
    os.truncate(truncated / "optimizer.pt", 5)
    half_removed = fake_checkpoint(tmp_path, 5)
    (half_removed / "adapter_model.safetensors").unlink()
    (tmp_path / "checkpoints" / "checkpoint-x").mkdir()  # not a checkpoint name: left alone
    caplog.set_level("WARNING", logger=sft.__name__)

    assert sft.last_checkpoint(tmp_path) == str(ok2)  # only looks
    assert unsealed.exists() and truncated.exists() and half_removed.exists()
    assert sft.last_checkpoint(tmp_path, clean=True) == str(ok2)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-1", "checkpoint-2",
                                                                           "checkpoint-x"]
    for reason in ("not sealed", "optimizer.pt holds 5 bytes, sealed with 10", "adapter_model.safetensors is missing"):
        assert reason in caplog.text
    assert ok1.exists()
    (ok2 / sft.SEAL).write_text("{")  # a seal torn itself
    assert sft.last_checkpoint(tmp_path) == str(ok1)
    assert sft.last_checkpoint(tmp_path / "elsewhere") is None


def test_prune_keeps_the_newest_and_never_removes_a_newer_checkpoint(tmp_path):
    for step in (1, 2, 3, 9):
        fake_checkpoint(tmp_path, step)
    sft.prune_checkpoints(tmp_path / "checkpoints" / "checkpoint-3", 2)
    # checkpoint-9 is newer than the one just sealed (left by another run): never this prune's to remove
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["checkpoint-2", "checkpoint-3",
                                                                           "checkpoint-9"]
    sft.prune_checkpoints(tmp_path / "checkpoints" / "checkpoint-3", None)
    assert len(list((tmp_path / "checkpoints").iterdir())) == 3
