# The README's two commands are `make lab` and `make test`; both install what
# they need on a fresh Debian 12 machine (apt packages, a venv with pinned
# ranges) and cache it, so a second run starts at once.

SHELL := /bin/bash
VENV  ?= .venv
BIN   := $(VENV)/bin
PY    ?= python3
export PATH := $(CURDIR)/$(BIN):$(PATH)
# Everything the lab and the tests need from Debian.
APT_PACKAGES := podman runc debootstrap systemd-container zstd socat openssh-client \
	iproute2 uidmap slirp4netns fuse-overlayfs postgresql restic
STAMPS := .cache/stamps

.PHONY: setup lab test lint unit molecule integration perf perf-router perf-split perf-privacy perf-crystals perf-cli perf-vectors perf-knowledge perf-rag perf-backup llama clean lab-down help
# llama.cpp built on this machine (make llama) for the router's real tiers.
LLAMA_DIR := $(CURDIR)/.cache/llama.cpp
export SOVEREIGN_LLAMA_SERVER := $(LLAMA_DIR)/bin/llama-server

help:
	@echo "make lab    - set up, bring the lab up, provision every built phase, show the status"
	@echo "make test   - set up and run the whole suite (lint, unit, molecule, lab integration)"
	@echo "make perf   - time every built phase on the lab (cold vs re-run), the router's added latency, the cost of an RPC layer split"
	@echo "make llama  - build llama.cpp here (same role and pin as the lab) into .cache/llama.cpp"
	@echo "make lab-down / make clean"

$(STAMPS)/apt: Makefile
	@mkdir -p $(STAMPS)
	@if ! dpkg -s $(APT_PACKAGES) >/dev/null 2>&1; then \
		echo "installing Debian packages: $(APT_PACKAGES)"; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES) >/dev/null; \
	fi
	@touch $@

$(STAMPS)/venv: pyproject.toml $(STAMPS)/apt
	@test -x $(BIN)/python || $(PY) -m venv $(VENV)
	@echo "installing the Python package and its tools into $(VENV)"
	@$(BIN)/pip install -q --upgrade pip >/dev/null
	@$(BIN)/pip install -q -e '.[provisioner,collections,test]'
	@touch $@

setup: $(STAMPS)/venv

# Ends by asking the lab's router, with the official client, one question
# twice (local tiers → the cloud stand-in, simulated → crystallized; then the
# crystal) and a financial one (egress denied → the best local answer).
LAB_QUESTIONS := "What is the capital of Italy?" "What is the capital of Italy?" \
	"How much of my salary should go to my mortgage?"

lab: setup
	$(BIN)/sovereign lab up
	$(BIN)/sovereign provision all
	$(BIN)/sovereign status
	@for q in $(LAB_QUESTIONS); do $(BIN)/sovereign router ask "$$q" || exit 1; done

lab-down: setup
	$(BIN)/sovereign lab down

lint: setup
	$(BIN)/ruff check sovereign tests molecule perf plugins
	$(BIN)/yamllint -s .
	$(BIN)/ansible-lint
	@for pb in playbooks/*.yml; do \
		$(BIN)/ansible-playbook --syntax-check -i inventory/lab $$pb >/dev/null || exit 1; \
		$(BIN)/ansible-playbook --syntax-check -i inventory/production $$pb >/dev/null || exit 1; \
	done; echo "syntax-check: every playbook passes on both inventories"

unit: setup
	$(BIN)/pytest -q -m "not lab and not molecule"

molecule: setup
	bash molecule/run.sh

integration: setup
	$(BIN)/pytest -q -m lab

llama: setup
	$(BIN)/ansible-playbook -i localhost, tests/llama-cpp-host.yml -e llama_cpp_prefix=$(LLAMA_DIR)

test: lint llama
	$(BIN)/pytest -q

# The project's own performance (perf/); `sovereign bench` is llama-bench on the nodes.
perf: setup perf-router perf-split perf-privacy perf-crystals perf-cli perf-vectors perf-knowledge perf-rag perf-backup
	$(BIN)/python perf/lab_phases.py

perf-router: llama
	$(BIN)/python perf/router.py

perf-vectors: setup
	$(BIN)/python perf/vectors.py

perf-split: llama
	$(BIN)/python perf/split.py

perf-crystals: setup
	$(BIN)/python perf/crystals.py

perf-privacy: setup
	$(BIN)/python perf/privacy.py

perf-cli: setup
	$(BIN)/python perf/cli_start.py

perf-knowledge: setup
	$(BIN)/python perf/knowledge.py

perf-rag: setup
	$(BIN)/python perf/rag.py

perf-backup: setup
	$(BIN)/python perf/backup.py

clean:
	-$(BIN)/sovereign lab down 2>/dev/null
	rm -rf $(VENV) .cache .pytest_cache .ruff_cache
