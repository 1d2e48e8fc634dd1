# pfx: `make demo` runs the pipeline on fixtures/, `make test` runs the test suite.
# Both create .venv on first use. torch is installed before the package, as TORCH names
# it, so that pip never resolves a torch build on its own. Which build pip picks depends on
# the index (see README.md): pass TORCH_PIP_ARGS for PyTorch's CPU index on stock PyPI.

VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
# Extra pip arguments for the torch install only, e.g. --index-url of PyTorch's CPU wheels.
TORCH_PIP_ARGS ?=
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv demo test man bench lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q $(TORCH_PIP_ARGS) "$(TORCH)"
	$(PY) -m pip install -q -e '.[model,plot,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(MAKE) -f demo/Makefile PFX="$(abspath $(VENV))/bin/pfx" PY="$(abspath $(PY))"

test: $(STAMP)
	$(PY) -m pytest -q $(PYTEST_ARGS)

man: $(STAMP)
	$(PY) -m pfx.manpages man

bench: $(STAMP)
	$(MAKE) -C bench PY="$(abspath $(PY))"

lint: $(STAMP)
	$(PY) -m pip install -q ruff
	$(VENV)/bin/ruff check pfx tests bench

clean:
	rm -rf build demo/out .pytest_cache
