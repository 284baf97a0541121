"""Fault steps on a real control plane: kube-apiserver stopped and started again on the same
port (every kubeconfig and the relay name it), recorded so that down() and cleanup find the new
process. Skipped with the ComponentMissing reason without the binaries."""

from __future__ import annotations

import json

import pytest

from harness.backends.real.controlplane import ControlPlane
from harness.backends.real.controlplane.plane import ControlPlaneError, _get
from tests.controlplane.conftest import needs_plane
from tests.controlplane.test_plane_lifecycle import alive

pytestmark = needs_plane


def test_the_api_server_stops_and_starts_again_on_its_port():
    plane = ControlPlane(controller_manager=False)
    with plane:
        server = plane.server

        def recorded() -> list[str]:
            return alive(json.loads((plane.dir / "plane.json").read_text())["processes"])

        assert _get(f"{server}/readyz", plane._tls)[0] == 200
        plane.stop_apiserver()
        assert not plane.apiserver_running
        assert _get(f"{server}/readyz", plane._tls)[0] is None      # nothing listens
        assert [r.split(" ")[0] for r in recorded()] == ["etcd"]
        with pytest.raises(ControlPlaneError, match="it is not running"):
            plane.stop_apiserver()
        plane.start_apiserver()
        assert plane.server == server and plane.apiserver_running
        assert _get(f"{server}/readyz", plane._tls)[0] == 200
        assert sorted(r.split(" ")[0] for r in recorded()) == ["etcd", "kube-apiserver"]
        plane.start_apiserver()                                      # running: nothing to do
        records = json.loads((plane.dir / "plane.json").read_text())["processes"]
    assert alive(records) == []
