"""netpol-proof: prove what a Kubernetes cluster actually enforces of NetworkPolicy.

The library works without pytest; the pytest plugin (harness.plugin) and the CLI (harness.cli)
are thin layers over it. The public API is `__all__` below, for example:

    from harness import Session, build_settings, find_scenarios, load_scenario
    session = Session(build_settings({"backend": "local", "cnis": "enforcing"}))
    for path in find_scenarios(["scenarios/"]):
        print(session.run(load_scenario(path), "enforcing").outcome)
    session.teardown()

Why the names are loaded lazily (PEP 562): `python -m harness check` and every submodule import
go through this package, and none of them should pay for (or depend on) the runner and the
backends.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

#: public name -> the module that defines it
_API = {
    "load_scenario": "harness.scenario", "find_scenarios": "harness.scenario",
    "Scenario": "harness.scenario", "expected_cells": "harness.expected",
    "check_scenario": "harness.expected", "run_scenario": "harness.runner",
    "Session": "harness.session", "get_backend": "harness.backends", "Backend": "harness.backends.base",
    "Settings": "harness.settings", "build_settings": "harness.settings",
    "Verdict": "harness.results", "Expectation": "harness.results",
    "ScenarioOutcome": "harness.results", "ScenarioResult": "harness.results",
    "Endpoint": "harness.model", "Model": "harness.model", "Oracle": "harness.oracle",
}
__all__ = sorted(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'harness' has no attribute {name!r}")
    attr = "build" if name == "build_settings" else name
    return getattr(importlib.import_module(_API[name]), attr)


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
