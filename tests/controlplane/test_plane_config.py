"""Bad control plane settings are refused with the field and the reason, before any process
starts (no binaries needed)."""

from __future__ import annotations

import pytest

from harness.backends.real.controlplane import ControlPlane, ControlPlaneError


@pytest.mark.parametrize("cidr", ["10.96.0.0/33", "not-a-cidr", "10.96.0.0/30"])
def test_a_bad_service_cidr_is_refused_before_anything_starts(cidr):
    with pytest.raises(ControlPlaneError, match="service_cidr"):
        ControlPlane(service_cidr=cidr)
