# Two set-up commands on a fresh machine: `make demo` and `make test`. Both create .venv and install first.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build by default. On an NVIDIA machine pick the CUDA build, e.g.
#   make demo TORCH_SPEC="torch==2.13.0" TORCH_INDEX="--index-url https://download.pytorch.org/whl/cu128"
TORCH_SPEC ?= torch==2.13.0
TORCH_INDEX ?=
DEMO_DIR ?= runs/demo
# espeak-ng speaks the audio sample set the tests use; a system package, so pip cannot install it
ESPEAK ?= espeak-ng
APT_GET ?= apt-get

.PHONY: install demo test test-fast lint bench clean system-deps bytecode

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_INDEX) "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e ".[dev,tune,audio,lidar,export]"
	touch $@

install: $(BIN)/.installed

# Installs espeak-ng when it is missing and this user can (root, or passwordless sudo, with apt-get); otherwise
# stops at once with the command to run, before the install and long before a test would fail on it.
system-deps:
	@if command -v $(ESPEAK) >/dev/null 2>&1; then exit 0; fi; \
	if command -v $(APT_GET) >/dev/null 2>&1; then \
	  if [ "$$(id -u)" = 0 ]; then SUDO=; \
	  elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then SUDO="sudo -n"; \
	  else echo "error: the tests need espeak-ng (it speaks the audio sample set). Install it, then run make test again:" >&2; \
	    echo "  sudo apt-get install -y espeak-ng" >&2; exit 1; fi; \
	  echo "espeak-ng is missing (the audio sample set needs it): installing it with $(APT_GET)"; \
	  $$SUDO env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq espeak-ng || \
	    { $$SUDO env DEBIAN_FRONTEND=noninteractive $(APT_GET) update -qq && \
	      $$SUDO env DEBIAN_FRONTEND=noninteractive $(APT_GET) install -y -qq espeak-ng; } || \
	    { echo "error: installing espeak-ng failed; run: sudo apt-get update && sudo apt-get install -y espeak-ng" >&2; exit 1; }; \
	else \
	  echo "error: the tests need espeak-ng (it speaks the audio sample set) and there is no apt-get here. Install it, then run make test again:" >&2; \
	  echo "  brew install espeak-ng    (macOS; other systems: the espeak-ng package of your distribution)" >&2; exit 1; \
	fi; \
	command -v $(ESPEAK) >/dev/null 2>&1 || { echo "error: espeak-ng was installed but $(ESPEAK) is not on PATH" >&2; exit 1; }

data/digits/train/manifest.json: | $(BIN)/.installed
	$(BIN)/dssl data sample image data/digits

# SimCLR, tiny ViT, 2 Ray Train workers, DeepSpeed ZeRO-2; prints a results table, then the summary.json path.
demo: $(BIN)/.installed bytecode data/digits/train/manifest.json
	$(BIN)/dssl train jobs/configs/image_simclr.yaml run.dir=$(DEMO_DIR) --overwrite

# Every Ray worker process of a run imports the package. Without bytecode on disk (PYTHONDONTWRITEBYTECODE, which
# CI images often set) each one compiles it from source again: ~75 ms of CPU a process, several processes a run.
# compileall rewrites only what is stale.
bytecode: $(BIN)/.installed
	PYTHONDONTWRITEBYTECODE= $(BIN)/python -m compileall -q distributed_ssl tests benchmarks > /dev/null

test: system-deps $(BIN)/.installed bytecode
	$(BIN)/python -m pytest -q --durations=30

test-fast: system-deps $(BIN)/.installed bytecode
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(BIN)/.installed
	$(BIN)/ruff check .

bench: $(BIN)/.installed data/digits/train/manifest.json
	$(BIN)/python benchmarks/ingest.py
	$(BIN)/python benchmarks/pipeline_startup.py
	$(BIN)/python benchmarks/train_overhead.py
	$(BIN)/python benchmarks/run_overhead.py

clean:
	rm -rf runs data .pytest_cache
