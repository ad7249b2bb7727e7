# The two commands a fresh machine needs (see README):
#   make run   - set up and run the site (web + worker) on the embedded default
#   make test  - run the whole test suite against PostgreSQL, Redis and a real Celery worker
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 8000
SITE_URL ?= http://127.0.0.1:$(PORT)

.PHONY: install run test lint format clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip

$(VENV)/.installed: pyproject.toml | $(PY)
	$(PY) -m pip install -q -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	SITE_URL=$(SITE_URL) $(PY) manage.py run_site --port $(PORT)

test: install
	bash scripts/test.sh

lint: install  # ruff (lint, import order, format check), djLint on the templates, mypy on ml/
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/djlint templates --lint
	$(VENV)/bin/mypy

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) var staticfiles
