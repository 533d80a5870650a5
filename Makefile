# The two set-up commands of the README:
#   make demo   installs the suite and runs the main job on the bundled example
#   make test   installs the suite with its test tools, lints, and runs the whole test suite
PYTHON ?= python3
PIP = PIP_BREAK_SYSTEM_PACKAGES=1 $(PYTHON) -m pip install --quiet

.PHONY: install install-dev system-deps demo test lint bench

# Debian packages the tests use: espeak-ng (spoken-command data) and dataset-fashion-mnist (the
# Fashion-MNIST IDX files). Installed when apt-get is there and we are root; skipped otherwise
# (the tests that need them then skip or use the embedded data).
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		dpkg -s espeak-ng dataset-fashion-mnist >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			espeak-ng dataset-fashion-mnist >/dev/null; }; \
	else echo "system-deps: no root apt-get; espeak-ng / dataset-fashion-mnist not installed"; fi

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
		formulations/cli.py formulations/limits.py formulations/brute.py \
		proofs/__init__.py kernels/__init__.py kernels/ops.py \
		kernels/model.py kernels/simd.py kernels/intmul.py kernels/packed.py \
		training/__init__.py training/deploy.py training/certify.py \
		training/recipes.py training/config.py training/exporter.py training/models \
		proofs/registry.py training/text.py training/tensor_train \
		causal/__init__.py \
		causal/direction.py causal/mechanisms.py causal/independence.py causal/regression.py

test: system-deps install-dev lint
	$(PYTHON) -m pytest -q

bench:
	$(PYTHON) benchmarks/mip_pruning.py --out benchmarks/results/mip_pruning.json
