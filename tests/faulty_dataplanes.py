"""Dataplanes that do the wrong thing on purpose: the real local backend (network namespaces,
nftables, real servers) with one deliberate fault each, so that tests can show how a wrong CNI
is reported. Not fakes: every packet is real, only the rules programmed are wrong.
"""

from __future__ import annotations

import copy
import dataclasses
import os
import sys
from typing import Mapping

from harness.backends.local import LocalBackend
from harness.shell import spawn


class PoliciesInTheWrongNamespace(LocalBackend):
    """Programs every NetworkPolicy of namespace x as if it were in namespace y (and deletes it
    from there): x stays open (not enforced), y is isolated instead (over-blocked)."""

    moves = {"x": "y"}

    def _moved(self, manifest: Mapping) -> dict:
        out = copy.deepcopy(dict(manifest))
        meta = out.setdefault("metadata", {})
        meta["namespace"] = self.moves.get(meta.get("namespace"), meta.get("namespace"))
        return out

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(self._moved(manifest))

    def delete_policy(self, namespace: str, name: str, kind: str = "NetworkPolicy") -> None:
        super().delete_policy(self.moves.get(namespace, namespace), name, kind)


class ReportsAnotherPodCidr(LocalBackend):
    """Reports a pod CIDR that does not hold its pods (as the kube backends did when they
    hard-coded 10.244.0.0/16 on a cluster with other ranges)."""

    pod_cidr = "10.99.0.0/16"

    def deploy(self, model):
        return dataclasses.replace(super().deploy(model), pod_cidr=self.pod_cidr)


class BreaksOnLabels(LocalBackend):
    """A backend with a bug: changing labels raises an error that is not a HarnessError."""

    def set_labels(self, namespace_labels, pod_labels) -> None:
        raise TypeError("set_labels got an unexpected mapping (a bug on purpose)")


class DnsWithWrongRecords(LocalBackend):
    """The cluster DNS answers from wrong records: `missing` names are NXDOMAIN, `moved` names
    resolve to another address (a broken DNS, not a policy)."""

    missing: tuple[str, ...] = ()
    moved: dict[str, str] = {}

    def _dns_records(self, model):
        records = super()._dns_records(model)
        for name in self.missing:
            records.pop(name, None)
        records.update(self.moved)
        return records


class DnsBlockedForEveryone(LocalBackend):
    """Every applied policy also isolates the cluster DNS pod for ingress, so every lookup
    times out (DNS over-blocked) while the DNS server itself still answers on loopback."""

    def apply_policy(self, manifest: Mapping) -> None:
        super().apply_policy(manifest)
        super().apply_policy({
            "apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "faulty-dns-isolation", "namespace": "kube-system"},
            "spec": {"podSelector": {}, "policyTypes": ["Ingress"]}})

    def policy_count(self) -> int:
        return max(0, super().policy_count() - 1)


#: An HTTP server answering every request with one status and body, for pods whose real server
#: is replaced (argv: port status body ready-file).
REPLY_SERVER = (
    "import http.server,sys\n"
    "port,code,body,ready=int(sys.argv[1]),int(sys.argv[2]),sys.argv[3].encode(),sys.argv[4]\n"
    "class H(http.server.BaseHTTPRequestHandler):\n"
    " def do_GET(s):\n"
    "  s.send_response(code);s.send_header('Content-Length',str(len(body)));s.end_headers()\n"
    "  s.wfile.write(body)\n"
    " def log_message(s,*a):pass\n"
    "srv=http.server.ThreadingHTTPServer(('0.0.0.0',port),H)\n"
    "open(ready,'w').close()\n"
    "srv.serve_forever()\n"
)


class SomeoneElseAnswers(LocalBackend):
    """The HTTP server of pod `target` on port 80 is replaced by one answering `status` with
    `body`: a proxy in the path (an Envoy 503), another pod's name, or an L7 proxy's deny."""

    target = "x/b"
    status = 503
    body = "upstream connect error or disconnect/reset before headers"

    def _start_servers(self, model) -> None:
        super()._start_servers(model)
        proc = self._procs[self.target]
        proc.terminate()
        proc.wait(timeout=5)
        ready = self._ready_path(self.target)
        if os.path.exists(ready):
            os.remove(ready)
        log = os.path.join(self.workdir, f"{self._netns[self.target]}.log")
        self._procs[self.target] = spawn(
            ["ip", "netns", "exec", self._netns[self.target], sys.executable, "-c",
             REPLY_SERVER, "80", str(self.status), self.body, ready], log_path=log)
