#!/usr/bin/env bash
# Median wall time of /bin/true: plain, through bwrap (comparable isolation), and through
# codencer-worker with every layer (namespaces, pivot_root view, Landlock, seccomp,
# privileges, limits incl. cgroups where writable, empty network namespace).
#
#   scripts/bench-sandbox.sh [--json] [-n RUNS]
#   WORKER=/tmp/w/codencer-worker runuser -u codencer-test -- scripts/bench-sandbox.sh
set -euo pipefail

cd "$(dirname "$0")/.."
json=0
runs=${RUNS:-200}
while [[ $# -gt 0 ]]; do
    case $1 in
        --json) json=1 ;;
        -n) runs=$2; shift ;;
        *) echo "usage: $0 [--json] [-n RUNS]" >&2; exit 2 ;;
    esac
    shift
done
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/work/targets/sandbox}

if ! command -v bwrap >/dev/null; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        apt-get install -y -qq bubblewrap >/dev/null 2>&1 || { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }
    else
        echo "bwrap missing: apt-get install -y bubblewrap" >&2
        exit 1
    fi
fi

# WORKER=/path/to/codencer-worker skips the build (e.g. when benchmarking as another user).
# The worker is linked statically, as scripts/build-release.sh ships it (no dynamic loader
# on every spawn).
if [[ -z "${WORKER:-}" ]]; then
    scripts/build-release.sh --worker >/dev/null
fi
worker=${WORKER:-"$CARGO_TARGET_DIR/release/codencer-worker"}

tmp=$(mktemp -d /tmp/codencer-bench.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
wt="$tmp/wt"
mkdir -p "$wt"
cat >"$tmp/spec.json" <<JSON
{"argv":["/bin/true"],"cwd":"$wt","env":[["PATH","/usr/bin:/bin"]],
 "sandbox":{"worktree":"$wt","strict":false,
  "limits":{"cpu_seconds":60,"memory_bytes":1073741824,"pids":256,"open_files":1024,"file_size_bytes":1073741824}}}
JSON
# Same without the cgroup-backed limits (pids, memory): no cgroup migration.
sed 's/"memory_bytes":1073741824,"pids":256,//' "$tmp/spec.json" >"$tmp/spec-rlimits.json"

run_plain() { /bin/true; }
run_bwrap() {
    bwrap --unshare-all --die-with-parent --new-session --ro-bind /usr /usr \
        --symlink usr/bin /bin --symlink usr/lib /lib --symlink usr/lib64 /lib64 \
        --proc /proc --dev /dev --tmpfs /tmp --bind "$wt" "$wt" /bin/true
}
run_worker() { "$worker" <"$tmp/spec.json" 3>/dev/null; }
run_worker_rl() { "$worker" <"$tmp/spec-rlimits.json" 3>/dev/null; }

# Sanity: each one works.
run_bwrap && run_worker || { echo "a runner failed" >&2; exit 1; }

# Interleaved, so that load from other processes hits all variants alike; bash's clock
# needs no extra process. Samples in microseconds.
declare -a s_plain=() s_bwrap=() s_worker=() s_worker_rl=()
sample() {
    local start end
    start=$EPOCHREALTIME
    "$1"
    end=$EPOCHREALTIME
    echo $(( ${end/./} - ${start/./} ))
}
for ((i = 0; i < 10; i++)); do run_worker; run_bwrap; done # warm-up
for ((i = 0; i < runs; i++)); do
    s_plain+=("$(sample run_plain)")
    s_bwrap+=("$(sample run_bwrap)")
    s_worker+=("$(sample run_worker)")
    s_worker_rl+=("$(sample run_worker_rl)")
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
plain=$(median "${s_plain[@]}")
bwrap_us=$(median "${s_bwrap[@]}")
worker_us=$(median "${s_worker[@]}")
worker_rl_us=$(median "${s_worker_rl[@]}")
ratio=$(awk -v w="$worker_us" -v b="$bwrap_us" 'BEGIN {printf "%.2f", w / b}')
ratio_rl=$(awk -v w="$worker_rl_us" -v b="$bwrap_us" 'BEGIN {printf "%.2f", w / b}')
# Which mechanism enforced each limit in the "all" variant (last report line).
limits=$("$worker" <"$tmp/spec.json" 3>&1 >/dev/null | tail -1 |
    grep -o '"kind":"[a-z_]*","value":[0-9]*,"mechanism":"[a-z_0-9]*"' |
    sed 's/"kind":"\([a-z_]*\)".*"mechanism":"\([a-z_0-9]*\)"/\1=\2/' | paste -sd' ' -)

if [[ $json -eq 1 ]]; then
    printf '{"runs":%d,"uid":%d,"plain_us":%d,"bwrap_us":%d,"worker_us":%d,"worker_rlimit_only_us":%d,"ratio_worker_to_bwrap":%s,"ratio_rlimit_only_to_bwrap":%s,"limits":"%s"}\n' \
        "$runs" "$(id -u)" "$plain" "$bwrap_us" "$worker_us" "$worker_rl_us" "$ratio" "$ratio_rl" "$limits"
else
    printf 'runs per variant        %d (uid %d)\n' "$runs" "$(id -u)"
    printf 'plain /bin/true         %8.2f ms\n' "$(awk -v x="$plain" 'BEGIN{print x/1000}')"
    printf 'bwrap --unshare-all     %8.2f ms\n' "$(awk -v x="$bwrap_us" 'BEGIN{print x/1000}')"
    printf 'codencer-worker (all)   %8.2f ms   ratio %s  (%s)\n' "$(awk -v x="$worker_us" 'BEGIN{print x/1000}')" "$ratio" "$limits"
    printf '  rlimit-only limits    %8.2f ms   ratio %s  (no cgroup migration)\n' "$(awk -v x="$worker_rl_us" 'BEGIN{print x/1000}')" "$ratio_rl"
    printf 'target: ratio <= 1.0 (worker / bwrap)\n'
fi
