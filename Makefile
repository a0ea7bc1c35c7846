# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: install run worker test test-sqlite test-thorough deep-test mutation format screenshots bench-import bench-issue \
	bench-tiny messages bench-pages bench-live bench-export bench-admin bench-mailing bench-upload-memory bug-bank

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[test]"
	touch $@

# axe-core (from the npm registry) for the browser tests' accessibility check, kept under var/.
AXE = var/axe/node_modules/axe-core/axe.min.js
$(AXE):
	@if command -v npm >/dev/null; then \
	  mkdir -p var/axe && cd var/axe && npm install --no-audit --no-fund --silent axe-core@4; \
	else echo "npm not found: the accessibility check will be skipped"; fi

install: $(BIN)/.installed $(AXE)

# Serves the admin at http://127.0.0.1:$(PORT)/admin/ with a Celery worker (and its beat scheduler
# for the periodic tasks) beside it. `make run PORT=8001` picks another port (links in e-mails
# follow it). Needs only Python: the npm package is for the tests.
PORT ?= 8000
run: $(BIN)/.installed
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py demo_user --port $(PORT)
	rm -rf $${PROMETHEUS_MULTIPROC_DIR:-var/metrics}
	SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} \
	  $(BIN)/celery -A promo_project worker --beat --loglevel=INFO --concurrency=1 & \
	  worker=$$!; trap 'kill $$worker 2>/dev/null' EXIT INT TERM; \
	  SITE_URL=$${SITE_URL:-http://127.0.0.1:$(PORT)} \
	  $(BIN)/python manage.py runserver 127.0.0.1:$(PORT)

worker: $(BIN)/.installed
	$(BIN)/celery -A promo_project worker --loglevel=INFO

# The whole suite on the database DATABASE_URL names (CI: PostgreSQL), then the fast suite again
# on SQLite: the zero-setup default that `make run` uses takes the generic loader and claim.
test: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python tools/bug_bank.py --check
	$(BIN)/pytest
	$(MAKE) --no-print-directory test-sqlite

test-sqlite: install
	DATABASE_URL=sqlite:///$(CURDIR)/var/test.sqlite3 $(BIN)/pytest -q \
	  -m "not postgresql and not integration and not e2e"

# The property tests with a hundred times the examples (minutes, not seconds).
test-thorough: install
	HYPOTHESIS_PROFILE=thorough DATABASE_URL=sqlite:///$(CURDIR)/var/test.sqlite3 $(BIN)/pytest -q \
	  -m "not postgresql and not integration and not e2e" tests/imports/test_file_properties.py \
	  tests/imports/test_properties.py

# The reference model's state machines (tests/model/: the services', the API's) with 2,000
# sequences instead of 40.
deep-test: install
	MODEL_EXAMPLES=2000 $(BIN)/pytest -q tests/model

# Refresh the README's pictures in docs/screenshots/ (a test run writes them under var/).
# Needs what the browser tests need (PostgreSQL in DATABASE_URL, Redis, Chromium); CI=1 makes a
# missing one an error instead of a skip that would refresh nothing.
screenshots: install
	SCREENSHOTS_DIR=docs/screenshots CI=1 $(BIN)/pytest tests/e2e

# Mutation testing of the core modules (docs/testing.md, "Mutation testing"): slow (tens of minutes per
# module), not part of `make test` nor of CI. MODULES=loader runs one; the tests use their own
# database (DATABASE_URL, by default promo_mutation on the local PostgreSQL).
mutation: install
	$(BIN)/pip install --quiet -e ".[test,mutation]"
	$(BIN)/python tools/mutation.py $(MODULES)

# Each bug of the bank (tools/bug_bank/*.toml) applied alone, with the tests that should catch
# it (docs/testing.md, "The bank of realistic bugs"): about an hour; needs the local PostgreSQL
# and Redis. NAMES="a b" runs some.
bug-bank: install
	$(BIN)/python tools/bug_bank.py $(NAMES)

# The Russian catalogue: collect every translatable string into locale/ru/LC_MESSAGES/django.po
# (and djangojs.po for the scripts), then compile the .mo files that are committed beside them, so a
# fresh clone needs no gettext tools to run.
messages: install
	$(BIN)/python manage.py makemessages -l ru --no-location -e html,txt,py,svg --ignore=.venv --ignore=var \
	  --ignore=tests --ignore=bench --ignore=tools --ignore=staticfiles
	$(BIN)/python manage.py makemessages -d djangojs -l ru --no-location --ignore=.venv \
	  --ignore=var --ignore=staticfiles
	$(BIN)/python manage.py compilemessages -l ru --ignore=.venv

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Figures of imports at full size: a million rows, three times over (docs/benchmarks.md).
# Needs the local PostgreSQL and Redis. Not part of `make test` nor of CI.
bench-import: install
	$(BIN)/python bench/import_bench.py

# Figures of exports: the CSV job against a bare COPY … TO of 10,000,000 codes of a
# 20,000,000-code pool (built in SQL once, kept in the bench database), and XLSX against CSV.
bench-export: install
	$(BIN)/python bench/export_bench.py

# Figures of the admin: each page a manager opens, on the 20,000,000-code pool.
bench-admin: install
	$(BIN)/python bench/admin_bench.py

# A pool page loaded cold in Chromium under `make run`, under gunicorn in production mode, and
# with Django's own static view as the baseline; needs the local PostgreSQL and Chromium.
bench-pages: install
	$(BIN)/python bench/page_load_bench.py

# Figures of issuing under concurrency at full size; needs the local PostgreSQL and Redis.
bench-issue: install
	$(BIN)/python bench/issue_bench.py

# Every benchmark at a tiny size (about a minute; figures printed, not judged), so that one that
# no longer runs fails: .ci/run runs it after `make test`.
bench-tiny: install
	$(BIN)/python bench/import_bench.py --tiny
	$(BIN)/python bench/issue_bench.py --tiny
	BENCH_SIZE=tiny $(BIN)/python bench/live_pool_bench.py
	$(BIN)/python bench/export_bench.py --tiny
	$(BIN)/python bench/admin_bench.py --tiny
	$(BIN)/python bench/mailing_bench.py --tiny
	$(BIN)/python bench/upload_memory_bench.py --tiny
	$(BIN)/python bench/page_load_bench.py --tiny

# Figures of a live pool (search on 10,000,000 codes, undoing a 1,000,000-code import); needs the
# local PostgreSQL. BENCH_SIZE=tiny runs it in seconds (what CI runs).
bench-live: install
	$(BIN)/python bench/live_pool_bench.py

# Figures of mailings (batches, sustained issuing, assignments) at full size: about 25 minutes
# (5-minute sustained runs, a 1,000,000-customer list, three times each); needs the local
# PostgreSQL and Redis.
bench-mailing: install
	$(BIN)/python bench/mailing_bench.py

# Peak memory of the largest workbook an upload may carry (IMPORT_MAX_XLSX_UNPACKED, 256 MB of
# XML), in the upload request and in the worker, against a CSV of the same rows; each
# measurement in a fresh process. No database or Redis needed; about a minute.
bench-upload-memory: install
	$(BIN)/python bench/upload_memory_bench.py
