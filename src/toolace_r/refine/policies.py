"""Stop policies: after each round of one item, whether it is done (docs/method.md#stop-policies).

A policy is a `StopPolicy` object; the loop asks it `stop_reason(rounds, fmt)` after every round and
runs another round while it answers None and the round cap allows. Policies are chosen by key
(`get_policy("adaptive")`, `get_policy("fixed:3")`) from `STOP_POLICIES`, which `register_policy`
extends with any `StopPolicy` object or factory:

    class StopOnCall(StopPolicy):
        def stop_reason(self, rounds, fmt):
            parsed = parse(rounds[-1].answer, fmt)
            return "called" if parsed.is_call and parsed.calls[0].name == "book" else None

    register_policy("book", StopOnCall("book"))
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Callable, Sequence

from toolace_r.calls import canonical_answer, parse
from toolace_r.schema_check import answer_problems, feedback_text

if TYPE_CHECKING:
    from toolace_r.refine.traces import Round


class StopPolicy:
    """Decides when one item stops refining. Subclass it and override `stop_reason`. The loop passes
    each item's rounds, so one policy object serves every item of every run: it keeps no item state.

    The class attributes say what the loop must prepare for the policy:
    rounds: refinement rounds it runs whatever the answers (fixed:N, none); None: it decides per item,
        up to the round cap. The config rejects a fixed count above the cap.
    check: every round records what the schema check finds in its answer (`Round.problems`).
    feedback: the refine turn shows those findings to the model (docs/method.md#checked); see `notes`.
    compare: how the policy compares answers ("canonical", "exact"), None when it does not.
    votes: N > 1 makes round 1 no refinement but a vote among the greedy round-0 answer and N-1 answers
        sampled on the same prompt (`Vote`, docs/method.md#vote); 0 for every other policy.
    """

    rounds: int | None = None
    check: bool = False
    feedback: bool = False
    compare: str | None = None
    votes: int = 0  # vote:N: the round after round 0 is a vote among N answers to the round-0 prompt

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name!r})"

    def refinements(self, max_rounds: int) -> int:
        """Refinement rounds this policy may run under the cap."""
        return max_rounds if self.rounds is None else self.rounds

    def stop_reason(self, rounds: Sequence[Round], fmt: str) -> str | None:
        """After a round: why the item stops now (a short key, see `STOP_REASONS`), or None to refine
        again. `rounds` are the item's rounds so far, the newest last; `fmt` is the call format
        answers parse with (`RefineConfig.parse_format`)."""
        return None

    def cap_reason(self) -> str:
        """Why an item stopped when the round cap ended it before `stop_reason` did."""
        return "max_rounds"

    def notes(self, rounds: Sequence[Round]) -> list[str | None]:
        """What the refine turn after each round adds for the model, one entry per round (None: nothing),
        written through `PromptConfig.feedback_template` (docs/method.md#refine-prompt); by default the
        schema check's findings when `feedback` is set."""
        if not self.feedback:
            return []
        return [feedback_text(x.problems) for x in rounds]


class Adaptive(StopPolicy):
    """adaptive: stop when the refined answer equals the previous one (`compare`), or when the guard kept
    the previous answer; with `cycle`, also when it equals any earlier answer (A -> B -> A)."""

    cycle: bool = False

    def __init__(self, name: str, compare: str = "canonical", cycle: bool = False) -> None:
        super().__init__(name)
        self.compare, self.cycle = compare, cycle

    def stop_reason(self, rounds: Sequence[Round], fmt: str) -> str | None:
        if len(rounds) < 2:
            return None
        current = rounds[-1]
        if current.kept_previous:
            return "guard"
        if same_answer(rounds[-2].answer, current.answer, self.compare, fmt):
            return "converged"
        if self.cycle and any(same_answer(x.answer, current.answer, self.compare, fmt) for x in rounds[:-2]):
            return "cycle"
        return None


class Checked(Adaptive):
    """[ours] checked: an answer that fits its tool list ends the item (so a fitting round 0 costs no
    refinement), an oscillation ends it, and the refine turn says what the check found unless silent
    (docs/method.md#checked)."""

    check = True

    def __init__(self, name: str, feedback: bool = True) -> None:
        super().__init__(name, "canonical", cycle=True)
        self.feedback = feedback

    def stop_reason(self, rounds: Sequence[Round], fmt: str) -> str | None:
        reason = super().stop_reason(rounds, fmt)
        if reason is None and not rounds[-1].problems:
            return "checked"
        return reason


class Fixed(StopPolicy):
    """fixed:N: exactly N refinement rounds, whatever the answers."""

    def __init__(self, rounds: int) -> None:
        super().__init__(f"fixed:{rounds}")
        self.rounds = rounds

    def cap_reason(self) -> str:
        return "single_pass" if self.rounds == 0 else "fixed"


class SinglePass(StopPolicy):
    """none: round 0 only."""

    rounds = 0

    def cap_reason(self) -> str:
        return "single_pass"


class Vote(StopPolicy):
    """vote:N: a majority vote among N answers that share one prefill (docs/method.md#vote).

    Round 0 is the greedy answer; round 1 draws N-1 answers on the same round-0 prompt, as one request
    with n = N-1 (temperature `RefineConfig.vote_temperature`, top_p 1, seed `RefineConfig.vote_seed` plus
    the item's position), so the hf engine reuses round 0's prompt KV. Answers that fail the schema check
    against the item's tools are dropped; the rest vote by `vote_key` (calls canonically, any no-call
    answer as one key); the key with most votes wins, ties going to the greedy answer's key when it is
    tied, else to the tied key seen first in sample order; with no survivor the greedy answer stands
    (`vote_choice`). Round 1 records the chosen answer, the samples' prompt/cached tokens and the sum of
    their completion tokens, stop reason "vote". vote:1 is the single pass.
    """

    def __init__(self, n: int) -> None:
        super().__init__(f"vote:{n}")
        self.votes = n
        self.rounds = 1 if n > 1 else 0

    def stop_reason(self, rounds: Sequence[Round], fmt: str) -> str | None:
        return "vote" if len(rounds) >= 2 else None

    def cap_reason(self) -> str:
        return "vote" if self.votes > 1 else "single_pass"


NO_CALL = ("no call",)


def vote_key(text: str, fmt: str = "auto") -> tuple:
    """What an answer votes for: its calls in canonical form, or `NO_CALL` for any answer without calls."""
    result = parse(text, fmt)
    if result.is_call:
        return canonical_answer(result)
    return NO_CALL


def vote_choice(texts: Sequence[str], tools: Sequence[object], fmt: str = "auto") -> int:
    """Which of `texts` (the greedy answer first, then the samples in order) a vote picks (see `Vote`):
    the first answer holding the winning key, or 0 (the greedy answer) when none passes the check."""
    counts: dict[tuple, int] = {}  # insertion order = the order keys are first reached
    first: dict[tuple, int] = {}
    for i, text in enumerate(texts):
        if answer_problems(text, tools, fmt):
            continue
        key = vote_key(text, fmt)
        counts[key] = counts.get(key, 0) + 1
        first.setdefault(key, i)
    if not counts:
        return 0
    best = max(counts.values())
    # the greedy answer (index 0) is reached first when it survived, so it wins any tie it is in
    winner = next(k for k, c in counts.items() if c == best)
    return first[winner]


def answer_key(text: str, compare: str = "canonical", fmt: str = "auto") -> tuple:
    """What the stop test compares: the text itself ("exact"), or its parsed calls in canonical form
    ("canonical"; plain text by its stripped text; a failed parse by its raw text, since two different
    broken answers can fail with the same message)."""
    if compare == "exact":
        return ("exact", text)
    result = parse(text, fmt)
    if result.error is not None:
        return ("error", text.strip())
    return canonical_answer(result)


def same_answer(a: str, b: str, compare: str = "canonical", fmt: str = "auto") -> bool:
    return answer_key(a, compare, fmt) == answer_key(b, compare, fmt)


# --- the registry --------------------------------------------------------------------------------

PolicyFactory = Callable[[str | None], StopPolicy]


def _adaptive(arg: str | None) -> StopPolicy:
    if arg in (None, "", "canonical"):
        return Adaptive("adaptive", "canonical")
    if arg == "exact":
        return Adaptive("adaptive:exact", "exact")
    raise ValueError(f"unknown adaptive comparison {arg!r}; known: adaptive, adaptive:exact")


def _count(key: str, arg: str | None, what: str, least: int) -> int:
    """The N of `key:N`, at least `least`; a ValueError that shows the spelling otherwise."""
    try:
        n = int(arg or "")
    except ValueError:
        raise ValueError(f"{key} needs a number of {what}, e.g. {key}:3 (got {arg!r})") from None
    if n < least:
        raise ValueError(f"{key}:N needs N >= {least}, got {n}")
    return n


def _fixed(arg: str | None) -> StopPolicy:
    return Fixed(_count("fixed", arg, "refinement rounds", 0))


def _vote(arg: str | None) -> StopPolicy:
    return Vote(_count("vote", arg, "answers", 1))


def _checked(arg: str | None) -> StopPolicy:
    if arg in (None, ""):
        return Checked("checked", feedback=True)
    if arg == "silent":
        return Checked("checked:silent", feedback=False)
    raise ValueError(f"unknown checked variant {arg!r}; known: checked, checked:silent")


def _without_argument(key: str, policy: StopPolicy) -> PolicyFactory:
    def factory(arg: str | None) -> StopPolicy:
        if arg:
            raise ValueError(f"the {key} policy takes no argument (got {key}:{arg})")
        return policy

    return factory


# key (before the colon) -> (factory taking the text after the colon, how the key is written)
STOP_POLICIES: dict[str, tuple[PolicyFactory, tuple[str, ...]]] = {
    "adaptive": (_adaptive, ("adaptive", "adaptive:exact")),
    "checked": (_checked, ("checked", "checked:silent")),
    "fixed": (_fixed, ("fixed:N",)),
    "none": (_without_argument("none", SinglePass("none")), ("none",)),
    "vote": (_vote, ("vote:N",)),
}


def register_policy(key: str, policy: StopPolicy | PolicyFactory, spellings: Sequence[str] = ()) -> None:
    """Add a stop policy under `key`: a `StopPolicy` object (the key then takes no argument), or a
    factory `policy(arg) -> StopPolicy` that gets the text after "key:" (None without a colon)."""
    if not key or ":" in key:
        raise ValueError(f"a policy key is a name without a colon, got {key!r}")
    if isinstance(policy, StopPolicy):
        factory = _without_argument(key, policy)
    elif callable(policy):
        factory = policy
    else:
        raise TypeError(f"register_policy needs a StopPolicy or a factory returning one, got {policy!r}")
    STOP_POLICIES[key] = (factory, tuple(spellings) or (key,))


def known_policies() -> list[str]:
    return [s for _, spellings in STOP_POLICIES.values() for s in spellings]


def get_policy(name: str) -> StopPolicy:
    """The policy a key names; an unknown key is a ValueError listing the known ones."""
    key, sep, arg = str(name).strip().partition(":")
    if key not in STOP_POLICIES:
        raise ValueError(f"unknown stop policy {name!r}; known: {', '.join(known_policies())}")
    policy = STOP_POLICIES[key][0](arg if sep else None)
    if not isinstance(policy, StopPolicy):
        raise TypeError(f"the factory of stop policy {key!r} returned {policy!r}, not a StopPolicy")
    return policy
