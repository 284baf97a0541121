"""The architecture's import rules hold (.importlinter): the pure core never imports pytest,
backends or the runner; backends know nothing of verdicts; the prober nothing of policy; the
library and CLI work without pytest; harness.scenario (reading files) imports neither the oracle
nor the backends; the layers front ends -> session -> runner -> backends -> shell, and within the
real tier backend -> kubelet/engines -> control plane -> components -> shell, are kept; the
pinned components know only the shell. And no two harness modules import each other, directly
or round a loop (function-level imports count too)."""

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_are_kept():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (pip install -e '.[test]')")
    proc = subprocess.run([exe, "--config", str(ROOT / ".importlinter")], cwd=ROOT,
                          capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "BROKEN" not in proc.stdout
    # every contract of .importlinter was checked, the scenario one and the layers included
    assert "Contracts: 8 kept, 0 broken." in proc.stdout, proc.stdout
    said = " ".join(proc.stdout.split())
    for name in ("harness.scenario imports neither the", "Front ends -> session -> runner -> "
                 "backends -> shell", "The real tier: backend ->", "The pinned components"):
        assert name in said, (name, proc.stdout)


def test_every_module_of_the_real_tier_and_components_is_in_a_contract():
    """harness.components and every module under harness.backends.real (its control plane too)
    sit in the real tier's layers contract, so a new module there is checked from its first
    import. Only that contract counts: the front ends' layers name harness.backends whole, so
    any new module would pass against it."""
    import configparser

    config = configparser.ConfigParser()
    config.read(ROOT / ".importlinter")
    named: set[str] = set()
    for line in config["importlinter:contract:real-tier"]["layers"].split("\n"):
        named.update(m.strip() for m in line.replace("|", ":").split(":") if m.strip())
    assert "harness.backends" not in named and "harness.backends.real" not in named
    for package in ("components", "backends/real"):
        for path in sorted((ROOT / "harness" / package).rglob("*.py")):
            module = ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            if module == "harness.backends.real":
                continue   # the package's docstring alone
            assert any(module == n or module.startswith(n + ".") for n in named), module


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in edges[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def test_cycle_finder_finds_a_loop():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_in_harness():
    grimp = pytest.importorskip("grimp", reason="grimp comes with import-linter ([test] extra)")
    graph = grimp.build_graph("harness")
    modules = set(graph.modules)
    edges = {m: set(graph.find_modules_directly_imported_by(m)) & modules for m in modules}
    assert _cycles(edges) == []


# -- the backend protocol is whole (harness/backends/base.py): nobody asks a backend what it has
_PROBES = ("getattr", "hasattr")
_PROTOCOL_TYPES = re.compile(r"(Backend|Injector)\b")
_BACKENDISH = re.compile(r"backend", re.I)


def backend_probes(source: str, in_backends: bool = False) -> list[str]:
    """Every `getattr`/`hasattr` on a backend and every `isinstance(x, <a backend type>)` in
    `source`, as "line: code". A backend is a name or expression that says so (`backend`,
    `self.backend`, `run.backend`), a name annotated with a Backend type, a name bound from an
    expression that says so (`primary = self.backend(cni)`, `for b in self.backends.values()`),
    and, in harness/backends/ (`in_backends`), `self`: a backend asking itself."""
    tree = ast.parse(source)
    found: list[str] = []

    def names(target: ast.AST) -> set[str]:
        return {n.id for n in ast.walk(target) if isinstance(n, ast.Name)}

    def bound(scope: ast.AST) -> set[str]:
        out: set[str] = set()
        for node in ast.walk(scope):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                for a in node.args.args + node.args.kwonlyargs + node.args.posonlyargs:
                    if a.annotation is not None and _PROTOCOL_TYPES.search(ast.unparse(a.annotation)):
                        out.add(a.arg)
            elif isinstance(node, ast.AnnAssign) and _PROTOCOL_TYPES.search(ast.unparse(node.annotation)):
                out |= names(node.target)
            elif isinstance(node, ast.Assign) and _BACKENDISH.search(ast.unparse(node.value)):
                for t in node.targets:
                    out |= names(t)
            elif isinstance(node, (ast.For, ast.comprehension)) and \
                    _BACKENDISH.search(ast.unparse(node.iter)):
                out |= names(node.target)
            elif isinstance(node, ast.NamedExpr) and _BACKENDISH.search(ast.unparse(node.value)):
                out |= names(node.target)
        return out

    backends = bound(tree)
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.args):
            continue
        first, code = node.args[0], f"{node.lineno}: {ast.unparse(node)}"
        if node.func.id in _PROBES:
            text = ast.unparse(first)
            if _BACKENDISH.search(text) or text in backends or (in_backends and text == "self"):
                found.append(code)
        elif node.func.id == "isinstance" and len(node.args) == 2 and \
                _PROTOCOL_TYPES.search(ast.unparse(node.args[1])):
            found.append(code)
    return sorted(found, key=lambda c: int(c.split(":")[0]))


def test_the_backend_probe_finder_finds_each_kind_of_probe():
    src = '''
def a(backend, primary: Backend, other):
    getattr(backend, "describe", None)
    hasattr(self.backend, "interrupt")
    int(getattr(primary, "max_parallel", 1))
    tools = {c: f() for c, b in self.backends.items() if callable(f := getattr(b, "x", None))}
    isinstance(other, FaultInjector)
    getattr(step, "title", "")
    getattr(exc, "reason", exc)
'''
    assert [line.split(":")[0] for line in backend_probes(src)] == ["3", "4", "5", "6", "7"]
    mixin = 'class Restarts:\n    def f(self):\n        return getattr(self, "status", print)\n'
    assert backend_probes(mixin, in_backends=True) == ['3: getattr(self, \'status\', print)']
    assert backend_probes(mixin) == []   # outside harness/backends/ `self` is not a backend


def test_no_backend_is_asked_what_it_has():
    """Optional members have their defaults on Backend (harness/backends/base.py): callers call
    them. 14 such probes before issue 17 (session 6, prober 2, fault step 2, runner 1, the
    kube backends asking themselves 3); none may come back."""
    found = {}
    for path in sorted((ROOT / "harness").rglob("*.py")):
        rel = path.relative_to(ROOT).as_posix()
        hits = backend_probes(path.read_text(), in_backends=rel.startswith("harness/backends/"))
        if hits:
            found[rel] = hits
    assert found == {}, "declare the member on harness.backends.base.Backend instead"
