"""Test-time compute, side by side: the reported ToolACE-R model and the control under every policy they
were scored with, accuracy against the tokens computed per item (prefilled + generated,
evaluation/rounds.py `tokens_per_example`), each policy tested item by item against the same model's
single pass (pipeline/paired.py). report.json "compute_curve", a table in report.md and compute.png.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

from .paired import find_test, p_text

NO_GAIN = "no policy gives a detectable gain at this size"


def compute_curve(grid: dict[str, dict[str, dict[str, Any]]], arms: Sequence[str], tests: Sequence[dict[str, Any]],
                  max_compute_ratio: float) -> dict[str, Any]:
    """Per arm (those of `arms` in `grid`), one point per policy: accuracy, computed tokens per item, the
    ratio to the single pass, net fixes - breaks, and the paired test against the single pass (`none`).
    `pays_off`: the policies with a significant net gain within `max_compute_ratio`; `sentence` says so."""
    out: dict[str, Any] = {"max_compute_ratio": max_compute_ratio, "arms": {}}
    for arm in arms:
        if arm not in grid:
            continue
        points = []
        for policy, row in grid[arm].items():
            test = None if policy == "none" else find_test(tests, arm, policy, arm, "none")
            net = row["fixes"] - row["breaks"]
            significant = None if test is None else test["p_value"] < test["alpha"]
            points.append({"policy": policy, "accuracy": row["accuracy"], "correct": row["correct"],
                           "examples": row["examples"], "compute_tokens_per_example": row["compute_tokens_per_example"],
                           "compute_ratio": row["compute_ratio"], "fixes": row["fixes"], "breaks": row["breaks"],
                           "net": net, "p_value": None if test is None else test["p_value"],
                           "significant": significant})
        pays = [p for p in points if p["significant"] and p["net"] > 0 and p["compute_ratio"] is not None
                and p["compute_ratio"] <= max_compute_ratio]
        dearer = [p for p in points if p["significant"] and p["net"] > 0 and p not in pays]
        out["arms"][arm] = {"points": points, "pays_off": [p["policy"] for p in pays],
                            "sentence": _sentence(arm, pays, dearer, max_compute_ratio)}
    return out


def _named(points: list[dict[str, Any]]) -> str:
    return ", ".join(f"`{p['policy']}` (net {p['net']:+d}, {p['compute_ratio']:.2f}x, p = {p_text(p['p_value'])})"
                     for p in points)


def _sentence(arm: str, pays: list[dict[str, Any]], dearer: list[dict[str, Any]], budget: float) -> str:
    """Where extra compute pays off for `arm`: only significant net gains are named (p < 0.05)."""
    if pays:
        text = f"{arm}: extra compute pays off within {budget:g}x the single pass's tokens with {_named(pays)}."
    else:
        text = f"{arm}: {NO_GAIN}" + (f" within {budget:g}x the single pass's tokens" if dearer else "") + "."
    if dearer:
        text += f" Above that budget: {_named(dearer)}."
    return text


def render_compute_markdown(curve: dict[str, Any], pct: Any, num: Any) -> list[str]:
    """report.md's section: one row per policy, per arm its accuracy, cost, net and test."""
    arms = list(curve.get("arms", {}))
    if not arms:
        return []
    policies: list[str] = []
    for arm in arms:
        policies += [p["policy"] for p in curve["arms"][arm]["points"] if p["policy"] not in policies]
    cols = ["accuracy", "computed tokens/item", "x single pass", "net fixes-breaks", "p vs single pass",
            "significant"]
    lines = ["", "## Test-time compute, side by side", "",
             "Accuracy against the tokens computed per item (prefilled + generated) under every policy; net: fixes "
             "minus breaks against the same model's single pass, p: its exact McNemar test (`significant` only "
             "when p < 0.05). Figure: compute.png.", "",
             "| policy | " + " | ".join(f"{arm} {c}" for arm in arms for c in cols) + " |",
             "|---|" + "---|" * (len(cols) * len(arms))]
    for policy in policies:
        cells = []
        for arm in arms:
            p = next((x for x in curve["arms"][arm]["points"] if x["policy"] == policy), None)
            if p is None:
                cells += ["–"] * len(cols)
                continue
            sig = "–" if p["significant"] is None else "yes" if p["significant"] else "no"
            cells += [f"{pct(p['accuracy'])} ({p['correct']}/{p['examples']})",
                      num(p["compute_tokens_per_example"], ".0f"), num(p["compute_ratio"]),
                      "–" if policy == "none" else f"{p['net']:+d}",
                      "–" if p["p_value"] is None else p_text(p["p_value"]), sig]
        lines.append(f"| {policy} | " + " | ".join(cells) + " |")
    lines.append("")
    lines += [f"- {curve['arms'][arm]['sentence']}" for arm in arms]
    return lines


def plot_compute(curve: dict[str, Any], path: Path) -> None:
    """compute.png: accuracy (%) against computed tokens per item, one series per arm, one labelled point
    per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    # each arm's labels on its own side of the points, so that two arms at one point stay readable
    for (arm, entry), marker, offset in zip(curve["arms"].items(), ("o", "s", "^", "D"),
                                            ((4, 5), (4, -11), (4, 14), (4, -20))):
        pts = [p for p in entry["points"] if p["compute_tokens_per_example"] is not None and p["accuracy"] is not None]
        pts.sort(key=lambda p: p["compute_tokens_per_example"])
        ax.plot([p["compute_tokens_per_example"] for p in pts], [100 * p["accuracy"] for p in pts], marker=marker,
                linestyle=":", label=arm)
        labels: dict[tuple[float, float], list[str]] = {}  # policies at the same point share one label
        for p in pts:
            key = (p["compute_tokens_per_example"], 100 * p["accuracy"])
            labels.setdefault(key, []).append(p["policy"] + ("*" if p["significant"] else ""))
        for (x, y), names in labels.items():
            ax.annotate(", ".join(names), (x, y), textcoords="offset points", xytext=offset, fontsize=7)
    ax.margins(x=0.08, y=0.12)
    ax.set_xlabel("computed tokens per item (prefilled + generated)")
    ax.set_ylabel("held-out accuracy (%)")
    ax.set_title("test-time compute (* significant against the single pass)")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
