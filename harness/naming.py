"""Run ids, prefixes and ownership labels: the single answer to "is this ours?".

Why one module: cleanup must remove everything a crashed run left and nothing else. Every name
the harness gives (network namespaces, veths, kind clusters, Kubernetes namespaces) and every
label it sets comes from here, and cleanup recognises leftovers only through `is_ours`.
"""

from __future__ import annotations

import os
import re
import secrets

PROJECT = "netpol-proof"
#: Short prefix for kernel objects: interface names are limited to 15 characters.
SHORT = "np"
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
RUN_LABEL = "netpol-proof/run"
CLUSTER_PREFIX = f"{PROJECT}-"

_RUN_ID_RE = re.compile(r"^[a-z0-9]{4,8}$")


def new_run_id() -> str:
    """Six lowercase hex-ish characters: short enough for interface names, unique enough."""
    return secrets.token_hex(3)


def valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID_RE.match(run_id))


def local_prefix(run_id: str) -> str:
    """Prefix of every kernel object of one local run, e.g. `np-1a2b3c-`."""
    if not valid_run_id(run_id):
        raise ValueError(f"invalid run id {run_id!r}: 4-8 characters of [a-z0-9]")
    return f"{SHORT}-{run_id}-"


LOCAL_NETNS_RE = re.compile(r"^np-([a-z0-9]{4,8})-")


def run_id_of_netns(name: str) -> str | None:
    """The run id a network namespace name belongs to, or None when it is not ours."""
    m = LOCAL_NETNS_RE.match(name)
    return m.group(1) if m else None


CONTROLPLANE_DIR_RE = re.compile(r"^cp-([a-z0-9]{4,8})$")


def controlplane_dir(run_id: str) -> str:
    """Name of one run's control plane state directory (certs, etcd data, logs, pids): `cp-<run>`."""
    if not valid_run_id(run_id):
        raise ValueError(f"invalid run id {run_id!r}: 4-8 characters of [a-z0-9]")
    return f"cp-{run_id}"


def run_id_of_controlplane_dir(name: str) -> str | None:
    """The run id a control plane state directory belongs to, or None when it is not ours."""
    m = CONTROLPLANE_DIR_RE.match(name)
    return m.group(1) if m else None


def cluster_name(cni: str) -> str:
    """kind cluster name for one CNI, e.g. `netpol-proof-calico`."""
    return f"{CLUSTER_PREFIX}{cni}"


def is_our_cluster(name: str) -> bool:
    return name.startswith(CLUSTER_PREFIX)


def kube_namespace(run_id: str, logical: str) -> str:
    """The real Kubernetes namespace for a scenario's logical namespace on a shared cluster."""
    return f"{SHORT}-{run_id}-{logical}"[:63]


def ownership_labels(run_id: str) -> dict[str, str]:
    return {MANAGED_BY_LABEL: PROJECT, RUN_LABEL: run_id}


def worker_run_id(base: str, worker: str | None) -> str:
    """Each pytest-xdist worker gets its own run id derived from the controller's."""
    if not worker or worker == "master":
        return base
    digits = re.sub(r"\D", "", worker) or "0"
    return (base[:6] + digits)[:8]


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
