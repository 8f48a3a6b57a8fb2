#!/usr/bin/env bash
# The main job on the included example: creates a throwaway repository for
# examples/hello/spec.yaml and runs it with `codencer run`. Extra arguments go to
# `codencer run` (e.g. --json). State goes to $CODENCER_HOME, else a temp dir.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --quiet --bins
ws=examples/hello/workspace
rm -rf "$ws"
mkdir -p "$ws"
(
  cd "$ws"
  git init -q -b main
  printf '#!/bin/sh\necho "Hello, World"\n' > greet.sh
  printf '#!/bin/sh\nout=$(./greet.sh)\n[ "$out" = "Hello, Codencer!" ] || { echo "greet.sh printed \\"$out\\", expected \\"Hello, Codencer!\\""; exit 1; }\necho ok\n' > test.sh
  chmod +x greet.sh test.sh
  git add .
  git -c user.name=demo -c user.email=demo@example.com commit -q -m "greeting"
)
export CODENCER_HOME="${CODENCER_HOME:-$(mktemp -d -t codencer-demo.XXXXXX)}"
echo "state: $CODENCER_HOME" >&2
exec target/debug/codencer run examples/hello/spec.yaml "$@"
