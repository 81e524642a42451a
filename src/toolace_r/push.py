"""`toolace-r push`: a run's model, adapter or corpus to the Hugging Face Hub, through `huggingface_hub`.

What goes where:
- model: the run's final model folder (weights, tokenizer, the trained chat template, the model card, the
  adapter in adapter/) into a model repo;
- adapter: that folder's adapter/ alone, with the model card, into a model repo; its adapter_config.json
  names the base model as the run did (a Hub id where the run started from one, not a local cache path);
- corpus: every iteration's training corpus as TRL conversational rows (`data convert --corpus`), one
  file per iteration, with a dataset card, into a dataset repo.

RUN_DIR is a training run (summary.json), a pipeline run (its toolace_r/ run inside), or a model folder.
Nothing is uploaded before every file is found and staged, so a wrong path fails before any network call.
"""
from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

WHAT = ("model", "adapter", "corpus")


def training_run(run_dir: str | Path) -> Path | None:
    """The training run inside `run_dir` (itself, or a pipeline's toolace_r/), or None."""
    root = Path(run_dir)
    for candidate in (root, root / "toolace_r"):
        if (candidate / "summary.json").is_file():
            return candidate
    return None


def final_model(run_dir: str | Path) -> Path:
    """The model folder to push: `run_dir` itself when it is one, else its run's reported model: the
    best iteration on the validation slice (summary.json `best_model`, docs/method.md#validation), or
    the final model of a run without one."""
    root = Path(run_dir)
    if (root / "config.json").is_file():
        return root
    run = training_run(root)
    if run is None:
        raise FileNotFoundError(f"{root}: neither a model folder (config.json) nor a run directory "
                                "(summary.json, or toolace_r/summary.json for a demo run)")
    summary = json.loads((run / "summary.json").read_text(encoding="utf-8"))
    final = summary.get("best_model") or summary.get("final_model")
    folder = Path(final) if final else None
    if folder is None or not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{run}/summary.json: its reported model {final!r} is not a model folder "
                                "(the run trained nothing, or the folder was moved)")
    return folder


def _base_model(folder: Path) -> str | None:
    """The base model the run named (its config.yaml's `model`), for the adapter's config."""
    for parent in folder.parents:
        cfg = parent / "config.yaml"
        if cfg.is_file():
            import yaml

            data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            model = data.get("model") or (data.get("training") or {}).get("model")
            if isinstance(model, str):
                from toolace_r.servable import hub_base_model

                return hub_base_model(model)
    return None


def stage(run_dir: str | Path, what: str, into: Path) -> tuple[Path, str]:
    """Copy what `what` uploads into `into`; (folder to upload, repo type)."""
    if what not in WHAT:
        raise ValueError(f"--what {what!r}: known: {', '.join(WHAT)}")
    if what == "corpus":
        return _stage_corpus(run_dir, into), "dataset"
    folder = final_model(run_dir)
    if what == "model":
        return folder, "model"
    adapter = folder / "adapter"
    if not (adapter / "adapter_config.json").is_file():
        raise FileNotFoundError(f"{folder}: no adapter/ (a full fine-tune, or sft.keep_adapter was off)")
    out = into / "adapter"
    shutil.copytree(adapter, out)
    if (folder / "README.md").is_file():
        shutil.copy2(folder / "README.md", out / "README.md")
    base = _base_model(folder)
    if base is not None:  # PEFT wrote the local path the run loaded; the Hub wants what the user named
        config_path = out / "adapter_config.json"
        config = json.loads(config_path.read_text(encoding="utf-8"))
        config["base_model_name_or_path"] = base
        config_path.write_text(json.dumps(config, indent=2) + "\n", encoding="utf-8")
    return out, "model"


def _stage_corpus(run_dir: str | Path, into: Path) -> Path:
    from toolace_r.training.corpus import export_corpus

    run = training_run(run_dir)
    if run is None:
        raise FileNotFoundError(f"{run_dir}: not a run directory (summary.json, or toolace_r/summary.json)")
    corpora = sorted(run.glob("iter_*/corpus.jsonl"), key=lambda p: int(p.parent.name.split("_")[1]))
    if not corpora:
        raise FileNotFoundError(f"{run}: no iter_*/corpus.jsonl to push")
    out = into / "corpus"
    out.mkdir()
    counts = []
    for path in corpora:
        n = export_corpus(path, out / f"{path.parent.name}.jsonl")
        counts.append(f"- `{path.parent.name}.jsonl`: {n} rows")
    card = ["---", "tags: [\"toolace-r\", \"function-calling\", \"tool-use\"]", "---",
            f"# The training corpora of a toolace-r run ({run.name})", "",
            "One file per iteration: the SFT rows (prompt -> gold answer) and the self-refinement rows "
            "(fix: a wrong answer of the model -> the gold; keep: a right answer -> itself, byte for byte), "
            "each a TRL conversational prompt-completion row (`prompt`, `completion` messages; `tools` where "
            "the chat template shows them).", "", *counts]
    (out / "README.md").write_text("\n".join(card) + "\n", encoding="utf-8")
    return out


def push(run_dir: str | Path, repo_id: str, what: str = "model", private: bool = False, api: Any = None,
         token: str | None = None) -> str:
    """Upload `what` of `run_dir` to `repo_id` (created if missing); returns the commit URL."""
    with tempfile.TemporaryDirectory(prefix="toolace-r-push-") as tmp:
        folder, repo_type = stage(run_dir, what, Path(tmp))
        if api is None:
            from huggingface_hub import HfApi

            api = HfApi(token=token)
        try:
            api.create_repo(repo_id, repo_type=repo_type, private=private, exist_ok=True)
            commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type=repo_type,
                                       commit_message=f"toolace-r push: {what}",
                                       ignore_patterns=[".*", "**/.*"])
        except (OSError, ValueError):  # the Hub's HTTP errors are OSErrors already, with its message
            raise
        except Exception as exc:  # no network, a proxy refusing...: one clear line, not a traceback
            raise OSError(f"cannot reach the Hub to push {repo_id}: {type(exc).__name__}: {exc}") from None
    return str(getattr(commit, "commit_url", commit))
