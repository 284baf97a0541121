"""The end of a run, shared by the pytest plugin and `python -m harness run`: the run's metadata
(what makes it reproducible) and every report file the settings ask for.
"""

from __future__ import annotations

import os
import platform
from importlib.metadata import version

from harness.reports import github, html_report, json_report
from harness.results import ScenarioResult
from harness.settings import Settings


def run_meta(settings: Settings, canaries: dict, started: str) -> dict:
    """What makes a run reproducible, for the report files: settings, canary findings, versions."""
    try:
        ours = version("netpol-proof")
    except Exception:  # noqa: BLE001 - running from a source tree that is not installed
        ours = "unknown"
    return {"backend": settings.backend, "cnis": list(settings.cnis), "run_id": settings.run_id,
            "probe_timeout": settings.probe_timeout, "converge_timeout": settings.converge_timeout,
            "min_rounds": settings.min_rounds, "min_window": settings.min_window,
            "started": started, "canary": dict(canaries),
            "versions": {"netpol-proof": ours, "python": platform.python_version(),
                         "kernel": platform.release()}}


def write_reports(results: list[ScenarioResult], settings: Settings, meta: dict) -> list[str]:
    """JSON, HTML and the GitHub step summary, as configured; returns what was written."""
    written = []
    if settings.json_path:
        json_report.write(results, settings.json_path, meta)
        written.append(settings.json_path)
    if settings.html_path:
        html_report.write(results, settings.html_path, meta)
        written.append(settings.html_path)
    if os.environ.get("GITHUB_STEP_SUMMARY"):
        if github.write_step_summary(results, meta):
            written.append(os.environ["GITHUB_STEP_SUMMARY"])
    return written
