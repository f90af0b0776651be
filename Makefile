# demix — every target sets up what it needs; `make demo` and `make test` work on a fresh clone.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
DEMIX := $(VENV)/bin/demix
OUT ?= manifests/run
INPUT ?=
KIND ?= cinematic
DEMO_DIR ?= demo
ARGS ?=

export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install demo test run status ingest shots audio_quality demix clean help

help:
	@echo "make install | demo | test | run INPUT=... OUT=... [KIND=...] | ingest | shots | audio_quality | demix | status OUT=... | clean"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q -c constraints.txt --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	touch $@

demo: install
	$(DEMIX) sample --out $(DEMO_DIR)/corpus
	$(DEMIX) run --input $(DEMO_DIR)/corpus/sources.csv --out $(DEMO_DIR)/run $(ARGS)
	$(DEMIX) status --out $(DEMO_DIR)/run

test: install
	$(PY) -m pytest $(ARGS)

run: install
	@test -n "$(INPUT)" || { echo "usage: make run INPUT=path [OUT=dir] [KIND=cinematic]"; exit 2; }
	$(DEMIX) run --input $(INPUT) --out $(OUT) --kind $(KIND) $(ARGS)

ingest shots audio_quality demix: install
	@test -n "$(INPUT)" || { echo "usage: make $@ INPUT=path [OUT=dir]"; exit 2; }
	$(DEMIX) run --input $(INPUT) --out $(OUT) --kind $(KIND) --until $@ $(ARGS)

status: install
	$(DEMIX) status --out $(OUT)

clean:
	rm -rf $(DEMO_DIR) manifests/run .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
