"""What the Flannel and Canal live tests do with their three pods (srv and near on node 1, far
on node 2): GETs through the API's exec stream, the VXLAN proof from flannel.1's counters, and
the five observations (two probes of srv, three controls) each test window is made of."""

from __future__ import annotations

from typing import Any

from harness.backends.real.realnodes import flannel as fl
from tests.real_nodes.test_real_nodes import NS

#: GETs per direction in the VXLAN proof
REQUESTS = 10
#: every observation open: srv answers the two probes, the controls answer
OPEN = {"far->srv": "srv", "near->srv": "srv", "srv->loopback": "srv",
        "far->near": "near", "srv->near": "near"}


def blocked(status: str) -> dict[str, str]:
    """OPEN with the two probes of srv failing with curl's `status` (`exit 7` refused, `exit
    28` timed out), the controls still answering."""
    return {**OPEN, "far->srv": status, "near->srv": status}


def curl(core: Any, src: str, dst_ip: str, times: int = 1) -> str:
    """The last answer of `times` GETs of `dst_ip`'s /hostname from `src`'s client container,
    or `exit N` (curl's status: 7 refused, 28 timed out); `mixed [...]` when they differ."""
    from kubernetes.stream import stream

    out = stream(core.connect_get_namespaced_pod_exec, src, NS, container="client",
                 command=["sh", "-c", f"for i in $(seq {times}); do curl -sS "
                          f"--max-time 2 http://{dst_ip}:8080/hostname || echo exit $?;"
                          " echo; done"],
                 stderr=False, stdin=False, stdout=True, tty=False)
    answers = [line.strip() for line in out.splitlines() if line.strip()]
    assert len(answers) == times, out
    return answers[-1] if len(set(answers)) == 1 else f"mixed {answers}"


def observe(core: Any, ip: dict[str, str]) -> dict[str, str]:
    return {"far->srv": curl(core, "far", ip["srv"]), "near->srv": curl(core, "near", ip["srv"]),
            "srv->loopback": curl(core, "srv", "127.0.0.1"),
            "far->near": curl(core, "far", ip["near"]), "srv->near": curl(core, "srv", ip["near"])}


def assert_vxlan_carries(core: Any, nodes: Any, ip: dict[str, str], who: str) -> None:
    """REQUESTS cross-node GETs (far -> srv) raise flannel.1's counters on both nodes by at
    least one packet each way per request; as many same-node ones (near -> srv) raise neither."""
    n1, n2 = nodes

    def counters() -> dict[str, dict[str, int]]:
        return {n.name: fl.link_counters(n.netns, fl.VXLAN_DEVICE) for n in (n1, n2)}

    before = counters()
    assert curl(core, "far", ip["srv"], REQUESTS) == "srv"
    mid = counters()
    assert curl(core, "near", ip["srv"], REQUESTS) == "srv"
    after = counters()
    for node, sent, got in ((n2.name, "tx", "rx"), (n1.name, "rx", "tx")):
        for way in (sent, got):
            rose = mid[node][f"{way}_packets"] - before[node][f"{way}_packets"]
            assert rose >= REQUESTS, (node, way, before, mid)
    assert after == mid, ("same-node traffic went over flannel.1", mid, after)
    print(f"{who}: flannel.1 on {n2.name} during {REQUESTS} cross-node requests: "
          f"{mid[n2.name]['tx_packets'] - before[n2.name]['tx_packets']} packets out, "
          f"{mid[n2.name]['rx_packets'] - before[n2.name]['rx_packets']} in; during "
          f"{REQUESTS} same-node requests: 0")
