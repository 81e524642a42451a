"""Adaptive self-refinement at inference: answer, then refine the answer until it stops changing.

    result = refine(examples, engine, RefineConfig(policy="adaptive", max_rounds=3))
    for trace in result.traces: print(trace.id, trace.stop_reason, trace.final)

Round 0 is the model's first answer. Each refinement round continues the conversation with that
answer and the refine instruction (prompts.render_prompt with `previous_answers`, the rendering the
training corpus uses), so a round's prompt extends the previous one and the hf engine's prefix cache
reuses its KV (docs/method.md#refine-prompt, #kv-reuse). The package by concern:

- `policies`: when an item stops. A policy is a `StopPolicy` object chosen by key (`STOP_POLICIES`):
  `adaptive` stops when the refined answer equals the previous one (parsed calls compared canonically;
  `adaptive:exact` compares the text), `fixed:N` runs exactly N refinement rounds, `none` keeps round 0,
  `checked` [ours] refines only answers that do not fit their tool list and shows the model what the
  schema check found (`checked:silent` without showing), `vote:N` votes among the greedy answer and
  N-1 samples of the round-0 prompt. `register_policy` adds one (docs/method.md#stop-policies, #checked,
  #vote).
- `config`: `RefineConfig`, the loop's settings; every policy obeys the round cap `max_rounds`, and
  `fixed:N` with N above the cap is a config error rather than a silent truncation.
- `traces`: each item's `Trace` of rounds (raw text, what it parsed to, the tokens prefilled, reused and
  generated, whether the guard kept the previous answer) and why it stopped (`STOP_REASONS`).
- `loop`: `refine()`, which takes chunks of items through every round (docs/method.md#guard for the
  guard and the context stop).
- `grid`: `refine_grid()`, every policy of one model from one shared round 0 and one shared refine
  chain (docs/method.md#grid).
- `files`: predictions and traces as JSON lines.
"""
from toolace_r.refine.config import GUARDS, RefineConfig
from toolace_r.refine.files import prediction_rows, read_traces, write_predictions, write_traces
from toolace_r.refine.loop import Conversation, as_conversation, refine
from toolace_r.refine.grid import GridResult, refine_grid
from toolace_r.refine.policies import (
    STOP_POLICIES,
    Adaptive,
    Checked,
    Fixed,
    SinglePass,
    StopPolicy,
    Vote,
    answer_key,
    get_policy,
    known_policies,
    register_policy,
    same_answer,
    vote_choice,
    vote_key,
)
from toolace_r.refine.traces import STOP_REASONS, RefineResult, Round, Trace, describe_round

__all__ = [
    "GUARDS", "STOP_POLICIES", "STOP_REASONS", "Adaptive", "Checked", "Conversation", "Fixed", "GridResult",
    "RefineConfig", "RefineResult", "Round", "SinglePass", "StopPolicy", "Trace", "Vote", "answer_key",
    "as_conversation", "describe_round", "get_policy", "known_policies", "prediction_rows", "read_traces", "refine",
    "refine_grid", "register_policy", "same_answer", "vote_choice", "vote_key", "write_predictions", "write_traces",
]
