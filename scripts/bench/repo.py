#!/usr/bin/env python3
"""Generate the large benchmark repository, deterministically (no download).

    scripts/bench/repo.py DEST [--files 50000] [--mb 300] [--commits 300]

A fast-import stream from a seeded PRNG: the same arguments always give the same commits.
Commit k adds its share of the files and rewrites a few earlier ones, so the tip holds
`--files` files (~`--mb` MB of text, three directory levels deep) over `--commits` commits.
DEST ends up a normal repository with `main` checked out.
"""

import argparse
import os
import random
import subprocess
import sys

SEED = 8
REWRITES_PER_COMMIT = 10
EPOCH = 1_700_000_000


def path_of(i):
    return f"src/m{i % 40:02d}/p{(i // 40) % 25:02d}/f{i:05d}.txt"


def content(rng, size):
    # Hex text: printable, diffable, about 2:1 compressible (like source code).
    return rng.randbytes(size // 2).hex().encode() + b"\n"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dest")
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--mb", type=int, default=300)
    ap.add_argument("--commits", type=int, default=300)
    a = ap.parse_args()

    rng = random.Random(SEED)
    mean = a.mb * 1_000_000 // a.files
    sizes = [max(64, int(mean * (0.25 + 1.5 * rng.random()))) for _ in range(a.files)]

    env = dict(os.environ, GIT_CONFIG_NOSYSTEM="1", HOME=a.dest)
    os.makedirs(a.dest, exist_ok=True)
    git = ["git", "-C", a.dest]
    subprocess.run(git + ["init", "-q", "-b", "main"], check=True, env=env)
    for k, v in [("gc.auto", "0"), ("core.compression", "1"), ("user.name", "bench"),
                 ("user.email", "bench@localhost")]:
        subprocess.run(git + ["config", k, v], check=True, env=env)
    fi = subprocess.Popen(git + ["fast-import", "--quiet", "--depth=10"],
                          stdin=subprocess.PIPE, env=env)
    out = fi.stdin
    added = 0
    for c in range(a.commits):
        target = a.files * (c + 1) // a.commits
        msg = f"commit {c + 1}: files up to {target}\n".encode()
        out.write(b"commit refs/heads/main\n")
        out.write(f"committer Bench <bench@localhost> {EPOCH + c * 60} +0000\n".encode())
        out.write(b"data %d\n%s\n" % (len(msg), msg))
        changes = list(range(added, target))
        if added:
            changes += sorted({rng.randrange(added) for _ in range(REWRITES_PER_COMMIT)})
        for i in changes:
            data = content(rng, sizes[i])
            out.write(f"M 100644 inline {path_of(i)}\n".encode())
            out.write(b"data %d\n" % len(data))
            out.write(data)
            out.write(b"\n")
        added = target
    out.close()
    if fi.wait() != 0:
        sys.exit("git fast-import failed")
    subprocess.run(git + ["checkout", "-q", "-f", "main"], check=True, env=env)


if __name__ == "__main__":
    main()
