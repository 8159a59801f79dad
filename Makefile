# The two commands: `make run` starts everything, `make test` runs the suite.
# Both create .venv and install into it on first use, with nothing else needed but Python:
# `make run` what running needs, `make test` also the tools for tests and checks.

# The first Python 3.11+ found; errors of names that are not there (pyenv's shims print
# some) stay quiet.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' >/dev/null 2>&1 && { echo $$p; break; }; \
	done)
VENV := .venv
BIN := $(VENV)/bin
# What `make run` needs, and everything (the dev extras too) for the other targets.
RUNTIME := $(VENV)/.runtime
INSTALLED := $(VENV)/.installed
# One line per step: pip's own progress and notices (root user, new pip) stay quiet.
PIP := PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore $(BIN)/python -m pip install --quiet --quiet

.PHONY: run test lint schema bench faults fuzz clean web web-app screenshots

$(BIN)/python:
	@test -n "$(PYTHON)" || { echo "aitasks needs Python 3.11 or newer: install it, or pass PYTHON=/path/to/python3.11"; exit 1; }
	@echo "aitasks: creating $(VENV) with $$($(PYTHON) --version)"
	@$(PYTHON) -m venv $(VENV)
	@$(PIP) --upgrade pip

$(RUNTIME): pyproject.toml | $(BIN)/python
	@if [ -f $(INSTALLED) ] && [ $(INSTALLED) -nt pyproject.toml ]; then :; else \
		echo "aitasks: installing what running needs into $(VENV) (the first time takes a minute or two)"; \
		$(PIP) -e .; \
		echo "aitasks: installed; the aitasks command is $(BIN)/aitasks: put it on your PATH with 'source $(BIN)/activate'"; \
	fi
	@touch $@

$(INSTALLED): pyproject.toml | $(BIN)/python
	@echo "aitasks: installing aitasks and its development tools into $(VENV)"
	@$(PIP) -e '.[dev]'
	@touch $@

run: $(RUNTIME) web-app
	@$(BIN)/aitasks run

test: $(INSTALLED) web-app
	$(BIN)/python -m pytest

# The edge's fuzz suite with many more examples than `make test` runs (findings go to
# docs/fuzzing.md). `make fuzz FUZZ_EXAMPLES=5000` runs longer still.
FUZZ_EXAMPLES ?= 1000
fuzz: $(INSTALLED)
	FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest --timeout=0 \
		tests/graphql_app/test_fuzz.py tests/schema/test_fuzz.py

lint: $(INSTALLED)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .
	$(BIN)/mypy

schema: $(INSTALLED)
	$(BIN)/strawberry export-schema schema:schema --output schema.graphql

# The benchmarks (bench/): real PostgreSQL, Redis and API processes on this machine; the
# figures go to docs/benchmarks.md. `make bench BENCH="latency fanout"` runs some of them.
bench: $(INSTALLED)
	$(BIN)/python -m bench --command 'make bench$(if $(BENCH), BENCH="$(BENCH)")' $(BENCH)

# The fault suite (tests/faults/): PostgreSQL and Redis of its own, restarted, cut off and
# killed under load; the table goes to docs/reliability.md.
faults: $(INSTALLED)
	$(BIN)/python -m tests.faults --command 'make faults'

clean:
	rm -rf $(VENV) .aitasks

# The web app (web/): built into the Python package with the machine's Node.js, again
# whenever a source is newer than the build. `make run` serves the API without it where
# Node.js is missing; `make test` under CI=true fails instead (the browser tests need it).
WEB_BUILT := graphql_app/web_dist/index.html
WEB_INSTALLED := web/node_modules/.package-lock.json
WEB_SOURCES := $(shell find web/src web/index.html web/graphiql.html web/vite.config.ts \
	web/tsconfig.json web/package.json -type f 2>/dev/null)
NODE_OK = command -v npm >/dev/null 2>&1 && node -e 'process.exit(Number(process.versions.node.split(".")[0]) < 20 ? 1 : 0)' 2>/dev/null

web-app:
	@if $(NODE_OK); then $(MAKE) --no-print-directory web; \
	elif [ "$$CI" = true ]; then echo "CI needs Node.js 20 or newer (node and npm) to build web/"; exit 1; \
	else echo "No Node.js 20+: install it (with npm) for the web app at / and GraphiQL; the API runs without them."; fi

web: $(WEB_BUILT)

$(WEB_INSTALLED): web/package-lock.json
	cd web && npm ci --no-audit --no-fund --loglevel=error

$(WEB_BUILT): $(WEB_INSTALLED) $(WEB_SOURCES)
	cd web && npm run --silent build -- --logLevel warn

# The pictures in docs/web.md and the README, taken by the browser tests.
screenshots: $(INSTALLED) web-app
	AITASKS_SCREENSHOTS_DIR=$(CURDIR)/docs $(BIN)/python -m pytest tests/web/test_screenshots.py
