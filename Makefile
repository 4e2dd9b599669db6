# The README's commands: `make run` serves one node, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
DOCS_STAMP := $(VENV)/.docs-installed

.PHONY: venv run test lint unit functional clients samples check-samples docs clean glance-venv

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml requirements.txt test-requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip setuptools
	$(BIN)/pip install -q -r requirements.txt -r test-requirements.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $(STAMP)

run: venv
	$(BIN)/glance-cache-api $(if $(CONFIG),--config-file $(CONFIG))

lint: venv
	$(BIN)/ruff check glance_cache tests bench tempest_plugin

check-samples: venv
	$(BIN)/python tools/check_samples.py

samples: venv
	$(BIN)/python tools/check_samples.py --write

docs: $(DOCS_STAMP)
	$(BIN)/sphinx-build -W -q -b html doc/source doc/build/html
	$(BIN)/sphinx-build -W -q -b html api-ref/source api-ref/build/html

$(DOCS_STAMP): $(STAMP) doc/requirements.txt
	$(BIN)/pip install -q -r doc/requirements.txt
	touch $(DOCS_STAMP)

test: venv lint check-samples docs
	$(BIN)/pytest -q -p no:cacheprovider tests

# Upstream Glance, for bench/cache_api.py --glance .venv-glance (not used by the tests).
GLANCE_VENV := .venv-glance

glance-venv: $(GLANCE_VENV)/.installed

$(GLANCE_VENV)/.installed:
	test -x $(GLANCE_VENV)/bin/python || $(PYTHON) -m venv $(GLANCE_VENV)
	$(GLANCE_VENV)/bin/pip install -q glance==33.0.0 gunicorn
	touch $@

clean:
	rm -rf $(VENV) $(GLANCE_VENV) data
