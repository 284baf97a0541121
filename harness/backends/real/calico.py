"""What Felix needs in a Kubernetes datastore before it programs anything: Calico's CRDs, the
ClusterInformation `default` with datastoreReady true, and the three tiers.

Why the harness writes them: on a real cluster the Calico operator (or calico-node's startup and
kube-controllers) installs the CRDs and initialises the datastore; here only Felix runs, so the
harness does what libcalico-go's `EnsureInitialized` does (the ClusterInformation and the
`default`, `adminnetworkpolicy` and `baselineadminnetworkpolicy` tiers, with the orders and
default actions of the pinned version) and applies the CRDs shipped in the pinned Calico module
(libcalico-go/config/crd in the Go module cache, where the Felix build downloaded it). Felix
waits for `datastoreReady` and exits if it later flips to false.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from harness.components import FAMILIES, ComponentMissing
from harness.errors import BackendError
from harness.shell import run
from harness.waits import wait_for

GROUP, VERSION = "crd.projectcalico.org", "v1"
#: (name, order, defaultAction) as the pinned Calico's EnsureInitialized creates them
TIERS = (("adminnetworkpolicy", 1_000, "Pass"), ("default", 1_000_000, "Deny"),
         ("baselineadminnetworkpolicy", 10_000_000, "Pass"))
CALICO_MODULE = "github.com/projectcalico/calico"


def crd_dir() -> Path:
    """libcalico-go/config/crd of the Calico module version the Felix build pins."""
    fam = FAMILIES.get("felix")
    if fam is None:
        raise ComponentMissing("calico: no Felix component is defined in harness.components")
    version = getattr(fam, "require", "") or fam.version
    res = run(["go", "env", "GOMODCACHE"], timeout=60, doing="asking Go for its module cache")
    cache = res.stdout.strip() or os.path.expanduser("~/go/pkg/mod")
    d = Path(cache) / f"{CALICO_MODULE}@{version}" / "libcalico-go" / "config" / "crd"
    if not d.is_dir():
        raise ComponentMissing(f"calico: Calico's CRDs are not in the Go module cache ({d}); "
                               f"`go mod download {CALICO_MODULE}@{version}` or rebuild Felix")
    return d


def install(api, calico_version: str, timeout: float = 60.0) -> int:
    """Create every CRD of crd_dir(), wait until each is Established, then initialise the
    datastore. Returns the number of CRDs."""
    ext = api.client.ApiextensionsV1Api(api.api_client)
    files = sorted(crd_dir().glob("*.yaml"))
    names = []
    for f in files:
        for doc in yaml.safe_load_all(f.read_text()):
            if not doc:
                continue
            try:
                ext.create_custom_resource_definition(doc)
            except api.client.ApiException as exc:
                if exc.status != 409:
                    raise BackendError(f"creating Calico CRD {f.name}",
                                       f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") \
                        from None
            names.append(doc["metadata"]["name"])

    def established() -> list[str]:
        missing = []
        for n in names:
            crd = api._dict(ext.read_custom_resource_definition(n))
            conds = {c["type"]: c["status"] for c in (crd.get("status") or {}).get("conditions") or []}
            if conds.get("Established") != "True":
                missing.append(n)
        return missing

    wait_for(established, lambda m: not m, timeout, "Calico CRDs Established", 0.3,
             describe=lambda m: f"not yet: {', '.join(m)}")
    initialise(api, calico_version)
    return len(names)


def initialise(api, calico_version: str) -> None:
    """The ClusterInformation `default` (datastoreReady) and the tiers."""
    objs: list[dict[str, Any]] = [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "ClusterInformation",
             "metadata": {"name": "default"},
             "spec": {"datastoreReady": True, "clusterType": "k8s,kdd",
                      "calicoVersion": calico_version}}]
    objs += [{"apiVersion": f"{GROUP}/{VERSION}", "kind": "Tier", "metadata": {"name": name},
              "spec": {"order": order, "defaultAction": action}}
             for name, order, action in TIERS]
    for obj in objs:
        plural = "clusterinformations" if obj["kind"] == "ClusterInformation" else "tiers"
        try:
            api.custom.create_cluster_custom_object(GROUP, VERSION, plural, obj)
        except api.client.ApiException as exc:
            if exc.status != 409:
                raise BackendError(f"creating Calico {obj['kind']} {obj['metadata']['name']}",
                                   f"{exc.status} {exc.reason}: {str(exc.body)[:300]}") from None
