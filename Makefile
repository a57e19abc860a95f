# Everything from a fresh machine with only Python 3.11: `make demo`, `make test`.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

# Development installs are locked: each virtualenv installs under the constraints file of the
# exact versions the suite last passed with (constraints/*.txt, `make lock` refreshes them).
# The library's own ranges in pyproject.toml stay ranges; `make test-latest` runs a fast subset
# against the newest versions those ranges allow, so an upstream release that breaks users
# shows in the next CI run.
LOCK_DEV := constraints/dev.txt
LOCK_LG := constraints/langgraph-server.txt
LOCK_LOWEST := constraints/lg-lowest.txt
EXTRAS_DEV := dev,server,remote,postgres,langchain,plot,metrics,otel
EXTRAS_LG := langgraph-server,server,remote

# The in-memory LangGraph API server (remote-resumer tests) lives in its own virtualenv:
# langgraph-api pins jsonschema-rs<0.45, schemathesis needs >=0.60.
LG_VENV := .venv-langgraph-server
LG_STAMP := $(LG_VENV)/.installed

# The lowest LangGraph the pins in pyproject.toml allow: the gate, dispatch and langgraph
# suites (the code that reads LangGraph's internals, see hitl_agent/gate/_pregel.py) run there
# too. Keep these in step with the lower bounds in pyproject.toml; the newest allowed versions
# are what $(VENV) resolves to.
LG_LOWEST_VENV := .venv-lg-lowest
LG_LOWEST_STAMP := $(LG_LOWEST_VENV)/.installed
LG_LOWEST := langgraph==1.2.4 langgraph-checkpoint==4.1.0 langgraph-checkpoint-sqlite==3.0.2 \
	langgraph-prebuilt==1.1.0
LG_LOWEST_EXTRAS := server,remote,postgres
LG_LOWEST_TOOLS := 'pytest>=8' 'pytest-timeout>=2.3' 'hypothesis>=6.100'
LG_LOWEST_TESTS := tests/langgraph tests/gate tests/dispatch

# The newest-versions canary: no lock, every dependency upgraded on each run.
LATEST_VENV := .venv-latest
LATEST_TESTS := tests/client tests/gate tests/langchain tests/dispatch tests/test_examples.py

# The built wheel, installed with [langchain,server] in a virtualenv of its own, runs the
# examples and the docs' snippets from outside the checkout.
WHEEL_VENV := .venv-wheel

$(STAMP): pyproject.toml $(LOCK_DEV)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -U pip
	$(BIN)/python -m pip install -q -c $(LOCK_DEV) -e '.[$(EXTRAS_DEV)]'
	touch $(STAMP)

install: $(STAMP)

$(LG_STAMP): pyproject.toml $(LOCK_LG)
	test -x $(LG_VENV)/bin/python || $(PYTHON) -m venv $(LG_VENV)
	$(LG_VENV)/bin/python -m pip install -q -U pip
	$(LG_VENV)/bin/python -m pip install -q -c $(LOCK_LG) -e '.[$(EXTRAS_LG)]'
	touch $(LG_STAMP)

langgraph-server: $(LG_STAMP)

$(LG_LOWEST_STAMP): pyproject.toml Makefile $(LOCK_LOWEST)
	test -x $(LG_LOWEST_VENV)/bin/python || $(PYTHON) -m venv $(LG_LOWEST_VENV)
	$(LG_LOWEST_VENV)/bin/python -m pip install -q -U pip
	$(LG_LOWEST_VENV)/bin/python -m pip install -q -c $(LOCK_LOWEST) \
	  -e '.[$(LG_LOWEST_EXTRAS)]' $(LG_LOWEST) $(LG_LOWEST_TOOLS)
	touch $(LG_LOWEST_STAMP)

langgraph-lowest: $(LG_LOWEST_STAMP)

# The LangGraph-facing suites on the lowest allowed LangGraph (about 30 s).
test-langgraph-lowest: langgraph-lowest
	@$(LG_LOWEST_VENV)/bin/python -c 'import importlib.metadata as m; print("langgraph", m.version("langgraph"), "(lowest allowed):", "$(LG_LOWEST_TESTS)")'
	@$(LG_LOWEST_VENV)/bin/python -m pytest -q $(LG_LOWEST_TESTS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$code

# The benchmarks' optional peer (humanlayer 0.7.9) on top of the dev install.
BENCH_STAMP := $(VENV)/.installed-bench
$(BENCH_STAMP): $(STAMP)
	$(BIN)/python -m pip install -q -e '.[dev,server,remote,postgres,langchain,plot,bench]'
	touch $(BENCH_STAMP)

# Debian's chromium drives the reviewer-console browser test (browsers cannot be downloaded).
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian chromium for the browser test"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else echo "chromium missing and apt-get unavailable: the browser test will skip"; fi; \
	fi

# Debian's prometheus (and its promtool) for the observability tests: a real Prometheus scrapes
# the worker, promtool checks the alert rules. Without them those tests skip, saying why.
prometheus:
	@if ! command -v promtool >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian prometheus for the observability tests"; \
	    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null) \
	      || echo "prometheus could not be installed: those tests will skip"; \
	  else echo "promtool missing and apt-get unavailable: those tests will skip"; fi; \
	fi

# Debian's wrk drives the local server's load benchmark (bench/bench_server.py skips without it).
wrk:
	@if ! command -v wrk >/dev/null; then \
	  if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
	    echo "installing Debian wrk for the load benchmark"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null; \
	  else echo "wrk missing and apt-get unavailable: the load rows will skip"; fi; \
	fi

# lint-imports: the import contract in pyproject.toml (docs/architecture.md).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

# The main job: an agent whose refund tool needs a human's yes, offline, against the embedded
# server (DEMO_ARGS=--interactive to answer in the reviewer console yourself).
demo: $(STAMP)
	$(BIN)/hitl-agent demo $(DEMO_ARGS)

# pytest exits 5 when it collected nothing: that is a broken suite, never a pass. The whole
# suite runs on the locked set (constraints/dev.txt), then the LangGraph-facing part on the
# lowest allowed LangGraph.
test: lint typecheck chromium prometheus langgraph-server langgraph-lowest
	@$(BIN)/python tools/versions.py "locked, $(LOCK_DEV)"
	@HITL_LANGGRAPH_CLI=$(CURDIR)/$(LG_VENV)/bin/langgraph $(BIN)/python -m pytest $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	if [ $$code -ne 0 ]; then exit $$code; fi
	@$(MAKE) --no-print-directory test-langgraph-lowest

# The newest-versions canary (about 3 minutes): every dependency at the newest version the
# ranges in pyproject.toml allow, no lock, then the client, gate, langchain and dispatch suites
# and the examples. Upgrades on every run, so a reused virtualenv is as new as a fresh one.
test-latest:
	test -x $(LATEST_VENV)/bin/python || $(PYTHON) -m venv $(LATEST_VENV)
	$(LATEST_VENV)/bin/python -m pip install -q -U pip
	$(LATEST_VENV)/bin/python -m pip install -q -U --upgrade-strategy eager -e '.[$(EXTRAS_DEV)]'
	@$(LATEST_VENV)/bin/python tools/versions.py "newest allowed"
	@$(LATEST_VENV)/bin/python -m pytest -q $(LATEST_TESTS) $(PYTEST_ARGS); code=$$?; \
	if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$code

# What a wheel user gets: the built wheel with [langchain,server] in a clean virtualenv (the
# locked versions), running every example and docs snippet from outside the checkout, so the
# checkout's own hitl_agent/ cannot stand in for the installed one.
test-wheel:
	rm -rf $(WHEEL_VENV) dist
	$(PYTHON) -m venv $(WHEEL_VENV)
	$(WHEEL_VENV)/bin/python -m pip install -q -U pip
	$(WHEEL_VENV)/bin/python -m pip wheel -q --no-deps -w dist .
	$(WHEEL_VENV)/bin/python -m pip install -q -c $(LOCK_DEV) \
	  "$$(ls dist/hitl_agent-*.whl)[langchain,server]" pytest pytest-timeout hypothesis
	@cd $(WHEEL_VENV) && HITL_EXPECT_INSTALLED_WHEEL=1 bin/python -m pytest -q \
	  -p no:cacheprovider --rootdir=$(CURDIR) -c $(CURDIR)/pyproject.toml \
	  $(CURDIR)/tests/test_wheel.py $(CURDIR)/tests/test_examples.py $(CURDIR)/tests/test_docs.py; \
	code=$$?; if [ $$code -eq 5 ]; then echo "pytest collected no tests: failing on purpose"; exit 1; fi; \
	exit $$code

# Refresh the locks: each virtualenv's set resolved anew from pyproject.toml's ranges in a
# scratch virtualenv, then frozen into constraints/. Run `make test` after it and commit the
# files only when it passes.
lock:
	tools/lock.sh $(PYTHON) $(LOCK_DEV) -e '.[$(EXTRAS_DEV)]'
	tools/lock.sh $(PYTHON) $(LOCK_LG) -e '.[$(EXTRAS_LG)]'
	tools/lock.sh $(PYTHON) $(LOCK_LOWEST) -e '.[$(LG_LOWEST_EXTRAS)]' $(LG_LOWEST) $(LG_LOWEST_TOOLS)

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
	rm -rf $(VENV) $(LG_VENV) $(LG_LOWEST_VENV) $(LATEST_VENV) $(WHEEL_VENV) dist \
	  .pytest_cache .mypy_cache .ruff_cache
