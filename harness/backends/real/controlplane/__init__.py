"""A real Kubernetes control plane per run (etcd + kube-apiserver + kube-controller-manager on
loopback) and the relay that lets harness network namespaces reach it; see plane.py."""

from harness.backends.real.controlplane.plane import ControlPlane, ControlPlaneError
from harness.backends.real.controlplane.relay import Relay, RelayError

__all__ = ["ControlPlane", "ControlPlaneError", "Relay", "RelayError"]
