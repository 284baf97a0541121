"""examples/test_python_api.py runs green on the enforcing profile and shows the false
security on `open` (its block assertion fails there): the fixtures really probe."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import needs_local

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "test_python_api.py"

pytestmark = needs_local


@pytest.fixture
def example(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makeini("[pytest]\naddopts = -p no:cacheprovider -p no:randomly --strict-markers\n")
    (pytester.path / "test_python_api.py").write_text(EXAMPLE.read_text())
    return pytester


def test_example_passes_on_the_enforcing_profile(example):
    result = example.runpytest("test_python_api.py", "--cni", "enforcing")
    result.assert_outcomes(passed=3)


def test_example_block_assertion_fails_on_the_open_profile(example):
    result = example.runpytest("test_python_api.py", "--cni", "open")
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*test_frontend_reaches_backend_and_nothing_else_does*"])
    assert "Probe(outcome=<Outcome.CONNECTED" in result.stdout.str()

