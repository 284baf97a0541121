"""Reading scenario files: find them, load them strictly, and turn them into Scenario / Step data.

The package only reads files (and validates them against the Kubernetes API schema); what the
oracle says about a scenario (expected cells, disagreements, `validate_file`) is in
harness.expected. Modules: load.py (finding, loading, steps), types.py (Scenario, Step, Assume),
lines.py (line-keeping YAML), topology.py (the `model:` section), expectations.py (`expect:` and
`probes:`), policies.py (`apply:`), placeholders.py ({{podIP x/a}} and friends), schema.py (the
JSON Schema for editors).
"""

from harness.scenario.load import find_scenarios, is_scenario_file, load_scenario
from harness.scenario.placeholders import render_manifest
from harness.scenario.types import (Assume, MatrixExpectation, PolicyDoc, ProbeExpectation,
                                    Scenario, Step)

__all__ = ["Scenario", "Step", "PolicyDoc", "MatrixExpectation", "ProbeExpectation", "Assume",
           "load_scenario", "find_scenarios", "is_scenario_file", "render_manifest"]
