"""The registry of backends: `get_backend(name, profile, settings)`.

Backends are imported lazily so that `python -m harness check` never needs the kubernetes
client or root.
"""

from __future__ import annotations

from typing import Any

BACKENDS = ("local", "kind", "kubeconfig")


def get_backend(name: str, profile: str, **options: Any):
    """Build the backend `name` for one CNI/profile. Options are backend-specific settings."""
    if name == "local":
        from harness.backends.real.engines import ENGINES
        if profile in ENGINES:   # real engines: a real control plane, pods as namespaces
            from harness.backends.real.backend import RealBackend
            return RealBackend(profile=profile, **options)
        from harness.backends.local import LocalBackend
        return LocalBackend(profile=profile, **options)
    if name == "kind":
        from harness.backends.kind.backend import KindBackend
        return KindBackend(profile=profile, **options)
    if name == "kubeconfig":
        from harness.backends.kubeconfig import KubeconfigBackend
        return KubeconfigBackend(profile=profile, **options)
    raise ValueError(f"unknown backend {name!r}: expected one of {', '.join(BACKENDS)}")
