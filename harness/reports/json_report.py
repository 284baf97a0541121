"""The JSON results file: every probe with its attempts, per-step convergence, meta; read back.

Why versioned: `compare` reads files written by other runs (before and after a CNI migration,
possibly by another version of netpol-proof), so the format names itself and `read` refuses a
file it does not understand instead of guessing.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, fields
from functools import cache
from pathlib import Path
from typing import Any

from harness.errors import HarnessError
from harness.results import ScenarioResult, StepResult

#: v2: verdict "unstable", outcome "scenario error" with `scenario_error`, and the observation
#: window (`min_rounds`, `min_window`) in meta. v3: a fault step's timeline (`steps[].fault`:
#: actions, watched cells with every attempt's `at` and `expected`, windows, sentences).
#: v4: what the CNI is declared to do and whether the canary contradicts it
#: (`scenarios[].declared_enforcing`, `canary_contradiction`; meta.canary[cni].declared_enforcing,
#: `contradiction`). v5: a watched cell's `max_gap` (the longest time between its attempts with
#: a verdict), status "not observed while down", and `must`/`requirement` (what the scenario
#: requires of it and what became of it). v1-v4 files are still read (they lack those only).
FORMAT = "netpol-proof/results/v5"
READS = (FORMAT, "netpol-proof/results/v4", "netpol-proof/results/v3", "netpol-proof/results/v2",
         "netpol-proof/results/v1")


class ResultsFileError(HarnessError):
    """A results file cannot be read: missing, not JSON, another format, or malformed."""


@cache
def _names(cls: Any) -> tuple[str, ...]:
    return tuple(f.name for f in fields(cls))


def _shallow(obj: Any) -> dict[str, Any]:
    """The dataclass's fields as a dict, one level deep (works with or without slots)."""
    return {name: getattr(obj, name) for name in _names(type(obj))}  # type: ignore[arg-type]


def _step(step: StepResult | None) -> dict[str, Any] | None:
    if step is None:
        return None
    cells = [{**_shallow(c), "attempts": [_shallow(a) for a in c.attempts]} for c in step.cells]
    # a fault step's timeline is small (a few watched cells): asdict's deep copy costs nothing
    fault = asdict(step.fault) if step.fault is not None else None
    return {**_shallow(step), "cells": cells, "fault": fault}


def _plain(result: ScenarioResult) -> dict[str, Any]:
    """One result as plain dicts, like ScenarioResult.to_dict but without asdict's deep copies.

    Why: asdict deep-copies every leaf; on a conformance run (100k+ cells, 3 attempts each) that
    was most of the time spent writing the file (13 s of 14 s).
    """
    return {**_shallow(result), "baseline": _step(result.baseline),
            "steps": [_step(s) for s in result.steps]}


def to_document(results: list[ScenarioResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: format, meta, and each scenario with its steps, cells and attempts."""
    scenarios = []
    for r in results:
        d = _plain(r)
        d["verdict_counts"] = r.verdict_counts()
        d["convergence"] = [{"step": s.index, "title": s.title, "converged": s.converged,
                             "seconds": s.converge_seconds, "rounds": s.rounds}
                            for s in r.steps]
        scenarios.append(d)
    return {"format": FORMAT, "meta": dict(meta), "scenarios": scenarios}


def write(results: list[ScenarioResult], path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write the results file atomically (a crash mid-write never leaves half a file)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    # Compact: a full conformance run is ~100k cells; indentation would double the file.
    text = json.dumps(to_document(results, meta), separators=(",", ":"), default=str)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text + "\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


# Keys `write` adds for readers other than `read`; dropped before rebuilding the dataclasses.
_DERIVED = ("verdict_counts", "convergence")


def read(path: str | os.PathLike) -> tuple[dict[str, Any], list[ScenarioResult]]:
    """Read a results file written by `write`: (meta, results)."""
    _, meta, results = read_versioned(path)
    return meta, results


def read_versioned(path: str | os.PathLike) -> tuple[str, dict[str, Any], list[ScenarioResult]]:
    """Read a results file written by `write`: (its format, meta, results). `compare` needs the
    format: two files written by different versions were judged by different rules."""
    p = Path(path)
    try:
        doc = json.loads(p.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ResultsFileError(f"{p}: no such results file (write one with --netpol-json {p})"
                               ) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ResultsFileError(f"{p}: not a readable JSON results file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") not in READS:
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        raise ResultsFileError(f"{p}: format is {found!r}, expected {FORMAT!r}; "
                               f"was it written by netpol-proof --netpol-json?")
    results = []
    for i, data in enumerate(doc.get("scenarios", [])):
        try:
            clean = {k: v for k, v in data.items() if k not in _DERIVED}
            results.append(ScenarioResult.from_dict(clean))
        except (TypeError, AttributeError, KeyError) as exc:
            name = data.get("scenario", "?") if isinstance(data, dict) else "?"
            raise ResultsFileError(f"{p}: scenarios[{i}] ({name}) is malformed: {exc}") from exc
    return str(doc["format"]), dict(doc.get("meta") or {}), results
