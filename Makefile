# Two entry points do all set-up on a fresh Debian machine with Python 3.11:
#   make demo   install, start the embedded reference network, run the catalog, render the report
#   make test   the project's own tests (ruff + pytest)
#   make interop  the catalog against third-party software (Kamailio, ...), see docs/interop.md
SHELL := /bin/bash
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
PROFILE ?= profiles/reference.yaml
# kamailio + sqlite modules: the interop P-CSCF/S-CSCF (make test runs its core cases);
# iproute2: `ip netns` isolates the interop runs on the binding's fixed addresses.
# chromium + libnss3-tools (certutil): the browser UE mode (Playwright drives Debian's chromium,
# whose NSS database must trust the test CA).
APT_PACKAGES := libpcap0.8 tshark iproute2 kamailio kamailio-sqlite-modules chromium libnss3-tools
# kamailio-presence-modules (presence, presence_reginfo, pua, pua_reginfo): the interop S-CSCF's
# reg event package (interop/kamailio/scscf.cfg).
APT_PACKAGES += kamailio-presence-modules

.PHONY: install system-deps venv node-deps bytecode test test-serial lint demo report validate list clean interop schema

install: system-deps venv node-deps bytecode

# The project's own modules compiled once (up-to-date files are skipped): where PYTHONDONTWRITEBYTECODE
# is set (it is on the machine the benchmarks ran on), every process (each test worker, each reference-network
# node) would otherwise compile them from source when it starts. A stale .pyc is never used
# (Python checks the source's time stamp), so this only ever saves time.
bytecode: venv
	@$(BIN)/python -m compileall -q conformance refnet tests benchmarks interop >/dev/null

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

node-deps: node_modules/.installed build/jssip.js
node_modules/.installed: package.json
	npm install --no-audit --no-fund --loglevel=error
	touch $@

# The JsSIP library the reference 3rdWWS serves to the browser (step 11), bundled from the npm package.
build/jssip.js: node_modules/.installed
	mkdir -p build
	node_modules/.bin/esbuild node_modules/jssip/lib/JsSIP.js --bundle --format=iife --global-name=JsSIP \
	  --minify --log-level=warning --outfile=$@

# The schema parts derived from conformance/vocabulary (step, expectation, operators): after adding
# an action, subject or operator there (tests/unit/test_vocabulary.py fails until this is run).
schema: venv
	$(BIN)/python -m conformance.vocabulary.schema_gen --write

lint: venv
	$(BIN)/ruff check conformance refnet tests benchmarks conftest.py

# Two xdist workers: tests that bind the binding's fixed addresses share one worker (xdist_group
# "binding-addresses" in conftest.py); everything else spreads over both.
test: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 --dist loadgroup tests

# The same tests one at a time (slower; for bisecting an ordering problem).
test-serial: install lint
	$(BIN)/python -m pytest -q -p no:cacheprovider tests

validate: venv
	$(BIN)/ims-conformance validate

list: venv
	$(BIN)/ims-conformance list --profile $(PROFILE)

demo: install
	$(BIN)/ims-conformance demo --profile $(PROFILE)

report: node-deps
	$(BIN)/ims-conformance report

# Each part runs in its own network namespace (root), starts its processes, runs the whole
# catalog and stops them by PID; every part runs even when an earlier one fails.
INTEROP_RUNS := kamailio:interop-kamailio kamailio:interop-kamailio-tcp kamailio:interop-kamailio-browser kamailio:interop-kamailio-browser-direct \
  oidc-provider:interop-oidc-provider oidc-provider:interop-oidc-provider-introspection oidc-provider:interop-oidc-provider-browser
interop: install
	@rc=0; for run in $(INTEROP_RUNS); do part=$${run%%:*}; profile=$${run#*:}; \
	  echo "== interop $$profile"; \
	  interop/netns.sh interop/$$part/run.sh profiles/$$profile.yaml .interop/results/$$profile || rc=1; \
	done; $(BIN)/python interop/summary.py .interop/results; exit $$rc

clean:
	rm -rf $(VENV) node_modules allure-results allure-report .refnet .interop
