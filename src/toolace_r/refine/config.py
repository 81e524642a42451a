"""The settings of the refine loop (docs/method.md#refinement)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

from toolace_r.engines.base import SamplingParams
from toolace_r.prompts import PromptConfig
from toolace_r.refine.policies import StopPolicy, get_policy

GUARDS = ("off", "error", "call")


def _default_sampling() -> SamplingParams:
    # Greedy and short: a tool call is one line, and an untrained model's prose would otherwise run
    # to the limit every round (docs/method.md#stop-string).
    return SamplingParams(max_new_tokens=128)


@dataclass
class RefineConfig:
    """Settings of the refine loop.

    policy: a stop policy key (`known_policies()`). max_rounds: the cap on refinement rounds.
    guard: "off", "error" (keep the previous answer when a refined one is a decode error) or "call"
        (keep it when the previous answer was calls and the refined one is not).
    round0 / refine: sampling of the first answer and of refinement rounds (n must be 1).
    chunk_size: items taken through every round together (bounded by the engine's prefix cache).
    prompt: how prompts are rendered. parse_format: the call format the stop test parses with.
    vote_temperature / vote_seed: sampling of vote:N's N-1 extra answers (item i's request is seeded
        vote_seed + i, i its position in the items, so reruns draw the same answers; docs/method.md#vote).
    """

    policy: str = "adaptive"
    max_rounds: int = 3
    guard: str = "off"
    round0: SamplingParams = field(default_factory=_default_sampling)
    refine: SamplingParams = field(default_factory=_default_sampling)
    chunk_size: int = 32
    prompt: PromptConfig = field(default_factory=PromptConfig)
    parse_format: str = "auto"
    vote_temperature: float = 0.7
    vote_seed: int = 0

    def __post_init__(self) -> None:
        policy = get_policy(self.policy)
        if self.max_rounds < 0:
            raise ValueError(f"RefineConfig.max_rounds must be >= 0, got {self.max_rounds}")
        if policy.rounds is not None and policy.rounds > self.max_rounds:
            raise ValueError(f"policy {policy.name} runs {policy.rounds} refinement rounds, more than "
                             f"max_rounds={self.max_rounds}; raise max_rounds")
        if self.guard not in GUARDS:
            raise ValueError(f"unknown guard {self.guard!r}; known: {', '.join(GUARDS)}")
        if self.chunk_size < 1:
            raise ValueError(f"RefineConfig.chunk_size must be >= 1, got {self.chunk_size}")
        if self.vote_temperature < 0:
            raise ValueError(f"RefineConfig.vote_temperature must be >= 0, got {self.vote_temperature}")
        for name in ("round0", "refine"):
            if getattr(self, name).n != 1:
                raise ValueError(f"RefineConfig.{name}.n must be 1: each round continues one answer")

    @classmethod
    def from_options(cls, policy: str = "adaptive", max_rounds: int | None = None, *, max_new_tokens: int = 128,
                     stop: Sequence[str] = (), **fields: Any) -> "RefineConfig":
        """The config a command line asks for: one token budget and stop list for every round, and a
        round cap that defaults to 3, or to N for `fixed:N` with N above 3."""
        if max_rounds is None:
            max_rounds = max(3, get_policy(policy).rounds or 0)
        params = SamplingParams(max_new_tokens=max_new_tokens, stop=tuple(stop))
        return cls(policy=policy, max_rounds=max_rounds, round0=params, refine=params, **fields)

    @property
    def stop_policy(self) -> StopPolicy:
        return get_policy(self.policy)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        for name in ("round0", "refine"):  # tuples read back from YAML/JSON as lists
            out[name]["stop"] = list(out[name]["stop"])
        return out
