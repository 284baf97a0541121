"""harness.backends.base.Backend: the whole protocol on one base. What every backend must have is
abstract; what only some have answers neutrally or refuses with an error naming the backend;
every backend derives from it and stops its execs once interrupted. (No backend is asked what it
has: tests/test_layers.py::test_no_backend_is_asked_what_it_has.)"""

from __future__ import annotations

import pytest

from harness.backends import get_backend
from harness.backends.base import Backend
from harness.errors import BackendError, HarnessError
from harness.lifecycle import Terminated


class Bare(Backend):
    """Only what is abstract, each failing if called: the defaults are what is tested."""

    name, profile, run_id, toolkit = "bare", "nothing", "abcd12", "debian"

    def _unused(self, *args, **kwargs):
        raise AssertionError("not part of this test")

    capabilities = up = down = deploy = undeploy = set_labels = apply_policy = _unused  # type: ignore
    delete_policy = policy_count = exec = _unused  # type: ignore


def test_what_every_backend_must_have_is_abstract():
    with pytest.raises(TypeError, match="abstract"):
        Backend()   # type: ignore[abstract]

    class NoExec(Backend):
        def capabilities(self): ...
        def up(self): ...
        def down(self): ...
        def deploy(self, model): ...
        def undeploy(self): ...
        def set_labels(self, namespace_labels, pod_labels): ...
        def apply_policy(self, manifest): ...
        def delete_policy(self, namespace, name, kind="NetworkPolicy"): ...
        def policy_count(self): ...

    with pytest.raises(TypeError, match="exec"):
        NoExec()   # type: ignore[abstract]


def test_optional_members_answer_neutrally():
    b = Bare()
    assert b.describe() == "" and b.probe_tools() == ""       # nothing more to say
    assert b.real_dns_name("web.y.svc.cluster.local") == "web.y.svc.cluster.local"
    assert b.dns_control() is None                            # the DNS pod is asked itself
    assert b.max_parallel == 1                                # one cluster per run
    assert b.fault_nodes == 0 and b.restore_faults() == []    # stops nothing, restores nothing
    b.stop_if_interrupted("probing")                          # not interrupted: nothing


def test_fault_refuses_naming_the_backend_and_what_it_cannot_do():
    with pytest.raises(BackendError) as err:
        Bare().fault("stop", "engine", 1)
    assert isinstance(err.value, HarnessError)
    assert str(err.value) == ("while stop engine on the bare backend (nothing): it runs no fault "
                              "steps: it stops nothing")


def test_interrupt_makes_every_later_exec_raise_terminated():
    b = Bare()
    b.interrupt()
    b.interrupt()                                             # any number of times
    with pytest.raises(Terminated, match=r"^bare run abcd12 \(nothing\) is stopping: not probing"):
        b.stop_if_interrupted("probing")
    assert not Bare().interrupted                             # per backend, not per class


BACKENDS = [("local", "enforcing", {}), ("local", "kube-router", {}), ("kind", "calico", {}),
            ("kubeconfig", "calico", {"context": "kind-x", "allow_context": "kind-x"})]


@pytest.mark.parametrize("name,profile,options", BACKENDS,
                         ids=[f"{n}-{p}" for n, p, _ in BACKENDS])
def test_every_backend_derives_from_the_base_and_stops_execs_once_interrupted(name, profile,
                                                                             options):
    """Built, never brought up: an interrupted backend's exec raises before it touches
    anything (no namespace, no API, nothing deployed)."""
    b = get_backend(name, profile, run_id="abcd12", **options)
    assert isinstance(b, Backend) and b.run_id == "abcd12"
    with pytest.raises(Exception) as before:                  # nothing deployed: its own error
        b.exec("x/a", ["curl", "http://10.0.0.1/"], 1.0)
    assert not isinstance(before.value, Terminated)
    b.interrupt()
    with pytest.raises(Terminated, match=f"{name} run abcd12 \\({profile}\\) is stopping: not "
                                         f"running curl in x/a"):
        b.exec("x/a", ["curl", "http://10.0.0.1/"], 1.0)
