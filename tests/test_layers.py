"""The architecture's import rules hold (.importlinter): the pure core never imports pytest,
backends or the runner; backends know nothing of verdicts; the prober nothing of policy; the
library and CLI work without pytest; harness.scenario (reading files) imports neither the oracle
nor the backends."""

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
    # every contract of .importlinter was checked, the scenario one included
    assert "Contracts: 5 kept, 0 broken." in proc.stdout, proc.stdout
    assert "harness.scenario imports neither the" in " ".join(proc.stdout.split()), proc.stdout
