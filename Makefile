# Two commands (see README): `make demo` and `make test`. Both create .venv if it is missing and install the
# pinned stack (requirements.txt is a complete lock, installed with --no-deps) plus this repo in editable mode.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
NPROC  := $(shell nproc 2>/dev/null || echo 2)
export OMP_NUM_THREADS ?= $(NPROC)

.PHONY: setup demo test test-all bench clean-venv

$(STAMP): requirements.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -r requirements.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

setup: $(STAMP)

demo: $(STAMP)
	$(BIN)/python -m rfcn_face demo

test: $(STAMP)
	$(BIN)/python -m pytest

test-all: $(STAMP)
	$(BIN)/python -m pytest -m ""

# Every benchmark in a quick mode (small inputs, one repeat): a smoke run of the timing scripts. The full-size
# runs, whose ratios the docs quote, are each script's defaults (benchmarks/README.md).
bench: $(STAMP)
	$(BIN)/python benchmarks/bench_anchor_targets.py --size 512 --faces 50 --repeat 1 --no-forward
	$(BIN)/python benchmarks/bench_network.py --depth 18 --size 256x256 --repeat 1 --rois 64
	$(BIN)/python benchmarks/bench_search.py --n 20000 --ids 2000 --probes 500 --nlist 64 --nprobe 8 --m 16
	$(BIN)/python benchmarks/bench_wider_eval.py --per-image 5 --repeat 1 --ref-images 20
	$(BIN)/python benchmarks/bench_fddb_eval.py --repeat 1 --ref-images 5
	$(BIN)/python benchmarks/bench_readers.py --repeat 1
	$(BIN)/python benchmarks/bench_train.py --steps 2 --warmup 1 --size 256 --faces 20 --r101-steps 0 --loader-iterations 4 --loader-repeats 1
	$(BIN)/python benchmarks/bench_detect.py --quick
	$(BIN)/python benchmarks/bench_hc_exact_n.py --every 16 --no-old

clean-venv:
	rm -rf $(VENV)
