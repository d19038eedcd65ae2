# Two commands set everything up on a fresh machine:
#   make demo   - the embedded default study (MNIST-1D in small, CPU, a few minutes), tracked in ./mlflow.db
#   make test   - the test suite
#   make study  - the MNIST-1D study (16 members x 3 seeds, 3 direction families; <= 30 min on 2 cores)
# Both create .venv and install the package on first use.

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.persist-installed

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q torch==2.14.1 torchvision==0.29.1
	$(PY) -m pip install -q -e ".[test]"
	touch $(STAMP)

.PHONY: demo test install ui bench lint study
install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/persist pipeline --preset demo

study: $(STAMP)
	$(VENV)/bin/persist pipeline --preset mnist1d

test: $(STAMP)
	bash .ci/run-tests

ui: $(STAMP)
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///mlflow.db

bench: $(STAMP)
	for b in benchmarks/bench_*.py; do $(PY) $$b --quick || exit 1; done

lint: $(STAMP)
	$(VENV)/bin/ruff check persist tests benchmarks scripts
	$(VENV)/bin/mypy
