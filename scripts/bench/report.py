#!/usr/bin/env python3
"""Turn the parts measured by scripts/bench.sh into the table (figure, ours, reference,
ratio, target, ok?), as text, as JSON, and into docs/performance.md between its markers.

    scripts/bench/report.py DIR [--json] [--doc docs/performance.md]
"""

import argparse
import json
import os
import re

START = "<!-- bench:table:start -->"
END = "<!-- bench:table:end -->"


def load(d, name):
    path = os.path.join(d, name + ".json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        return json.load(f)


def ms(x):
    return f"{x:.1f} ms" if x < 100 else f"{x:.0f} ms"


def rows(d):
    out = []

    def row(figure, ours, reference, ratio, target, ok, note=""):
        out.append({"figure": figure, "ours": ours, "reference": reference,
                    "ratio": None if ratio is None else round(ratio, 2), "target": target,
                    "ok": ok, "note": note})

    s = load(d, "spawn")
    if s:
        ratio = s["worker_us"] / s["bwrap_us"]
        row("confined spawn of /bin/true (all layers)", ms(s["worker_us"] / 1e3),
            f"bwrap {ms(s['bwrap_us'] / 1e3)}; plain {ms(s['plain_us'] / 1e3)}",
            ratio, "ratio to bwrap <= 1.0", ratio <= 1.0,
            f"median of {s['runs']}; rlimit-only variant {ms(s['worker_rlimit_only_us'] / 1e3)}"
            f" (ratio {s['ratio_rlimit_only_to_bwrap']}); limits: {s.get('limits', '')}")
    e = load(d, "e2e")
    if e:
        ratio = e["ours_ms"] / e["ref_ms"]
        row("one-step `codencer run` (shell `true`, validator `true`)", ms(e["ours_ms"]),
            f"shell script {ms(e['ref_ms'])}", ratio, "ratio <= 1.3", ratio <= 1.3,
            f"median of {e['samples']}")
    g = load(d, "large")
    if g:
        ratio = g["setup_ms"] / g["ref_ms"]
        row(f"attempt setup, large repo ({g['files']} files, {g['mb']} MB, "
            f"{g['commits']} commits)", ms(g["setup_ms"]),
            f"git worktree add {ms(g['ref_ms'])}", ratio, "ratio <= 1.1", ratio <= 1.1,
            f"median of {g['samples']}; whole one-step run {ms(g['run_ms'])}; "
            f"opt-in sparse (src/m00) {ms(g['sparse_ms'])}")
    st = load(d, "store")
    if st:
        ratio = st["append_ratio"]
        rate = st["append_events_per_s"]
        row(f"store: append {st['events']} events ({st['batch']} per transaction)",
            f"{st['append_s'] * 1e3:.0f} ms ({rate:,.0f}/s)",
            f"plain inserts {st['plain_s'] * 1e3:.0f} ms ({st['plain_events_per_s']:,.0f}/s)",
            ratio, "ratio <= 1.5, >= 20,000/s", ratio <= 1.5 and rate >= 20_000,
            f"median of {st['reps']}, each until the WAL is checkpointed; the inserts alone: "
            f"ratio {st['append_inserts_ratio']:.2f}; plain inserts with the hash chain: "
            f"ratio {st['chain_only_ratio']:.2f} (the rest is the run-tree checks)")
        ratio = st["single_ratio"]
        rate = st["single_events_per_s"]
        row(f"store: append {st['single_events']} events (one per transaction)",
            f"{st['single_append_s'] * 1e3:.0f} ms ({rate:,.0f}/s)",
            f"plain inserts {st['single_plain_s'] * 1e3:.0f} ms "
            f"({st['single_events'] / st['single_plain_s']:,.0f}/s)",
            ratio, "ratio <= 1.5, >= 20,000/s", ratio <= 1.5 and rate >= 20_000,
            f"how the supervisor appends; median of {st['reps']}; the inserts alone: ratio "
            f"{st['single_inserts_ratio']:.2f}; plain inserts with the hash chain: ratio "
            f"{st['single_chain_only_ratio']:.2f}")
        row(f"store: load a run tree ({st['tree_store_events']}-event store)",
            ms(st["tree_median_ms"]), "-", None, "median <= 20 ms",
            st["tree_median_ms"] <= 20,
            f"median of {st['tree_loads']}; first load after open {ms(st['tree_first_ms'])}")
    dm = load(d, "daemon")
    if dm:
        ok = (dm["passed"] == dm["runs"] and dm["recorded"] == dm["runs"]
              and dm["store_verified"] and dm["peak_rss_kb"] <= 150 * 1024)
        row(f"daemon: {dm['runs']} concurrent one-step runs",
            f"{dm['passed']}/{dm['runs']} passed, {dm['runs_per_s']:.1f} runs/s, "
            f"peak RSS {dm['peak_rss_kb'] / 1024:.0f} MB", "-", None,
            "all complete, none lost; peak RSS <= 150 MB", ok,
            f"max_concurrent_runs {dm['max_concurrent_runs']}; store verify "
            f"{'ok' if dm['store_verified'] else 'FAILED'}")
        ok = dm["idle_rss_kb_median"] <= 20 * 1024 and dm["ready_ms_median"] <= 200
        row("daemon idle",
            f"RSS {dm['idle_rss_kb_median'] / 1024:.1f} MB, ready {ms(dm['ready_ms_median'])}",
            "-", None, "RSS <= 20 MB; ready <= 200 ms", ok,
            f"median of {dm['starts']} starts")
    return out


def text_table(rs):
    head = ["figure", "ours", "reference", "ratio", "target", "ok?"]
    body = [[r["figure"], r["ours"], r["reference"],
             "-" if r["ratio"] is None else f"{r['ratio']:.2f}", r["target"],
             "yes" if r["ok"] else "NO"] for r in rs]
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()
    return "\n".join([line(head), line(["-" * w for w in widths])] + [line(b) for b in body])


def markdown(rs, meta):
    lines = [f"Measured {meta.get('date', '?')} on {meta.get('host', '?')} "
             f"({meta.get('mode', 'full')} run, {meta.get('seconds', 0):.0f} s).", "",
             "| figure | ours | reference | ratio | target | ok? |",
             "|---|---|---|---|---|---|"]
    for r in rs:
        ratio = "–" if r["ratio"] is None else f"{r['ratio']:.2f}"
        lines.append(f"| {r['figure']} | {r['ours']} | {r['reference']} | {ratio} | "
                     f"{r['target']} | {'yes' if r['ok'] else '**no**'} |")
    lines.append("")
    lines += [f"- {r['figure']}: {r['note']}" for r in rs if r["note"]]
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--doc")
    a = ap.parse_args()
    meta = load(a.dir, "meta") or {}
    rs = rows(a.dir)
    if a.doc:
        with open(a.doc) as f:
            doc = f.read()
        new = f"{START}\n{markdown(rs, meta)}\n{END}"
        doc, n = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: new, doc,
                         flags=re.S)
        if n == 1:
            with open(a.doc, "w") as f:
                f.write(doc)
    if a.json:
        parts = {k: load(a.dir, k) for k in ["spawn", "e2e", "large", "store", "daemon"]}
        print(json.dumps({"meta": meta, "table": rs, "raw": parts}, indent=2))
    else:
        print(text_table(rs))


if __name__ == "__main__":
    main()
