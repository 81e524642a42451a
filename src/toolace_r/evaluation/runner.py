"""Score a predictions file against a benchmark's examples: per item, per category, BFCL's aggregates.

    preds = load_predictions("preds.jsonl")          # {"id": ..., "result": <raw text or calls>} lines
    result = evaluate_predictions(examples, preds)   # EvalResult
    write_outputs(result, "runs/eval")               # metrics.json, results.jsonl, report.md

Every example is scored: an id without a prediction counts as wrong (error_type "missing_prediction")
and is listed; a prediction whose id matches no example is listed as unknown, never dropped in
silence. Examples whose gold cannot be scored (kind "unscored") are listed and left out of totals.

Aggregates (BFCL v4's summary scores over the categories that were evaluated; see `AGGREGATES`):
non_live = unweighted mean of simple, multiple, parallel, parallel_multiple (simple = the mean of those of
simple_python, simple_java, simple_javascript that were scored); live = count-weighted mean of the live AST
categories; irrelevance = unweighted mean of irrelevance and live_irrelevance; relevance =
live_relevance.

BFCL v4's overall (its eval_runner_helper) is the 10/10/10/30/40 weighted mean of non_live, live,
irrelevance, multi_turn and agentic; relevance enters none of it. This project scores single-turn
Python only, so "complete" means BFCL's formula restricted to those parts: non_live, live and
irrelevance (equal weights, as BFCL's are), each from all of its Python categories (`OVERALL_SCOPE`, ten
categories). Only then is an aggregate named `overall` written, and even then it is BFCL's single-turn
part, not the leaderboard's total (which also weights multi-turn and agentic, and whose simple also
averages Java and JavaScript). With any of the ten categories unscored the aggregate is `partial_mean`
instead: the unweighted mean of the summary parts that were scored, never to be read as BFCL's overall;
its `missing` names the categories it lacks (docs/bfcl.md#overall).

BFCL's leaderboard scores themselves, V4's and V3's overall with all their parts, are in metrics.json
under "bfcl_leaderboard" (evaluation/bfcl_scores.py): each exact when all its categories were scored,
else absent with what it lacks.
"""
from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from toolace_r.calls import MAX_DEPTH, ParseResult, ToolCall
from toolace_r.evaluation.benchmarks import score as score_answer
from toolace_r.files import dumps
from toolace_r.jsonvalues import json_problem
from toolace_r.jsonvalues import plain

@dataclass
class Aggregate:
    """One summary score: `rule` says how, `parts` which categories it used, `missing` which it lacked."""

    name: str
    rule: str
    accuracy: float | None
    parts: list[str]
    missing: list[str]

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "rule": self.rule, "parts": self.parts, "missing": self.missing}


# name -> (rule, component categories or aggregates, how they combine)
AGGREGATES: dict[str, tuple[str, tuple[str, ...], str]] = {
    "non_live": ("unweighted mean of simple (the mean of the scored ones of simple_python, simple_java, "
                 "simple_javascript), multiple, parallel, parallel_multiple",
                 ("simple_python", "multiple", "parallel", "parallel_multiple"), "mean"),
    "live": ("count-weighted mean of live_simple, live_multiple, live_parallel, live_parallel_multiple",
             ("live_simple", "live_multiple", "live_parallel", "live_parallel_multiple"), "weighted"),
    "irrelevance": ("unweighted mean of irrelevance and live_irrelevance",
                    ("irrelevance", "live_irrelevance"), "mean"),
    "relevance": ("live_relevance accuracy", ("live_relevance",), "mean"),
}
# BFCL's multi_turn score (its eval_runner_helper): given only when some multi-turn category was scored.
MULTI_TURN_AGGREGATE = ("unweighted mean of multi_turn_base, multi_turn_miss_func, multi_turn_miss_param, "
                        "multi_turn_long_context (BFCL weights it 30 in its overall, not computed here)",
                        ("multi_turn_base", "multi_turn_miss_func", "multi_turn_miss_param",
                         "multi_turn_long_context"), "mean")
OVERALL_PARTS = ("non_live", "live", "irrelevance")  # BFCL v4's overall, less multi_turn and agentic
# Every category the parts above need: BFCL's overall restricted to single-turn Python is complete with these.
OVERALL_SCOPE = tuple(c for part in OVERALL_PARTS for c in AGGREGATES[part][1])
OVERALL_RULE = ("BFCL v4's overall restricted to single-turn Python: unweighted mean of non_live, live and irrelevance "
                "(BFCL weights them 10/10/10; the leaderboard's total also weights multi_turn 30 and agentic 40, not "
                "scored here)")
PARTIAL_RULE = ("mean of scored parts (not BFCL overall): unweighted mean of those of non_live, live, irrelevance "
                "that were scored, some from only part of their categories")
# The names the summary of summaries can have (a run has one of them).
SUMMARY_NAMES = ("overall", "partial_mean")


def summary_name(aggregates: dict[str, Any]) -> str | None:
    """Which of SUMMARY_NAMES `aggregates` (Aggregates or their dicts, or lists by round) holds."""
    return next((name for name in SUMMARY_NAMES if name in aggregates), None)


@dataclass
class ItemResult:
    id: str
    category: str
    valid: bool
    error_type: str | None
    error: str | None
    bfcl_error_type: str | None = None
    calls: list[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "category": self.category, "valid": self.valid, "error_type": self.error_type,
                "error": self.error, "bfcl_error_type": self.bfcl_error_type, "calls": self.calls}


@dataclass
class CategoryScore:
    category: str
    correct: int = 0
    total: int = 0
    missing_predictions: int = 0
    unscored: int = 0
    errors: Counter = field(default_factory=Counter)

    @property
    def accuracy(self) -> float | None:
        return self.correct / self.total if self.total else None

    def to_dict(self) -> dict[str, Any]:
        return {"accuracy": self.accuracy, "correct": self.correct, "total": self.total,
                "missing_predictions": self.missing_predictions, "unscored": self.unscored,
                "errors": dict(sorted(self.errors.items()))}


@dataclass
class EvalResult:
    items: list[ItemResult]
    categories: dict[str, CategoryScore]
    aggregates: dict[str, Aggregate]
    missing_ids: list[str]
    unknown_ids: list[str]
    unscored_ids: list[str]
    benchmark: str = "bfcl"
    examples: list[Any] = field(default_factory=list, repr=False)  # what was scored (for a benchmark's summary)
    extra: dict[str, Any] = field(default_factory=dict)  # blocks reported beside the score (e.g. "lenient")

    def error_counts(self) -> Counter:
        total: Counter = Counter()
        for score in self.categories.values():
            total.update(score.errors)
        return total

    def metrics(self) -> dict[str, Any]:
        """What metrics.json holds."""
        return {
            "benchmark": self.benchmark,
            "categories": {c: s.to_dict() for c, s in self.categories.items()},
            "aggregates": {name: agg.to_dict() for name, agg in self.aggregates.items()},
            "counts": {
                "examples": len(self.items),
                "scored": sum(s.total for s in self.categories.values()),
                "correct": sum(s.correct for s in self.categories.values()),
                "missing_predictions": len(self.missing_ids),
                "unknown_prediction_ids": len(self.unknown_ids),
                "unscored": len(self.unscored_ids),
            },
            "error_types": dict(sorted(self.error_counts().items())),
            "missing_prediction_ids": self.missing_ids,
            "unknown_prediction_ids": self.unknown_ids,
            "unscored_ids": self.unscored_ids,
            **({"summary": own} if (own := self.benchmark_summary()) is not None else {}),
            **({"bfcl_leaderboard": self.bfcl_leaderboard()} if self.benchmark == "bfcl" else {}),
            **self.extra,
        }

    def bfcl_leaderboard(self) -> dict[str, Any]:
        """BFCL's V4 and V3 leaderboard scores over the scored categories (evaluation/bfcl_scores.py)."""
        from toolace_r.evaluation.bfcl_scores import leaderboard

        return leaderboard({c: (s.correct, s.total) for c, s in self.categories.items()})

    def benchmark_summary(self) -> dict[str, Any] | None:
        """The benchmark's own aggregate (ACEBench's summary, API-Bank's levels); None for BFCL."""
        from toolace_r.evaluation.benchmarks import summary

        scored = [i for i in self.items if i.error_type != "unscored"]
        return summary(self.benchmark, scored, self.examples)


# --- predictions ---------------------------------------------------------------------------------

def load_predictions(path: str | Path) -> dict[str, Any]:
    """Read a predictions file: JSON lines `{"id": ..., "result": ...}` (BFCL's result format; other
    fields are ignored). `result` is the model's raw text, or already-decoded calls as a list of
    `{"name", "arguments"}` or BFCL's `{function: arguments}` objects (arguments may be a JSON
    string). Raises ValueError naming the file, line and field for anything else."""
    from toolace_r.data.records import json_lines

    out: dict[str, Any] = {}
    first_line: dict[str, str] = {}
    for item in json_lines(path):  # bounded lines, each decoded and parsed on its own
        if isinstance(item, Exception):
            raise item
        where, record = item
        if not isinstance(record, dict):
            raise ValueError(f"{where}: expected an object {{\"id\": ..., \"result\": ...}}, got "
                             f"{type(record).__name__}")
        if "id" not in record or not isinstance(record["id"], (str, int)):
            raise ValueError(f"{where}: field 'id': expected a string")
        if "result" not in record:
            raise ValueError(f"{where}: field 'result': missing (expected the model's text or a list of calls)")
        key = str(record["id"])
        if key in out:
            raise ValueError(f"{where}: id {key!r} already given on line {first_line[key]}")
        out[key] = _prediction(record["result"], where)
        first_line[key] = where.rsplit(" line ", 1)[-1]
    return out


def _prediction(result: Any, where: str) -> Any:
    if isinstance(result, str):
        return result
    if not isinstance(result, list):
        raise ValueError(f"{where}: field 'result': expected a string or a list of calls, got {type(result).__name__}")
    if result and all(isinstance(turn, list) for turn in result):
        return _multi_turn_prediction(result, where)
    calls = []
    for i, item in enumerate(result):
        call = _call(item, f"{where}: field 'result'[{i}]")
        if isinstance(call, ParseResult):  # arguments that are not JSON: the model's fault, scored as such
            return call
        calls.append(call)
    return calls


def _multi_turn_prediction(result: list[list[Any]], where: str) -> list[list[str]]:
    """BFCL's multi-turn result: the model's text of each step, one list per turn (scored by executing
    the decoded steps, evaluation/multi_turn_loop.as_turns)."""
    for t, turn in enumerate(result):
        for s, step in enumerate(turn):
            if not isinstance(step, str):
                raise ValueError(f"{where}: field 'result'[{t}][{s}]: expected the model's text of the step, "
                                 f"got {type(step).__name__} (a multi-turn result is a list of turns, each a "
                                 "list of step texts)")
    return [list(turn) for turn in result]


_CALL_KEYS = {"name", "arguments", "parameters"}


def _call(item: Any, where: str) -> ToolCall | ParseResult:
    if isinstance(item, dict) and isinstance(item.get("name"), str) and set(item) <= _CALL_KEYS:
        name, args = item["name"], item.get("arguments", item.get("parameters", {}))
    elif isinstance(item, dict) and len(item) == 1:
        ((name, args),) = item.items()
    else:
        raise ValueError(f"{where}: expected {{\"name\": ..., \"arguments\": {{...}}}} or {{function: {{...}}}}, "
                         f"got {dumps(item)[:80]}")
    if isinstance(args, str):  # OpenAI style: arguments as a JSON string
        try:
            args = json.loads(args) if args.strip() else {}
        except json.JSONDecodeError as exc:
            return ParseResult(format="json", error=f"arguments of {name!r} are not valid JSON: {exc.msg}")
        except (ValueError, RecursionError):
            return ParseResult(format="json", error=f"arguments of {name!r} are not readable JSON (too large "
                                                    "a number or too deep)")
    if not isinstance(args, dict):
        return ParseResult(format="json", error=f"arguments of {name!r} are {type(args).__name__}, not an object")
    # The same bound as for parsed answers: the checker never recurses past it.
    if json_problem(args, MAX_DEPTH, only_depth=True):
        return ParseResult(format="json", error=f"arguments of {name!r} nested deeper than {MAX_DEPTH} levels")
    return ToolCall(name, args)



# --- scoring ------------------------------------------------------------------------------------

def evaluate_predictions(examples: Iterable[Any], predictions: dict[str, Any], fmt: str | None = None) -> EvalResult:
    """Score every example with its prediction (text, ToolCall list or ParseResult) by its benchmark's
    checker (`benchmarks.score`); fmt: how text predictions decode (None: the benchmark's own decoder,
    BFCL's prompt-mode one for BFCL; "hermes", "json": native calls)."""
    items: list[ItemResult] = []
    categories: dict[str, CategoryScore] = {}
    missing, unscored, seen = [], [], set()
    examples_seen: list[Any] = []
    for ex in examples:
        seen.add(ex.id)
        examples_seen.append(ex)
        score = categories.setdefault(ex.category, CategoryScore(ex.category))
        if ex.id not in predictions:
            missing.append(ex.id)
            score.total += 1
            score.missing_predictions += 1
            score.errors["missing_prediction"] += 1
            items.append(ItemResult(ex.id, ex.category, False, "missing_prediction", "no prediction for this id"))
            continue
        verdict = score_answer(ex, predictions[ex.id], fmt)
        calls = None if verdict.calls is None else [plain(c.to_dict()) for c in verdict.calls]
        items.append(ItemResult(ex.id, ex.category, verdict.valid, verdict.error_type, verdict.error,
                                verdict.bfcl_error_type, calls))
        if verdict.error_type == "unscored":
            unscored.append(ex.id)
            score.unscored += 1
            continue
        score.total += 1
        if verdict.valid:
            score.correct += 1
        else:
            score.errors[verdict.error_type or "unknown"] += 1
    unknown = [key for key in predictions if key not in seen]
    benchmark = _benchmark(examples_seen)
    # BFCL's summary scores mean nothing over another benchmark's categories: that one has its own
    aggregates = aggregate(categories) if benchmark == "bfcl" else {}
    return EvalResult(items, categories, aggregates, missing, unknown, unscored, benchmark, examples_seen)


def _benchmark(examples: list[Any]) -> str:
    from toolace_r.evaluation.benchmarks import benchmark_of

    names = {benchmark_of(ex) for ex in examples}
    if len(names) > 1:
        raise ValueError(f"the examples come from several benchmarks ({', '.join(sorted(names))}); score each alone")
    return names.pop() if names else "bfcl"


def aggregate(categories: dict[str, CategoryScore]) -> dict[str, Aggregate]:
    """BFCL's summary scores over the categories present, plus `overall` when the single-turn Python scope is
    complete, else `partial_mean` (see the module docstring)."""
    out: dict[str, Aggregate] = {}
    for name, (rule, parts, how) in AGGREGATES.items():
        present = [c for c in parts if c in categories and categories[c].total]
        missing = [c for c in parts if c not in present]
        if name == "non_live":  # its simple part is scored when any of simple's languages is
            langs = [c for c in _SIMPLE if c in categories and categories[c].total]
            present = [*langs, *[c for c in present if c != "simple_python"]]
            missing = [c for c in parts if c not in present and not (c == "simple_python" and langs)]
        if not present:
            out[name] = Aggregate(name, rule, None, [], missing)
            continue
        if how == "weighted":
            acc = sum(categories[c].correct for c in present) / sum(categories[c].total for c in present)
        elif name == "non_live":
            acc = _non_live(categories, present)
        else:
            acc = sum(categories[c].accuracy for c in present) / len(present)  # type: ignore[misc]
        out[name] = Aggregate(name, rule, acc, present, missing)
    rule, parts, _ = MULTI_TURN_AGGREGATE
    present = [c for c in parts if c in categories and categories[c].total]
    if present:  # only in runs that scored multi-turn items: single-turn outputs stay as they were
        acc = sum(categories[c].accuracy for c in present) / len(present)  # type: ignore[misc]
        out["multi_turn"] = Aggregate("multi_turn", rule, acc, present, [c for c in parts if c not in present])
    available = [p for p in OVERALL_PARTS if out[p].accuracy is not None]
    mean = (sum(out[p].accuracy for p in available) / len(available)) if available else None  # type: ignore[misc]
    lacking = [c for c in OVERALL_SCOPE if not (c in categories and categories[c].total)]
    if lacking:
        out["partial_mean"] = Aggregate("partial_mean", PARTIAL_RULE, mean, available, lacking)
    else:
        out["overall"] = Aggregate("overall", OVERALL_RULE, mean, available, [])
    return out


def _non_live(categories: dict[str, CategoryScore], present: list[str]) -> float:
    """BFCL's non-live mean, its simple part the mean of the simple_* languages scored."""
    simple = [categories[c].accuracy for c in _SIMPLE if c in categories and categories[c].total]
    parts = [categories[c].accuracy for c in present if c not in _SIMPLE]
    if simple:
        parts.insert(0, sum(simple) / len(simple))  # type: ignore[arg-type]
    return sum(parts) / len(parts)  # type: ignore[arg-type]


_SIMPLE = ("simple_python", "simple_java", "simple_javascript")


# --- writing ------------------------------------------------------------------------------------

def output_files(result: EvalResult, out_dir: str | Path) -> dict[str, tuple[Path, str]]:
    """The texts of metrics.json, results.jsonl and report.md, by key, with their paths."""
    from toolace_r.evaluation.report import render_markdown
    from toolace_r.files import dumps, dumps_lines

    out = Path(out_dir)
    return {"metrics": (out / "metrics.json", dumps(result.metrics(), indent=2) + "\n"),
            "results": (out / "results.jsonl", dumps_lines(item.to_dict() for item in result.items)),
            "report": (out / "report.md", render_markdown(result))}


def write_outputs(result: EvalResult, out_dir: str | Path) -> dict[str, Path]:
    """metrics.json, results.jsonl and report.md in `out_dir`, written as one unit (`files.write_files`):
    a failure while producing any of them leaves the previous files of `out_dir` as they were."""
    from toolace_r.files import write_files

    files = output_files(result, out_dir)
    write_files(dict(files.values()))
    return {key: path for key, (path, _) in files.items()}
