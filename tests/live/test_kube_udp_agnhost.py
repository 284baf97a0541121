"""The kube toolkit's UDP probes against a real agnhost (issue 19 item 4).

Why live: on the kind and kubeconfig backends every UDP probe that got through was judged a
probe error, because the client printed nothing and the judge wants the reply to name the
target pod. Here two network namespaces over a veth pair stand for two pods: the server side
runs the real agnhost with exactly the arguments harness/backends/kube/manifests.py gives a UDP
server container, under the pod's hostname (`<ns>-<pod>`, a UTS namespace of its own, as a
pod has); the client side runs the argv the kube toolkit builds (harness.probes.argv_for /
udp_argv_for with toolkit "agnhost"), through the prober's own probe_round and loopback_probe.
A delivered probe must be judged PASS where allowed and NOT_ENFORCED where denied; a probe
dropped by nftables in the server's namespace must be blocked (PASS where denied,
OVER_BLOCKED where allowed) only with the server's loopback control; a closed port is refused.

The agnhost binary: $NETPOL_TEST_AGNHOST, else the kubernetes component's build in the cache
(`~/.cache/netpol-proof/components/kubernetes-*/bin/agnhost`); the test is skipped, saying so,
when neither exists. The client tools are this machine's (bash; `/agnhost` in an argv is
pointed at that binary, the image's path for it): the agnhost image has bash too
(docs/sources.md §5.1).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time

import pytest

from harness import naming
from harness.backends.kube import manifests as km
from harness.backends.local.backend import claim_run, release_run
from harness.model import Addresses, ContainerPort, Model, Namespace, Pod, Protocol
from harness.plan import servers_of
from harness.prober import loopback_probe, probe_round
from harness.probes import Outcome, ProbeSpec
from harness.results import Verdict
from harness.shell import run, spawn, stop
from harness.verdicts import judge, self_probe_proves
from tests.conftest import agnhost_binary

AGNHOST = agnhost_binary()
T = 1.0
PORT, CLOSED = 80, 81
NET = "192.0.2."        # TEST-NET-1, only ever inside the two namespaces below

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="network namespaces need root"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("ip", "nft", "unshare", "bash")),
                       reason="needs ip, nft, unshare and bash"),
    pytest.mark.skipif(AGNHOST is None, reason="no agnhost binary: set NETPOL_TEST_AGNHOST or "
                       "build the kubernetes component (python -m harness.components build)"),
]

UDP = (ContainerPort.serve(PORT, Protocol.UDP),)
MODEL = Model.build([Namespace("x", {"ns": "x"})],
                    [Pod("x", n, {"pod": n}, UDP) for n in ("a", "b", "c")])


def _server_args(pod: Pod, kind: str) -> list[str]:
    """The agnhost arguments of the pod's UDP server: the kube manifests' own ("manifests"),
    or upstream's netexec, which answers the `hostname` command the same way ("netexec")."""
    if kind == "netexec":
        return ["netexec", f"--http-port={PORT + 8000}", f"--udp-port={PORT}"]
    return km.pod_manifest(pod, km.NameMap("abcd", ["x"]))["spec"]["containers"][0]["args"]


class TwoPods:
    """x/a (client) and x/b, x/c (servers) as network namespaces on one veth bridge-less pair
    each; `exec` runs an argv inside a pod's namespace as the kube backends' exec does inside
    the client container. Everything is named np-<run>-* and removed by close()."""

    toolkit = "agnhost"

    def __init__(self, server: str):
        self.run_id = naming.new_run_id()
        claim_run(self.run_id, purpose="kube UDP client test")
        self.prefix = naming.local_prefix(self.run_id)
        self.ns = {p.key: f"{self.prefix}{p.name}" for p in MODEL.user_pods}
        self.ips = {"x/a": NET + "1", "x/b": NET + "2", "x/c": NET + "3"}
        self.procs: list[subprocess.Popen] = []
        for ns in self.ns.values():
            run(["ip", "netns", "add", ns], check=True, doing=f"creating {ns}")
            run(["ip", "-n", ns, "link", "set", "lo", "up"], check=True)
        for key in ("x/b", "x/c"):      # a veth from the client's namespace to each server's
            name = key[-1]
            here, there = f"{self.prefix}a{name}", f"{self.prefix}{name}a"
            run(["ip", "link", "add", here, "netns", self.ns["x/a"], "type", "veth", "peer",
                 "name", there, "netns", self.ns[key]], check=True, doing="creating a veth")
            run(["ip", "-n", self.ns["x/a"], "addr", "add", f"{self.ips['x/a']}/32", "dev", here],
                check=True)
            run(["ip", "-n", self.ns[key], "addr", "add", f"{self.ips[key]}/32", "dev", there],
                check=True)
            for ns, dev in ((self.ns["x/a"], here), (self.ns[key], there)):
                run(["ip", "-n", ns, "link", "set", dev, "up"], check=True)
            run(["ip", "-n", self.ns["x/a"], "route", "add", self.ips[key], "dev", here],
                check=True)
            run(["ip", "-n", self.ns[key], "route", "add", self.ips["x/a"], "dev", there],
                check=True)
            pod = MODEL.pod(key)
            # os.Hostname() is the UTS name: the pod's hostname, in a UTS namespace of its own
            self.procs.append(spawn(["ip", "netns", "exec", self.ns[key], "unshare", "--uts",
                                     "sh", "-c", 'hostname "$0" && exec "$@"', pod.hostname,
                                     AGNHOST, *_server_args(pod, server)]))
        for key in ("x/b", "x/c"):
            self._wait_serving(key)

    def _wait_serving(self, key: str) -> None:
        """The server's startup probe as the manifests write it, until it passes."""
        probe = km.pod_manifest(MODEL.pod(key), km.NameMap("abcd", ["x"]))["spec"][
            "containers"][0]["startupProbe"]["exec"]["command"]
        deadline = time.monotonic() + 20
        while True:
            if self.exec(key, probe, 5).returncode == 0:
                return
            assert time.monotonic() < deadline, f"agnhost in {key} never served UDP {PORT}"
            time.sleep(0.1)

    def exec(self, endpoint: str, argv, timeout: float):
        argv = [str(AGNHOST) if a == "/agnhost" else a for a in argv]
        return run(["ip", "netns", "exec", self.ns[endpoint], *argv], timeout=timeout,
                   target=endpoint)

    def drop(self, key: str) -> None:
        """A policy drop: nftables in the server's namespace drops UDP to its port from the
        network (its own loopback, where the control asks, stays open as under any policy)."""
        run(["ip", "netns", "exec", self.ns[key], "nft", "-f", "-"], check=True,
            input=f"table inet np {{\n chain in {{\n  type filter hook input priority 0;\n"
                  f"  iifname != \"lo\" udp dport {PORT} drop\n }}\n}}\n", doing="dropping UDP")

    def close(self) -> None:
        for proc in self.procs:
            stop(proc, grace=0.5)      # serve-hostname waits 60 s after SIGTERM, as in a pod
        for ns in self.ns.values():
            run(["ip", "netns", "del", ns])
        release_run(self.run_id)


@pytest.fixture(params=["manifests", "netexec"])
def pods(request):
    p = TwoPods(request.param)
    try:
        yield p
    finally:
        p.close()
    left = run(["ip", "netns", "list"]).stdout
    assert p.prefix not in left, left


ADDRESSES = Addresses({"x/a": NET + "1", "x/b": NET + "2", "x/c": NET + "3"}, {}, {})
SPECS = [ProbeSpec("x/a", "x/b", PORT, Protocol.UDP), ProbeSpec("x/a", "x/c", PORT, Protocol.UDP),
         ProbeSpec("x/a", "x/b", CLOSED, Protocol.UDP)]


def _round(pods: TwoPods):
    observed = probe_round(pods, SPECS, ADDRESSES, T, toolkit=pods.toolkit)
    control = self_probe_proves(loopback_probe(pods, "x/b", PORT, Protocol.UDP, T))
    return observed, control


def _judge(spec: ProbeSpec, expectation: str, observed, control) -> Verdict:
    servers = servers_of(MODEL, spec.source, spec.target, spec.port, spec.protocol)
    return judge(expectation, observed[spec], control, servers=servers).verdict


def test_a_delivered_udp_probe_names_the_pod_that_answered(pods):
    observed, control = _round(pods)
    to_b, to_c, closed = (observed[s] for s in SPECS)
    assert _judge(SPECS[0], "allow", observed, control) == Verdict.PASS, to_b
    assert _judge(SPECS[0], "deny", observed, control) == Verdict.NOT_ENFORCED, to_b
    assert (to_b.outcome, to_b.answered_by) == (Outcome.CONNECTED, "x-b"), to_b
    assert (to_c.outcome, to_c.answered_by) == (Outcome.CONNECTED, "x-c"), to_c
    assert closed.outcome == Outcome.REFUSED, closed
    assert control
    # a reply from x/c where x/b was asked proves nothing about x/b
    swapped = {SPECS[0]: to_c}
    assert _judge(SPECS[0], "allow", swapped, control) == Verdict.PROBE_ERROR


def test_a_dropped_udp_probe_is_blocked_only_with_the_servers_control(pods):
    pods.drop("x/b")
    observed, control = _round(pods)
    to_b, to_c = observed[SPECS[0]], observed[SPECS[1]]
    assert to_b.outcome == Outcome.TIMEOUT, to_b
    assert to_c.outcome == Outcome.CONNECTED, to_c     # the other server is untouched
    assert control        # x/b's own loopback is not dropped: its server serves
    assert _judge(SPECS[0], "deny", observed, control) == Verdict.PASS
    assert _judge(SPECS[0], "allow", observed, control) == Verdict.OVER_BLOCKED
    assert _judge(SPECS[0], "deny", observed, False) == Verdict.PROBE_ERROR
