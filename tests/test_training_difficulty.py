"""Difficulty: sampling + checker scoring, and the gold-answer NLL."""
from __future__ import annotations

import math

import torch

from toolace_r.calls import ToolCall
from toolace_r.data import Example, Gold
from toolace_r.engines import Engine, GenerationResult
from toolace_r.engines.base import Completion
from toolace_r.prompts import PromptConfig, render_pair
from toolace_r.tools import normalize_tools
from toolace_r.training.config import SamplingConfig, SFTStageConfig
from toolace_r.training.difficulty import gold_nll, sample_and_score, solve_rate_histogram

PCFG = PromptConfig(system_prompt="Call tools.")
TOOLS = normalize_tools([{"type": "function", "function": {
    "name": "get_weather", "description": "Weather.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}])


def ex(i, city):
    return Example(i, [{"role": "user", "content": f"Weather in {city}?"}], TOOLS,
                   Gold(kind="calls", calls=[ToolCall("get_weather", {"city": city})]), "simple")


class Fixed(Engine):
    def __init__(self, texts):
        self.texts, self.requests = texts, []

    def generate(self, requests, progress=False):
        self.requests.extend(requests)
        return [GenerationResult([Completion(t, [], "stop") for t in self.texts]) for _ in requests]


def test_sample_and_score_counts_right_answers(chatml_tokenizer):
    engine = Fixed(['[get_weather(city="Oslo")]', "prose", "[get_weather(city='oslo')]"])
    recs = sample_and_score(engine, chatml_tokenizer, [ex("a", "Oslo"), ex("b", "Rome")],
                            SamplingConfig(k=3), PCFG, seed=5)
    assert [r["solve_rate"] for r in recs] == [2 / 3, 0.0]  # BFCL strings compare case-insensitively
    assert [s["valid"] for s in recs[0]["samples"]] == [True, False, True]
    assert recs[1]["samples"][0]["error_type"] is not None
    assert [r.params.n for r in engine.requests] == [3, 3]
    assert [r.params.seed for r in engine.requests] == [5, 6]  # one seed per item
    assert solve_rate_histogram(recs, 3) == {"0/3": 1, "1/3": 0, "2/3": 1, "3/3": 0}


def test_gold_nll_matches_a_plain_forward_pass(tiny_model):
    model, tokenizer = tiny_model
    exs = [ex("a", "Oslo"), ex("b", "Rio de Janeiro"), ex("c", "X")]
    targets = [f'[get_weather(city="{c}")]' for c in ("Oslo", "Rio de Janeiro", "X")]
    batched = gold_nll(model, tokenizer, exs, targets, PCFG, batch_size=3)
    for e, t, value in zip(exs, targets, batched):
        prompt, completion = render_pair(tokenizer, e.tools, e.messages, t, cfg=PCFG)
        p = tokenizer(prompt, add_special_tokens=False)["input_ids"]
        c = tokenizer(completion, add_special_tokens=False)["input_ids"]
        ids = torch.tensor([p + c])
        labels = ids.clone()
        labels[0, :len(p)] = -100
        with torch.no_grad():
            expected = float(model(input_ids=ids, labels=labels).loss)
        assert math.isclose(value, expected, rel_tol=1e-4)
    # a random model gives roughly log(vocab) per token
    assert all(3.0 < v < 8.0 for v in batched)


def test_full_finetune_saves_a_loadable_model(tiny_model_dir, tmp_path):
    from transformers import AutoModelForCausalLM

    from toolace_r.training.sft import train_sft

    rows = [{"prompt": "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
             "completion": "[f(a=1)]<|im_end|>"}] * 2
    out = train_sft(str(tiny_model_dir), rows, tmp_path, SFTStageConfig(finetune="full", max_steps=1, batch_size=2,
                                                                          warmup=0, learning_rate=1e-2))
    assert out["steps"] == 1 and out["train_loss"] > 0
    before = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    after = AutoModelForCausalLM.from_pretrained(tmp_path / "model")
    pairs = zip(before.named_parameters(), after.named_parameters())
    changed = [n for (n, a), (_, b) in pairs if not torch.equal(a, b)]
    assert changed  # the weights moved


def test_no_call_items_need_a_text_answer_to_count_as_solved(chatml_tokenizer):
    no_call = Example("n", [{"role": "user", "content": "Tell me a joke."}], TOOLS, Gold(kind="no_call"),
                      "live_irrelevance")
    texts = ["No tool can tell jokes.", '[get_weather(city="Oslo"', '[get_weather(city="Oslo")]']
    strict = sample_and_score(Fixed(texts), chatml_tokenizer, [no_call], SamplingConfig(k=3), PCFG, seed=0)
    # BFCL accepts the broken call (it decodes to no call); as a training signal it is a call attempt
    assert [(s["valid"], s["error_type"]) for s in strict[0]["samples"]][:2] == [(True, None),
                                                                                 (False, "call_attempt")]
    assert strict[0]["samples"][2]["valid"] is False
    lenient = sample_and_score(Fixed(texts), chatml_tokenizer, [no_call], SamplingConfig(k=3, strict_no_call=False),
                               PCFG, seed=0)
    assert [s["valid"] for s in lenient[0]["samples"]] == [True, True, False]


def test_hf_engine_score_gives_the_gold_nll_and_leaves_the_prompts_cached(tiny_model):
    from toolace_r.engines.hf import HFEngine
    from toolace_r.training.difficulty import gold_nll_engine, gold_pairs, sample_and_nll

    model, tokenizer = tiny_model
    exs = [ex(str(i), c) for i, c in enumerate(["Oslo", "Rio de Janeiro", "X", "Lima", "Bergen"])]
    targets = [f'[get_weather(city="{e.messages[0]["content"][11:-1]}")]' for e in exs]
    plain = gold_nll(model, tokenizer, exs, targets, PCFG, batch_size=2)
    engine = HFEngine(model=model, tokenizer=tokenizer, batch_size=4, prefill_tokens=64)  # several groups
    scored = gold_nll_engine(engine, tokenizer, exs, targets, PCFG)
    assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(plain, scored))
    # a second pass is served from the cache (the whole sequence was kept) and scores the same
    again = gold_nll_engine(engine, tokenizer, exs, targets, PCFG)
    assert all(math.isclose(a, b, rel_tol=1e-4, abs_tol=1e-5) for a, b in zip(scored, again))
    # per-token log-probs of one continuation, against a forward pass of the whole sequence
    (p, c), = gold_pairs(tokenizer, exs[1:2], targets[1:2], PCFG)
    with torch.inference_mode():
        logp = torch.log_softmax(model(input_ids=torch.tensor([p + c])).logits[0].float(), -1)
    want = [float(logp[len(p) - 1 + j, t]) for j, t in enumerate(c)]
    got, = engine.score([p], [c])
    assert len(got) == len(c) and all(math.isclose(a, b, abs_tol=1e-4) for a, b in zip(got, want))

    fresh = HFEngine(model=model, tokenizer=tokenizer, batch_size=4)
    computed = []
    generate = fresh.generate

    def counting(requests, progress=False):
        results = generate(requests, progress)
        computed.extend(r.completions[0].prompt_tokens for r in results)
        return results

    fresh.generate = counting
    cfg = SamplingConfig(k=2, max_new_tokens=6, temperature=1.0)
    records = sample_and_nll(fresh, tokenizer, exs, targets, cfg, PCFG, seed=3)
    assert [r["id"] for r in records] == [e.id for e in exs]
    assert all(len(r["samples"]) == 2 for r in records)
    assert all(math.isclose(a, r["gold_nll"], rel_tol=1e-4, abs_tol=1e-5) for a, r in zip(plain, records))
    # every sampling prompt found its KV cached by the scoring pass just before it: at most the tokens
    # where the prompt's and the whole sequence's tokenisations part are prefilled again
    assert len(computed) == len(exs) and max(computed) <= 3


def test_hf_engine_score_rejects_what_it_cannot_score(tiny_model):
    import pytest

    from toolace_r.engines.hf import HFEngine

    model, tokenizer = tiny_model
    engine = HFEngine(model=model, tokenizer=tokenizer)
    with pytest.raises(ValueError, match="non-empty"):
        engine.score([[1, 2]], [[]])
    with pytest.raises(ValueError, match="prompts for"):
        engine.score([[1, 2]], [])
