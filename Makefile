# One-command set-up: every target creates .venv and installs the locked dependencies first:
# `make run` only what serving needs, `make test` the dev tools on top.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip install -q --disable-pip-version-check
# A stamp for each lock installed: the dev lock (make test) and the runtime lock (make run).
STAMP := $(VENV)/.installed-stamp
RUNTIME_STAMP := $(VENV)/.runtime-stamp
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install assets clients openapi-tools chart-tools chart-readme run test lint imports typecheck security pytest contracts contracts-check bench bench-check mutation lock clean

install: $(STAMP)

# Serving only: the hashed runtime lock (the image's), then the package in place. uv, setuptools
# and wheel come at the dev lock's pins; uv installs the lock (fetching in parallel, where pip
# takes 40 s).
$(RUNTIME_STAMP): pyproject.toml requirements/runtime.lock requirements/dev.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --no-deps $$(grep -E '^(setuptools|uv|wheel)==' requirements/dev.lock)
	$(BIN)/uv pip install -q --python $(BIN)/python --require-hashes --no-deps -r requirements/runtime.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $@

# Everything make test needs, also on top of a venv make run made. The dev lock pins the runtime
# lock's packages at the same versions (tests/deploy checks), so it covers the runtime stamp too
# and a later make run installs nothing, downgrades nothing.
$(STAMP): pyproject.toml requirements/dev.lock requirements/runtime.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip
	$(PIP) -r requirements/dev.lock
	$(BIN)/uv pip install -q --python $(BIN)/python --no-deps --no-build-isolation -e .
	touch $(RUNTIME_STAMP) $@

# The browser pages' assets from the npm registry: GraphiQL's and Swagger UI's (/docs), each into
# app/static/<page>/vendor (a no-op when they are current).
assets:
	$(PYTHON) scripts/vendor_assets.py

# The third-party GraphQL clients and audits the tests run (tests/graphql/clients, locked).
CLIENTS := tests/graphql/clients
CLIENTS_STAMP := $(CLIENTS)/node_modules/.package-lock.json

clients: $(CLIENTS_STAMP)

$(CLIENTS_STAMP): $(CLIENTS)/package.json $(CLIENTS)/package-lock.json
	npm ci --prefix $(CLIENTS) --no-audit --no-fund --loglevel=error
	touch $@

# The OpenAPI linters the tests run on openapi/openapi.json: Spectral and Redocly (locked).
OPENAPI_TOOLS := tests/rest/tools
OPENAPI_TOOLS_STAMP := $(OPENAPI_TOOLS)/node_modules/.package-lock.json

openapi-tools: $(OPENAPI_TOOLS_STAMP)

$(OPENAPI_TOOLS_STAMP): $(OPENAPI_TOOLS)/package.json $(OPENAPI_TOOLS)/package-lock.json
	npm ci --prefix $(OPENAPI_TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

# The chart's tools (helm/tools, locked): bitnami's readme-generator-for-helm, which writes the
# parameter tables of helm/maas-gateway/README.md from values.yaml's `## @param` lines.
CHART_TOOLS := helm/tools
CHART_TOOLS_STAMP := $(CHART_TOOLS)/node_modules/.package-lock.json

chart-tools: $(CHART_TOOLS_STAMP)

$(CHART_TOOLS_STAMP): $(CHART_TOOLS)/package.json $(CHART_TOOLS)/package-lock.json
	npm ci --prefix $(CHART_TOOLS) --no-audit --no-fund --loglevel=error
	touch $@

# After changing helm/maas-gateway/values.yaml (tests/deploy fails until the README is current).
chart-readme: $(CHART_TOOLS_STAMP)
	$(CHART_TOOLS)/node_modules/.bin/readme-generator --values helm/maas-gateway/values.yaml --readme helm/maas-gateway/README.md

run: $(RUNTIME_STAMP) assets
	$(BIN)/maas-gateway serve --host $(HOST) --port $(PORT)

lint: $(STAMP)
	$(BIN)/ruff check app tests bench scripts
	$(BIN)/ruff format --check app tests bench scripts

# The layer contracts in pyproject.toml ([tool.importlinter]), drawn in docs/architecture.md.
imports: $(STAMP)
	$(BIN)/lint-imports --no-cache

typecheck: $(STAMP)
	$(BIN)/mypy

# Two workers, each taking a whole test file (module fixtures stay in one process): the suite
# mostly waits on sockets and subprocesses, so this halves it on two cores.
PYTEST_WORKERS ?= 2

pytest: $(STAMP) assets clients openapi-tools chart-tools
	$(BIN)/python -m pytest -q -n $(PYTEST_WORKERS) --dist loadfile

# Asserts only narrow types here (as ruff's S101 ignore says), so B101 is skipped.
security: $(STAMP)
	$(BIN)/bandit -q -r app -s B101

contracts: $(STAMP)
	$(BIN)/maas-gateway export

contracts-check: $(STAMP)
	$(BIN)/maas-gateway export --check

test: lint imports typecheck security contracts-check pytest

.PHONY: version image-check

# The release version, pyproject.toml's: the image's label and the chart's appVersion carry it.
VERSION = $(shell $(PYTHON) -c "import tomllib; print(tomllib.load(open('pyproject.toml', 'rb'))['project']['version'])")

version:
	@echo $(VERSION)

# The image built with buildah on stand-in bases made from Debian's packages, then run against the
# simulator and checked (scripts/image_check.py). Needs root, buildah and debootstrap; .ci/run
# calls it after make test.
image-check:
	$(PYTHON) scripts/image_check.py --version $(VERSION)

bench: $(STAMP)
	$(BIN)/python -m bench

# The CPU-ratio figures in short runs with generous bounds (bench/check.py), no wall clock timed:
# fails when a change doubles the CPU per MAAS call or per answer. Not part of make test.
bench-check: $(STAMP)
	$(BIN)/python -m bench.check

# Mutation testing (scripts/mutation.py): mutmut on each module that guards correctness, one at
# a time against its own tests, in .mutation/; the score per module, and it fails below 90%.
# Slow, so not part of make test. MODULE=breaker runs the modules whose path contains it;
# MUTATION_CHILDREN mutants at once (the machine's other work shares its cores).
MUTATION_CHILDREN ?= 2
mutation: $(STAMP)
	$(BIN)/python scripts/mutation.py --max-children $(MUTATION_CHILDREN) $(if $(MODULE),--module $(MODULE))

# Regenerate the lock after changing dependencies in pyproject.toml.
lock: $(STAMP)
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --no-header -o requirements/dev.lock
	$(BIN)/uv pip compile pyproject.toml --extra otel --extra redis --python-version 3.11 --python-platform linux --no-header --generate-hashes -c requirements/dev.lock -o requirements/runtime.lock

clean:
	rm -rf $(VENV) build dist *.egg-info .mypy_cache .ruff_cache .mutation app/static/*/vendor .tools $(CLIENTS)/node_modules $(OPENAPI_TOOLS)/node_modules $(CHART_TOOLS)/node_modules
