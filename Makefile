# The two set-up commands of the README: `make run` and `make test`.
# Both create .venv on first use; nothing else needs installing by hand.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP_RUN := $(VENV)/.installed-run
STAMP_DEV := $(VENV)/.installed-dev

.PHONY: run test lint typecheck bench hostile docs clean

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

test: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

lint: $(STAMP_DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

docs: $(STAMP_RUN)
	$(BIN)/mailroom replies --markdown > docs/replies.md

bench: $(STAMP_DEV)
	$(BIN)/python bench/run.py $(ARGS)
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
	rm -rf $(VENV) build *.egg-info src/*.egg-info .pytest_cache .mypy_cache .ruff_cache
