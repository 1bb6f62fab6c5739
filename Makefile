# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
# The same package with its protocol core compiled by mypyc (setup.py): what `make bench`
# measures, and what the second half of `make test` checks. Rebuilt when a source changes.
FAST := .venv-fast
STAMP_FAST := $(FAST)/.installed
SOURCES := $(shell find src -name '*.py' -o -name '*.csv') setup.py pyproject.toml

.PHONY: run test test-compiled fast lint typecheck bench hostile docs clean screenshots

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(STAMP_RUN): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[speed]'
	touch $@

$(STAMP_DEV): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[speed,dev]'
	touch $@ $(STAMP_RUN)

run: $(STAMP_RUN)
	$(BIN)/mailroom serve $(ARGS)

$(STAMP_FAST): $(SOURCES)
	test -x $(FAST)/bin/python || $(PYTHON) -m venv $(FAST)
	$(FAST)/bin/pip install --quiet --upgrade pip 'setuptools>=77' wheel 'mypy>=1.10'
	$(FAST)/bin/pip install --quiet '.[speed,dev]'
	MAILROOM_COMPILE=1 $(FAST)/bin/pip install --quiet --no-build-isolation --force-reinstall \
		--no-deps .
	touch $@

fast: $(STAMP_FAST)

test: $(STAMP_DEV) $(STAMP_FAST)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-compiled

# The suites of the compiled parts and of the server around them, on the compiled build
# (mypyc checks types at run time, so it can differ where the interpreter would not).
test-compiled: $(STAMP_FAST)
	MAILROOM_EXPECT_COMPILED=1 $(FAST)/bin/python -m pytest -q -p no:cacheprovider \
		tests/protocol tests/codes tests/server

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# A screenshot of each view of the web UI at 1440x900 and 390x844 (headless Chromium), into
# build/screenshots/ (not in git), to look at after a change to the UI.
screenshots: $(STAMP_DEV)
	MAILROOM_SCREENSHOTS=$(CURDIR)/build/screenshots $(BIN)/python -m pytest -q -p no:cacheprovider \
		tests/web/test_browser.py -k every_view
	@ls build/screenshots

docs: $(STAMP_RUN)
	$(BIN)/mailroom replies --markdown > docs/replies.md
	$(BIN)/mailroom replies --registry --markdown > docs/registry.md

bench: $(STAMP_DEV) $(STAMP_FAST)
	$(BIN)/python bench/run.py --mailroom-python $(FAST)/bin/python $(ARGS)
	$(BIN)/python bench/memory.py

# The long hostile suite (tests/hostile, the tests marked hostile): floods of 1,000-3,000
# clients, five kill -9 rounds, 2 GiB of DATA without an end; then the soak and fuzzing of
# the protocol core (hypothesis; atheris, coverage-guided, where it installs).
# Shorter: make hostile SOAK_SECONDS=120 FUZZ_SECONDS=60
SOAK_SECONDS ?= 600
FUZZ_SECONDS ?= 300
hostile: $(STAMP_DEV)
	$(BIN)/python -m pytest -q -m hostile tests/hostile
	$(BIN)/python bench/soak.py --seconds $(SOAK_SECONDS)
	mkdir -p build/fuzz
	$(BIN)/python tests/fuzz/fuzz_server.py --seconds $(FUZZ_SECONDS) --crash-dir build/fuzz
	@if $(BIN)/pip install --quiet atheris; then \
		$(BIN)/python tests/fuzz/fuzz_server.py --atheris -max_total_time=$(FUZZ_SECONDS) \
			-max_len=4096 -artifact_prefix=build/fuzz/ -print_final_stats=1; \
	else echo "atheris does not install here: fuzzed with hypothesis only"; fi

clean:
	rm -rf $(VENV) $(FAST) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
