"""tools/compare_nca.py: reading NCA's output, writing the model for it, and the real
comparison of every classic case with NCA (installed by scripts/setup.sh into .venv-nca).

Why: the comparison is the oracle's independent check; its parser must not turn an unreadable
NCA line into "deny" silently, and the resources it writes must carry labels, named ports and IPs.
"""

import importlib.util
import os
import sys
from pathlib import Path

import pytest

from harness.model import Model, Protocol
from harness.shell import run

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("compare_nca", ROOT / "tools" / "compare_nca.py")
nca = importlib.util.module_from_spec(spec)
sys.modules["compare_nca"] = nca   # dataclasses look their module up there
spec.loader.exec_module(nca)


def test_parse_connection_sets():
    assert nca.parse_connections("All connections") is None
    c = nca.parse_connections("{protocols:UDP,dst_ports:80-81,90}")
    assert nca.allows(c, 81, Protocol.UDP) and nca.allows(c, 90, Protocol.UDP)
    assert not nca.allows(c, 82, Protocol.UDP) and not nca.allows(c, 80, Protocol.TCP)
    c = nca.parse_connections("{protocols:TCP,UDP}")
    assert nca.allows(c, 5, Protocol.UDP) and not nca.allows(c, 5, Protocol.SCTP)
    with pytest.raises(ValueError, match="cannot read NCA connection set"):
        nca.parse_connections("something new")


def test_parse_endpoints_and_match_external_hosts():
    assert nca.parse_endpoint("x/a[Pod]") == "x/a"
    assert nca.parse_endpoint("10.0.0.0-10.0.0.255,10.0.2.1") == [(167772160, 167772415),
                                                                   (167772673, 167772673)]
    with pytest.raises(ValueError, match="cannot read NCA endpoint"):
        nca.parse_endpoint("somewhere")
    lines = [("x/a", nca.parse_endpoint("10.0.0.0-10.0.0.255"),
              nca.parse_connections("{protocols:TCP,dst_ports:80}"))]
    ips = {"ext:in": 167772170, "ext:out": 3221225994}
    assert nca.nca_allows(lines, "x/a", "ext:in", ips, 80, Protocol.TCP)
    assert not nca.nca_allows(lines, "x/a", "ext:out", ips, 80, Protocol.TCP)
    assert not nca.nca_allows(lines, "x/b", "ext:in", ips, 80, Protocol.TCP)
    assert not nca.nca_allows(lines, "x/a", "ext:in", ips, 81, Protocol.TCP)


def test_resources_carry_labels_named_ports_and_ips():
    ns, pods = nca.k8s_resources(Model.default(namespaces=["x"], pods=["a"]))
    assert ns["items"][0]["metadata"]["labels"] == {"ns": "x", "kubernetes.io/metadata.name": "x"}
    pod = pods["items"][0]
    assert pod["metadata"] == {"name": "a", "namespace": "x", "labels": {"pod": "a"}}
    assert pod["status"]["podIP"] == "10.244.1.10"
    ports = [c["ports"][0] for c in pod["spec"]["containers"]]
    assert {"containerPort": 81, "protocol": "SCTP", "name": "serve-81-sctp"} in ports
    assert len(ports) == 6


def _nca_or_skip() -> Path:
    """NCA's executable; where the test command installed it (NETPOL_PROOF_REQUIRE_NCA, set by
    scripts/test.sh after scripts/setup.sh), a missing one fails instead of skipping."""
    exe = nca.VENV / "bin" / "nca"
    if not exe.exists():
        if os.environ.get("NETPOL_PROOF_REQUIRE_NCA"):
            pytest.fail(f"{exe} is missing although the test command requires NCA "
                        "(scripts/setup.sh installs it: python tools/compare_nca.py --install)")
        pytest.skip("NCA's venv .venv-nca is not installed (python tools/compare_nca.py "
                    "--install creates it)")
    return exe


def test_every_classic_case_agrees_or_differs_only_where_docs_oracle_md_says():
    """The whole comparison of docs/oracle.md, run by the test command (not only by hand)."""
    exe = _nca_or_skip()
    out = run([sys.executable, str(ROOT / "tools" / "compare_nca.py"), "--nca", str(exe)],
              timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-2000:]
