# Batchsite: `make run` to use it, `make test` to test it. Needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test install clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(STAMP): requirements.txt requirements-dev.txt | $(PY)
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

install: $(STAMP)

run: install
	@bash scripts/ensure-debian-package.sh "$${BATCHSITE_BWRAP:-bwrap}" bubblewrap "tasks run unconfined (the worker says so)"
	$(PY) manage.py migrate --no-input
	@bash scripts/run.sh

test: install
	@bash scripts/ensure-debian-package.sh "$${BATCHSITE_BWRAP:-bwrap}" bubblewrap "the containment tests skip"
	@bash scripts/ensure-debian-package.sh "$${BATCHSITE_CHROMIUM:-/usr/bin/chromium}" chromium "the browser tests skip"
	@PYTHON=$(PYTHON) bash scripts/ensure-azure-cli.sh
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(PY) -m pytest

clean:
	rm -rf $(VENV) var/test-db.sqlite3*
