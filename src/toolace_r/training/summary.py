"""What a training run reports about itself: one line per iteration and a PNG of the iterations."""
from __future__ import annotations

from pathlib import Path
from typing import Any


def format_metrics(m: dict[str, Any]) -> str:
    """One iteration's summary as a few readable lines."""
    lines = [f"iteration {m['iteration']}: items {m['items']}, mean solve rate {m['mean_solve_rate']:.3f}, "
             f"selected {m['selected']} (+{m['growth']}), warm-up {m['warmup']}, trained on {m['train_items']}"]
    lines.append(f"  solve-rate histogram: {m['solve_rate_hist']}")
    lines.append(f"  train items by group: {m['train_by_group']}")
    if "corpus" in m:
        loss = m.get("train_loss")
        lines.append(f"  corpus {m['corpus']}, steps {m.get('train_steps')}, "
                     f"loss {'-' if loss is None else f'{loss:.4f}'}")
    if m.get("validation") is not None:
        v = m["validation"]
        lines.append(f"  validation accuracy: {v['accuracy']:.3f} on {v['items']} items")
    if "eval" in m:
        lines.append(f"  held-out accuracy: {m['eval']:.3f}")
    if "stopped" in m:
        lines.append(f"  stop: {m['stopped']}")
    return "\n".join(lines)


def plot_summary(summary: dict[str, Any], path: str | Path) -> None:
    """Per-iteration figures as one PNG: selection size, mean solve rate, training loss, held-out accuracy
    (and validation accuracy, when the run has a validation slice)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    its = summary["iterations"]
    x = [m["iteration"] for m in its]
    panels = [("selected items", [m["selected"] for m in its]),
              ("mean solve rate", [m["mean_solve_rate"] for m in its]),
              ("training loss", [m.get("train_loss") for m in its]),
              ("held-out accuracy", [m.get("eval") for m in its])]
    if any(m.get("validation") for m in its):
        panels.append(("validation accuracy", [(m.get("validation") or {}).get("accuracy") for m in its]))
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 3))
    for ax, (title, ys) in zip(axes, panels):
        points = [(a, b) for a, b in zip(x, ys) if b is not None]
        if points:
            ax.plot(*zip(*points), marker="o")
        ax.set_title(title)
        ax.set_xlabel("iteration")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
