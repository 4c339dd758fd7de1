# All set-up lives here: a fresh machine needs only `make demo` or `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint clean browser speech docs constraints

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

# Debian tools some tests need, installed quietly when missing and this runs as root with apt;
# otherwise those tests skip, saying why. Fast when the tool is there (one `command -v`).
# $(1): commands (any one will do), $(2): the Debian package, $(3): the tests that need it.
define apt_tool
	@for c in $(1); do command -v $$c >/dev/null 2>&1 && exit 0; done; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
		echo "installing $(2) for $(3) (apt-get, once)"; \
		{ apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
			apt-get install -y -qq $(2) >/dev/null; } \
		|| echo "could not install $(2): $(3) will be skipped"; \
	else \
		echo "no $(2) and no root apt-get: $(3) will be skipped"; \
	fi
endef

# The browser tests drive Debian's Chromium (Playwright's own browser download is not used).
browser:
	$(call apt_tool,chromium chromium-browser,chromium,the browser tests)

# tests/test_not_music.py synthesises speech with espeak-ng.
speech:
	$(call apt_tool,espeak-ng,espeak-ng,the speech tests)

# pytest exits 5 when it collects no tests, which fails this target like any other failure.
test: $(STAMP) browser speech
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
