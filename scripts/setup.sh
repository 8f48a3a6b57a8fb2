#!/usr/bin/env bash
# Installs what building and testing Codencer needs on a fresh Debian machine. Idempotent:
# quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
command -v git >/dev/null || need_apt+=(git)
command -v python3 >/dev/null || need_apt+=(python3)
python3 -c "import venv, ensurepip" >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing ${need_apt[*]}; install them (sudo apt-get install ${need_apt[*]})" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  cargo install --locked cargo-nextest
fi

# The MCP client tests and the smoke script use the official Python MCP SDK, pinned, in a
# private venv under .tools/ (gitignored).
if ! .tools/mcp-venv/bin/python -c 'import mcp' >/dev/null 2>&1; then
  python3 -m venv .tools/mcp-venv
  .tools/mcp-venv/bin/pip install -q -r tests/mcp_client/requirements.txt
fi
