# Everything from a fresh machine with only Python 3.11: `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# The in-memory LangGraph API server (remote-resumer tests) lives in its own virtualenv:
# langgraph-api pins jsonschema-rs<0.45, schemathesis needs >=0.60.
LG_VENV := .venv-langgraph-server
LG_STAMP := $(LG_VENV)/.installed

.PHONY: install lint typecheck test stress chromium langgraph-server demo clean bench bench-quick wrk

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -e '.[dev,postgres]'
	touch $(STAMP)

install: $(STAMP)

$(LG_STAMP): pyproject.toml
	test -x $(LG_VENV)/bin/python || $(PYTHON) -m venv $(LG_VENV)
	$(LG_VENV)/bin/python -m pip install -q -U pip
	$(LG_VENV)/bin/python -m pip install -q -e '.[langgraph-server]'
	touch $(LG_STAMP)

langgraph-server: $(LG_STAMP)

# The benchmarks' optional peer (humanlayer 0.7.9) on top of the dev install.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,postgres,bench]'
	touch $(BENCH_STAMP)

# Debian's chromium drives the reviewer-console browser test (browsers cannot be downloaded).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and apt-get unavailable: the browser test will skip"; fi; \
	fi

# Debian's wrk drives the local server's load benchmark (bench/bench_server.py skips without it).
wrk:
	@if ! command -v wrk >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian wrk for the load benchmark"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk missing and apt-get unavailable: the load rows will skip"; fi; \
	fi

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

# The main job: an agent whose refund tool needs a human's yes, offline, against the embedded
# server (DEMO_ARGS=--interactive to answer in the reviewer console yourself).
demo: $(STAMP)
	$(BIN)/hitl-agent demo $(DEMO_ARGS)

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass.
test: lint typecheck chromium langgraph-server
	@HITL_LANGGRAPH_CLI=$(CURDIR)/$(LG_VENV)/bin/langgraph $(BIN)/python -m pytest $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$code

# The long matrices (crash injection, storms, fuzzing) in full.
stress: $(STAMP)
	HITL_STRESS=full $(BIN)/python -m pytest -m slow $(PYTEST_ARGS)

# Every benchmark on loopback, each beside its baseline measured in the same run (≤ 10 min):
# a table on stdout and bench/results.json. bench-quick: a reduced set (≤ 60 s), same output.
bench: $(BENCH_STAMP) wrk
	$(BIN)/python bench/run.py $(BENCH_ARGS)

bench-quick: $(BENCH_STAMP)
	$(BIN)/python bench/run.py --quick $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(LG_VENV) .pytest_cache .mypy_cache .ruff_cache
