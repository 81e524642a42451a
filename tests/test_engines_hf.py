"""Tests of the hf engine, its KV machinery and sampling, on a tiny random Llama built from a config.

The core property: whatever the batching (groups, admissions, dropped rows, reused prefixes, middle
padding), greedy output equals one-at-a-time greedy `model.generate` token for token in fp32.
"""
from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
import torch

from toolace_r.engines import EngineError, GenerationRequest, SamplingParams, continue_request, get_engine
from toolace_r.engines.hf import HFEngine, HFEngineConfig
from toolace_r.engines.kv import PrefixCache
from toolace_r.engines.sampling import StopChecker, filter_logits, next_tokens

torch.set_num_threads(2)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
CORPUS = [
    'get_weather(city="Paris", unit="celsius")',
    "You are an expert in composing functions. Here is a list of functions.",
    "What is the weather in Paris today? And in Berlin tomorrow?",
    "[calc(n=20, k=5, p=0.6), math.factorial(number=5)]",
]


def make_tokenizer():
    """A byte-level BPE with a few hundred merges (multi-character tokens) and ChatML specials."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400, special_tokens=["<|pad|>", "<|im_start|>", "<|im_end|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    backend.train_from_iterator(CORPUS * 10, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, pad_token="<|pad|>", eos_token="<|im_end|>", chat_template=CHATML
    )


def make_model(vocab: int, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=1024, eos_token_id=2, pad_token_id=0, bos_token_id=None,
    )
    model = LlamaForCausalLM(config).eval()
    # Larger weights make the random model's distribution peaky, so greedy ties are vanishingly rare.
    with torch.no_grad():
        model.lm_head.weight.mul_(8.0)
    return model


@pytest.fixture(scope="module")
def tok():
    return make_tokenizer()


@pytest.fixture(scope="module")
def model(tok):
    return make_model(len(tok))


def chat(tok, question: str) -> str:
    messages = [{"role": "system", "content": CORPUS[1] * 2}, {"role": "user", "content": question}]
    return tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


PROMPTS_TEXT = [
    "What is the weather in Paris?",
    "weather " * 9,
    "calc(n=20)",
    "And in Berlin tomorrow? " * 4,
    "math.factorial",
    "x",
]


def reference(model, tok, prompt: str, max_new: int) -> list[int]:
    ids = tok(prompt, add_special_tokens=False, return_tensors="pt")["input_ids"]
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=max_new, do_sample=False,
                         eos_token_id=2, pad_token_id=0)
    return out[0, ids.shape[1]:].tolist()


def engine(model, tok, **kw) -> HFEngine:
    return HFEngine(model=model, tokenizer=tok, **kw)


@pytest.mark.parametrize("batch_size,cache_mb,chunk", [(2, 0, 3), (4, 64, 128), (16, 64, 5)])
def test_greedy_matches_one_at_a_time_generate(model, tok, batch_size, cache_mb, chunk):
    """Small batches force admissions into a running batch and dropping finished rows; a small
    decode chunk forces the KV slab to grow several times."""
    prompts = [chat(tok, q) for q in PROMPTS_TEXT]
    budgets = [12, 5, 20, 9, 16, 3]
    eng = engine(model, tok, batch_size=batch_size, prefix_cache_mb=cache_mb, min_shared_prefix=8,
                 decode_chunk=chunk)
    reqs = [GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=b)) for p, b in zip(prompts, budgets)]
    results = eng.generate(reqs)
    for p, b, r in zip(prompts, budgets, results):
        c = r.completions[0]
        assert c.token_ids == reference(model, tok, p, b)
        assert c.completion_tokens == len(c.token_ids)
        n_prompt = len(tok(p, add_special_tokens=False)["input_ids"])
        assert c.prompt_tokens + c.cached_tokens == n_prompt
    if cache_mb:
        # The shared system prompt was prefilled once, up front: every prompt reused it.
        assert all(r.completions[0].cached_tokens >= 8 for r in results)


def test_padding_limit_splits_prefill_groups_without_changing_output(model, tok, monkeypatch):
    import toolace_r.engines.hf as hf

    monkeypatch.setattr(hf, "_FREE_PADDING", 0)
    prompts = [chat(tok, q) for q in PROMPTS_TEXT]
    eng = engine(model, tok, batch_size=16, prefix_cache_mb=0, prefill_padding=0.0)
    calls = []
    original = eng._prefill
    monkeypatch.setattr(eng, "_prefill", lambda items, headroom: calls.append(len(items)) or original(items, headroom))
    results = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=6)) for p in prompts])
    lengths = {len(tok(p, add_special_tokens=False)["input_ids"]) for p in prompts}
    assert len(calls) == len(lengths)  # no padding allowed: one group per distinct prompt length
    for p, r in zip(prompts, results):
        assert r.completions[0].token_ids == reference(model, tok, p, 6)


def test_greedy_samples_all_equal_the_reference(model, tok):
    p = chat(tok, "calc(n=20)")
    eng = engine(model, tok, batch_size=3, prefix_cache_mb=0)
    reqs = [GenerationRequest(prompt=p, params=SamplingParams(n=3, max_new_tokens=7)),
            GenerationRequest(prompt=chat(tok, "x"), params=SamplingParams(n=2, max_new_tokens=4))]
    results = eng.generate(reqs)
    assert [c.token_ids for c in results[0].completions] == [reference(model, tok, p, 7)] * 3
    assert [c.token_ids for c in results[1].completions] == [reference(model, tok, chat(tok, "x"), 4)] * 2


def test_prompt_ids_and_text_agree(model, tok):
    p = chat(tok, "weather")
    ids = tok(p, add_special_tokens=False)["input_ids"]
    eng = engine(model, tok, prefix_cache_mb=0)
    a, b = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=6)),
                         GenerationRequest(prompt_ids=ids, params=SamplingParams(max_new_tokens=6))])
    assert a.completions[0].token_ids == b.completions[0].token_ids
    assert a.completions[0].text == tok.decode(a.completions[0].token_ids, skip_special_tokens=True)


def test_refinement_round_reuses_kv_and_matches_reencoding(model, tok):
    params = SamplingParams(max_new_tokens=10)
    first = GenerationRequest(prompt=chat(tok, "What is the weather in Paris?"), params=params)
    suffix = "<|im_end|>\n<|im_start|>user\nReview your answer.<|im_end|>\n<|im_start|>assistant\n"
    cached = engine(model, tok)
    r1 = cached.generate([first])[0].completions[0]
    second = continue_request(first, r1, suffix)
    assert second.prompt == first.prompt + r1.text + suffix
    r2 = cached.generate([second])[0].completions[0]
    n_prompt = len(tok(second.prompt, add_special_tokens=False)["input_ids"])
    n_first = len(tok(first.prompt, add_special_tokens=False)["input_ids"])
    assert r2.cached_tokens >= n_first  # at least the whole first prompt came from the cache
    assert r2.prompt_tokens == n_prompt - r2.cached_tokens
    fresh = engine(model, tok, prefix_cache_mb=0).generate([second])[0].completions[0]
    assert fresh.cached_tokens == 0
    assert r2.token_ids == fresh.token_ids == reference(model, tok, second.prompt, 10)


def test_mixed_batch_with_and_without_cached_prefix(model, tok):
    """Rows with different reused lengths share one prefill (padding in the middle of the KV)."""
    eng = engine(model, tok, batch_size=8, min_shared_prefix=10_000)
    long_prompt = chat(tok, "And in Berlin tomorrow? " * 3)
    eng.generate([GenerationRequest(prompt=long_prompt, params=SamplingParams(max_new_tokens=4))])
    prompts = [long_prompt + "abc", chat(tok, "calc(n=20)"), "x y z"]
    results = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=8)) for p in prompts])
    assert results[0].completions[0].cached_tokens > 0
    assert results[2].completions[0].cached_tokens == 0
    for p, r in zip(prompts, results):
        assert r.completions[0].token_ids == reference(model, tok, p, 8)


def test_n_samples_share_prefill_and_are_seeded(model, tok):
    p = chat(tok, "What is the weather in Paris?")
    n_prompt = len(tok(p, add_special_tokens=False)["input_ids"])
    params = SamplingParams(n=4, temperature=1.5, max_new_tokens=12, seed=7)
    eng = engine(model, tok, prefix_cache_mb=0)
    alone = eng.generate([GenerationRequest(prompt=p, params=params)])[0]
    assert [c.prompt_tokens for c in alone.completions] == [n_prompt, 0, 0, 0]
    assert [c.cached_tokens for c in alone.completions] == [0, n_prompt, n_prompt, n_prompt]
    assert len({tuple(c.token_ids) for c in alone.completions}) > 1  # the samples differ
    # The same seed in a different batch (other requests, smaller batch) gives the same samples.
    others = [GenerationRequest(prompt=chat(tok, q), params=SamplingParams(n=2, temperature=1.0, max_new_tokens=5))
              for q in PROMPTS_TEXT[:3]]
    mixed = engine(model, tok, batch_size=5, prefix_cache_mb=0).generate(
        others + [GenerationRequest(prompt=p, params=params)])[-1]
    assert [c.token_ids for c in mixed.completions] == [c.token_ids for c in alone.completions]
    other_seed = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(
        n=4, temperature=1.5, max_new_tokens=12, seed=8))])[0]
    assert [c.token_ids for c in other_seed.completions] != [c.token_ids for c in alone.completions]


def test_stop_string_trims_text_and_ends_generation(model, tok):
    p = chat(tok, "weather " * 5)
    eng = engine(model, tok, prefix_cache_mb=0, skip_special_tokens=False)
    full = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=24))])[0].completions[0]
    text = full.text
    assert len(text) > 8
    stop = text[4:7]  # a stop string that may straddle token boundaries
    cut = eng.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=24, stop=(stop, "\x00")))])
    c = cut[0].completions[0]
    assert c.finish_reason == "stop"
    assert c.text == text[: text.find(stop)]
    assert c.token_ids == full.token_ids[: len(c.token_ids)]
    assert stop in tok.decode(c.token_ids) and stop not in tok.decode(c.token_ids[:-1])


def test_eos_ends_generation_and_is_left_out_of_text(model, tok):
    p = chat(tok, "calc(n=20)")
    ref = reference(model, tok, p, 12)
    eos_candidate = ref[3]
    saved = model.generation_config.eos_token_id
    model.generation_config.eos_token_id = [2, eos_candidate]
    try:
        c = engine(model, tok, prefix_cache_mb=0).generate(
            [GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=12))])[0].completions[0]
    finally:
        model.generation_config.eos_token_id = saved
    end = ref.index(eos_candidate) + 1
    assert c.token_ids == ref[:end] and c.finish_reason == "stop"
    assert c.text == tok.decode(ref[: end - 1], skip_special_tokens=True)
    length = engine(model, tok).generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=3))])
    assert length[0].completions[0].finish_reason == "length"


def test_weight_change_invalidates_prefix_cache(tok):
    model = make_model(len(tok), seed=1)
    eng = engine(model, tok)
    p = chat(tok, "weather")
    req = GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=5))
    eng.generate([req])
    assert eng.generate([req])[0].completions[0].cached_tokens > 0
    with torch.no_grad():
        model.model.layers[0].mlp.up_proj.weight.mul_(1.5)  # an in-place update, like an optimizer step
    after = eng.generate([req])[0].completions[0]
    assert after.cached_tokens == 0
    assert after.token_ids == reference(model, tok, p, 5)


def test_engine_does_not_touch_thread_count_unless_asked(model, tok):
    before = torch.get_num_threads()
    engine(model, tok).generate([GenerationRequest(prompt="x", params=SamplingParams(max_new_tokens=2))])
    assert torch.get_num_threads() == before
    engine(model, tok, num_threads=1)
    assert torch.get_num_threads() == 1
    torch.set_num_threads(before)


def test_bfloat16_generates(tok):
    model = make_model(len(tok)).to(torch.bfloat16)
    eng = engine(model, tok, batch_size=3)
    reqs = [GenerationRequest(prompt=chat(tok, q), params=SamplingParams(max_new_tokens=6)) for q in PROMPTS_TEXT[:4]]
    results = eng.generate(reqs)
    assert eng.shapes.dtype == torch.bfloat16
    assert all(len(r.completions[0].token_ids) == 6 for r in results)
    assert all(0 <= t < len(tok) for r in results for t in r.completions[0].token_ids)
    # dtype in the config converts a model passed in (here back to fp32, matching the reference).
    model32 = engine(model, tok, dtype="float32", prefix_cache_mb=0)
    assert model32.shapes.dtype == torch.float32
    p = chat(tok, PROMPTS_TEXT[0])
    out = model32.generate([GenerationRequest(prompt=p, params=SamplingParams(max_new_tokens=5))])
    assert out[0].completions[0].token_ids == reference(model32.model, tok, p, 5)


def test_registry_and_config_errors(model, tok):
    eng = get_engine("hf", model=model, tokenizer=tok, batch_size=3)
    assert isinstance(eng, HFEngine) and eng.config.batch_size == 3
    with pytest.raises(KeyError, match="known engines: hf, openai, vllm"):
        get_engine("nope")
    with pytest.raises(ValueError, match="unknown option"):
        get_engine("hf", model=model, tokenizer=tok, batch_sise=3)
    with pytest.raises(ValueError, match="unknown dtype"):
        HFEngineConfig(dtype="float8")
    with pytest.raises(ValueError, match="context"):
        engine(model, tok).generate([GenerationRequest(prompt_ids=[5] * 1024)])


def test_sliding_window_models_are_refused(tok):
    from transformers import MistralConfig, MistralForCausalLM

    config = MistralConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=1,
                           num_attention_heads=4, num_key_value_heads=2, sliding_window=16)
    with pytest.raises(EngineError, match="full-attention"):
        HFEngine(model=MistralForCausalLM(config), tokenizer=tok)


# --- pieces ---------------------------------------------------------------------------------------

def test_filter_logits_top_k_and_top_p():
    logits = torch.tensor([[1.0, 3.0, 2.0, 0.0]])
    assert torch.equal(filter_logits(logits, 1.0, 1, 1.0) > 0, torch.tensor([[False, True, False, False]]))
    probs = torch.softmax(logits, -1)[0]  # 0.032, 0.644, 0.237, 0.087
    kept = filter_logits(logits, 1.0, 0, 0.7)[0] > 0
    assert kept.tolist() == [False, True, True, False]  # 0.644 < 0.7, so the second token is needed
    assert torch.allclose(filter_logits(logits, 1.0, 0, 0.7)[0, 1:3].sum(), torch.tensor(1.0))
    assert torch.allclose(filter_logits(logits, 1.0, 0, 1.0)[0], probs)


@pytest.mark.parametrize("vocab,top_k,top_p", [(6, 0, 1.0), (6, 0, 0.8), (6, 3, 1.0), (300, 0, 0.9), (300, 40, 0.5)])
def test_sampling_follows_the_filtered_distribution(vocab, top_k, top_p):
    """Empirical frequencies over many seeded rows match filter_logits; cut tokens never appear.
    Vocab 300 with flat-ish logits makes top-p look past its first 64 candidates."""
    rows = 4000
    base = torch.randn(vocab, generator=torch.Generator().manual_seed(vocab)) * (2.0 if vocab < 10 else 0.5)
    logits = base.expand(rows, vocab)
    params = SamplingParams(temperature=0.9, top_k=top_k, top_p=top_p)
    gens = [torch.Generator().manual_seed(i) for i in range(rows)]
    tokens = next_tokens(logits, [params] * rows, gens)
    expected = filter_logits(base[None], 0.9, top_k, top_p)[0]
    freq = torch.bincount(tokens, minlength=vocab).float() / rows
    assert torch.all(freq[expected == 0] == 0)
    assert (freq - expected).abs().max() < 0.035
    if top_p < 1:
        kept = expected > 0
        mass = torch.softmax(base / 0.9, -1)
        if top_k:
            mass = filter_logits(base[None], 0.9, top_k, 1.0)[0]
        assert mass[kept].sum() >= top_p - 1e-6  # the kept set reaches top_p ...
        assert mass[kept].sum() - mass[kept].min() < top_p  # ... and is the smallest that does


def test_next_tokens_greedy_rows_and_seeded_rows():
    logits = torch.randn(3, 50, generator=torch.Generator().manual_seed(0))
    greedy = SamplingParams()
    hot = SamplingParams(temperature=1.0)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = next_tokens(logits, [greedy, hot, greedy], [None, g1, None])
    b = next_tokens(logits[1:2], [hot], [g2])
    assert a[0] == logits[0].argmax() and a[2] == logits[2].argmax()
    assert a[1] == b[0]


def test_stop_checker_trims_at_earliest_stop(tok):
    checker = StopChecker(tok, ["ab", "x"])
    assert checker.trim("zzxab") == "zz" and checker.trim("none") == "none"
    assert checker.hit(tok("hello ab", add_special_tokens=False)["input_ids"])
    assert not checker.hit(tok("hello", add_special_tokens=False)["input_ids"])


def test_prefix_cache_lru_by_bytes_and_prefix_dedupe():
    def kv(n):
        return [torch.zeros(1, n, 2)], [torch.zeros(1, n, 2)]

    per_token = 2 * 2 * 4  # keys + values, 2 floats each
    cache = PrefixCache(max_bytes=per_token * 10)
    cache.insert([1, 2, 3], *kv(3))
    cache.insert([1, 2, 3, 4], *kv(4))  # extends the first entry, which is dropped
    assert len(cache) == 1 and cache.nbytes == 4 * per_token
    cache.insert([1, 2], *kv(2))  # adds nothing: a prefix of an entry
    assert len(cache) == 1
    entry, match = cache.lookup([1, 2, 3, 9])
    assert match == 3 and entry.ids.tolist() == [1, 2, 3, 4]
    cache.insert([7, 8, 9, 10, 11], *kv(5))
    cache.insert([5, 5, 5], *kv(3))  # over budget: the least recently used entry goes
    assert cache.nbytes <= cache.max_bytes
    assert cache.lookup([1, 2, 3])[1] == 0 and cache.lookup([5, 5])[1] == 2
