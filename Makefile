# Every target bootstraps what it needs: a fresh machine with Python 3.10+ and make is enough.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed-stamp
HOST   ?= 127.0.0.1
PORT   ?= 8765

.PHONY: test demo bench soak lint typecheck check services clean realapps docs compile

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[all,test,dev,docs]'
	touch $(STAMP)

# tests/realapps: one virtualenv per real open-source app (its framework versions may differ
# from ours), holding the app, its server and telemetry-web (editable), from
# tests/realapps/requirements/<app>.txt; rebuilt only when that file (or our pyproject) changes.
REALAPPS        = piccolo-admin datasette wagtail httpbin
REALAPPS_VENVS  = .venv-realapps
REALAPPS_STAMPS = $(REALAPPS:%=$(REALAPPS_VENVS)/%/.installed-stamp)

$(REALAPPS_VENVS)/%/.installed-stamp: tests/realapps/requirements/%.txt pyproject.toml
	$(PYTHON) -m venv --clear $(REALAPPS_VENVS)/$*
	$(REALAPPS_VENVS)/$*/bin/python -m pip install --quiet --upgrade pip
	$(REALAPPS_VENVS)/$*/bin/python -m pip install --quiet -r $<
	touch $@

$(REALAPPS_VENVS)/datasette/.installed-stamp: tests/realapps/datasette_routes/pyproject.toml

## realapps: build (or update) the real-app virtualenvs of tests/realapps
realapps: $(REALAPPS_STAMPS)

# The request path compiled with mypyc (scripts/compile.py): rebuilt when one of its modules
# changes; `python scripts/compile.py --clean` goes back to pure Python.
COMPILED_STAMP = build/mypyc/.compiled-stamp
$(COMPILED_STAMP): $(STAMP) scripts/compile.py $(shell $(PYTHON) -c "import runpy; print(' '.join('src/' + m for m in runpy.run_path('scripts/compile.py')['MODULES']))")
	$(PY) scripts/compile.py --force
	mkdir -p $(dir $@) && touch $@

## compile: build the request path's C extensions in place (make test and make bench do it)
compile: $(COMPILED_STAMP)

## test: create .venv, install everything, compile the request path, run the whole suite
test: $(STAMP) $(COMPILED_STAMP) realapps services
	$(PY) -m pytest $(PYTEST_ARGS)

## demo: serve the sample app with uvicorn, send traffic, print /metrics, /ready and log lines
demo: $(STAMP) $(COMPILED_STAMP)
	$(PY) scripts/demo.py --host $(HOST) --port $(PORT)

## bench: in-process and wrk benchmarks, bare vs telemetry-web vs the usual OpenTelemetry stack,
## then tracing sampled in/out/rate-limited, log sinks, and database/cache instrumentation
bench: $(STAMP) $(COMPILED_STAMP) services
	$(PY) -m benchmarks $(BENCH_ARGS)
	$(PY) -m benchmarks.tracing $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.logs $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.db $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.outputs $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.store_scale $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.routes $(filter --quick,$(BENCH_ARGS))
	$(PY) -m benchmarks.scrape $(filter --quick,$(BENCH_ARGS))

## soak: RSS growth over SOAK_REQUESTS (default 200,000) requests with a working, a hanging and
## a refusing OTLP collector on loopback (benchmarks/soak.py)
soak: $(STAMP)
	$(PY) -m benchmarks.soak

## docs: regenerate the configuration and CLI reference pages, build the site into site/
docs: $(STAMP)
	$(PY) scripts/gen_docs.py
	NO_MKDOCS_2_WARNING=1 $(VENV)/bin/mkdocs build --strict

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
	rm -rf $(VENV) $(REALAPPS_VENVS) .pytest_cache .mypy_cache .ruff_cache .telemetry site build/mypyc
	$(PYTHON) scripts/compile.py --clean
