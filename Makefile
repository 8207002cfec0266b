# The two quick-start commands: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := goforkpy tests examples benchmarks

.PHONY: demo test check suite portable warm bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

test: check suite

check: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

suite: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite on the portable layer only (no pidfd, waitid, prctl, /proc, SO_PEERCRED, /dev/shm).
portable: $(STAMP)
	GOFORKPY_PLATFORM=posix $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite with every child started warm, from a zygote, unless a test says otherwise.
warm: $(STAMP)
	GOFORKPY_START=warm $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf .venv .venv-* .mypy_cache .ruff_cache .pytest_cache .hypothesis
