# The two set-up commands of the README: `make run` and `make test`.
# Each creates what it needs on first use; nothing else needs installing by hand.
#
# Two virtual environments, never mixed:
# - .venv-fast: mailroom installed as users get it (`pip install .`: the protocol core compiled
#   with mypyc where a C compiler is found, pure Python where not; setup.py). `make run`,
#   `make bench` and the second half of `make test` use it. Rebuilt when a source changes
#   (about a minute: mypyc and the C compiler).
# - .venv: the development install (`pip install -e`, always pure Python, so the sources being
#   edited are what runs): the suite, the linters, `make docs`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev
FAST := .venv-fast
STAMP_FAST := $(FAST)/.installed
STAMP_FAST_DEV := $(FAST)/.installed-dev
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

# .venv (editable, the mailroom command beside the sources, what `make test` extends) and
# .venv-fast (installed as `pip install .` installs it: compiled); the server runs compiled.
run: $(STAMP_RUN) $(STAMP_FAST)
	$(FAST)/bin/mailroom serve $(ARGS)

# `pip install .` as a user runs it (build isolation fetches setuptools, wheel and mypy).
$(STAMP_FAST): $(SOURCES)
	test -x $(FAST)/bin/python || $(PYTHON) -m venv $(FAST)
	$(FAST)/bin/pip install --quiet '.[speed]'
	touch $@

# The dev extras beside it (for the compiled half of `make test` and the benchmarks), without
# building mailroom a second time.
$(STAMP_FAST_DEV): $(STAMP_FAST) pyproject.toml
	$(FAST)/bin/python -c 'import tomllib; print("\n".join(tomllib.load(open("pyproject.toml", \
		"rb"))["project"]["optional-dependencies"]["dev"]))' > $(FAST)/dev-requirements.txt
	$(FAST)/bin/pip install --quiet -r $(FAST)/dev-requirements.txt
	touch $@

fast: $(STAMP_FAST)

test: $(STAMP_DEV) $(STAMP_FAST_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q
	$(MAKE) --no-print-directory test-compiled

# The suites of the compiled parts and of the server around them, on the compiled build
# (mypyc checks types at run time, so it can differ where the interpreter would not).
# MAILROOM_EXPECT_COMPILED=1: a build that fell back to pure Python fails here.
test-compiled: $(STAMP_FAST_DEV)
	MAILROOM_EXPECT_COMPILED=1 $(FAST)/bin/python -m pytest -q -p no:cacheprovider \
		tests/protocol tests/codes tests/server tests/interop tests/activity

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

# mailroom as `make run` installs and starts it, tuned, and its peers (aiosmtpd, Node's
# smtp-server, Postfix's smtp-sink) under bench-client, then with 1 and 2 workers under
# Postfix's smtp-source (C); see docs/benchmarks.md. ARGS="--rounds 5 --only ..." for more.
bench: $(STAMP_DEV) $(STAMP_FAST_DEV)
	$(BIN)/python bench/run.py --suite all --mailroom-python $(FAST)/bin/python $(ARGS)
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
