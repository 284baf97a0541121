"""Shared test helpers: the root/tool check for tests that need the real local backend."""

from __future__ import annotations

import os
import shutil

import pytest


def local_backend_unavailable() -> str | None:
    """Why the local backend cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the local backend needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "curl", "nslookup"):
        if shutil.which(tool) is None:
            return f"the local backend needs `{tool}` installed"
    return None


needs_local = pytest.mark.skipif(local_backend_unavailable() is not None,
                                 reason=local_backend_unavailable() or "")
