"""House rules that no linter checks: citations resolve inside the repo, the package's public
API, the size of harness/'s top floor, and a first docstring line for every module."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import harness
from harness.shell import run

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ROOT / "docs" / "sources.md"
#: what a comment may not point at: files that do not ship with the repository
OUTSIDE = re.compile(r"\.\./shared|examples-to-follow|kind-cni-notes|house-plan")


def _tracked(*patterns: str) -> list[Path]:
    out = subprocess.run(["git", "ls-files", *patterns], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout.split()
    return [ROOT / p for p in out if (ROOT / p).is_file()]


def _shipped_text_files() -> list[Path]:
    here = Path(__file__).resolve()
    return [p for p in _tracked("*.py", "*.md", "*.yml", "*.yaml", "*.sh", "*.toml", "Makefile")
            if p.resolve() != here]


def test_every_docs_sources_citation_names_a_section_that_exists():
    sections = set(re.findall(r"^#+ §([0-9.]+?)\.?\s", SOURCES.read_text(), re.M))
    assert {"0", "1.3", "5.4", "8"} <= sections
    cited: dict[str, list[str]] = {}
    for path in _shipped_text_files():
        for n, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
            for m in re.finditer(r"docs/sources\.md ((?:§[0-9.]+[^§\n)]*)+)", line):
                for sec in re.findall(r"§([0-9]+(?:\.[0-9]+)?)", m.group(1)):
                    cited.setdefault(sec, []).append(f"{path.relative_to(ROOT)}:{n}")
    assert cited, "no citation found: the pattern is wrong"
    missing = {s: where for s, where in cited.items() if s not in sections}
    assert not missing, f"cited but not in docs/sources.md: {missing}"


def test_nothing_points_outside_the_repository():
    bad = [f"{p.relative_to(ROOT)}:{n}: {line.strip()}"
           for p in _shipped_text_files() if not p.is_relative_to(ROOT / "docs" / "labs")
           for n, line in enumerate(p.read_text(errors="replace").splitlines(), 1)
           if OUTSIDE.search(line)]
    assert not bad, "\n".join(bad)


def test_every_module_opens_with_what_it_is_for():
    for path in _tracked("harness/*.py", "harness/**/*.py"):
        doc = ast.get_docstring(ast.parse(path.read_text()))
        first = (doc or "").strip().splitlines()[0] if doc else ""
        assert len(first) > 15, f"{path.relative_to(ROOT)}: no first docstring line saying what " \
                                f"it is for"


def test_the_top_floor_of_harness_stays_small():
    modules = sorted(p.name for p in (ROOT / "harness").glob("*.py"))
    packages = sorted(p.name for p in (ROOT / "harness").iterdir()
                      if (p / "__init__.py").exists())
    assert len(modules) <= 31, modules            # 29 plus __init__ and __main__
    assert set(packages) >= {"backends", "commands", "reports", "scenario"}


def test_every_fixture_the_plugin_registers_is_named_netpol():
    """Short names (probe, apply_policy, ...) collide with other plugins' fixtures; the
    deprecated aliases of release 0.1 are gone."""
    import harness.fixtures as fixtures

    names = {getattr(obj, "name", None) or attr for attr, obj in vars(fixtures).items()
             if type(obj).__name__ == "FixtureFunctionDefinition"
             or hasattr(obj, "_pytestfixturefunction")}
    assert "netpol_probe" in names and "netpol_cluster" in names, names
    assert {n for n in names if not n.startswith("netpol_")} == set()


def test_the_public_api_resolves_lazily():
    for name in harness.__all__:
        assert getattr(harness, name) is not None, name
    code = ("import sys, harness; from harness import naming, scenario; "
            "assert 'harness.runner' not in sys.modules and 'harness.backends' not in sys.modules;"
            " from harness import Session, build_settings, Verdict; "
            "assert Session.__module__ == 'harness.session'; print('ok')")
    out = run([sys.executable, "-c", code], timeout=60)
    assert out.stdout.strip() == "ok", out.stderr
