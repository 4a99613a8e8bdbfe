# All set-up lives here: `make demo` and `make test` work on a fresh clone with only Python 3.11.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
WORKSPACE ?= workspace

.PHONY: demo test install install-dev clean sample bench-env

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-dev: $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install -q -e '.[dev]'
	touch $(VENV)/.installed $@

install: $(VENV)/.installed
install-dev: $(VENV)/.installed-dev

demo: install
	$(BIN)/linkage --workspace $(WORKSPACE) init --force
	$(BIN)/linkage --workspace $(WORKSPACE) ingest --source immigration sample_data/immigration.csv
	$(BIN)/linkage --workspace $(WORKSPACE) ingest --source health sample_data/health.csv
	$(BIN)/linkage --workspace $(WORKSPACE) ingest --source police sample_data/police.csv
	$(BIN)/linkage --workspace $(WORKSPACE) ingest --source commerce sample_data/commerce.xlsx
	$(BIN)/linkage --workspace $(WORKSPACE) status
	$(BIN)/linkage --workspace $(WORKSPACE) match
	$(BIN)/linkage --workspace $(WORKSPACE) evaluate --truth sample_data/truth_entities.csv
	$(BIN)/linkage --workspace $(WORKSPACE) chain --as-of 2026-03-31T00:00
	$(BIN)/linkage --workspace $(WORKSPACE) evaluate --truth sample_data/truth_entities.csv --truth-flags sample_data/truth_flags.csv
	$(BIN)/linkage --workspace $(WORKSPACE) export clusters --out $(WORKSPACE)/clusters.csv
	$(BIN)/linkage --workspace $(WORKSPACE) export flags --out $(WORKSPACE)/flags.csv
	$(BIN)/linkage --workspace $(WORKSPACE) export discrepancies --out $(WORKSPACE)/discrepancies --profile district_officer
	$(BIN)/linkage --workspace $(WORKSPACE) report --out $(WORKSPACE)/report.html
	@echo "Discrepancy files for the district officers: $(WORKSPACE)/discrepancies (manifest.json lists them)"
	@echo "Report with charts (opens without a network): $(WORKSPACE)/report.html"

test: install-dev
	$(BIN)/python -m pytest -q -p no:cacheprovider

sample: install
	$(BIN)/linkage sample --people 2000 --seed 7 --out sample_data

clean:
	rm -rf $(VENV) .venv-bench $(WORKSPACE)

# Peers for the side-by-side benchmarks live in their own environment, never in .venv.
.venv-bench/.installed: pyproject.toml benchmarks/requirements.txt
	$(PYTHON) -m venv .venv-bench
	.venv-bench/bin/python -m pip install -q --upgrade pip
	.venv-bench/bin/python -m pip install -q -e . -r benchmarks/requirements.txt
	touch $@

bench-env: .venv-bench/.installed
