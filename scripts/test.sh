#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, builds the binaries the
# end-to-end suites drive, runs every suite, then runs the hostile sandbox suite again as an
# unprivileged user (when started as root, as CI is).
set -euo pipefail
cd "$(dirname "$0")/.."

profile=default
[ "${CI:-}" = "true" ] && profile=ci

scripts/setup.sh
# The real executor CLIs for the `executors` suite (pinned, idempotent: seconds when
# already installed; the first run downloads several hundred MB from npm).
scripts/install-executors.sh
cargo build --workspace --bins
cargo nextest run --workspace --profile "$profile" "$@"
# The daemon end to end as a user drives it (MCP over HTTP and stdio, the CLI), the
# `make smoke` of the README.
scripts/smoke_test_v1.sh

if [ "$(id -u)" -eq 0 ]; then
  MODES=unprivileged scripts/test-unprivileged.sh
else
  echo "test.sh: not root, so the hostile suite ran only as $(id -un); as root, it also runs as a created unprivileged user" >&2
fi
