"""The progress bars of long loops (sampling, generation, refinement): one tqdm bar, or none."""
from __future__ import annotations

from typing import Any


def progress_bar(enabled: bool, total: int, desc: str, unit: str = "item") -> Any:
    """A tqdm bar over `total` steps when `enabled`, else None (callers update and close it if set).

    tqdm is imported only when a bar is shown, so quiet runs never load it.
    """
    if not enabled:
        return None
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit=unit)
