# The two commands a newcomer needs: `make run` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONSOLE_USER ?= U_CONSOLE

.PHONY: run test lint bench install clean messages

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

# The benchmarks against agentbox's limits (about 8 minutes): prints the table and writes
# bench/report/REPORT.md with its PNG plots and results.json. BENCH_ARGS="--quick" for a smoke run.
bench: install
	$(BIN)/python -m bench $(BENCH_ARGS)

# Extract every _("…") of the app (babel.cfg) into the Spanish catalog: new strings come in empty
# or fuzzy, removed ones go. Then translate them in commands/locale/es/LC_MESSAGES/agentbox.po; the app reads
# the .po itself (no compile step), and tests/test_i18n.py fails while one is missing.
messages: install
	pot=$$(mktemp) && trap 'rm -f "$$pot"' EXIT && \
	$(BIN)/pybabel extract -F babel.cfg --add-location=file --sort-by-file --no-wrap \
		-c TRANSLATORS: --project=agentbox -o "$$pot" . && \
	$(BIN)/pybabel update -i "$$pot" -d commands/locale -D agentbox --no-wrap --ignore-obsolete --init-missing -l es

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache .hypothesis
