# Two commands do all the set-up: `make run` and `make test`. Both create .venv when it is missing.
# .venv holds exactly the versions in requirements-dev.lock; see "Dependencies" in README.md.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
LOCKED := $(VENV)/.locked-stamp
STAMP := $(VENV)/.installed-stamp
PACKAGES := -e shared -e services/actors -e services/conferences -e services/notifications -e services/portal -e tools
PIP_FLAGS = --quiet --disable-pip-version-check

.PHONY: install run test lint unit clean asyncapi lock test-lowest browser promtool caddy screenshots

# The locked third-party packages, each checked against its hash. The venv is made afresh whenever
# the lock changes, so nothing an older lock installed stays behind.
# First what the machine needs (Python 3.11-3.13 on a platform with the embedded stack's wheels;
# README: Requirements), with a message that says what to do instead of a pip error half-way.
$(LOCKED): requirements-dev.lock
	@command -v $(PYTHON) > /dev/null || (echo "quartier: $(PYTHON) is missing: install Python 3.11 to 3.13, or name one with make PYTHON=python3.12" >&2 && exit 1)
	@$(PYTHON) tools/quartier/requirements_check.py
	rm -rf $(VENV)
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install $(PIP_FLAGS) --require-hashes -r requirements-dev.lock
	touch $(LOCKED)

# Our own packages on top, editable. They add no dependency (--no-deps), and setuptools comes from the
# lock (--no-build-isolation); pip check fails when a pyproject.toml wants what the lock lacks.
$(STAMP): $(LOCKED) shared/pyproject.toml services/*/pyproject.toml tools/pyproject.toml
	$(PY) -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation $(PACKAGES)
	$(PY) -m pip check
	touch $(STAMP)

install: $(STAMP)

run: install  ## the embedded stack and the three services; Ctrl-C stops all
	$(VENV)/bin/quartier run

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

test: lint browser promtool caddy  ## lint, type checks, import contracts, then every test
	$(PY) -m pytest

# The answer page's browser tests drive Debian's Chromium through Playwright (never `playwright
# install`, which downloads a browser). Installed only when missing; needs root, as on CI.
CHROMIUM := /usr/bin/chromium
browser: $(CHROMIUM)
$(CHROMIUM):
	@[ "$$(id -u)" = 0 ] || (echo "$(CHROMIUM) is missing: run 'make browser' as root, or apt-get install chromium" && exit 1)
	apt-get install -y --no-install-recommends chromium || (apt-get update && apt-get install -y --no-install-recommends chromium)

# promtool and amtool check the observability profile's Prometheus configuration, alert rules,
# dashboard queries and Alertmanager configuration (tests/unit/test_observability.py); Debian's
# packages `prometheus` and `prometheus-alertmanager` have them. As for Chromium: installed only
# when missing, as root.
PROMTOOL := /usr/bin/promtool
AMTOOL := /usr/bin/amtool
promtool: $(PROMTOOL) $(AMTOOL)
$(PROMTOOL):
	@[ "$$(id -u)" = 0 ] || (echo "$(PROMTOOL) is missing: run 'make promtool' as root, or apt-get install prometheus" && exit 1)
	apt-get install -y --no-install-recommends prometheus || (apt-get update && apt-get install -y --no-install-recommends prometheus)
$(AMTOOL):
	@[ "$$(id -u)" = 0 ] || (echo "$(AMTOOL) is missing: run 'make promtool' as root, or apt-get install prometheus-alertmanager" && exit 1)
	apt-get install -y --no-install-recommends prometheus-alertmanager || (apt-get update && apt-get install -y --no-install-recommends prometheus-alertmanager)

# caddy adapts deploy/caddy/Caddyfile to its JSON configuration in tests/unit/test_deploy.py (Debian's
# package `caddy`); the same, installed only when missing, as root.
CADDY := /usr/bin/caddy
caddy: $(CADDY)
$(CADDY):
	@[ "$$(id -u)" = 0 ] || (echo "$(CADDY) is missing: run 'make caddy' as root, or apt-get install caddy" && exit 1)
	apt-get install -y --no-install-recommends caddy || (apt-get update && apt-get install -y --no-install-recommends caddy)

screenshots: install browser  ## docs/answer-page.png, docs/portal-*.png: as the browser tests see them
	QUARTIER_SCREENSHOT=docs/answer-page.png $(PY) -m pytest -q tests/integration/test_answer_page_browser.py -k keyboard
	QUARTIER_SCREENSHOT_DIR=docs $(PY) -m pytest -q tests/integration/test_portal_browser.py -k by_role
	QUARTIER_SCREENSHOT_DIR=docs $(PY) -m pytest -q tests/integration/test_portal_conferences_browser.py

asyncapi: install  ## regenerate the event catalogue in docs/asyncapi/ from the code
	for service in $$($(PY) -c 'from quartier_shared.services import SERVICES; print(*SERVICES)'); do \
		$(PY) -m $$service asyncapi > docs/asyncapi/$$service.json; done

unit: install
	$(PY) -m pytest tests/unit

clean:
	rm -rf $(VENV) $(TOOLS) $(LOWEST) var .pytest_cache .mypy_cache .ruff_cache

.PHONY: bench
bench: install  ## the invitation fan-out against this machine's floor: make bench [N="1000 10000"] [RUNS=3] [RELAY_N=1000] [RELAY_RATE=600]
	$(PY) -m bench.run --n $(or $(N),1000 10000) --runs $(or $(RUNS),3) --relay-n $(or $(RELAY_N),1000) --relay-rate $(or $(RELAY_RATE),600)

# --- the locks (these targets need PyPI; install only needs pip) -------------------------------

# uv resolves for every platform and Python >= 3.11 at once (--universal). It is pinned so that the
# same inputs give the same lock on every machine.
UV_VERSION := 0.13.9
TOOLS := .venv-tools
UV := $(TOOLS)/bin/uv
# A new UV_VERSION makes the tools venv again.
UV_STAMP := $(TOOLS)/.uv-$(UV_VERSION)
OWN := quartier-shared quartier-actors quartier-conferences quartier-notifications quartier-portal quartier-tools
COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	$(addprefix --no-emit-package ,$(OWN))
UPGRADE_FLAGS = $(if $(filter all,$(UPGRADE)),--upgrade,$(addprefix --upgrade-package ,$(UPGRADE)))

$(UV_STAMP):
	rm -rf $(TOOLS)
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install $(PIP_FLAGS) uv==$(UV_VERSION)
	touch $(UV_STAMP)

# Keeps every pin that still fits the inputs; UPGRADE=all moves everything to the newest release,
# UPGRADE="faststream icalendar" only those. requirements.lock takes its versions from the dev lock.
lock: $(UV_STAMP)  ## re-resolve requirements-dev.lock and requirements.lock: make lock [UPGRADE=all|"pkg …"]
	$(COMPILE) --custom-compile-command 'make lock' $(UPGRADE_FLAGS) requirements-dev.txt -o requirements-dev.lock
	$(COMPILE) --custom-compile-command 'make lock' -c requirements-dev.lock requirements.in -o requirements.lock

# The lower bounds: every direct dependency (pyproject.toml files, requirements*.txt/.in) at the lowest
# version it allows, the rest at the newest that fits, in .venv-lowest; then the unit tests
# (LOWEST_TESTS="tests/unit tests/integration" for more).
LOWEST := .venv-lowest
LOWEST_TESTS ?= tests/unit
test-lowest: $(UV_STAMP)  ## the unit tests with each direct dependency at its lower bound (needs PyPI)
	rm -rf $(LOWEST)
	$(PYTHON) -m venv $(LOWEST)
	$(COMPILE) --resolution lowest-direct requirements-dev.txt -o $(LOWEST)/requirements.txt
	$(LOWEST)/bin/python -m pip install $(PIP_FLAGS) --require-hashes -r $(LOWEST)/requirements.txt
	$(LOWEST)/bin/python -m pip install $(PIP_FLAGS) --no-deps --no-build-isolation $(PACKAGES)
	$(LOWEST)/bin/python -m pip check
	$(LOWEST)/bin/python -m pytest $(LOWEST_TESTS)
