# The README's two commands: `make demo` (main job end to end) and `make test`.
# Both create the virtual environment and install the project when needed.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint clean

FASHION_MNIST := /usr/share/datasets/fashion-mnist

$(STAMP): pyproject.toml
	@# Fashion-MNIST from Debian's package, where apt-get is usable (best effort: never fails the set-up).
	@if [ ! -d $(FASHION_MNIST) ] && command -v apt-get >/dev/null && [ -w /var/lib/dpkg ]; then \
		(apt-get install -y -q dataset-fashion-mnist || (apt-get update -q && apt-get install -y -q dataset-fashion-mnist)) \
			>/dev/null 2>&1 || echo "note: dataset-fashion-mnist not installed; examples/fashion_mnist.yaml needs it"; \
	fi
	@# Chromium and its WebDriver for the web page's browser test (best effort: the test skips without them).
	@if ! command -v chromedriver >/dev/null && command -v apt-get >/dev/null && [ -w /var/lib/dpkg ]; then \
		(apt-get install -y -q chromium chromium-driver || (apt-get update -q && apt-get install -y -q chromium chromium-driver)) \
			>/dev/null 2>&1 || echo "note: chromium not installed; the web page's browser test will be skipped"; \
	fi
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(BIN)/nas demo

test: $(STAMP)
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

test-all: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/mypy

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
