"""The refinement corpus (fix/keep, ratios), gold targets, and the SFT loss mask."""
from __future__ import annotations

from toolace_r.calls import ToolCall
from toolace_r.data import Example, Gold
from toolace_r.prompts import PromptConfig
from toolace_r.tools import normalize_tools
from toolace_r.training.config import CorpusConfig, SFTStageConfig
from toolace_r.training.corpus import build_corpus, corpus_counts
from toolace_r.training.difficulty import gold_target

PCFG = PromptConfig(system_prompt="Call tools.")
TOOLS = normalize_tools([{"type": "function", "function": {
    "name": "get_weather", "description": "Weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])


def example(i="a", city="Oslo"):
    return Example(id=i, messages=[{"role": "user", "content": f"Weather in {city}?"}], tools=TOOLS,
                   gold=Gold(kind="calls", calls=[ToolCall("get_weather", {"city": city})]), category="simple")


def test_gold_target_forms():
    assert gold_target(example(), "none") == '[get_weather(city="Oslo")]'
    no_call = Example("n", [{"role": "user", "content": "hi"}], TOOLS, Gold(kind="no_call"), "irrelevance")
    assert gold_target(no_call, "No tool fits.") == "No tool fits."
    assert gold_target(Example("r", [], TOOLS, Gold(kind="any_call"), "live_relevance"), "x") is None


def test_keep_targets_are_byte_identical_and_fix_targets_gold(chatml_tokenizer):
    ex = example()
    # A right answer written differently from the gold (spacing, quotes): keep must not re-serialise it.
    right = "[get_weather( city='Oslo' )]  "
    wrong = '[get_weather(city="Bergen")]'
    records = {"a": {"samples": [{"text": right, "valid": True}, {"text": wrong, "valid": False},
                                 {"text": right, "valid": True}]}}
    rows = build_corpus({"a": ex}, records, ["a"], {"a": gold_target(ex, "")}, chatml_tokenizer,
                        CorpusConfig(refine_share=1.0), PCFG)
    assert corpus_counts(rows) == {"sft": 1, "fix": 1, "keep": 1}  # duplicate right answer used once
    keep = next(r for r in rows if r["kind"] == "keep")
    fix = next(r for r in rows if r["kind"] == "fix")
    assert keep["completion"] == right + "<|im_end|>"
    assert fix["completion"] == '[get_weather(city="Oslo")]<|im_end|>'
    # The refine prompt continues the conversation with the previous answer, then the instruction.
    assert "<|im_start|>assistant\n" + right + "<|im_end|>" in keep["prompt"]
    assert "<|im_start|>assistant\n" + wrong + "<|im_end|>" in fix["prompt"]
    assert keep["prompt"].endswith(PCFG.refine_instruction + "<|im_end|>\n<|im_start|>assistant\n")


def test_ratios_cap_refine_rows(chatml_tokenizer):
    exs = {f"e{i}": example(f"e{i}", f"City{i}") for i in range(4)}
    records = {k: {"samples": [{"text": f"wrong {j}", "valid": False} for j in range(3)]} for k in exs}
    targets = {k: gold_target(v, "") for k, v in exs.items()}
    ids = list(exs)
    many = build_corpus(exs, records, ids, targets, chatml_tokenizer,
                        CorpusConfig(max_fix_per_item=2, refine_share=1.0), PCFG)
    assert corpus_counts(many) == {"sft": 4, "fix": 8, "keep": 0}
    capped = build_corpus(exs, records, ids, targets, chatml_tokenizer,
                          CorpusConfig(max_fix_per_item=2, refine_share=0.2), PCFG)
    assert corpus_counts(capped) == {"sft": 4, "fix": 1, "keep": 0}  # int(0.2/0.8*4) = 1
    none = build_corpus(exs, records, ids, targets, chatml_tokenizer, CorpusConfig(refine_share=0.0), PCFG)
    assert corpus_counts(none)["fix"] == 0


def test_loss_mask_covers_only_answer_tokens(tiny_model_dir, chatml_tokenizer, tmp_path):
    from toolace_r.training.sft import build_trainer

    ex = example()
    records = {"a": {"samples": [{"text": '[get_weather(city="Rome")]', "valid": False}]}}
    rows = build_corpus({"a": ex}, records, ["a"], {"a": gold_target(ex, "")}, chatml_tokenizer,
                        CorpusConfig(refine_share=1.0), PCFG)
    trainer = build_trainer(str(tiny_model_dir), rows, tmp_path, SFTStageConfig(max_steps=1, batch_size=2))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for row, ids, labels, mask in zip(rows, batch["input_ids"], batch["labels"], batch["attention_mask"]):
        n_prompt = len(chatml_tokenizer(row["prompt"], add_special_tokens=False)["input_ids"])
        n_all = int(mask.sum())
        assert (labels[:n_prompt] == -100).all()
        assert (labels[n_prompt:n_all] == ids[n_prompt:n_all]).all()
        assert (labels[n_all:] == -100).all()  # padding
        answer = chatml_tokenizer.decode(ids[n_prompt:n_all].tolist())
        assert answer == row["completion"]


def test_schema_feedback_goes_into_fix_rows_whose_answer_does_not_fit(chatml_tokenizer):
    ex = example()
    prose, bad_name = "It is sunny.", '[weather(city="Oslo")]'
    wrong_city, right = '[get_weather(city="Rome")]', '[get_weather(city="Oslo")]'
    records = {"a": {"samples": [{"text": prose, "valid": False}, {"text": wrong_city, "valid": False},
                                 {"text": bad_name, "valid": False}, {"text": right, "valid": True}]}}
    args = ({"a": ex}, records, ["a"], {"a": gold_target(ex, "")}, chatml_tokenizer)
    found = "no tool named 'weather' (tools: get_weather)"
    rows = build_corpus(*args, CorpusConfig(refine_share=1.0, max_fix_per_item=2, feedback="schema"), PCFG)
    fixes = [r for r in rows if r["kind"] == "fix"]
    # the answer the check can explain is taken first, and its refine turn says what the check found
    assert [bad_name in r["prompt"] for r in fixes] == [True, False]
    assert fixes[0]["prompt"].endswith(PCFG.refine_instruction + "\nA check of your answer against the function "
                                       f"list found: {found}<|im_end|>\n<|im_start|>assistant\n")
    assert fixes[1]["prompt"].endswith(PCFG.refine_instruction + "<|im_end|>\n<|im_start|>assistant\n")
    keep = next(r for r in rows if r["kind"] == "keep")
    assert keep["prompt"].endswith(PCFG.refine_instruction + "<|im_end|>\n<|im_start|>assistant\n")
    # off (the paper's corpus): no feedback anywhere, samples in their own order
    plain = build_corpus(*args, CorpusConfig(refine_share=1.0, max_fix_per_item=2), PCFG)
    assert not any("A check of your answer" in r["prompt"] for r in plain)
    assert [prose in r["prompt"] for r in plain if r["kind"] == "fix"] == [True, False]
    import pytest

    with pytest.raises(ValueError, match="corpus.feedback"):
        CorpusConfig(feedback="critic")


# --- export (`toolace-r data convert --corpus`) ---------------------------------------------------------------

def _native_corpus(tmp_path, tokenizer):
    """A written corpus of sft, keep and fix rows in the tokenizer's answer format, in runs/x/iter_1."""
    from toolace_r.prompts import answer_format
    from toolace_r.training.corpus import write_corpus

    cfg = PromptConfig()
    fmt = answer_format(tokenizer, cfg)
    ex = example()
    right = gold_target(ex, "", fmt)
    wrong = gold_target(example(city="Bergen"), "", fmt)
    records = {"a": {"samples": [{"text": right, "valid": True}, {"text": wrong, "valid": False}]}}
    rows = build_corpus({"a": ex}, records, ["a"], {"a": right}, tokenizer, CorpusConfig(refine_share=1.0), cfg)
    assert [r["kind"] for r in rows] == ["sft", "keep", "fix"]
    folder = tmp_path / "runs" / "x" / "iter_1"
    write_corpus(folder / "corpus.jsonl", rows)
    return folder, rows


def test_exported_corpus_rows_render_to_the_trained_strings(tmp_path, capsys):
    import json

    from chat_templates import build_hermes_tokenizer

    from toolace_r.cli import main

    tok = build_hermes_tokenizer()
    folder, rows = _native_corpus(tmp_path, tok)
    out = tmp_path / "trl.jsonl"
    assert main(["data", "convert", "--corpus", str(folder), str(out)]) == 0
    assert capsys.readouterr().out == f"wrote 3 rows to {out}\n"
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(exported) == len(rows)
    for row, corpus_row in zip(exported, rows):
        assert set(row) == {"id", "kind", "prompt", "completion", "tools", "chat_template_kwargs"}
        assert (row["id"], row["kind"]) == ("a", corpus_row["kind"])
        assert row["tools"][0]["function"]["name"] == "get_weather"  # native: the template shows the tools
        kwargs = row.get("chat_template_kwargs", {})
        # What SFTTrainer renders from the row is what the run trained on: the prompt exactly, ...
        prompt = tok.apply_chat_template(row["prompt"], tools=row.get("tools"), tokenize=False,
                                         add_generation_prompt=True, **kwargs)
        assert prompt == corpus_row["prompt"]
        # ... and the completion through its end-of-turn token (the template adds the newline after it).
        full = tok.apply_chat_template(row["prompt"] + row["completion"], tools=row.get("tools"), tokenize=False,
                                       **kwargs)
        assert full == corpus_row["prompt"] + corpus_row["completion"] + "\n"
    # The completion is a TRL tool-calls message: arguments as an object, not a JSON string.
    (answer,) = exported[0]["completion"]
    assert answer["role"] == "assistant"
    assert answer["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Oslo"}}
    # The corpus file itself is a SOURCE too; --limit caps the rows.
    one = tmp_path / "one.jsonl"
    assert main(["data", "convert", "--corpus", str(folder / "corpus.jsonl"), str(one), "--limit", "1"]) == 0
    assert capsys.readouterr().out == f"wrote 1 rows to {one}\n"
    assert [json.loads(line) for line in one.read_text().splitlines()] == exported[:1]


def test_exported_pythonic_rows_have_no_tools(tmp_path, chatml_tokenizer):
    import json

    from toolace_r.training.corpus import export_corpus

    folder, rows = _native_corpus(tmp_path, chatml_tokenizer)  # ChatML shows no tools: pythonic format
    out = tmp_path / "trl.jsonl"
    assert export_corpus(folder, out) == 3
    exported = [json.loads(line) for line in out.read_text().splitlines()]
    assert all("tools" not in row for row in exported)
    assert exported[0]["completion"] == [{"role": "assistant", "content": '[get_weather(city="Oslo")]'}]
    for row, corpus_row in zip(exported, rows):
        prompt = chatml_tokenizer.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True,
                                                      **row.get("chat_template_kwargs", {}))
        assert prompt == corpus_row["prompt"]


def test_export_of_an_old_corpus_is_one_error_line(tmp_path, capsys):
    import json

    from toolace_r.cli import main

    old = tmp_path / "corpus.jsonl"
    row = {"prompt": "p", "completion": "c", "kind": "sft", "id": "a"}
    new_row = {**row, "conversation": {"prompt": [], "completion": []}}
    old.write_text(json.dumps(new_row) + "\n" + json.dumps(row) + "\n")  # the second is from an old version
    out = tmp_path / "out.jsonl"
    assert main(["data", "convert", "--corpus", str(tmp_path), str(out)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1
    assert f"{old} line 2: field 'conversation'" in err[0] and "rebuild the corpus" in err[0]
    assert not out.exists()  # nothing written: the error came before the file
    old.write_text('{"prompt": "p",\n')
    assert main(["data", "convert", "--corpus", str(old), str(out)]) == 2
    assert f"{old} line 1:" in capsys.readouterr().err
    assert main(["data", "convert", "--corpus", str(tmp_path / "nope"), str(out)]) == 2
    assert "nope" in capsys.readouterr().err
    (tmp_path / "iter_2").mkdir()
    assert main(["data", "convert", "--corpus", str(tmp_path / "iter_2"), str(out)]) == 2
    assert "no corpus.jsonl in this folder" in capsys.readouterr().err
