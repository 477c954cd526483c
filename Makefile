# The two commands of the README: `make demo` and `make test`. Both set everything up first.
VENV := .venv
PY := $(VENV)/bin/python
export PI_FLEET_BUILD_CACHE ?= $(CURDIR)/var/build-cache

EXAMPLE_PLUGINS := $(patsubst %/manifest.toml,%,$(wildcard plugins/*/manifest.toml))

.PHONY: setup plugins demo demo-local test lint check-contract contract bench clean

setup:
	@scripts/setup.sh

plugins: setup
	@$(VENV)/bin/device-host build $(EXAMPLE_PLUGINS)

demo: plugins
	@scripts/demo.sh

demo-local: plugins
	@echo "Device dashboard: http://127.0.0.1:3000/ (local mode: rebuild a plugin to hot-swap it)"
	@$(VENV)/bin/device-host serve -c config/demo.toml

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(PY) -m mypy
	PATH="$(CURDIR)/$(VENV)/bin:$$PATH" $(VENV)/bin/ansible-lint -q playbooks/

test: lint
	PY=$(PY) scripts/test.sh

contract: setup
	$(PY) -m device_host.contract_generate

bench: plugins
	@scripts/setup.sh wrk hyperfine zstd
	bench/run.sh
	bench/fleet/run.sh
	bench/provisioning/run.sh

clean:
	rm -rf var/demo var/test-compiled
