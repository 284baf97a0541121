# netpol-proof developer targets. Everything installs what it needs (scripts/setup.sh).
PY := .venv/bin/python
CNI ?= calico

.PHONY: setup test demo bench check labs live cleanup lint

setup:
	bash scripts/setup.sh

test:
	bash scripts/test.sh

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
