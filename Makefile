# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run worker test format bench-import bench-issue bench-live

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

install: $(BIN)/.installed

# Serves the admin at http://127.0.0.1:8000/admin/ with a Celery worker (and its beat scheduler
# for the periodic tasks) beside it.
run: install
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_user
	$(BIN)/celery -A promo_project worker --beat --loglevel=INFO --concurrency=1 & \
	  worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  $(BIN)/python manage.py runserver 127.0.0.1:8000

worker: install
	$(BIN)/celery -A promo_project worker --loglevel=INFO

test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Figures of issue 3 (imports); needs the local PostgreSQL and Redis. Not part of `make test`.
bench-import: install
	$(BIN)/python bench/import_bench.py

# Figures of issue 4 (issuing under concurrency); needs the local PostgreSQL.
bench-issue: install
	$(BIN)/python bench/issue_bench.py

# Figures of issue 12 (search on 10,000,000 codes, undoing a 1,000,000-code import); needs the
# local PostgreSQL. BENCH_SIZE=tiny runs it in seconds (what CI runs).
bench-live: install
	$(BIN)/python bench/live_pool_bench.py
