# Two commands on a fresh machine: `make demo` and `make test` (`make docs` builds the documentation site).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
# the CPU build of torch; without the pin pip pulls several GB of CUDA packages
TORCH_PIN ?= torch==2.13.0
DEMO_RUN ?= runs/demo
# the shared data folder where there is one; elsewhere topo's own default (~/.cache/topo)
ifneq ($(wildcard ../shared/data),)
export TOPO_DATA_DIR ?= $(abspath ../shared/data)
endif

.PHONY: install install-dev demo test typecheck bench docs clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(VENV)/.installed: $(PY) pyproject.toml
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install --quiet "$(TORCH_PIN)"
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-dev: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[dev]"
	touch $@

$(VENV)/.installed-docs: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[docs]"
	touch $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(PY) examples/demo.py $(DEMO_RUN)

test: $(VENV)/.installed-dev
	$(BIN)/mypy
	$(PY) -m pytest -q

# mypy over topo/ and cli/ (settings in pyproject.toml)
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

bench: $(VENV)/.installed-dev
	@set -e; for b in benchmarks/bench_*.py; do echo "== $$b"; $(PY) $$b; done

# the documentation site, into site/ (open site/index.html); the guide's examples run while it builds
docs: $(VENV)/.installed-docs
	$(BIN)/mkdocs build --strict

clean:
	rm -rf $(VENV) runs build site *.egg-info .pytest_cache
