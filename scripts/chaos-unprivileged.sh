#!/usr/bin/env bash
# Runs the chaos suite as an unprivileged user (created if missing), as CI does for the
# hostile suite. Must start as root. CHAOS_SEED / CHAOS_KILLS / CHAOS_LANES pass through.
#
#   scripts/chaos-unprivileged.sh
#   CHAOS_SEED=7 CHAOS_KILLS=2000 scripts/chaos-unprivileged.sh     # a soak
set -euo pipefail

cd "$(dirname "$0")/.."
TEST_USER=${TEST_USER:-codencer-test}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/targets/chaos}

if [[ $(id -u) -ne 0 ]]; then
    echo "chaos-unprivileged.sh: run as root (it creates '$TEST_USER' and switches to it)" >&2
    exit 2
fi
if ! id -u "$TEST_USER" >/dev/null 2>&1; then
    useradd --create-home --shell /bin/bash "$TEST_USER"
fi

cargo build -q --workspace --bins
test_bin=$(cargo test -q -p codencer-tests --test chaos --no-run --message-format=json 2>/dev/null |
    sed -n 's/.*"executable":"\([^"]*chaos[^"]*\)".*/\1/p' | tail -1)
[[ -x "$test_bin" ]] || { echo "chaos test binary not found" >&2; exit 1; }

# The suite finds the binaries beside its own directory: <stage>/deps/chaos -> <stage>/.
stage=$(mktemp -d /tmp/codencer-chaos-bin.XXXXXX)
trap 'rm -rf "$stage"' EXIT
mkdir "$stage/deps"
for bin in codencer codencer-worker orchestratorctl; do
    cp "$CARGO_TARGET_DIR/debug/$bin" "$stage/$bin"
done
cp "$test_bin" "$stage/deps/chaos"
chmod -R 755 "$stage"

cd /tmp
runuser -u "$TEST_USER" -- env -i PATH=/usr/local/bin:/usr/bin:/bin \
    HOME="$(getent passwd "$TEST_USER" | cut -d: -f6)" \
    CHAOS_SEED="${CHAOS_SEED:-1}" CHAOS_KILLS="${CHAOS_KILLS:-200}" CHAOS_LANES="${CHAOS_LANES:-3}" \
    "$stage/deps/chaos" --nocapture
