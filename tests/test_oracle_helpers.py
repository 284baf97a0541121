"""Helpers shared by the oracle tests: policy manifests and matrix assertions.

Why: the expected matrices in these tests are written by hand from the spec; the helper only
parses them and prints expected vs computed side by side when they differ.
"""

from __future__ import annotations

from harness.model import Protocol
from harness.oracle import Oracle
from harness.truthtable import TruthTable, symbol_of


def np(ns: str, name: str, spec: dict) -> dict:
    """A NetworkPolicy manifest."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": {"name": name, "namespace": ns}, "spec": spec}


def assert_matrix(oracle: Oracle, port, protocol, expected: str) -> None:
    keys = oracle.model.pod_keys
    want = TruthTable.parse(expected, keys, keys)
    got = oracle.matrix(port, Protocol.parse(protocol) if isinstance(protocol, str) else protocol)
    diff = want.compare(got)
    if diff:
        cells = "\n".join(
            f"  {r} -> {c}: expected {want.get(r, c)} got {symbol_of(got.get(r, c))}: "
            + "; ".join(x.text for x in got.get(r, c).reasons) for r, c in diff)
        raise AssertionError(f"{port}/{protocol}: expected\n{want.render()}\ncomputed\n"
                             f"{got.render()}\ndiffering cells:\n{cells}")


def test_assert_matrix_reports_a_differing_cell():
    import pytest

    from harness.model import Model
    o = Oracle(Model.default(namespaces=["x"], pods=["a", "b"]), [])
    assert_matrix(o, 80, "TCP", "- .\n. -")
    with pytest.raises(AssertionError, match=r"x/a -> x/b: expected X got \."):
        assert_matrix(o, 80, "TCP", "- X\n. -")
