#!/usr/bin/env python3
"""Daemon figures for scripts/bench.sh: ready-to-serve time and idle RSS over several
starts, then N one-step runs (shell executor) submitted at once: all must complete, none
lost; runs/s and the daemon's peak RSS (VmHWM). Prints one JSON object.

    scripts/bench/daemon.py --bin DIR --repo REPO [--runs 100] [--starts 5] [--max-runs 100]
"""

import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(port, method, path, token=None, body=None, timeout=120):
    data = json.dumps(body).encode() if body is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close",
            f"Content-Length: {len(data)}", "Content-Type: application/json"]
    if token:
        head.append(f"Authorization: Bearer {token}")
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        raw = b""
        while chunk := s.recv(65536):
            raw += chunk
    top, _, rest = raw.partition(b"\r\n\r\n")
    status = int(top.split(b" ", 2)[1])
    if b"transfer-encoding: chunked" in top.lower():
        body_bytes, rest = b"", rest
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line, 16)
            if size == 0:
                break
            body_bytes += rest[:size]
            rest = rest[size + 2:]
        rest = body_bytes
    return status, rest


def status_kb(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def start(args, state, port, log):
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [os.path.join(args.bin, "orchestratord"), "--state-dir", state, "--listen",
         f"127.0.0.1:{port}", "--max-concurrent-runs", str(args.max_runs)],
        stdout=subprocess.DEVNULL, stderr=log,
        env=dict(os.environ, CODENCER_LOG="warn"))
    while True:
        try:
            st, _ = http(port, "GET", "/v1/health", timeout=1)
            if st == 200:
                return proc, time.perf_counter() - t0
        except OSError:
            pass
        if proc.poll() is not None:
            sys.exit(f"orchestratord exited with {proc.returncode}")
        if time.perf_counter() - t0 > 30:
            sys.exit("orchestratord not ready after 30 s")
        time.sleep(0.001)


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--repo", required=True)
    ap.add_argument("--runs", type=int, default=100)
    ap.add_argument("--starts", type=int, default=5)
    ap.add_argument("--max-runs", type=int, default=100)
    ap.add_argument("--idle-wait", type=float, default=2.0)
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="codencer-bench-daemon.")
    state = os.path.join(work, "state")
    log = open(os.path.join(work, "daemon.log"), "wb")
    out = subprocess.run(
        [os.path.join(args.bin, "orchestratorctl"), "--state-dir", state, "tokens", "create",
         "bench", "--scope", "admin", "--json"], check=True, capture_output=True, text=True)
    token = json.loads(out.stdout)["token"]

    # Ready-to-serve and idle RSS: the first start creates nothing new (the token made the
    # store), so every start is alike.
    ready, idle = [], []
    for i in range(args.starts):
        port = free_port()
        proc, t = start(args, state, port, log)
        ready.append(t)
        time.sleep(args.idle_wait)
        idle.append(status_kb(proc.pid, "VmRSS"))
        if i < args.starts - 1:
            stop(proc)

    # Load: N runs at once on the last daemon.
    spec = ("task:\n  name: bench-{n}\n  workspace: " + args.repo +
            "\n  executor: shell\n  command: \"true\"\n  goal: benchmark\n  validators:\n    - \"true\"\n")
    ids, errors = [None] * args.runs, []
    done = [None] * args.runs
    t0 = time.perf_counter()

    def one(n):
        try:
            st, body = http(port, "POST", "/v1/runs", token, {"taskspec": spec.format(n=n)})
            if st != 201:
                errors.append(f"submit {n}: HTTP {st} {body[:200]!r}")
                return
            v = json.loads(body)
            ids[n] = v["run_id"]
            step = v["step_ids"][0]
            while True:
                st, body = http(port, "GET",
                                f"/v1/runs/{ids[n]}/steps/{step}/wait?timeout=60", token)
                if st != 200:
                    errors.append(f"wait {n}: HTTP {st}")
                    return
                w = json.loads(body)
                if w["done"]:
                    done[n] = (time.perf_counter(), w["result"]["status"])
                    return
        except Exception as e:  # noqa: BLE001 - recorded as a lost run
            errors.append(f"run {n}: {e!r}")

    threads = [threading.Thread(target=one, args=(n,)) for n in range(args.runs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    peak = status_kb(proc.pid, "VmHWM")
    rss_after = status_kb(proc.pid, "VmRSS")

    # None lost: every submitted run is in the record, ended passed. A step is done a moment
    # before its run records `run.completed`: wait (bounded) for every run to end.
    deadline = time.perf_counter() + 30
    while True:
        st, body = http(port, "GET", "/v1/runs?limit=1000", token)
        listed = {r["id"]: r["status"] for r in json.loads(body)["runs"]} if st == 200 else {}
        if all(s in ("passed", "failed", "cancelled") for s in listed.values()) or \
                time.perf_counter() > deadline:
            break
        time.sleep(0.05)
    failures = []
    for n in range(args.runs):
        if ids[n] and listed.get(ids[n]) != "passed" and len(failures) < 5:
            st, body = http(port, "GET", f"/v1/runs/{ids[n]}/result", token)
            try:
                r = json.loads(body)
                steps = r.get("steps") or [{}]
                failures.append({"run": ids[n], "status": r.get("status"),
                                 "reason": r.get("reason"),
                                 "step": steps[-1].get("reason") or steps[-1].get("status")})
            except ValueError:
                failures.append({"run": ids[n], "http": st})
    stop(proc)
    passed = sum(1 for n in range(args.runs)
                 if ids[n] and listed.get(ids[n]) == "passed" and done[n])
    verify = subprocess.run(
        [os.path.join(args.bin, "codencer"), "store", "verify", "--json", "--state-dir", state],
        capture_output=True, text=True)
    verified = verify.returncode == 0 and json.loads(verify.stdout).get("ok") is True

    print(json.dumps({
        "starts": args.starts,
        "ready_ms_median": statistics.median(ready) * 1e3,
        "ready_ms_all": [round(r * 1e3, 1) for r in ready],
        "idle_rss_kb_median": statistics.median(idle),
        "runs": args.runs,
        "max_concurrent_runs": args.max_runs,
        "passed": passed,
        "recorded": sum(1 for i in ids if i and i in listed),
        "errors": errors[:5],
        "failures": failures,
        "elapsed_s": elapsed,
        "runs_per_s": args.runs / elapsed,
        "peak_rss_kb": peak,
        "rss_after_kb": rss_after,
        "store_verified": verified,
        "work": work,
    }))
    log.close()
    if failures or errors:
        with open(os.path.join(work, "daemon.log"), errors="replace") as f:
            print("".join(f.readlines()[-20:]), file=sys.stderr)


if __name__ == "__main__":
    main()
