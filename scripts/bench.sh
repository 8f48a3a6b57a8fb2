#!/usr/bin/env bash
# The benchmark suite: every figure of docs/performance.md, each side by side with its
# reference measured in the same run on the same machine, as a table (figure, ours,
# reference, ratio, target, ok?) or JSON; rewrites the table of docs/performance.md.
#
#   scripts/bench.sh [--quick] [--json] [--no-doc] [--no-build] [--only spawn,e2e,large,store,daemon]
#
# --no-build uses the release binaries already in $CARGO_TARGET_DIR as they are.
#
# Medians over repeated samples after a warm-up; samples of ours and of the reference are
# interleaved so that load from other processes hits both alike. Ratios are what count on
# noisy machines. Nothing here is a test: no figure fails the script (exit 0 unless a
# measurement itself broke).
#
# Environment: CARGO_TARGET_DIR (default /work/targets/bench if /work/targets exists, else
# target), BENCH_CACHE (the generated large repository; default /tmp/codencer-bench-cache).
set -euo pipefail

cd "$(dirname "$0")/.."
root=$PWD
json=0 quick=0 doc=1 build=1 only=spawn,e2e,large,store,daemon
while [[ $# -gt 0 ]]; do
    case $1 in
        --json) json=1 ;;
        --quick) quick=1 ;;
        --no-doc) doc=0 ;;
        --no-build) build=0 ;;
        --only) only=$2; shift ;;
        *) echo "usage: $0 [--quick] [--json] [--no-doc] [--no-build] [--only LIST]" >&2; exit 2 ;;
    esac
    shift
done
wants() { [[ ",$only," == *",$1,"* ]]; }
say() { echo "bench: $*" >&2; }

if [[ $quick -eq 1 ]]; then
    spawn_runs=50 e2e_samples=7 large_samples=3 store_reps=2 daemon_starts=3 daemon_runs=100
    large_files=10000 large_mb=60 large_commits=100
else
    spawn_runs=200 e2e_samples=21 large_samples=5 store_reps=5 daemon_starts=5 daemon_runs=100
    large_files=50000 large_mb=300 large_commits=300
fi
if [[ -z "${CARGO_TARGET_DIR:-}" ]]; then
    if [[ -d /work/targets ]]; then export CARGO_TARGET_DIR=/work/targets/bench; else export CARGO_TARGET_DIR=$root/target; fi
fi
bin=$CARGO_TARGET_DIR/release
cache=${BENCH_CACHE:-/tmp/codencer-bench-cache}
started=$EPOCHREALTIME

if ! command -v bwrap >/dev/null && wants spawn; then
    if [[ $(id -u) -eq 0 ]] && command -v apt-get >/dev/null; then
        say "installing bubblewrap (the reference of the spawn figure)"
        apt-get install -y -qq bubblewrap >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null && apt-get install -y -qq bubblewrap >/dev/null; }
    else
        echo "bwrap missing: apt-get install -y bubblewrap" >&2
        exit 1
    fi
fi

if [[ $build -eq 1 ]]; then
    say "building release binaries in $CARGO_TARGET_DIR"
    # As shipped: the worker linked statically.
    scripts/build-release.sh >/dev/null
fi

out=$(mktemp -d /tmp/codencer-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT

# Samples in microseconds, with bash's clock: `${EPOCHREALTIME/./}` (no extra process, not
# even a subshell, between the two reads).
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
git_q() { git -c gc.auto=0 -c core.hooksPath=/dev/null "$@"; }

# A small repository: the one-step runs and the daemon work on it.
small_repo() {
    local repo=$1
    mkdir -p "$repo"
    git_q -C "$repo" init -q -b main
    printf 'hello\n' >"$repo/README.md"
    mkdir -p "$repo/src" && printf 'fn main() {}\n' >"$repo/src/main.rs"
    git_q -C "$repo" add -A
    git_q -C "$repo" -c user.name=bench -c user.email=bench@localhost commit -q -m init
}

# Drops every worktree and branch the samples made (untimed; both sides alike).
reset_repo() {
    local repo=$1
    shift
    rm -rf "$@"
    git_q -C "$repo" worktree prune
    git_q -C "$repo" for-each-ref --format='delete %(refname)' refs/heads/codencer refs/heads/bench |
        git_q -C "$repo" update-ref --stdin
}

spec_file() {
    local file=$1 repo=$2 validators=$3
    {
        printf 'task:\n  name: bench\n  workspace: %s\n  executor: shell\n  command: "true"\n  goal: benchmark\n' "$repo"
        if [[ $validators -eq 1 ]]; then printf '  validators:\n    - "true"\n'; fi
    } >"$file"
}

# The reference of the one-step run: the same raw work, unconfined, no record.
cat >"$out/ref.sh" <<'SH'
set -e
repo=$1 wt=$2 branch=$3 base=$4
git -C "$repo" worktree add -q -b "$branch" "$wt" "$base"
cd "$wt"
sh -c true
sh -c true
git add -A && { git commit -q -m bench >/dev/null || true; }
git diff --binary "$base" >/dev/null
SH

run_id_of() { python3 -c 'import json,sys; print(json.load(sys.stdin)["run_id"])'; }

if wants spawn; then
    say "spawn: /bin/true plain, through bwrap, through codencer-worker ($spawn_runs each)"
    WORKER=$bin/codencer-worker scripts/bench-sandbox.sh --json -n "$spawn_runs" >"$out/spawn.json"
fi

if wants e2e; then
    say "e2e: one-step codencer run vs a shell script doing the raw work ($e2e_samples each)"
    repo=$out/small && small_repo "$repo"
    base=$(git -C "$repo" rev-parse HEAD)
    state=$out/state-e2e
    spec_file "$out/e2e.yaml" "$repo" 1
    ours=() ref=()
    for ((i = -3; i < e2e_samples; i++)); do # 3 warm-up rounds
        # Alternate which side goes first.
        for side in $( ((i % 2 == 0)) && echo "ours ref" || echo "ref ours"); do
            t0=${EPOCHREALTIME/./}
            if [[ $side == ours ]]; then
                "$bin/codencer" run "$out/e2e.yaml" --json --state-dir "$state" >"$out/e2e.out"
                o=$((${EPOCHREALTIME/./} - t0))
            else
                bash "$out/ref.sh" "$repo" "$out/refwt" "bench/$i" "$base"
                r=$((${EPOCHREALTIME/./} - t0))
            fi
        done
        if ((i >= 0)); then ours+=("$o") ref+=("$r"); fi
        reset_repo "$repo" "$state/worktrees" "$out/refwt"
    done
    grep -q '"status": "passed"' "$out/e2e.out" || { echo "the one-step run did not pass" >&2; cat "$out/e2e.out" >&2; exit 1; }
    printf '{"samples":%d,"ours_ms":%s,"ref_ms":%s}\n' "$e2e_samples" \
        "$(awk -v x="$(median "${ours[@]}")" 'BEGIN{print x/1000}')" \
        "$(awk -v x="$(median "${ref[@]}")" 'BEGIN{print x/1000}')" >"$out/e2e.json"
fi

if wants large; then
    big=$cache/large-v1-$large_files-$large_mb-$large_commits
    if [[ ! -d $big/.git ]]; then
        say "large: generating $large_files files, $large_mb MB, $large_commits commits in $big (cached)"
        rm -rf "$big.tmp" && mkdir -p "$cache"
        python3 scripts/bench/repo.py "$big.tmp" --files "$large_files" --mb "$large_mb" --commits "$large_commits"
        mv "$big.tmp" "$big"
    fi
    say "large: attempt setup vs git worktree add ($large_samples each)"
    base=$(git -C "$big" rev-parse HEAD)
    state=$out/state-large
    spec_file "$out/large.yaml" "$big" 0
    setup=() runs=() ref=() sparse=()
    reset_repo "$big" "$out/lwt"
    # Writing 300 MB leaves writeback behind, and what the page cache holds decides whether
    # the pack is read from disk: the same checkout took 3 s or 22 s here depending on what ran
    # before. So each side starts from the same state (untimed): dirty pages written back and,
    # as root, the caches dropped; and the sides alternate which goes first.
    settle() {
        sync
        if [[ $(id -u) -eq 0 ]]; then echo 3 >/proc/sys/vm/drop_caches; fi
    }
    for ((i = -1; i < large_samples; i++)); do # 1 warm-up round
        settle
        if ((i % 2 == 0)); then
            t0=${EPOCHREALTIME/./}
            "$bin/codencer" run "$out/large.yaml" --json --state-dir "$state" >"$out/large.out"
            t1=${EPOCHREALTIME/./}
            settle
            t1b=${EPOCHREALTIME/./}
            git_q -C "$big" worktree add -q -b "bench/$i" "$out/lwt" "$base"
            t2=${EPOCHREALTIME/./}
        else
            t1b=${EPOCHREALTIME/./}
            git_q -C "$big" worktree add -q -b "bench/$i" "$out/lwt" "$base"
            t2=${EPOCHREALTIME/./}
            settle
            t0=${EPOCHREALTIME/./}
            "$bin/codencer" run "$out/large.yaml" --json --state-dir "$state" >"$out/large.out"
            t1=${EPOCHREALTIME/./}
        fi
        rm -rf "$out/lwt" && git_q -C "$big" worktree prune
        sync
        t3=${EPOCHREALTIME/./}
        git_q -C "$big" worktree add -q --no-checkout -b "bench/s$i" "$out/lwt" "$base"
        git_q -C "$out/lwt" sparse-checkout set --cone src/m00
        git_q -C "$out/lwt" checkout -q
        t4=${EPOCHREALTIME/./}
        run=$(run_id_of <"$out/large.out")
        # attempt.started -> attempt.running: worktree, scratch, admission, worker spawned.
        ms=$(python3 - "$state/codencer.db" "$run" <<'PY'
import datetime, sqlite3, sys
db = sqlite3.connect(f"file:{sys.argv[1]}?mode=ro", uri=True)
ts = dict(db.execute("SELECT kind, MIN(ts) FROM events WHERE run_id = ? AND kind IN "
                     "('attempt.started', 'attempt.running') GROUP BY kind", (sys.argv[2],)))
p = lambda s: datetime.datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ")
print((p(ts["attempt.running"]) - p(ts["attempt.started"])).total_seconds() * 1000)
PY
)
        if ((i >= 0)); then
            setup+=("$ms") runs+=($((t1 - t0))) ref+=($((t2 - t1b))) sparse+=($((t4 - t3)))
        fi
        reset_repo "$big" "$state/worktrees" "$out/lwt"
    done
    printf '{"samples":%d,"files":%d,"mb":%d,"commits":%d,"setup_ms":%s,"run_ms":%s,"ref_ms":%s,"sparse_ms":%s}\n' \
        "$large_samples" "$large_files" "$large_mb" "$large_commits" "$(median "${setup[@]}")" \
        "$(awk -v x="$(median "${runs[@]}")" 'BEGIN{print x/1000}')" \
        "$(awk -v x="$(median "${ref[@]}")" 'BEGIN{print x/1000}')" \
        "$(awk -v x="$(median "${sparse[@]}")" 'BEGIN{print x/1000}')" >"$out/large.json"
fi

if wants store; then
    say "store: 100,000 appends vs plain inserts ($store_reps repetitions), tree loads"
    cargo bench -q -p codencer-store --bench store -- --reps "$store_reps" >"$out/store.json"
fi

if wants daemon; then
    say "daemon: $daemon_starts starts (ready, idle RSS), $daemon_runs concurrent runs"
    repo=$out/daemon-repo && small_repo "$repo"
    python3 scripts/bench/daemon.py --bin "$bin" --repo "$repo" --runs "$daemon_runs" \
        --starts "$daemon_starts" --max-runs "$daemon_runs" >"$out/daemon.json"
    rm -rf "$(python3 -c 'import json,sys; print(json.load(sys.stdin)["work"])' <"$out/daemon.json")"
fi

secs=$(awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN{print b-a}')
printf '{"date":"%s","host":"%s, %s cores, %s","mode":"%s","seconds":%s,"git":"%s"}\n' \
    "$(date -u +%Y-%m-%dT%H:%MZ)" "$(uname -sr)" "$(nproc)" \
    "$(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo)" \
    "$([[ $quick -eq 1 ]] && echo quick || echo full)" "$secs" \
    "$(git --version | awk '{print $3}')" >"$out/meta.json"

doc_args=()
if [[ $doc -eq 1 && $only == spawn,e2e,large,store,daemon ]]; then doc_args=(--doc docs/performance.md); fi
if [[ $json -eq 1 ]]; then
    python3 scripts/bench/report.py "$out" --json "${doc_args[@]}"
else
    python3 scripts/bench/report.py "$out" "${doc_args[@]}"
fi
