"""The probes' curl (harness/backends/local/curl.py): the HTTP-only build is what the local
backend runs for `curl`, and it sees what the system curl sees, against real servers and a
real policy table.

Why: that build exists for speed only (a start costs a fraction of the system curl's); a probe
through it that connected, was refused or timed out where the system curl did otherwise would
change verdicts. Both run the same batched argv in the same pod, in the same rounds.
"""

from __future__ import annotations

import os
import stat

import pytest

from harness.backends.local import LocalBackend
from harness.backends.local import curl as probe_curl
from harness.backends.local.preflight import missing_tools
from harness.model import ContainerPort, Model, Namespace, Pod, Protocol
from harness.prober import destination
from harness.probes import ProbeSpec, batch_argv_for, classify, split_batch

BUILT = probe_curl.built()


def test_resolve_points_only_a_leading_curl_at_the_build(tmp_path, monkeypatch):
    monkeypatch.setattr(probe_curl, "CACHE", tmp_path)
    probe_curl.forget()
    try:
        assert probe_curl.built() is None
        assert probe_curl.resolve(["curl", "-s", "x"]) == ["curl", "-s", "x"]
        assert "the system's" in probe_curl.describe()
        made = probe_curl.home() / "curl"
        made.parent.mkdir(parents=True)
        made.write_text("#!/bin/sh\n")
        made.chmod(made.stat().st_mode | stat.S_IXUSR)
        probe_curl.forget()
        assert probe_curl.resolve(["curl", "-s", "x"]) == [str(made), "-s", "x"]
        assert probe_curl.resolve(["nslookup", "curl"]) == ["nslookup", "curl"]
        assert str(made) in probe_curl.describe()
    finally:
        probe_curl.forget()


def test_the_cache_key_follows_the_pin_and_the_recipe(monkeypatch):
    before = probe_curl.key()
    monkeypatch.setattr(probe_curl, "CONFIGURE", probe_curl.CONFIGURE + ("--enable-ftp",))
    assert probe_curl.key() != before


@pytest.mark.skipif(os.geteuid() != 0, reason="the local backend needs root (network namespaces)")
@pytest.mark.skipif(bool(missing_tools()), reason=f"missing system tools: {missing_tools()}")
@pytest.mark.skipif(BUILT is None, reason="the probes' curl is not built here "
                    "(python -m harness.backends.local.curlbuild)")
@pytest.mark.parametrize("policy", [False, True], ids=["no-policy", "deny-ingress-to-a"])
def test_the_build_sees_what_the_system_curl_sees(policy):
    ports = (ContainerPort.serve(80, Protocol.TCP),)
    model = Model.build([Namespace("x", {"ns": "x"})],
                        [Pod("x", n, {"pod": n}, ports) for n in ("a", "b", "c")])
    deny = {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": "deny-a", "namespace": "x"},
            "spec": {"podSelector": {"matchLabels": {"pod": "a"}}, "policyTypes": ["Ingress"]}}
    with LocalBackend("enforcing", probe_timeout=1.0) as b:
        addresses = b.deploy(model)
        if policy:
            b.apply_policy(deny)
        # from x/b: a served port (80), one nobody serves (81: refused), and x/c
        specs = [ProbeSpec("x/b", t, port, Protocol.TCP)
                 for t, port in (("x/a", 80), ("x/a", 81), ("x/c", 80))]
        batch = [(s, destination(s, addresses, b)) for s in specs]
        argv = batch_argv_for(batch, 1.0)
        assert argv[0] == "curl"
        seen = {}
        for tool in ("curl", "/usr/bin/curl"):   # the build (resolved), the system's (as is)
            res = b.exec("x/b", [tool, *argv[1:]], timeout=12.0)
            assert res.argv[4] == (str(BUILT) if tool == "curl" else tool), res.argv
            per = split_batch(batch, res)
            seen[tool] = {s.target + f":{s.port}": classify(s, per[s]).outcome.value
                          for s in specs}
        assert seen["curl"] == seen["/usr/bin/curl"], seen
        want = ("timeout", "timeout") if policy else ("connected", "refused")
        assert (seen["curl"]["x/a:80"], seen["curl"]["x/a:81"]) == want, seen
        assert seen["curl"]["x/c:80"] == "connected", seen
