# Every target bootstraps what it needs: a fresh machine with Python 3.10+ and make is enough.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8765

.PHONY: test demo bench lint typecheck check services clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test,dev]'
	touch $(STAMP)

## test: create .venv, install everything, run the whole suite
test: $(STAMP) services
	$(PY) -m pytest $(PYTEST_ARGS)

## demo: serve the sample app with uvicorn, send traffic, print /metrics, /ready and log lines
demo: $(STAMP)
	$(PY) scripts/demo.py --host $(HOST) --port $(PORT)

## bench: in-process and wrk benchmarks, bare vs telemetry-web vs the usual OpenTelemetry stack,
## then tracing sampled in/out/rate-limited, log sinks, and database/cache instrumentation
bench: $(STAMP) services
	$(PY) -m benchmarks $(BENCH_ARGS)
	$(PY) -m benchmarks.tracing $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.logs $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.db $(filter --quick,$(BENCH_ARGS))

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks sample_apps scripts
	$(VENV)/bin/ruff format --check src tests benchmarks sample_apps scripts

typecheck: $(STAMP)
	$(VENV)/bin/mypy

check: lint typecheck test

## services: tools and services the tests and benchmarks use (wrk, promtool)
services:
	@bash scripts/ensure-services.sh

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .telemetry
