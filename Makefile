# The README's commands: `make run` serves one node, `make test` runs every test.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: venv run test lint unit functional clients samples check-samples clean

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

test: venv lint check-samples
	$(BIN)/pytest -q -p no:cacheprovider tests

clean:
	rm -rf $(VENV) data
