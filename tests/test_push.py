"""Tests for push.py against a mocked Hub API: which files go, into which repo type, and the errors."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from toolace_r.cli import main


class FakeHub:
    """Stands in for `huggingface_hub.HfApi`: records each call and the files an upload would send."""

    instances: list["FakeHub"] = []

    def __init__(self, token=None, fail=None):
        self.token, self.fail, self.calls = token, fail, []
        FakeHub.instances.append(self)

    def create_repo(self, repo_id, repo_type=None, private=False, exist_ok=False):
        if self.fail:
            raise self.fail
        self.calls.append(("create_repo", repo_id, repo_type, private, exist_ok))

    def upload_folder(self, folder_path, repo_id, repo_type=None, commit_message=None, ignore_patterns=None):
        root = Path(folder_path)
        files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
        contents = {name: (root / name).read_text(encoding="utf-8", errors="replace")
                    for name in files if name.endswith((".json", ".md", ".jsonl"))}
        self.calls.append(("upload_folder", repo_id, repo_type, files, contents))
        return type("Commit", (), {"commit_url": f"https://hub.test/{repo_id}/commit/1"})()


@pytest.fixture(scope="module")
def run_dir(tiny_model_dir, tmp_path_factory):
    from test_training_loop import make_cfg, scripted_factory, write_data
    from toolace_r.training import run_training

    tmp = tmp_path_factory.mktemp("push-run")
    cfg = make_cfg(tiny_model_dir, write_data(tmp / "train.jsonl"), **{"loop.max_iterations": 1})
    run_training(cfg, tmp / "run", engine_factory=scripted_factory(), echo=lambda s: None)
    return tmp / "run"


@pytest.fixture
def hub(monkeypatch):
    import huggingface_hub

    FakeHub.instances = []
    monkeypatch.setattr(huggingface_hub, "HfApi", FakeHub)
    return FakeHub


def test_push_model_sends_the_final_model_folder_to_a_model_repo(run_dir, hub, capsys, tiny_model_dir):
    assert main(["push", str(run_dir), "--repo-id", "me/tiny", "--private", "--token", "t0k"]) == 0
    [api] = hub.instances
    assert api.token == "t0k"
    assert api.calls[0] == ("create_repo", "me/tiny", "model", True, True)
    _, repo, kind, files, contents = api.calls[1]
    assert (repo, kind) == ("me/tiny", "model")
    assert {"config.json", "model.safetensors", "tokenizer.json", "chat_template.jinja", "README.md",
            "adapter/adapter_config.json", "adapter/adapter_model.safetensors"} <= set(files)
    assert not any(f.startswith("checkpoint") or f.endswith("training_args.bin") for f in files)
    assert "--tool-call-parser pythonic" in contents["README.md"]
    assert "https://hub.test/me/tiny/commit/1" in capsys.readouterr().out


def test_push_adapter_names_the_base_model_the_run_named(run_dir, hub, tiny_model_dir):
    assert main(["push", str(run_dir), "--repo-id", "me/tiny-lora", "--what", "adapter"]) == 0
    _, _, kind, files, contents = hub.instances[0].calls[1]
    assert kind == "model" and "adapter_config.json" in files and "README.md" in files
    assert not any(f.endswith(".safetensors") and "adapter" not in f for f in files)  # no merged weights
    assert json.loads(contents["adapter_config.json"])["base_model_name_or_path"] == str(tiny_model_dir)


def test_push_corpus_sends_trl_rows_per_iteration_to_a_dataset_repo(run_dir, hub):
    assert main(["push", str(run_dir), "--repo-id", "me/corpus", "--what", "corpus"]) == 0
    api = hub.instances[0]
    assert api.calls[0][2] == "dataset"
    _, _, kind, files, contents = api.calls[1]
    assert kind == "dataset" and files == ["README.md", "iter_0.jsonl"]
    rows = [json.loads(line) for line in contents["iter_0.jsonl"].splitlines()]
    assert rows and all(isinstance(r["prompt"], list) and r["completion"][0]["role"] == "assistant" for r in rows)
    assert f"{len(rows)} rows" in contents["README.md"]


def test_push_errors_are_one_line_before_any_upload(tmp_path, hub, capsys, run_dir, monkeypatch):
    import huggingface_hub

    assert main(["push", str(tmp_path), "--repo-id", "me/x"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "neither a model folder" in err
    assert hub.instances == []  # nothing was sent
    with pytest.raises(SystemExit) as refused:  # argparse: an unknown --what is a usage error
        main(["push", str(run_dir), "--repo-id", "me/x", "--what", "nothing"])
    assert refused.value.code == 2
    capsys.readouterr()
    # the Hub's HTTP errors are OSErrors (HfHubHTTPError); a transport failure is not, and is wrapped
    for failure, said in ((OSError("401 Client Error: Unauthorized for url"), "401 Client Error"),
                          (RuntimeError("connection refused"), "cannot reach the Hub to push me/x")):
        monkeypatch.setattr(huggingface_hub, "HfApi", lambda token=None, f=failure: FakeHub(token, fail=f))
        assert main(["push", str(run_dir), "--repo-id", "me/x"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and said in err


def test_push_sends_the_best_iteration_on_validation_not_the_last(tmp_path, tiny_model_dir):
    import shutil

    from toolace_r.push import final_model

    run = tmp_path / "run"
    for i in (0, 1):
        shutil.copytree(tiny_model_dir, run / f"iter_{i}" / "model")
    summary = {"final_model": str(run / "iter_1" / "model"), "best_iteration": 0, "best_by": "validation",
               "best_model": str(run / "iter_0" / "model")}
    (run / "summary.json").write_text(json.dumps(summary))
    assert final_model(run) == run / "iter_0" / "model"
    summary.pop("best_model")  # a run from before validation: its final model
    (run / "summary.json").write_text(json.dumps(summary))
    assert final_model(run) == run / "iter_1" / "model"
