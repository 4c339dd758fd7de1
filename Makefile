# All set-up lives here: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean browser docs constraints

# The exact tested versions (constraints.txt, the CPU build of torch 2.13.0) of the core and the
# extras the suite and the docs need; pyproject.toml itself holds ranges.
$(STAMP): pyproject.toml constraints.txt
	@command -v $(PYTHON) >/dev/null 2>&1 || { echo "merkit needs $(PYTHON) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[test,docs]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/merkit benchmark --out runs/demo

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used):
# installed quietly when missing and this runs as root with apt; otherwise they skip, saying why.
# Fast when it is already there (one `command -v`).
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing chromium for the browser tests (apt-get, once)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq chromium >/dev/null; } \
		|| echo "could not install chromium: the browser tests will be skipped"; \
	else \
		echo "no chromium and no root apt-get: the browser tests will be skipped"; \
	fi

# pytest exits 5 when it collects no tests, which fails this target like any other failure.
test: $(STAMP) browser
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/python -m pytest -q

# The documentation site (docs/ -> site/), every MkDocs or mkdocstrings warning an error.
docs: $(STAMP)
	$(BIN)/python -m mkdocs build --strict
	@echo "docs: site/index.html"

# After a dependency change: pin the installed environment's versions (merkit itself left out).
constraints: $(STAMP)
	{ sed -n '/^#/p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable | \
		grep -v '^#'; } > constraints.txt.new && mv constraints.txt.new constraints.txt

lint: $(STAMP)
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

clean:
	rm -rf $(VENV) runs .pytest_cache site
