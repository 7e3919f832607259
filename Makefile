# One-command set-up: `make demo` (set up + run the benchmark demo), `make test` (set up +
# run the whole suite). The virtual environment lives in .venv; on machines without an
# NVIDIA GPU the CPU build of torch is installed first so pip never pulls a CUDA wheel.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_CPU ?= torch==2.13.0

.PHONY: setup demo test lint bench serve clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	if ! command -v nvidia-smi >/dev/null 2>&1; then $(PY) -m pip install -q "$(TORCH_CPU)"; fi
	$(PY) -m pip install -q -e '.[dev]'
	touch $@

# `make demo DEMO_ARGS=--serve` trains the demo's job on a served API and worker instead and
# ends by printing its dashboard URL (then serves until Ctrl-C)
demo: setup
	$(VENV)/bin/gsnn-edges demo $(DEMO_ARGS)

# `make test PYTEST_ARGS='-m "not slow and not services"'` runs the fast subset only
test: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: setup
	$(PY) benchmarks/speed.py
	$(PY) benchmarks/recovery.py

serve: setup
	$(VENV)/bin/gsnn-edges serve

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache .ruff_cache
