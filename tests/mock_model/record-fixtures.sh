#!/usr/bin/env bash
# Re-records tests/fixtures/executors/<executor>/<case>.jsonl by running each installed real
# CLI headless (unconfined) against the mock model server on loopback, in a throwaway git
# repo with a throwaway config home. Needs scripts/install-executors.sh (--with-aider) first.
#
# usage: tests/mock_model/record-fixtures.sh [executor ...]
#   executors: claude-code codex gemini qwen opencode aider openclaw (default: all but
#   openclaw, which needs `scripts/install-executors.sh --only openclaw`)
# The command lines mirror what the adapters build (codencer-adapters), plus the mock's URL.
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
mock="$root/tests/mock_model"
fixtures="$root/tests/fixtures/executors"
work="${CODENCER_RECORD_DIR:-/tmp/codencer-record}"
export PATH="$("$root/scripts/install-executors.sh" --print-path):$PATH"

# record <executor> <case> <scenario> <command> [ext]; the command sees $PORT, $H (config
# home), $W (worktree) and runs in $W.
record() {
  local exe=$1 case=$2 scenario=$3 cmd=$4 ext=${5:-jsonl}
  local d="$work/$exe-$case"
  rm -rf "$d"; mkdir -p "$d/repo" "$d/home"
  (cd "$d/repo" && git init -q && git -c user.name=t -c user.email=t@t commit -q --allow-empty -m init)
  python3 "$mock/server.py" --scenario "$mock/scenarios/$scenario.json" \
    --port-file "$d/port" --log "$d/requests.jsonl" 2>"$d/mock.err" &
  local mpid=$!
  for _ in $(seq 100); do [ -f "$d/port" ] && break; sleep 0.05; done
  (cd "$d/repo" && PORT=$(cat "$d/port") H="$d/home" W="$d/repo" \
     timeout 120 bash -c "$cmd" >"$d/stdout" 2>"$d/stderr" </dev/null)
  local rc=$?
  kill "$mpid" 2>/dev/null; wait "$mpid" 2>/dev/null
  mkdir -p "$fixtures/$exe"
  cp "$d/stdout" "$fixtures/$exe/$case.$ext"
  echo "recorded $exe/$case (exit $rc, $(wc -l <"$d/stdout") lines) from $d" >&2
}

claude_cmd='HOME=$H CLAUDE_CONFIG_DIR=$H/claude ANTHROPIC_BASE_URL=http://127.0.0.1:$PORT ANTHROPIC_API_KEY=sk-mock CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 claude -p "Do the task" --output-format stream-json --verbose --permission-mode acceptEdits --allowedTools "Bash,Edit,Write,Read,Glob,Grep" --model claude-sonnet-4-5'
codex_cmd='mkdir -p $H/codex; printf "model = \"gpt-5-codex\"\nmodel_provider = \"codencer\"\n[model_providers.codencer]\nname = \"codencer\"\nbase_url = \"http://127.0.0.1:$PORT/v1\"\nenv_key = \"CODENCER_MODEL_API_KEY\"\nwire_api = \"responses\"\nrequest_max_retries = 0\nstream_max_retries = 0\n" > $H/codex/config.toml; HOME=$H CODEX_HOME=$H/codex CODENCER_MODEL_API_KEY=sk-mock codex exec --json --sandbox danger-full-access --skip-git-repo-check -C $W "Do the task"'
gemini_cmd() { # <maxSessionTurns or -1>
  echo 'mkdir -p $H/.gemini; echo "{\"security\":{\"auth\":{\"selectedType\":\"gemini-api-key\"}},\"model\":{\"maxSessionTurns\":'"$1"'}}" > $H/.gemini/settings.json; HOME=$H GEMINI_CLI_HOME=$H GEMINI_API_KEY=mock-key GOOGLE_GEMINI_BASE_URL=http://127.0.0.1:$PORT GEMINI_CLI_TRUST_WORKSPACE=true gemini -p "Do the task" -o stream-json --approval-mode yolo -m gemini-2.5-pro'
}
qwen_cmd='HOME=$H OPENAI_BASE_URL=http://127.0.0.1:$PORT/v1 OPENAI_API_KEY=sk-mock OPENAI_MODEL=mock-model QWEN_CODE_SUPPRESS_YOLO_WARNING=1 qwen -p "Do the task" --output-format stream-json --yolo --auth-type openai'
opencode_cmd='export OPENCODE_CONFIG_CONTENT="{\"\$schema\":\"https://opencode.ai/config.json\",\"autoupdate\":false,\"share\":\"disabled\",\"provider\":{\"codencer\":{\"npm\":\"@ai-sdk/openai-compatible\",\"name\":\"codencer\",\"options\":{\"baseURL\":\"http://127.0.0.1:$PORT/v1\",\"apiKey\":\"{env:CODENCER_MODEL_API_KEY}\"},\"models\":{\"mock-model\":{\"name\":\"mock-model\"}}}},\"model\":\"codencer/mock-model\"}"; HOME=$H XDG_CONFIG_HOME=$H/.config XDG_DATA_HOME=$H/.local/share XDG_CACHE_HOME=$H/.cache XDG_STATE_HOME=$H/.local/state OPENCODE_CONFIG_DIR=$H/opencode OPENCODE_DISABLE_CLAUDE_CODE=1 OPENCODE_DISABLE_AUTOUPDATE=1 OPENCODE_DISABLE_MODELS_FETCH=1 CODENCER_MODEL_API_KEY=sk-mock opencode run --format json --auto "Do the task"'
# openclaw has no turn limit: its tool-loop detector (off by default) stops the endless
# max_turns scenario instead (tool_loop.json).
OPENCLAW_LOOP_LIMIT=',\"tools\":{\"loopDetection\":{\"enabled\":true}}'
openclaw_cmd() { # [extra config JSON members, escaped for the printf below]
  echo 'printf "{\"models\":{\"providers\":{\"codencer\":{\"baseUrl\":\"http://127.0.0.1:$PORT/v1\",\"apiKey\":\"\${OPENAI_API_KEY}\",\"api\":\"openai-completions\",\"models\":[{\"id\":\"mock-model\",\"name\":\"mock-model\"}]}}},\"agents\":{\"defaults\":{\"model\":{\"primary\":\"codencer/mock-model\"}}}'"${1:-}"'}\n" > $H/openclaw.json; printf "Do the task.\n" > $H/task.md; HOME=$H OPENAI_API_KEY=sk-mock openclaw agent exec --message-file $H/task.md --json --config $H/openclaw.json --cwd $W --timeout 0'
}
aider_cmd='printf "Do the task.\n" > $H/task.md; HOME=$H OPENAI_API_BASE=http://127.0.0.1:$PORT/v1 OPENAI_API_KEY=sk-mock aider --message-file $H/task.md --yes-always --no-pretty --no-stream --no-check-update --analytics-disable --model openai/mock-model --no-show-model-warnings --edit-format whole'

want=("$@")
[ ${#want[@]} -eq 0 ] && want=(claude-code codex gemini qwen opencode aider)
for exe in "${want[@]}"; do
  case "$exe" in
    claude-code)
      record claude-code success success "$claude_cmd"
      record claude-code tool_failure tool_failure "$claude_cmd"
      record claude-code max_turns max_turns "$claude_cmd --max-turns 2"
      record claude-code api_error api_error "$claude_cmd" ;;
    codex) # no turn limit in codex exec: no max_turns case
      record codex success success "$codex_cmd"
      record codex tool_failure tool_failure "$codex_cmd"
      record codex api_error api_error "$codex_cmd" ;;
    gemini)
      record gemini success success "$(gemini_cmd -1)"
      record gemini tool_failure tool_failure "$(gemini_cmd -1)"
      record gemini max_turns max_turns "$(gemini_cmd 2)"
      record gemini api_error api_error "$(gemini_cmd -1)" ;;
    qwen)
      record qwen success success "$qwen_cmd"
      record qwen tool_failure tool_failure "$qwen_cmd"
      record qwen max_turns max_turns "$qwen_cmd --max-session-turns 2"
      record qwen api_error api_error "$qwen_cmd" ;;
    opencode) # no turn limit honoured by `opencode run`: no max_turns case
      record opencode success success "$opencode_cmd"
      record opencode tool_failure tool_failure "$opencode_cmd"
      record opencode api_error api_error "$opencode_cmd" ;;
    openclaw) # one JSON document (pretty-printed): .json fixtures; mirrors the adapter's
              # `agent exec` call (`--cwd`, `--config`, `--timeout 0`)
      record openclaw success success "$(openclaw_cmd)" json
      record openclaw tool_failure tool_failure "$(openclaw_cmd)" json
      record openclaw tool_loop max_turns "$(openclaw_cmd "$OPENCLAW_LOOP_LIMIT")" json
      record openclaw api_error api_error "$(openclaw_cmd)" json ;;
    aider) # text output: .txt fixtures
      record aider success aider_success "$aider_cmd" txt
      record aider api_error api_error "$aider_cmd" txt ;;
    *) echo "unknown executor $exe" >&2; exit 2 ;;
  esac
done
