# The two commands a new user needs: `make local` (the platform's main job on embedded parts)
# and `make test` (the whole suite). Both create the virtualenv themselves. `make unit` is the
# fast lane (the suite without the slow tier).
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: venv tools localstack-venv web test lint unit local plan render clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

venv: $(STAMP)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy infra platform_cli apps
	$(BIN)/shellcheck jenkins/stages/*.sh

# checkov pins dependencies that conflict with ours, so it gets its own virtualenv.
TOOLS   := .venv-tools
CHECKOV := $(TOOLS)/bin/checkov
$(CHECKOV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/python -m pip install --quiet --disable-pip-version-check checkov==3.3.30

tools: $(CHECKOV)

# Real LocalStack (host mode) for the AWS-emulator tests. It needs Python 3.13: without it this
# target prints why and the LocalStack test leg is skipped with that reason. Built once (~100 s).
localstack-venv: venv
	$(BIN)/python -m platform_cli.localstack ensure-venv

# The web console (apps/web, docs/console.md): pinned install, ESLint, tsc, then the bundle that
# events-api serves at /console/ (built into apps/events_api/console/). Without npm it says so
# and the browser tests skip with that reason.
WEB       := apps/web
WEB_STAMP := $(WEB)/node_modules/.installed-$(shell cksum < $(WEB)/package-lock.json | cut -d' ' -f1)
$(WEB_STAMP): $(WEB)/package-lock.json
	npm --prefix $(WEB) ci --no-audit --no-fund
	@touch $@

web:
	@if command -v npm >/dev/null; then \
	  $(MAKE) --no-print-directory $(WEB_STAMP) && \
	  npm --prefix $(WEB) run --silent lint && \
	  npm --prefix $(WEB) run --silent typecheck && \
	  npm --prefix $(WEB) run --silent build; \
	else echo "web: npm not found: console not built, browser tests will be skipped"; fi

test: venv lint tools localstack-venv web
	$(BIN)/python -m pytest

# The fast lane while you work: every test outside the slow tier (tests/conftest.py says what is
# slow: real servers, processes, containers, a browser), without the LocalStack and tools venvs,
# on every core. `worksteal`: an idle worker takes tests queued for a busy one, so a long file at
# the end leaves no core idle (53-56 s here, 58-61 s with `loadfile`); a module fixture may then
# run in both workers, but the stacks they share are evaluated once per run (tests/stacks.py).
# Schemathesis' pytest plugin serves only the API contract test (slow tier); loading it costs
# ~1.7 s in each process.
unit: venv
	$(BIN)/python -m pytest -q -m "not slow" -n auto --dist worksteal -p no:schemathesis

local: venv web
	$(BIN)/platform local

render: venv
	$(BIN)/platform gitops render

# Refresh tests/snapshots/<stack>.json (the declared inventories the snapshot test compares).
snapshots: venv
	for s in localstack dev staging prod; do $(BIN)/platform plan --quiet --stack $$s --json tests/snapshots/$$s.json || exit 1; done

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .local-run
