#!/usr/bin/env bash
# Release build of the workspace's binaries, with codencer-worker linked statically.
#
#   scripts/build-release.sh            # binaries in $CARGO_TARGET_DIR/release (default target/)
#   scripts/build-release.sh --worker   # only codencer-worker (the benchmarks' sandbox figure)
#   CARGO_TARGET_DIR=/tmp/t scripts/build-release.sh
#
# Why static: the worker is started once per confined process, and a static-pie binary
# skips the dynamic loader (libc, libgcc_s: ~0.4-1 ms per spawn on the reference host).
# `+crt-static` is passed to the worker's final link only (`cargo rustc`): set in RUSTFLAGS
# it would also apply to proc-macro crates, which cannot be static. A later plain
# `cargo build --release` relinks the worker dynamically; run this script again after it.
set -euo pipefail

cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-target}
bins=(codencer orchestratord orchestratorctl codencer-worker)
case ${1:-} in
    "") cargo build -q --release --workspace --bins ;;
    --worker) bins=(codencer-worker) ;;
    *) echo "usage: $0 [--worker]" >&2; exit 2 ;;
esac
cargo rustc -q --release -p codencer-worker --bin codencer-worker -- -C target-feature=+crt-static

worker="$target/release/codencer-worker"
if readelf -d "$worker" | grep -q '(NEEDED)'; then
    echo "build-release.sh: $worker is not statically linked" >&2
    exit 1
fi
for bin in "${bins[@]}"; do
    echo "$target/release/$bin"
done
