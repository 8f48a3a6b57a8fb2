#!/usr/bin/env bash
# Runs the hostile sandbox suite as root AND as an unprivileged user (created if missing).
# Idempotent. Must start as root (to create the user); both runs must pass.
#
#   scripts/test-unprivileged.sh            # both modes
#   MODES=unprivileged scripts/test-unprivileged.sh
#   TEST_USER=someone CARGO_TARGET_DIR=/tmp/t scripts/test-unprivileged.sh -- filter
set -euo pipefail

cd "$(dirname "$0")/.."
TEST_USER=${TEST_USER:-codencer-test}
MODES=${MODES:-"root unprivileged"}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
[[ "${1:-}" == "--" ]] && shift
FILTER=("$@")

if [[ $(id -u) -ne 0 ]]; then
    echo "test-unprivileged.sh: run as root (it creates '$TEST_USER' and switches to it)" >&2
    exit 2
fi
if ! id -u "$TEST_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$TEST_USER"
fi

cargo build -q -p codencer-worker
test_bin=$(cargo test -q -p codencer-tests --test hostile --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*hostile[^"]*\)".*/\1/p' | tail -1)
[[ -x "$test_bin" ]] || { echo "hostile test binary not found" >&2; exit 1; }

# Copies readable by the test user, outside the (possibly private) target dir.
stage=$(mktemp -d /tmp/codencer-hostile-bin.XXXXXX)
trap 'rm -rf "$stage"' EXIT
cp "$CARGO_TARGET_DIR/debug/codencer-worker" "$stage/codencer-worker"
cp "$test_bin" "$stage/hostile"
chmod 755 "$stage" "$stage/codencer-worker" "$stage/hostile"

status=0
for mode in $MODES; do
    echo "=== hostile suite as $mode"
    if [[ $mode == root ]]; then
        (cd /tmp && CODENCER_WORKER="$stage/codencer-worker" "$stage/hostile" "${FILTER[@]}") || status=1
    else
        (cd /tmp && runuser -u "$TEST_USER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
            HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)" \
            CODENCER_WORKER="$stage/codencer-worker" "$stage/hostile" "${FILTER[@]}") || status=1
    fi
done
exit $status
