"""Where the heavy phases run: in the orchestrator, or in child processes that give their memory back.

The training loop stays one plain process. Its sample and train phases go through `sample()` and
`train()` here, which either call the phase in the orchestrator's own process (the default) or start
`python -m toolace_r.training.worker ...` children:

- train, launcher "subprocess": one child; "accelerate": `accelerate launch [--config_file F]
  --num_processes N -m toolace_r.training.worker train ...` (DDP, FSDP or DeepSpeed ZeRO-3 through the
  accelerate YAML). The child reads the corpus and the stage config from the iteration directory and
  writes `train.result.json`, which the orchestrator returns as if it had trained itself.
- sample, launcher "subprocess": `sampling.num_processes` children at once, child i sampling the i-th
  contiguous shard of the items. Request seeds are global item indices (the shard's seed is shifted by
  its first index), so the merged records are the same for any number of shards.

Every child writes its output to a log file in the iteration directory; a child that fails is reported
as one `LaunchError` naming the command, the exit status and that log, with the log's last lines.

No child outlives the orchestrator, so a resumed run never starts while an old child still writes into
the run directory. Each child runs in a session of its own (its process group is its pid) with a
parent-death signal (Linux: prctl PR_SET_PDEATHSIG, SIGKILL), and the orchestrator kills the group when
the phase ends by an exception and when it gets SIGTERM. The processes a launcher starts in turn (torchrun
puts every rank in a session of its own, out of reach of the group kill) set the signal themselves first
thing in worker.main (`die_with_parent`), and exit if the orchestrator died before they could.
"""
from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any, Callable, Sequence

from toolace_r.config import to_dict
from toolace_r.files import write_json

from .config import SFTStageConfig

TRAIN_LAUNCHERS = ("inprocess", "subprocess", "accelerate")
SAMPLE_LAUNCHERS = ("inprocess", "subprocess")
WORKER_MODULE = "toolace_r.training.worker"
LOG_TAIL_LINES = 20
ORCHESTRATOR_ENV = "TOOLACE_R_ORCHESTRATOR_PID"  # set for every child: the pid of the run's main process
PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>


class LaunchError(RuntimeError):
    """A child process failed; the message names its log file."""


def _check_launcher(value: str, known: Sequence[str], field: str) -> None:
    if value not in known:
        raise ValueError(f"unknown {field} {value!r}; known: {', '.join(known)}")


# --- commands --------------------------------------------------------------------------------------

def worker_command(args: Sequence[str], launcher: str = "subprocess", num_processes: int = 1,
                   accelerate_config: str | None = None, mixed_precision: str | None = None) -> list[str]:
    """The argv that runs `toolace_r.training.worker ARGS` with `launcher`."""
    if launcher == "subprocess":
        return [sys.executable, "-m", WORKER_MODULE, *args]
    if launcher != "accelerate":
        raise ValueError(f"no child command for launcher {launcher!r}")
    # `python -m accelerate.commands.launch` is the `accelerate` script of this interpreter's environment.
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if accelerate_config:
        path = Path(accelerate_config)
        if not path.is_file():
            raise FileNotFoundError(f"sft.accelerate_config {accelerate_config}: no such file")
        cmd += ["--config_file", str(path)]
    elif num_processes > 1:
        cmd += ["--multi_gpu"]  # plain DDP; torchrun starts the ranks (gloo when there is no GPU)
    else:
        cmd += ["--num_machines", "1"]
    cmd += ["--num_processes", str(num_processes)]
    if mixed_precision:
        cmd += ["--mixed_precision", mixed_precision]
    return cmd + ["-m", WORKER_MODULE, *args]


def child_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """This process's environment, plus `extra`, with src/ importable even without an install."""
    env = dict(os.environ)
    src = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not _has_cuda_devices():
        # No GPU: accelerate must not try one, and each rank gets few threads (ranks share the cores).
        env.setdefault("ACCELERATE_USE_CPU", "true")
        env.setdefault("OMP_NUM_THREADS", "1")
    env[ORCHESTRATOR_ENV] = str(os.getpid())
    env.update(extra or {})
    return env


def _has_cuda_devices() -> bool:
    # Asked without initialising CUDA in the orchestrator, which must leave the GPUs to its children.
    if os.environ.get("CUDA_VISIBLE_DEVICES", None) == "":
        return False
    import torch

    return torch.cuda.device_count() > 0


# --- children that die with the orchestrator --------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _prctl() -> Callable[..., int] | None:
    """libc's prctl, or None where there is none (not Linux)."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        fn = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]
    fn.restype = ctypes.c_int
    return fn


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Have the kernel send `sig` to this process when its parent ends (Linux only; False elsewhere).

    The kernel ties the signal to the parent *thread* that started this process, not to the parent
    process: it would fire early if that thread ended first. The orchestrator starts a child and waits
    for it in the same call of the same thread (`train`, `sample`), and torchrun and accelerate start
    their ranks from their main threads, so the starting thread always outlives the child.
    """
    prctl = _prctl()
    return prctl is not None and prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0


def _death_signal_setup(parent: int) -> Callable[[], None] | None:
    """The preexec_fn of a child: the parent-death signal, then an exit if `parent` already died."""
    prctl = _prctl()
    if prctl is None:
        return None
    sig = int(signal.SIGKILL)

    # It runs in the forked child before exec: two system calls (prctl looked up in the parent, above)
    # and nothing that takes a lock another thread of the parent may have held at the fork.
    def setup() -> None:
        prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)
        if os.getppid() != parent:  # the parent died between the fork and the prctl
            os._exit(1)

    return setup


def descends_from(ancestor: int) -> bool:
    """Whether `ancestor` is this process's parent or one of its parent's ancestors (True without /proc)."""
    if not os.path.exists("/proc/self/stat"):
        return True
    pid = os.getppid()
    for _ in range(1024):
        if pid == ancestor:
            return True
        if pid <= 1:
            return False
        try:
            stat = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return False  # an ancestor just ended: this process is being orphaned
        pid = int(stat.rsplit(")", 1)[1].split()[1])  # after the (command name): state, parent pid
    return False


def die_with_parent() -> None:
    """First thing in a worker: the parent-death signal, and an exit if the orchestrator is already gone.

    A rank that torchrun started sets its own signal here; if its launcher (or the orchestrator) died
    before that, it was orphaned and the orchestrator named in ORCHESTRATOR_ENV is no longer its ancestor.
    """
    set_parent_death_signal()
    orchestrator = os.environ.get(ORCHESTRATOR_ENV, "")
    if orchestrator.isdigit() and not descends_from(int(orchestrator)):
        sys.stderr.write(f"toolace_r.training.worker: the run's main process (pid {orchestrator}) is gone; "
                         "exiting\n")
        os._exit(1)


_LIVE: set[subprocess.Popen] = set()  # children started and not yet stopped
_previous_sigterm: Any = None
_sigterm_installed = False


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass  # the group is empty (or its id was reused by someone else's process)


def kill_children() -> None:
    """SIGKILL the process group of every child not yet stopped. It waits for nothing, so a signal
    handler may call it at any point (even inside `Popen.wait`, whose lock it would need)."""
    for proc in list(_LIVE):
        _kill_group(proc.pid)


def _on_sigterm(signum: int, frame: Any) -> None:
    global _sigterm_installed
    kill_children()
    previous = _previous_sigterm if _previous_sigterm is not None else signal.SIG_DFL
    signal.signal(signal.SIGTERM, previous)
    _sigterm_installed = False
    if callable(previous):
        previous(signum, frame)
    elif previous != signal.SIG_IGN:
        os.kill(os.getpid(), signal.SIGTERM)  # end the way SIGTERM would have ended this process


def _track(proc: subprocess.Popen) -> None:
    global _previous_sigterm, _sigterm_installed
    _LIVE.add(proc)
    # Only the main thread may set a signal handler; elsewhere the parent-death signal still holds.
    if not _sigterm_installed and threading.current_thread() is threading.main_thread():
        _previous_sigterm = signal.signal(signal.SIGTERM, _on_sigterm)
        _sigterm_installed = True


def _untrack(proc: subprocess.Popen) -> None:
    global _sigterm_installed
    _LIVE.discard(proc)
    if (not _LIVE and _sigterm_installed and threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) is _on_sigterm):
        signal.signal(signal.SIGTERM, _previous_sigterm if _previous_sigterm is not None else signal.SIG_DFL)
        _sigterm_installed = False


def start_child(cmd: Sequence[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen:
    """Start `cmd` in a session of its own, writing to `log_path`; pair it with `stop_child` (finally)."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "w", encoding="utf-8") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        proc = subprocess.Popen(list(cmd), stdout=log, stderr=subprocess.STDOUT, env=env,
                                start_new_session=True, preexec_fn=_death_signal_setup(os.getpid()))
    _track(proc)
    return proc


def stop_child(proc: subprocess.Popen) -> None:
    """Kill what is left of `proc`'s process group (all of it, if the phase ended early) and reap it."""
    _kill_group(proc.pid)
    proc.wait()
    _untrack(proc)


def wait_child(proc: subprocess.Popen, cmd: Sequence[str], log_path: Path, what: str) -> None:
    rc = proc.wait()
    if rc != 0:
        raise LaunchError(f"{what} failed (exit status {rc}); full log: {log_path}\n"
                          f"command: {' '.join(cmd)}\nlast lines of the log:\n{tail(log_path)}")


def run_child(cmd: Sequence[str], log_path: Path, what: str, env: dict[str, str] | None = None) -> None:
    """Run one child to the end, its output going to `log_path`; LaunchError if it fails."""
    proc = start_child(cmd, log_path, env or child_env())
    try:
        wait_child(proc, cmd, log_path, what)
    finally:
        stop_child(proc)


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        return "(no log)"
    return "\n".join("  " + line for line in text[-lines:])


# --- train -----------------------------------------------------------------------------------------

TRAIN_JOB = "train.job.json"
TRAIN_RESULT = "train.result.json"
TRAIN_LOG = "train.log"


def train(model_dir: str, rows: Sequence[dict[str, Any]], corpus_path: str | Path, work_dir: str | Path,
          cfg: SFTStageConfig, resume: bool = False, progress: bool = False) -> dict[str, Any]:
    """`sft.train_sft` with the configured launcher; returns its result dict."""
    _check_launcher(cfg.launcher, TRAIN_LAUNCHERS, "sft.launcher")
    if cfg.launcher == "inprocess":
        from . import sft

        return sft.train_sft(model_dir, rows, work_dir, cfg, resume=resume, progress=progress)
    work = Path(work_dir)
    job = {"model_dir": str(model_dir), "corpus": str(Path(corpus_path).resolve()), "sft": to_dict(cfg),
           "resume": resume, "progress": progress}
    write_json(work / TRAIN_JOB, job)
    (work / TRAIN_RESULT).unlink(missing_ok=True)  # only this run's result may be read back
    n = cfg.num_processes if cfg.launcher == "accelerate" else 1
    cmd = worker_command(["train", "--dir", str(work.resolve())], cfg.launcher, n, cfg.accelerate_config,
                         cfg.mixed_precision)
    run_child(cmd, work / TRAIN_LOG, f"training (launcher {cfg.launcher}, {n} process{'es' if n > 1 else ''})")
    if not (work / TRAIN_RESULT).exists():
        raise LaunchError(f"training exited without writing {work / TRAIN_RESULT}; see {work / TRAIN_LOG}")
    return json.loads((work / TRAIN_RESULT).read_text(encoding="utf-8"))


# --- sample ----------------------------------------------------------------------------------------

SAMPLE_JOB = "sample.job.json"
SAMPLE_SHARDS = "sample.shards"


def shard_bounds(n_items: int, shard: int, n_shards: int) -> tuple[int, int]:
    """[start, end) of contiguous shard `shard` of `n_items`; sizes differ by at most one."""
    base, extra = divmod(n_items, n_shards)
    start = shard * base + min(shard, extra)
    return start, start + base + (1 if shard < extra else 0)


def sample(work: Callable[[Any, list], list[dict[str, Any]]], cfg: Any, examples: Sequence[Any], items_hash: str,
           model_dir: str, it: int, iter_dir: str | Path, progress: bool = False,
           custom_engine: bool = False) -> list[dict[str, Any]]:
    """The sample phase's records with sampling.launcher: `work(cfg, examples)` in this process, or the
    same work (training/worker.py) on contiguous shards of `examples` in child processes.

    cfg: the TrainConfig; items_hash: the hash the children check their reloaded items against;
    custom_engine: `work` samples with an engine factory passed in code, which no child can rebuild.
    """
    sampling = cfg.sampling
    _check_launcher(sampling.launcher, SAMPLE_LAUNCHERS, "sampling.launcher")
    if sampling.launcher == "inprocess":
        return work(cfg, list(examples))
    if sampling.num_processes < 1:
        raise ValueError(f"sampling.num_processes must be >= 1, got {sampling.num_processes}")
    if custom_engine:
        raise ValueError("sampling.launcher=subprocess builds the engine from sampling.engine in each child; "
                         "an engine_factory passed in code cannot reach them (use launcher inprocess)")
    d = Path(iter_dir).resolve()
    shards = d / SAMPLE_SHARDS
    if shards.exists():
        shutil.rmtree(shards)  # a killed run's partial shards are never merged
    shards.mkdir(parents=True)
    n_shards = min(sampling.num_processes, len(examples))
    job = {"config": to_dict(cfg), "model_dir": str(model_dir), "iteration": it, "items_hash": items_hash,
           "ids": [ex.id for ex in examples], "num_shards": n_shards, "progress": progress}
    write_json(d / SAMPLE_JOB, job, indent=None)
    running = []
    errors = []
    try:
        for i in range(n_shards):
            extra = {"CUDA_VISIBLE_DEVICES": shard_gpus(i, sampling.gpus_per_process)} \
                if sampling.gpus_per_process > 0 else {}
            cmd = worker_command(["sample", "--dir", str(d), "--shard", str(i)])
            log = shards / f"shard_{i}.log"
            running.append((start_child(cmd, log, child_env(extra)), cmd, log, i))
        for proc, cmd, log, i in running:  # wait for all, so no child outlives a failure of another
            try:
                wait_child(proc, cmd, log, f"sampling shard {i}/{n_shards}")
            except LaunchError as exc:
                errors.append(str(exc))
    finally:  # an exception here (Ctrl-C, a failed start) ends the shards already running
        for proc, *_ in running:
            stop_child(proc)
    if errors:
        raise LaunchError("\n".join(errors))
    return merge_shards(shards, n_shards, job["ids"])


def shard_gpus(shard: int, per_shard: int) -> str:
    """CUDA_VISIBLE_DEVICES of shard `shard`: its slice of the GPUs this process may use."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    pool = [d.strip() for d in visible.split(",") if d.strip()] if visible else None
    wanted = range(shard * per_shard, (shard + 1) * per_shard)
    if pool is not None and wanted.stop > len(pool):
        raise ValueError(f"sampling shard {shard} needs GPUs {wanted.start}..{wanted.stop - 1} but "
                         f"CUDA_VISIBLE_DEVICES={visible} holds {len(pool)}")
    return ",".join(pool[j] if pool is not None else str(j) for j in wanted)


def shard_path(shards_dir: Path, shard: int) -> Path:
    return shards_dir / f"shard_{shard}.jsonl"


def merge_shards(shards_dir: Path, n_shards: int, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The shards' records in the items' original order; an error if one is missing or extra."""
    from .difficulty import read_samples

    by_id: dict[str, dict[str, Any]] = {}
    for i in range(n_shards):
        for record in read_samples(shard_path(shards_dir, i)):
            by_id[record["id"]] = record
    missing = [i for i in ids if i not in by_id]
    if missing or len(by_id) != len(ids):
        raise LaunchError(f"sampling shards in {shards_dir} hold {len(by_id)} records for {len(ids)} items "
                          f"(missing e.g. {missing[:3]})")
    return [by_id[i] for i in ids]


def shard_config(cfg: Any, start: int) -> Any:
    """`cfg` (a TrainConfig) for the shard that starts at item `start`.

    Request i of a sampling call is seeded sampling.seed + iteration offset + i, so shifting the seed by
    the shard's first index gives every item the seed it has in a single-process run.
    """
    sampling = dataclasses.replace(cfg.sampling, seed=cfg.sampling.seed + start)
    return dataclasses.replace(cfg, sampling=sampling)
