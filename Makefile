# The two quick-start commands: `make demo` and `make test`. Each sets itself up.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
SOURCES := goforkpy tests examples benchmarks

.PHONY: demo test check suite covered docs package portable warm bench clean

# EXTRAS: what the venv needs; a venv that only runs the suite can do with test,progress,dask.
EXTRAS ?= dev

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[$(EXTRAS)]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/python examples/quickstart.py

test: check covered docs package

check: $(STAMP)
	$(BIN)/ruff check $(SOURCES)
	$(BIN)/ruff format --check $(SOURCES)
	$(BIN)/mypy

# Compiled first, as users have it after `pip install`: each child imports goforkpy anew.
suite: $(STAMP)
	$(BIN)/python -m compileall -q goforkpy tests > /dev/null
	$(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite, with goforkpy's own coverage: the lines its children run are measured too
# (cold, warm and snapshot children, Executor workers), with the configuration
# docs/guides/coverage.md gives users (pyproject.toml's [tool.coverage.run]). A test
# takes 2.5 times as long under coverage, so the core of the suite runs under it and
# the rest plainly.
COVERED := tests/test_core.py tests/test_snapshot.py tests/test_warm.py \
	tests/test_executor.py tests/test_isolated.py
# Both run at once (the suite mostly waits on its children); the covered part's output
# comes after the rest's.
covered: $(STAMP)
	$(BIN)/python -m compileall -q goforkpy tests > /dev/null
	rm -f .coverage .coverage.*
	$(BIN)/python -m pytest $(PYTEST_ARGS) --cov=goforkpy --cov-report=term $(COVERED) \
	    > .covered.log 2>&1 & \
	$(BIN)/python -m pytest $(PYTEST_ARGS) $(addprefix --ignore=,$(COVERED)); rest=$$?; \
	wait $$!; covered=$$?; cat .covered.log; rm -f .covered.log; \
	test $$rest = 0 && test $$covered = 0

# The documentation site, into site/; --strict fails on a broken reference or link.
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir site

# The sdist and the wheel, into dist/; the wheel installed into a clean venv runs the
# quick start, from outside the source tree, so what would be published is what is tested.
package: $(STAMP)
	rm -rf dist .venv-wheel
	$(BIN)/python -m build --outdir dist . > /dev/null
	$(BIN)/python -m venv .venv-wheel
	.venv-wheel/bin/python -m pip install --quiet --disable-pip-version-check dist/*.whl
	cd examples && env -u PYTHONPATH ../.venv-wheel/bin/python -c \
	    "import goforkpy, sys; assert '/.venv-wheel/' in goforkpy.__file__, goforkpy.__file__"
	cd examples && env -u PYTHONPATH ../.venv-wheel/bin/python quickstart.py > /dev/null
	@echo "dist/: $$(ls dist | tr '\n' ' ')- the wheel runs the quick start"

# The suite on the portable layer only (no pidfd, waitid, prctl, /proc, SO_PEERCRED, /dev/shm).
portable: $(STAMP)
	$(BIN)/python -m compileall -q goforkpy tests > /dev/null
	GOFORKPY_PLATFORM=posix $(BIN)/python -m pytest $(PYTEST_ARGS)

# The suite with every child started warm, from a zygote, unless a test says otherwise.
warm: $(STAMP)
	$(BIN)/python -m compileall -q goforkpy tests > /dev/null
	GOFORKPY_START=warm $(BIN)/python -m pytest $(PYTEST_ARGS)

bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf .venv .venv-* .mypy_cache .ruff_cache .pytest_cache .hypothesis site dist .coverage*
