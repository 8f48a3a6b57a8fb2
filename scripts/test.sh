#!/usr/bin/env bash
# The test command (README, .ci/run): installs what the tests need, builds the binaries the
# end-to-end suites drive, and runs every suite.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=default
[ "${CI:-}" = "true" ] && profile=ci

scripts/setup.sh
cargo build --workspace --bins
cargo nextest run --workspace --profile "$profile" "$@"
