# The two set-up commands of the README:
#   make demo   installs the suite and runs the main job on the bundled example
#   make test   installs the suite with its test tools, lints, and runs the whole test suite
PYTHON ?= python3
PIP = PIP_BREAK_SYSTEM_PACKAGES=1 $(PYTHON) -m pip install --quiet

.PHONY: install install-dev demo test lint bench

install:
	$(PIP) torch==2.13.0
	$(PIP) -e .

install-dev:
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev]"

demo: install
	$(PYTHON) -m proxcompress compare

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy proxcompress formulations/__init__.py formulations/problem.py \
		formulations/solution.py formulations/restricted.py formulations/bnb.py \
		formulations/cli.py proofs/__init__.py kernels/__init__.py kernels/ops.py

test: install-dev lint
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) benchmarks/mip_pruning.py --out benchmarks/results/mip_pruning.json
