"""Shared test helpers: the `live` marker (tests that need root and network namespaces, or the
real components), and the root/tool check for tests that need the real local backend.

`make unit` runs `pytest -m "not live"`: exactly the tests that need neither, none of them
skipped for want of root. A live test says why it cannot run here through its marker
(`live(why)`), and is skipped with that reason when it is collected anyway.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

#: folders whose every test is live (the local backend's own tests)
LIVE_FOLDERS = (Path(__file__).parent / "live",)


def live(why: str | None) -> pytest.MarkDecorator:
    """The `live` marker of a test that needs root and network namespaces (or the real
    components): `why` it cannot run here, None when it can."""
    return pytest.mark.live(why)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Every test of LIVE_FOLDERS is live; a live test that cannot run here is skipped with
    its marker's reason."""
    for item in items:
        if any(folder in item.path.parents for folder in LIVE_FOLDERS):
            item.add_marker(pytest.mark.live(None))
        for mark in item.iter_markers("live"):
            if mark.args and mark.args[0]:
                item.add_marker(pytest.mark.skip(reason=str(mark.args[0])))
                break


def local_backend_unavailable() -> str | None:
    """Why the local backend cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the local backend needs root (network namespaces, nftables)"
    for tool in ("ip", "nft", "curl", "nslookup"):
        if shutil.which(tool) is None:
            return f"the local backend needs `{tool}` installed"
    return None


needs_local = live(local_backend_unavailable())


def checkout_unreadable_by_others() -> str | None:
    """Why tests that drop to an unprivileged user (uid 65534) cannot import the checkout, or
    None. A clone inside a 0700 directory (e.g. `mktemp -d`) is invisible to that user."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    for d in [*reversed(root.parents), root]:
        if not os.stat(d).st_mode & 0o001:
            return f"{d} is not searchable by other users (mode {oct(os.stat(d).st_mode & 0o777)})"
    if not os.stat(root / "harness").st_mode & 0o004:
        return f"{root / 'harness'} is not readable by other users"
    return None


needs_world_readable_checkout = pytest.mark.skipif(
    checkout_unreadable_by_others() is not None,
    reason=f"the unprivileged user cannot read this checkout: {checkout_unreadable_by_others()}")


def agnhost_binary() -> str | None:
    """An agnhost binary to run the kube backends' servers and clients with on this machine:
    $NETPOL_TEST_AGNHOST, else the kubernetes component's build in the cache
    (`~/.cache/netpol-proof/components/kubernetes-*/bin/agnhost`, the newest); None if neither."""
    import glob

    given = os.environ.get("NETPOL_TEST_AGNHOST")
    if given:
        return given if os.access(given, os.X_OK) else None
    built = sorted(glob.glob(os.path.expanduser(
        "~/.cache/netpol-proof/components/kubernetes-*/bin/agnhost")), key=os.path.getmtime)
    return built[-1] if built else None
