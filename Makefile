# Two entry points do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   install, start the embedded reference network, run the catalog, render the report
#   make test   the project's own tests (ruff + pytest)
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= profiles/reference.yaml
APT_PACKAGES := libpcap0.8 tshark

.PHONY: install system-deps venv node-deps test lint demo report validate list clean

install: system-deps venv node-deps

# libpcap for Scapy's BPF filters, tshark (editcap) to check the decrypted pcapng.
system-deps:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    echo "installing$$missing"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; \
	  else echo "missing Debian packages:$$missing (run 'sudo make system-deps')"; exit 2; fi; \
	fi

venv: $(VENV)/.installed
$(VENV)/.installed: pyproject.toml
	@command -v $(PY) >/dev/null || { echo "$(PY) not found"; exit 2; }
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

node-deps: node_modules/.installed
node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

lint: venv
	$(BIN)/ruff check conformance refnet tests benchmarks conftest.py

test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

validate: venv
	$(BIN)/ims-conformance validate

list: venv
	$(BIN)/ims-conformance list --profile $(PROFILE)

demo: install
	$(BIN)/ims-conformance demo --profile $(PROFILE)

report: node-deps
	$(BIN)/ims-conformance report

clean:
	rm -rf $(VENV) node_modules allure-results allure-report .refnet
