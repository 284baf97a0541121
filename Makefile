# netpol-proof developer targets. Everything installs what it needs (scripts/setup.sh).
PY := .venv/bin/python
CNI ?= calico

.PHONY: setup test demo bench soak soak-bringup check labs live cleanup lint unit
# the virtualenv alone (no system packages, so no root): what lint and unit need
VENV := .venv/.netpol-proof-installed

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

$(VENV): pyproject.toml
	python3 -m venv .venv
	$(PY) -m pip install -q -e '.[test]'
	touch $@

# ruff (pyproject [tool.ruff]), mypy (strict on the pure core, [tool.mypy]), the import contracts
lint: $(VENV)
	$(PY) -m ruff check .
	$(PY) -m mypy
	.venv/bin/lint-imports

# the project's tests that need no root: every test not marked `live` (tests/conftest.py)
unit: $(VENV)
	$(PY) -m pytest tests -m "not live" -q -n 2

demo:
	bash scripts/demo.sh

bench: setup
	$(PY) bench/run_all.py

check: setup
	$(PY) -m harness check scenarios/

labs: setup
	$(PY) -m harness.labs regenerate docs/labs

live:
	bash scripts/live.sh $(CNI)

cleanup: setup
	$(PY) -m harness cleanup

soak: setup
	$(PY) bench/bench_soak.py

# the real engines' bring-up (kube-router, calico) 20 times, two at a time, traced
soak-bringup: setup
	$(PY) bench/bench_bringup_soak.py
