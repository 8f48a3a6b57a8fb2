#!/usr/bin/env bash
# Smoke test of v1: starts orchestratord on a free loopback port with a fresh state dir,
# drives it through the MCP endpoint (the official Python SDK, over Streamable HTTP and
# over stdio via `codencer mcp`) and through orchestratorctl, checks the results, stops it.
# Usage: scripts/smoke_test_v1.sh   (or: make smoke). Needs the binaries built
# (cargo build --workspace --bins; BIN=target/release to use a release build).
set -euo pipefail
cd "$(dirname "$0")/.."

BIN=${BIN:-${CARGO_TARGET_DIR:-target}/debug}
PY=.tools/mcp-venv/bin/python
for b in orchestratord orchestratorctl codencer codencer-worker; do
  [ -x "$BIN/$b" ] || { echo "smoke: $BIN/$b is missing; run: cargo build --workspace --bins" >&2; exit 1; }
done
[ -x "$PY" ] || scripts/setup.sh

WORK=$(mktemp -d)
DAEMON_PID=
cleanup() {
  [ -n "$DAEMON_PID" ] && kill "$DAEMON_PID" 2>/dev/null && wait "$DAEMON_PID" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT
fail() { echo "smoke: FAIL: $*" >&2; echo "--- daemon log" >&2; cat "$WORK/daemon.log" >&2 || true; exit 1; }

STATE=$WORK/state
export CODENCER_CONFIG=$WORK/config   # no operator policy or daemon.toml leaks in
REPO=$WORK/repo
mkdir -p "$REPO"
git -C "$REPO" init -q -b main
echo "# smoke" > "$REPO/README.md"
git -C "$REPO" add . && git -C "$REPO" -c user.name=smoke -c user.email=smoke@example.com commit -qm init

echo "smoke: creating an admin token"
TOKEN=$("$BIN/orchestratorctl" --state-dir "$STATE" tokens create smoke --scope admin 2>/dev/null)

echo "smoke: starting orchestratord"
"$BIN/orchestratord" --state-dir "$STATE" --listen 127.0.0.1:0 --addr-file "$WORK/addr" \
  >"$WORK/daemon.log" 2>&1 &
DAEMON_PID=$!
for _ in $(seq 100); do [ -s "$WORK/addr" ] && break; sleep 0.1; done
[ -s "$WORK/addr" ] || fail "daemon did not start"
URL=$(cat "$WORK/addr")
echo "smoke: daemon at $URL"

code=$(curl -s -o /dev/null -w '%{http_code}' "$URL/v1/runs")
[ "$code" = 401 ] || fail "a request without a token got $code, not 401"

echo "smoke: MCP over Streamable HTTP"
out=$("$PY" tests/mcp_client/client.py --url "$URL" --token "$TOKEN" --repo "$REPO") || fail "MCP over HTTP"
echo "$out" | "$PY" -c 'import json,sys; v=json.load(sys.stdin); assert v["step1_status"]=="passed" and v["step2_status"]=="passed" and v["closed"]=="passed" and v["cancelled_run_status"]=="cancelled", v' \
  || fail "MCP over HTTP: unexpected result $out"

echo "smoke: MCP over stdio (codencer mcp)"
out=$("$PY" tests/mcp_client/client.py --url "$URL" --token "$TOKEN" --repo "$REPO" --stdio --codencer "$BIN/codencer") || fail "MCP over stdio"
echo "$out" | "$PY" -c 'import json,sys; v=json.load(sys.stdin); assert v["step2_status"]=="passed", v' \
  || fail "MCP over stdio: unexpected result $out"

echo "smoke: orchestratorctl submit --wait"
cat >"$WORK/spec.yaml" <<YAML
task:
  name: smoke-cli
  workspace: $REPO
  executor: shell
  goal: write hello.txt
  command: 'echo hello > hello.txt'
  validators: ['grep -q hello hello.txt']
YAML
export CODENCER_URL=$URL CODENCER_TOKEN=$TOKEN
"$BIN/orchestratorctl" submit "$WORK/spec.yaml" --wait --json >"$WORK/result.json" || fail "submit --wait"
"$PY" -c 'import json,sys; v=json.load(open(sys.argv[1])); assert v["status"]=="passed", v' "$WORK/result.json" \
  || fail "the CLI run did not pass"
RUN=$("$PY" -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$WORK/result.json")
"$BIN/orchestratorctl" runs watch "$RUN" >/dev/null || fail "runs watch"
# Each MCP session makes two runs (the planner's open run, and one it cancels), the CLI one.
n=$("$BIN/orchestratorctl" runs list --json | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)))')
[ "$n" = 5 ] || fail "expected 5 runs, listed $n"

echo "smoke: stopping the daemon; the record verifies offline"
kill "$DAEMON_PID"; wait "$DAEMON_PID" 2>/dev/null || true; DAEMON_PID=
unset CODENCER_URL
"$BIN/codencer" --state-dir "$STATE" store verify >/dev/null || fail "store verify"
echo "smoke: OK"
