#!/usr/bin/env python3
"""Two builds of the guard side by side, in alternating rounds: whether a change made it slower.

    python3 bench/compare.py OLD_BINARY NEW_BINARY
    AB_SECONDS=5 AB_ROUNDS=5 python3 bench/compare.py OLD NEW

Each binary runs two guards configured as bench/run.py's `imds-guard` (guard tokens, cache on) and
`imds-guard-passthrough` (every request forwarded), in front of one emulator (NEW's), with the
same 250 pods, 30 rules and no rate limits. Cells: the cached GET at 1, 32 and 256 connections,
the token PUT at 32, the forwarded GET at 32 and 256; in each round the two builds take turns,
in alternating order. Prints req/s, p99 and the server's CPU microseconds per request, medians,
with NEW/OLD. Needs wrk (`apt-get install wrk`). Build OLD from an older commit, for example:

    git worktree add /tmp/old REV && (cd /tmp/old && cargo build --release --locked)
    cargo build --release --locked
    python3 bench/compare.py /tmp/old/target/release/imds-guard target/release/imds-guard
"""
import importlib.util
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

spec = importlib.util.spec_from_file_location(
    "bench", os.path.join(os.path.dirname(os.path.abspath(__file__)), "run.py"))
b = importlib.util.module_from_spec(spec)
spec.loader.exec_module(b)
if len(sys.argv) != 3:
    sys.exit(__doc__)
OLD, NEW = os.path.abspath(sys.argv[1]), os.path.abspath(sys.argv[2])
b.need("wrk", "wrk")
b.SECONDS = int(os.environ.get("AB_SECONDS", "4"))
ROUNDS = int(os.environ.get("AB_ROUNDS", "3"))
work = tempfile.mkdtemp(prefix="ab-")
open(os.path.join(work, "GET.lua"), "w").write('wrk.method = "GET"\n')
open(os.path.join(work, "PUT token.lua"), "w").write('wrk.method = "PUT"\nwrk.headers["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"\n')
ports = {}
procs = []
def cfg(name, port, admin):
    b.PORTS[name] = port; b.ADMIN[name] = admin
    return b.guard_config(name)
try:
    emu = subprocess.Popen([NEW, "emulate", "--listen", f"127.0.0.1:{b.PORTS['direct']}"], stderr=subprocess.DEVNULL)
    procs.append(emu)
    guards = {}
    for label, binary, base in [("old", OLD, 19000), ("new", NEW, 19100)]:
        for kind, name, off in [("cached", "imds-guard", 0), ("passthrough", "imds-guard-passthrough", 10)]:
            text = cfg(name, base + off, base + off + 1)
            path = os.path.join(work, f"{label}-{kind}.toml"); open(path, "w").write(text)
            p = subprocess.Popen([binary, "run", "--config", path], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, RUST_LOG="warn", MALLOC_ARENA_MAX="1"))
            procs.append(p); guards[(label, kind)] = (base + off, p.pid)
    for port, _ in guards.values():
        b.wait_port(port)
    b.wait_port(b.PORTS["direct"])
    time.sleep(0.5)
    cells = [("cached", "GET", 1), ("cached", "GET", 32), ("cached", "GET", 256), ("cached", "PUT token", 32),
             ("passthrough", "GET", 32), ("passthrough", "GET", 256)]
    res = {}
    for r in range(ROUNDS):
        for kind, req, c in cells:
            order = ["old", "new"] if r % 2 == 0 else ["new", "old"]
            for label in order:
                port, pid = guards[(label, kind)]
                res.setdefault((label, kind, req, c), []).append(b.wrk(port, c, req, work, [pid]))
        print(f"round {r+1}/{ROUNDS}", file=sys.stderr)
    med = lambda xs, i: statistics.median(x[i] for x in xs)
    print(f"{ROUNDS} alternating rounds x {b.SECONDS} s per cell, medians; old={OLD} new={NEW}")
    print(f"{'cell':34} {'old req/s':>10} {'new req/s':>10} {'new/old':>8} {'old p99':>8} {'new p99':>8} {'old µs/req':>10} {'new µs/req':>10}")
    for kind, req, c in cells:
        o, n = res[("old", kind, req, c)], res[("new", kind, req, c)]
        print(f"{kind+' '+req+' c='+str(c):34} {med(o,0):10.0f} {med(n,0):10.0f} {med(n,0)/med(o,0):8.2f} {med(o,2):8.2f} {med(n,2):8.2f} {med(o,3):10.1f} {med(n,3):10.1f}")
finally:
    for p in procs:
        p.terminate()
        p.wait()
    shutil.rmtree(work, ignore_errors=True)
