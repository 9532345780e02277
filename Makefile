# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSOLE_USER ?= U_CONSOLE

.PHONY: run test lint bench install clean

$(BIN)/agentbox: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $@

install: $(BIN)/agentbox

# The app on its embedded defaults: SQLite (./agentbox.db), an in-process wolkvox simulator and a
# local stand-in for Slack. You type /agentbox commands as $(CONSOLE_USER), who is an admin here.
run: install
	AGENTBOX_ADMINS=$${AGENTBOX_ADMINS:-$(CONSOLE_USER)} $(BIN)/agentbox console --user $(CONSOLE_USER)

# The whole suite, on SQLite and (when reachable) PostgreSQL.
test: install
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

bench: install
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
