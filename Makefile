# The two set-up commands of the README:
#   make demo   installs the suite and runs the main job (proxcompress reproduce --quick)
#   make test   installs the suite with its test and docs tools, lints, builds the docs site
#               (mkdocs build --strict) and runs the whole test suite
PYTHON ?= python3
PIP = PIP_BREAK_SYSTEM_PACKAGES=1 $(PYTHON) -m pip install --quiet

.PHONY: install install-dev system-deps demo test lint docs bench

# Debian packages the tests use: espeak-ng (spoken-command data), dataset-fashion-mnist (the
# Fashion-MNIST IDX files), bible-kjv-text (the tensor-train LSTMs' corpus: `proxcompress data
# kjv`) and chromium (renders the main job's report.html headless, as a person would see it).
# Installed when apt-get is there and we are root; skipped otherwise (the tests that need them
# then skip with the reason, or use the embedded data).
SYSTEM_PACKAGES = espeak-ng dataset-fashion-mnist bible-kjv-text chromium
system-deps:
	@if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
		dpkg -s $(SYSTEM_PACKAGES) >/dev/null 2>&1 || \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
			$(SYSTEM_PACKAGES) >/dev/null; }; \
	else echo "system-deps: no root apt-get; $(SYSTEM_PACKAGES) not installed"; fi

install:
	$(PIP) torch==2.13.0
	$(PIP) -e .

install-dev:
	$(PIP) torch==2.13.0
	$(PIP) -e ".[dev,docs]"

# The main job at quick budgets (under 10 minutes on 2 cores); runs/demo/report.html is the
# report. --resume: a second `make demo` continues an interrupted run (finished stages skipped).
demo: install
	$(PYTHON) -m proxcompress reproduce --quick --out runs/demo --resume

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy proxcompress formulations/__init__.py formulations/problem.py \
		formulations/solution.py formulations/restricted.py formulations/bnb.py \
		formulations/cli.py formulations/limits.py formulations/brute.py formulations/shifts.py \
		formulations/heuristics.py formulations/subsets.py formulations/blocks.py formulations/relaxations.py formulations/pairhull.py \
		proofs/__init__.py kernels/__init__.py kernels/ops.py \
		kernels/model.py kernels/simd.py kernels/first_layer.py kernels/binary_head.py kernels/cpu_mlp.py kernels/intmul.py kernels/packed.py kernels/trainstep.py \
		training/__init__.py training/deployment.py training/certify.py \
		training/recipes.py training/config.py training/exporter.py training/models \
		training/distill.py kernels/transformer.py \
		training/runchecks.py training/checkpoint.py formulations/instances.py \
		proofs/registry.py training/text.py training/tensor_train training/tasks.py \
		training/robustness.py training/tp_baseline.py training/fused.py training/allocator.py training/fork.py \
		causal/__init__.py \
		causal/direction.py causal/mechanisms.py causal/independence.py causal/regression.py \
		causal/simulate.py causal/cli.py causal/options.py causal/_checks.py \
		causal/tuebingen.py causal/scores.py causal/likelihood.py causal/scale.py

# The documentation site (site/): broken links, anchors and API references fail the build.
docs:
	NO_MKDOCS_2_WARNING=1 $(PYTHON) -m mkdocs build --strict --quiet

test: system-deps install-dev lint docs
	$(PYTHON) -m pytest -q

bench:
	for piece in wide bnb-alpha alpha; do \
		$(PYTHON) benchmarks/mip_pruning.py --piece $$piece --out benchmarks/results/mip_$$piece.json; \
	done
	for regime in independent-strong correlated-weak; do \
		$(PYTHON) benchmarks/mip_pruning.py --piece table --regime $$regime \
			--out benchmarks/results/mip_table_$$regime.json; \
	done
