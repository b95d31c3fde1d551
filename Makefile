# Two commands do all the set-up on a fresh machine (Python 3.11+ and make):
#   make demo   - venv, install, synthetic sample sources, the main job on them (offline)
#   make test   - venv, install with dev extras, lint, the whole test suite
#                 (also the Label Studio venv, for the test against a real server)
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO := demo
# Label Studio and its SDK, in a venv of their own (their pins clash with ours).
LS_VENV := .venv-labelstudio

.PHONY: demo test labelstudio-venv lint format bench-ingest bench-annotate bench-bench bench-instructions clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

$(VENV)/.core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[dev,finetune]"
	touch $@ $(VENV)/.core

$(LS_VENV)/.stamp: requirements-labelstudio.txt
	$(PYTHON) -m venv $(LS_VENV)
	$(LS_VENV)/bin/python -m pip install -q --upgrade pip
	$(LS_VENV)/bin/python -m pip install -q -r requirements-labelstudio.txt
	touch $@

labelstudio-venv: $(LS_VENV)/.stamp

demo: $(VENV)/.core
	rm -rf $(DEMO)
	$(BIN)/python -m neuroonco.tools.sample_tree $(DEMO)/sources --seed 0
	$(BIN)/neuroonco annotate $(DEMO)/sources --db $(DEMO)/neuroonco.db
	$(BIN)/neuroonco instructions --db $(DEMO)/neuroonco.db --out $(DEMO)/instructions \
		--format llamafactory --format llava --format openai
	$(BIN)/neuroonco bench build --db $(DEMO)/neuroonco.db --out $(DEMO)/bench
	for m in random refuse prior; do \
		$(BIN)/neuroonco bench run $(DEMO)/bench/closed.json --images-root $(DEMO)/bench \
			--model baseline:$$m --out $(DEMO)/bench/pred-$$m.jsonl || exit 1; \
	done
	$(BIN)/neuroonco bench score $(DEMO)/bench/closed.json --predictions \
		$(DEMO)/bench/pred-random.jsonl $(DEMO)/bench/pred-refuse.jsonl \
		$(DEMO)/bench/pred-prior.jsonl --out $(DEMO)/bench/report
	@echo "Benchmark report: $(DEMO)/bench/report/report.md"
	$(BIN)/neuroonco agreement --db $(DEMO)/neuroonco.db

test: $(VENV)/.dev $(LS_VENV)/.stamp
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

lint: $(VENV)/.dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(VENV)/.dev
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench-ingest: $(VENV)/.dev
	$(BIN)/python scripts/bench_ingest.py

bench-annotate: $(VENV)/.dev
	$(BIN)/python scripts/bench_annotate.py

bench-bench: $(VENV)/.dev
	$(BIN)/python scripts/bench_bench.py

bench-instructions: $(VENV)/.dev
	$(BIN)/python scripts/bench_instructions.py

clean:
	rm -rf $(DEMO) build *.egg-info .pytest_cache .ruff_cache
