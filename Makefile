# The two set-up commands: `make run` and `make test`. Each makes its own virtualenv under .venv first.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
# anvil for the anvil/upstream backend tests (tests/test_backends.py), from npm into .tools/ (gitignored)
TOOLS := .tools
ANVIL := $(TOOLS)/node_modules/.bin/anvil
ANVIL_VERSION ?= 1.7.1

.PHONY: install run test lint bench clean anvil

$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $(STAMP)

install: $(STAMP)

run: install
	$(BIN)/mockinfura serve

lint: install
	$(BIN)/ruff check .

$(ANVIL):
	@if command -v npm >/dev/null; then \
		npm install --prefix $(TOOLS) --no-audit --no-fund --loglevel=error @foundry-rs/anvil@$(ANVIL_VERSION); \
	else \
		echo "npm not found: no anvil, so the anvil/upstream backend tests are skipped (CI=true makes that a failure)"; \
	fi

anvil: $(ANVIL)

test: install lint $(ANVIL)
	$(BIN)/python -m pytest -n 2 $(PYTEST_ARGS)

bench: install
	$(BIN)/python bench/run.py

clean:
	rm -rf $(VENV) *.egg-info
