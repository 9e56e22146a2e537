# Two commands on a fresh machine: `make demo` and `make test`. Each bootstraps .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
EXTRAS := dev,postgres,nats,spark,models
STAMP := $(VENV)/.installed-stamp
PEERS := .venv-peers
PEERS_STAMP := $(PEERS)/.installed-stamp
# Peers pin numpy<2 and pandas<2, so they live in their own venv, never in .venv.
PEER_PACKAGES := gbstats==0.8.0 spotify-confidence==4.1.0 growthbook==4.0.0

.PHONY: install demo test lint format bench peers golden system-deps services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip uv
	$(BIN)/uv pip install --python $(BIN)/python -e '.[$(EXTRAS)]'
	touch $(STAMP)

install: $(STAMP)

## The main job: a simulated experiment, analysed end to end.
demo: install
	$(BIN)/proving demo

## Everything CI checks: services up, the test suite against them.
test: install peers system-deps services
	$(BIN)/python -m pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy src

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

$(PEERS_STAMP):
	$(PYTHON) -m venv $(PEERS)
	$(PEERS)/bin/python -m pip install --quiet --upgrade pip uv
	$(PEERS)/bin/uv pip install --python $(PEERS)/bin/python $(PEER_PACKAGES)
	touch $(PEERS_STAMP)

## The peer libraries (gbstats, spotify-confidence, growthbook) in their own venv.
peers: $(PEERS_STAMP)

## Regenerate the golden values that oracle tests compare against (needs the peers venv).
golden: peers install
	$(PEERS)/bin/python scripts/peer_oracle.py --cases 80 --out tests/vectors/peers/golden.json

## Benchmarks: proving side by side with its peers.
bench: install peers system-deps
	for b in benchmarks/*.py; do $(BIN)/python $$b || exit 1; done

## Debian packages the project needs (Java for Spark's local mode).
system-deps:
	@bash scripts/system_deps.sh

## Start PostgreSQL and NATS if they are installed but down.
services:
	@bash scripts/services.sh

clean:
	rm -rf $(VENV) $(PEERS) .pytest_cache .mypy_cache .ruff_cache
