# Quick start: `make demo` (analyse the bundled sample trial into results/) and `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
PIP    := $(PY) -m pip
PYTEST_ARGS ?=

.PHONY: demo test typecheck env env-test benchmarks sample-data notebooks clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(VENV)/.installed
	$(PIP) install --quiet -e '.[test]'
	touch $@

env: $(VENV)/.installed
env-test: $(VENV)/.installed-test

demo: $(VENV)/.installed
	$(VENV)/bin/cytokit run pipelines/il2_trial.yaml --out results --force

test: typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

# Static type check of the library (configuration: [tool.mypy] in pyproject.toml).
typecheck: $(VENV)/.installed-test
	$(PY) -m mypy

benchmarks: $(VENV)/.installed-test
	$(PY) benchmarks/run_all.py

# re-execute notebooks/*.ipynb in a fresh kernel and store them with their outputs (figures)
notebooks: $(VENV)/.installed-test
	$(PY) notebooks/execute.py

sample-data: $(VENV)/.installed
	$(VENV)/bin/cytokit simulate sample_data --config sample_data/simulation.yaml --force

clean:
	rm -rf $(VENV) results .pytest_cache
