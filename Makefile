# The two commands a newcomer runs: `make demo` and `make test`.
# Both create .venv and (re)install the project when pyproject.toml is newer than the
# install stamp, so a fresh clone needs nothing pre-installed but python3 >= 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test test-slow lint typecheck bench clean

# pip's output goes to .venv/install.log (shown if the install fails), so that the demo's
# output is the demo's.
$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing ovencast and its dependencies into $(VENV) (log: $(VENV)/install.log)"
	@( $(BIN)/python -m pip install --upgrade pip && \
	   $(BIN)/python -m pip install -e '.[dev]' ) > $(VENV)/install.log 2>&1 \
	  || { tail -40 $(VENV)/install.log; echo "install failed: see $(VENV)/install.log"; exit 1; }
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/ovencast demo

# The web console's browser tests drive Debian's chromium (tests/console): installed when
# missing and possible (root); otherwise they skip locally and fail under CI=true.
# Two test processes (pytest-xdist), as CI has two cores; every test has its own
# databases, ports and home, so they do not meet.
test: $(STAMP)
	@command -v chromium >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  chromium chromium-driver >/dev/null || echo "chromium is missing and could not be \
	installed: the console's browser tests will skip (and fail under CI=true)"
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -m "not slow" -n 2

test-slow: $(STAMP)
	$(BIN)/pytest -m slow

lint: $(STAMP)
	$(BIN)/ruff check src tests bench

typecheck: $(STAMP)
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python bench/speed.py src/ovencast/demo_data/kiel

clean:
	rm -rf $(VENV) .ovencast .pytest_cache .mypy_cache .ruff_cache
