"""Which floating-point type runs fastest here: the `auto` of the engines' `dtype` and of `sft.model_dtype`
/ `sft.bf16`.

bfloat16 pays only where the hardware multiplies it natively: a CUDA device that supports it, or a CPU
with AVX512-BF16 or AMX tiles (oneDNN then runs bf16 matrix products at about twice the float32 rate).
Anywhere else torch emulates bf16 products and they run several times *slower* than float32, so `auto`
picks float32 there. Every choice comes with its reason, which the engines log and the training stage
writes into its metrics (docs/method.md#precision).

For training, `auto` means:
- LoRA: the frozen base weights in bfloat16, the adapters and their optimizer state in float32 (PEFT keeps
  adapter weights in float32 on a bf16 base), the forward under bf16 autocast;
- full fine-tuning: float32 master weights with bf16 autocast;
- float32 and no autocast where bf16 is not fast.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

# Set to 0 or 1 to override the CPU's own answer (a test, or a CPU whose flags torch misreads).
CPU_BF16_ENV = "TOOLACE_R_CPU_BF16"


@dataclass(frozen=True)
class Choice:
    """A resolved dtype ("float32" | "bfloat16" | "float16") and why it was chosen."""

    dtype: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"dtype": self.dtype, "reason": self.reason}


def fast_bf16(device: str) -> tuple[bool, str]:
    """(whether bf16 matrix products are native on `device`, the reason)."""
    import torch

    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            return False, "CUDA was asked for but is not available"
        if torch.cuda.is_bf16_supported():
            return True, f"{torch.cuda.get_device_name()} supports bf16"
        return False, f"{torch.cuda.get_device_name()} lacks bf16"
    forced = os.environ.get(CPU_BF16_ENV)
    if forced in ("0", "1"):
        return forced == "1", f"{CPU_BF16_ENV}={forced}"
    features = [name for name, probe in (("AMX", "_is_amx_tile_supported"), ("AVX512-BF16", "_is_avx512_bf16_supported"))
                if _probe(torch, probe)]
    if features:
        return True, f"the CPU has {' and '.join(features)}"
    return False, "the CPU has neither AVX512-BF16 nor AMX, so bf16 products would be emulated (slower than float32)"


def _probe(torch: Any, name: str) -> bool:
    fn = getattr(torch.cpu, name, None)
    try:
        return bool(fn()) if fn is not None else False
    except (RuntimeError, AttributeError):  # a torch build without the probe
        return False


def choose_dtype(requested: str, device: str) -> Choice:
    """`requested` unless it is "auto"; then bfloat16 where it is fast on `device`, else float32."""
    if requested != "auto":
        return Choice(requested, "set in the config")
    fast, why = fast_bf16(device)
    return Choice("bfloat16" if fast else "float32", why)


@dataclass(frozen=True)
class TrainingPrecision:
    """What one SFT stage runs in: the dtype the weights load in, whether bf16 autocast is on, and why."""

    model_dtype: str
    autocast_bf16: bool
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return {"model_dtype": self.model_dtype, "bf16_autocast": self.autocast_bf16, "reason": self.reason}


def training_precision(model_dtype: str, bf16: bool | str, finetune: str, device: str) -> TrainingPrecision:
    """Resolve `sft.model_dtype` and `sft.bf16` ("auto" or explicit) for a `finetune` ("lora" | "full") run."""
    if model_dtype != "auto" and bf16 != "auto":
        return TrainingPrecision(model_dtype, bool(bf16), "set in the config")
    fast, why = fast_bf16(device)
    if model_dtype == "auto":
        # Full fine-tuning keeps float32 master weights; a LoRA base is frozen, so bf16 costs it nothing.
        model_dtype = "bfloat16" if fast and finetune == "lora" else "float32"
    autocast = fast if bf16 == "auto" else bool(bf16)
    return TrainingPrecision(model_dtype, autocast, why)


def log_choice(what: str, choice: Choice | TrainingPrecision) -> None:
    log.info("%s: %s (%s)", what, choice.dtype if isinstance(choice, Choice) else choice.as_dict(), choice.reason)
