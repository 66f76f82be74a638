# Two set-up commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build by default. On an NVIDIA machine pick the CUDA build, e.g.
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= runs/demo

.PHONY: install demo test test-fast lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,tune,audio,lidar,export]"
	touch $@

install: $(BIN)/.installed

data/digits/train/manifest.json: | $(BIN)/.installed
	$(BIN)/dssl data sample image data/digits

# SimCLR, tiny ViT, 2 Ray Train workers, DeepSpeed ZeRO-2; prints a results table, then the summary.json path.
demo: $(BIN)/.installed data/digits/train/manifest.json
	$(BIN)/dssl train jobs/configs/image_simclr.yaml run.dir=$(DEMO_DIR) --overwrite

test: $(BIN)/.installed
	$(BIN)/python -m pytest -q --durations=15

test-fast: $(BIN)/.installed
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed data/digits/train/manifest.json
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/train_overhead.py

clean:
	rm -rf runs data .pytest_cache
