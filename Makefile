# tierwise — every target installs what it needs first (make install is idempotent).
PY      ?= python3.11
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.installed
export MLFLOW_DISABLE_TELEMETRY := true
export TOKENIZERS_PARALLELISM := false

.PHONY: install serve test lint classifier eval retune bench bench-classifier bench-quick bench-route bench-proxy bench-context bench-ingest bench-retune bench-load bench-scale screenshots demo notebook notebook-report clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) on PATH"; exit 1; }
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch first, pinned, so nothing pulls a CUDA build (the CPU wheel is on local disk).
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

serve: install
	$(BIN)/tierwise serve

test: install
	$(BIN)/python -m pytest -q

# mypy cannot follow the editable install's package-dir mapping, so lint builds a symlink tree
# (.typing/tierwise/{service,tuner,bench,data} -> the top-level folders) and checks it by name.
lint: install
	$(BIN)/ruff check service tuner bench tests
	rm -rf .typing && mkdir -p .typing/tierwise
	for d in service tuner bench data; do ln -s ../../$$d .typing/tierwise/$$d; done
	cd .typing && MYPYPATH=. ../$(BIN)/mypy --config-file ../pyproject.toml -p tierwise.service -p tierwise.tuner

classifier: install
	TIERWISE_EMBEDDER=minilm-int8 $(BIN)/tierwise train --seed 0
	TIERWISE_EMBEDDER=minilm $(BIN)/tierwise train --seed 0
	$(BIN)/tierwise eval

eval: install
	$(BIN)/tierwise eval

retune: install
	$(BIN)/tierwise retune $(ARGS)

bench: install
	$(BIN)/tierwise bench swebench
	$(BIN)/tierwise bench synthetic --seeds 3 --scenario drift_model_swap,small_degrades,medium_degrades,medium_upgrade

bench-classifier: install
	$(BIN)/pip install --quiet -e '.[dev,peer]'
	$(BIN)/python -m tierwise.bench.classifier_compare

bench-quick: install
	$(BIN)/tierwise bench all --quick

bench-route: install
	$(BIN)/python -m tierwise.bench.route_latency

bench-proxy: install
	$(BIN)/python -m tierwise.bench.proxy_overhead $(ARGS)

bench-ingest: install
	$(BIN)/python -m tierwise.bench.ingest

bench-retune: install
	$(BIN)/python -m tierwise.bench.retune_time

# File recall of packed context on SWE-bench Verified (releases fetched once into ~/.cache/tierwise).
bench-context: install
	$(BIN)/python -m tierwise.bench.context_bench $(ARGS)

bench-load: install
	$(BIN)/python -m tierwise.bench.load $(ARGS)

# SQLite default vs PostgreSQL with one and two hosts (issue 17); starts its own throwaway cluster.
bench-scale: install
	$(BIN)/python -m tierwise.bench.scale $(ARGS)

demo: install
	$(BIN)/python -m tierwise.bench.demo

notebook: install
	$(BIN)/jupyter notebook notebooks/misroutes.ipynb

notebook-report: install
	$(BIN)/python -m tierwise.tuner.notebook_report

clean:
	rm -rf var .typing bench/results/*.tmp

# The console's pages as PNGs under docs/img/ (Debian's chromium through playwright).
screenshots: install
	$(BIN)/python -m tierwise.bench.screenshots
