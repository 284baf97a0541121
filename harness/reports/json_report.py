"""The JSON results file: every probe with its attempts, per-step convergence, meta; read back.

Why versioned: `compare` reads files written by other runs (before and after a CNI migration,
possibly by another version of netpol-proof), so the format names itself and `read` refuses a
file it does not understand instead of guessing.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import asdict, dataclass, fields
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
#: requires of it and what became of it). v6: whether the run ended (`meta.complete`: false in
#: the file a run rewrites as it goes, after each scenario, and in one that was stopped;
#: `meta.stopped`: what stopped it, "SIGTERM" or "SIGINT (Ctrl-C)"; `meta.unfinished`: the
#: (scenario, path, cni) it meant to run and has no result for). v1-v5 files are still read
#: (they lack those only; a v1-v5 file says nothing of whether its run ended: see `progress`).
FORMAT = "netpol-proof/results/v6"
READS = (FORMAT, "netpol-proof/results/v5", "netpol-proof/results/v4", "netpol-proof/results/v3",
         "netpol-proof/results/v2", "netpol-proof/results/v1")


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


def _scenario(r: ScenarioResult) -> dict[str, Any]:
    d = _plain(r)
    d["verdict_counts"] = r.verdict_counts()
    d["convergence"] = [{"step": s.index, "title": s.title, "converged": s.converged,
                         "seconds": s.converge_seconds, "rounds": s.rounds}
                        for s in r.steps]
    return d


def to_document(results: list[ScenarioResult], meta: dict[str, Any]) -> dict[str, Any]:
    """The JSON document: format, meta, and each scenario with its steps, cells and attempts."""
    return {"format": FORMAT, "meta": dict(meta), "scenarios": [_scenario(r) for r in results]}


def _dumps(doc: Any) -> str:
    # Compact: a full conformance run is ~100k cells; indentation would double the file.
    return json.dumps(doc, separators=(",", ":"), default=str)


def write(results: list[ScenarioResult], path: str | os.PathLike, meta: dict[str, Any]) -> None:
    """Write the results file atomically (a crash mid-write never leaves half a file)."""
    _replace(Path(path), _dumps(to_document(results, meta)))


class Checkpoints:
    """The results file of a run rewritten as it goes (after each scenario ends), each time
    atomically, so that a run killed at any moment (SIGKILL, a CI job's time limit) leaves the
    last whole file; with what the run meant to run, what finished and what stopped it (v6).

    Why a cache: each rewrite holds every result so far; a result is serialized once, when it
    first appears, so a rewrite costs the file's bytes, not the run's JSON encoding again.
    Thread-safe (scenarios run at once finish in the scheduler's threads). Without a path it
    keeps the progress and writes nothing."""

    def __init__(self, path: str | os.PathLike | None):
        self.path = Path(path) if path else None
        #: (scenario, path, CNI) the run means to run, None when not told (pytest-xdist)
        self.planned: list[tuple[str, str, str]] | None = None
        #: every result as it ends, by (path, CNI)
        self.finished: dict[tuple[str, str], ScenarioResult] = {}
        self.stopped: str | None = None
        self.failed: str | None = None   # the first write that failed
        self._texts: dict[int, tuple[ScenarioResult, str]] = {}
        self._lock = threading.RLock()

    def finish(self, result: ScenarioResult) -> ScenarioResult:
        with self._lock:
            self.finished[(result.path, result.profile)] = result
        return result

    def extra(self, results: list[ScenarioResult]) -> list[ScenarioResult]:
        """The finished results not in `results` (finished in the pool, not yet collected)."""
        with self._lock:
            listed = {id(r) for r in results}
            return [r for r in self.finished.values() if id(r) not in listed]

    def progress(self, results: list[ScenarioResult], ended: bool) -> dict[str, Any]:
        """meta's `complete`, `stopped`, `unfinished` (v6): complete only once the run `ended`
        unstopped with a result for everything it meant to run."""
        done = {(r.path, r.profile) for r in results}
        unfinished = None if self.planned is None else [
            {"scenario": name, "path": path, "cni": cni} for name, path, cni in self.planned
            if (path, cni) not in done]
        stopped = self.stopped or (ENDED_SHORT if ended and unfinished else None)
        return {"complete": ended and stopped is None and unfinished == [],
                "stopped": stopped, "unfinished": unfinished}

    def checkpoint(self, results: list[ScenarioResult], meta: dict[str, Any]) -> str | None:
        """Write the file as partial; the error when it could not, the first time only."""
        try:
            self.write(results, {**meta, **self.progress(results, False)})
        except OSError as exc:
            first, self.failed = self.failed is None, str(exc)
            return f"could not write the partial results file: {exc}" if first else None
        return None

    def write(self, results: list[ScenarioResult], meta: dict[str, Any]) -> None:
        if self.path is None:
            return
        with self._lock:
            parts = []
            for r in results:
                hit = self._texts.get(id(r))
                if hit is None or hit[0] is not r:
                    hit = self._texts[id(r)] = (r, _dumps(_scenario(r)))
                parts.append(hit[1])
            head = _dumps({"format": FORMAT, "meta": dict(meta)})
            _replace(self.path, f'{head[:-1]},"scenarios":[{",".join(parts)}]}}')


def _replace(target: Path, text: str) -> None:
    """Write `text` to `target` through a temporary file in its directory and a rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
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
    meta = dict(doc.get("meta") or {})
    _check_progress(p, meta)
    return str(doc["format"]), meta, results


#: meta.stopped of a run that reached its end with no result for some of what it meant to run
ENDED_SHORT = ("the run ended with no result for some scenarios (a CNI that could not be brought "
               "up, or pytest stopping early)")


@dataclass(frozen=True)
class Progress:
    """Whether the run that wrote a results file reached its end with every scenario it meant
    to run (format v6, meta `complete`, `stopped`, `unfinished`)."""

    #: False: partial (written as the run went, or stopped); None: not recorded (v1-v5 files)
    complete: bool | None
    #: what stopped the run ("SIGTERM", "SIGINT (Ctrl-C)"), None when nothing was recorded
    stopped: str | None = None
    #: the (scenario, CNI) it meant to run and has no result for; None: not known
    unfinished: tuple[tuple[str, str], ...] | None = None

    @property
    def partial(self) -> bool:
        return self.complete is False

    def sentence(self) -> str:
        """Why the file is partial, in one sentence ('' when it is not)."""
        if not self.partial:
            return ""
        why = (self.stopped if self.stopped == ENDED_SHORT else
               f"stopped by {self.stopped}" if self.stopped else
               "no stop recorded: the run was killed (SIGKILL, a CI job's time limit) or is "
               "still running")
        if self.unfinished is None:
            left = "which scenarios had not finished is not recorded"
        else:
            names = [f"{name} [{cni}]" for name, cni in self.unfinished]
            left = (f"{len(names)} scenario(s) had not finished"
                    + (f": {', '.join(names)}" if names else ""))
        return f"partial ({why}); {left}"


def progress(meta: dict[str, Any]) -> Progress:
    """The run's progress as its file's meta records it (read_versioned checked the fields)."""
    unfinished = meta.get("unfinished")
    return Progress(meta.get("complete"), meta.get("stopped"),
                    None if unfinished is None else
                    tuple((u["scenario"], u["cni"]) for u in unfinished))


def _check_progress(p: Path, meta: dict[str, Any]) -> None:
    """ResultsFileError naming the file and the field when the progress fields are malformed."""
    if "complete" in meta and not isinstance(meta["complete"], bool):
        raise ResultsFileError(f"{p}: meta.complete is {meta['complete']!r}, expected true or false")
    if meta.get("stopped") is not None and not isinstance(meta["stopped"], str):
        raise ResultsFileError(f"{p}: meta.stopped is {meta['stopped']!r}, expected a string "
                               f"(what stopped the run) or null")
    unfinished = meta.get("unfinished")
    if unfinished is None:
        return
    if not isinstance(unfinished, list):
        raise ResultsFileError(f"{p}: meta.unfinished is {unfinished!r}, expected a list")
    for i, u in enumerate(unfinished):
        if not (isinstance(u, dict) and isinstance(u.get("scenario"), str)
                and isinstance(u.get("cni"), str)):
            raise ResultsFileError(f"{p}: meta.unfinished[{i}] is {u!r}, expected "
                                   f"{{\"scenario\": ..., \"path\": ..., \"cni\": ...}}")
