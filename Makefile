# Convenience targets; the scripts are the source of truth.
.PHONY: build test smoke

build:
	cargo build --workspace --bins

test:
	scripts/test.sh

# Starts a daemon on a free port, drives it through MCP and the CLI, stops it.
smoke: build
	scripts/setup.sh
	scripts/smoke_test_v1.sh
