# Two commands do all the set-up: `make run` and `make test`. Both create .venv when it is missing.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PACKAGES := -e shared -e services/actors -e services/conferences -e services/notifications -e tools

.PHONY: install run test lint unit clean asyncapi

$(STAMP): shared/pyproject.toml services/*/pyproject.toml tools/pyproject.toml requirements-dev.txt
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || (echo "Python 3.11 or newer is needed" && exit 1)
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check $(PACKAGES) -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install  ## the embedded stack and the three services; Ctrl-C stops all
	$(VENV)/bin/quartier run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint  ## lint, type checks, import contracts, then every test
	$(PY) -m pytest

asyncapi: install  ## regenerate the event catalogue in docs/asyncapi/ from the code
	for service in actors conferences notifications; do $(PY) -m $$service asyncapi > docs/asyncapi/$$service.json; done

unit: install
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench
bench: install  ## the invitation fan-out against this machine's floor: make bench [N="1000 10000"] [RUNS=3]
	$(PY) -m bench.run --n $(or $(N),1000 10000) --runs $(or $(RUNS),3)
