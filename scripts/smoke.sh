#!/usr/bin/env bash
# Runs the included example and checks its ResultSpec.
set -euo pipefail
cd "$(dirname "$0")/.."

export CODENCER_HOME
CODENCER_HOME=$(mktemp -d -t codencer-smoke.XXXXXX)
trap 'rm -rf "$CODENCER_HOME"' EXIT
scripts/demo.sh --json > "$CODENCER_HOME/result.json"
python3 - "$CODENCER_HOME/result.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
step = r["steps"][0]
checks = {
    "run passed": r["status"] == "passed",
    "step passed on attempt 2": step["status"] == "passed" and step["attempts"] == 2,
    "greet.sh changed": "greet.sh" in step["files_changed"],
    "validator passed": [v["status"] for v in step["validations"]] == ["passed"],
    "diff recorded": step["diff"]["artifact"] is not None and step["diff"]["insertions"] >= 1,
    "branch named": step["branch"].startswith("codencer/" + r["run_id"] + "/1/"),
}
for name, ok in checks.items():
    print(("ok   " if ok else "FAIL ") + name)
sys.exit(0 if all(checks.values()) else 1)
PY
target/debug/codencer store verify
target/debug/orchestratorctl runs tree "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["run_id"])' "$CODENCER_HOME/result.json")"
