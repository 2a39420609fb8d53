# `make run` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CONFIG ?= examples/tend.toml
PACKAGES := config rituals scheduler notifiers tend

.PHONY: run test check format clean bench

# (Re)install whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Tend needs Python 3.11 or newer")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

# The whole service on the example: embedded SQLite (./tend.db), console notifier.
run: $(STAMP)
	$(BIN)/tend run --config $(CONFIG)

# On every core (pytest-xdist): `.venv/bin/pytest tests/...` runs a part in one process.
test: $(STAMP)
	$(BIN)/pytest -n auto

# Benchmarks, not tests: each script prints a table with its baseline and the ratio
# (docs/PERFORMANCE.md). PostgreSQL parts need TEND_BENCH_POSTGRES_URL, a database of their
# own: they empty it. The full sizes take about an hour on two cores; for a quick look:
# make bench BENCH_HOUSEHOLDS=1000 BENCH_DISPATCH=2000
BENCH_HOUSEHOLDS ?= 1000,10000,100000
BENCH_DISPATCH ?= 10000
bench: $(STAMP)
	$(BIN)/python bench/plan_ledger.py $(BENCH_HOUSEHOLDS) 7
	$(BIN)/python bench/streaks.py
	$(BIN)/python bench/dispatch.py $(TEND_BENCH_POSTGRES_URL) $(BENCH_DISPATCH)
	$(BIN)/python bench/webhook.py
	$(BIN)/python bench/startup.py
	$(BIN)/python bench/memory.py $(subst $(comma), ,$(BENCH_HOUSEHOLDS))

comma := ,

check: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy --strict $(PACKAGES)

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hypothesis tend.db tend.db-wal tend.db-shm tend.db.worker-lock
