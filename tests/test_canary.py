"""The enforcement canary on the real local backend: enforcing, open, and a broken server.

Why real: the canary is the harness's answer to "does this cluster enforce at all?"; it must
be decided by packets, so these tests send real packets between harness-made namespaces.
"""

from __future__ import annotations

import pytest

from harness.backends.local import LocalBackend
from harness.canary import BANNER, NAMESPACE, run_canary
from harness.settings import build
from tests.conftest import needs_local

pytestmark = needs_local


@pytest.fixture
def make_backend():
    made = []

    def make(profile: str, cls=LocalBackend):
        settings = build({"cnis": profile}, env={})
        backend = cls(profile=profile, run_id=settings.run_id, probe_timeout=settings.probe_timeout)
        backend.up()
        made.append(backend)
        return backend, settings

    yield make
    for b in made:
        b.down()


def test_canary_says_enforcing_on_the_enforcing_profile(make_backend):
    backend, settings = make_backend("enforcing")
    result = run_canary(backend, settings)
    assert result.enforcing is True, result.detail
    assert "timeout" in result.detail and "loopback" in result.detail
    assert backend.policy_count() == 0  # the canary's topology and policy are gone


def test_canary_says_not_enforcing_on_the_open_profile(make_backend):
    backend, settings = make_backend("open")
    result = run_canary(backend, settings)
    assert result.enforcing is False, result.detail
    assert BANNER in result.detail
    assert "still connected" in result.detail
    assert result.as_meta()["enforcing"] is False


class LocalBackendWithDeadServer(LocalBackend):
    """The real local backend, whose canary pod `a` loses its server right after deploy."""

    def deploy(self, model):
        addresses = super().deploy(model)
        proc = self._procs[f"{NAMESPACE}/a"]
        proc.terminate()
        proc.wait(timeout=5)
        return addresses


def test_canary_with_a_dead_server_cannot_tell_and_says_why(make_backend):
    backend, settings = make_backend("enforcing", LocalBackendWithDeadServer)
    settings = build({"cnis": "enforcing", "converge_timeout": 1.5, "min_window": 1}, env={})
    result = run_canary(backend, settings)
    assert result.enforcing is None
    assert "baseline" in result.detail and "refused" in result.detail
