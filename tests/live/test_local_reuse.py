"""Consecutive scenarios of one run reuse the same names (np-<run>-p0, veth vp0, ...): the
local backend must free them before the next deploy, against the real kernel.

Why this test: deleting a network namespace destroys its interfaces asynchronously (the
kernel's namespace cleanup runs later, in a work queue), so a node-side veth `vp<N>` of the
previous scenario could still exist when the next one created `vp<N>` again: `ip -batch` then
failed with "RTNETLINK answers: File exists" (the bring-up flake of issue 12). undeploy deletes
the node-side veths itself (synchronous, both ends) before deleting the pod namespaces.
"""

from __future__ import annotations

import os

import pytest

from harness.backends.local import LocalBackend
from harness.backends.local import netns as nsx
from harness.backends.local.preflight import missing_tools
from harness.errors import BackendError
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol

pytestmark = [
    pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (network namespaces)"),
    pytest.mark.skipif(bool(missing_tools()), reason=f"missing system tools: {missing_tools()}"),
]

PORTS = (ContainerPort.serve(80, Protocol.TCP),)


def small_model() -> Model:
    ns = Namespace("x", {"ns": "x"})
    return Model.build([ns], [Pod("x", n, {"pod": n}, PORTS) for n in ("a", "b", "c")])


def test_undeploy_frees_every_node_side_interface_name_at_once():
    """Right after undeploy the node holds no veth of the scenario (so deploy can reuse vp0..);
    on the old order (only `ip netns del`) the veths were still there, being torn down."""
    with LocalBackend("enforcing") as b:
        for cycle in range(6):
            b.deploy(small_model())
            assert {"vp0", "vp1", "vp2"} <= set(nsx.links(b.node))
            b.undeploy()
            left = [n for n in nsx.links(b.node) if n != "lo"]
            assert left == [], f"cycle {cycle}: still in {b.node} after undeploy: {left}"


def test_endpoint_names_are_free_as_soon_as_they_are_removed():
    """The race itself, 30 times over: wire pod namespace p0 to the node with veth vp0 (as
    deploy does), remove it (as undeploy does), wire it again at once. With only `ip netns del`
    about half of the re-creations failed with "File exists" (measured: 26 of 40)."""
    from harness import naming
    from harness.backends.local.backend import claim_run, release_run

    run_id = naming.new_run_id()
    claim_run(run_id, purpose="test of name reuse")   # so `cleanup` knows the owner lives
    pre = naming.local_prefix(run_id)
    node, pod = f"{pre}node", f"{pre}p0"
    try:
        nsx.add_netns([node])
        for i in range(30):
            nsx.add_netns([pod])
            node_lines, _ = nsx.endpoint_lines("vp0", pod, "10.244.1.10", "10.244.1.1")
            try:
                nsx.ip_batch(node_lines, node, doing="wiring p0 to the node")
            except BackendError as exc:
                pytest.fail(f"re-creation {i}: {exc}")
            assert nsx.remove_endpoints(node, ["vp0"], [pod]) == []
    finally:
        nsx.remove_endpoints(node, ["vp0"], [pod, node])
        release_run(run_id)


def test_an_ip_batch_failure_says_what_ip_reported():
    """The flake's message was "`ip -batch` exit 1" and nothing else: it now carries ip's
    stderr (here the very error of the reuse race, provoked on purpose)."""
    from harness import naming
    from harness.backends.local.backend import claim_run, release_run

    run_id = naming.new_run_id()
    claim_run(run_id, purpose="test of ip -batch errors")
    node = f"{naming.local_prefix(run_id)}node"
    try:
        nsx.add_netns([node])
        nsx.ip_batch(["link add vp0 type veth peer name vq0"], node)
        with pytest.raises(BackendError) as info:
            nsx.ip_batch(["link add vp0 type veth peer name vq0"], node, doing="wiring pods to the node")
        msg = str(info.value)
        assert msg.startswith(f"while wiring pods to the node: `ip -n {node} -batch -` exit 1")
        assert "RTNETLINK answers: File exists" in msg
    finally:
        nsx.delete_netns(node)
        release_run(run_id)
