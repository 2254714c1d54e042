#!/usr/bin/env python3
"""Side-by-side load test: the emulator direct, nginx with an equivalent source-IP and path
filter (without and with `proxy_cache` on the stable paths), and imds-guard as the metadata front
(cache on, cache off, and passthrough tokens), driven by wrk with the same load, in alternating
rounds; medians. Then a cold start: 200 pods fetching credentials at once, counted at the service.

    python3 bench/run.py                 # 3 rounds x 5 s per cell
    BENCH_SECONDS=10 BENCH_ROUNDS=5 python3 bench/run.py
    BENCH_KEEP=1 python3 bench/run.py    # keep the work directory (configs, audit and access logs)

Targets, each listening on 127.0.0.1:
  direct                  the emulator alone
  nginx                   geo filter on the source address, location rules, upstream keep-alive
  nginx-cache             the same plus proxy_cache (300 s for 200s, proxy_cache_lock on) on the
                          stable paths (placement/**, instance-id, ... and the identity document)
  imds-guard              the default front: guard tokens, cache on
  imds-guard-nocache      guard tokens, `[cache] enabled = false`: every read forwarded with the
                          guard's own token
  imds-guard-passthrough  `[imdsv2] tokens = "passthrough"`: every request forwarded as it came
The guards run with `[limits] pod_requests_per_second = 0` and `upstream_requests_per_second = 0`
(wrk is one source address; the default limits would answer most of its requests with 429).

Cells: direct, nginx and imds-guard for the metadata GET and the token PUT (6-hour TTL) at every
concurrency (BENCH_CONCURRENCY, default 1,32,256); nginx-cache, imds-guard-nocache and
imds-guard-passthrough for the GET at 32 and 256 connections only (BENCH_EXTRA_CONCURRENCY), which
keeps a run near 6½ minutes (the build aside). In guard mode imds-guard answers the token PUT
itself (it issues the pod's token); direct and nginx get it from the emulator.

Needs wrk and nginx (Debian packages; installed when missing and running as root). Prints the
table of req/s, p50, p99 and the CPU time the server itself used per request (the emulator for
direct, nginx's workers, the guard; the load generator and the emulator behind a proxy share the
same cores); the ratios against the targets (a cached GET >= 1.0x direct and >= 1.2x nginx-cache,
an uncached GET >= 0.5x direct and >= 1.0x nginx, at 32 and 256 connections) with PASS or MISS;
imds-guard's memory: idle with 250 pods, peak after the load, and with 5,000 idle keep-alive
connections open; and the cold start: 200 pods (127.0.1.1-127.0.1.200, known to a freshly started
guard's static inventory and allowed to read credentials) each PUT a token, GET
/latest/meta-data/iam/security-credentials/ and then the role it names, all at once, through a
counting HTTP forwarder in front of the emulator; PASS when the service saw at most 3 credential
requests. The same is done against a passthrough guard for comparison.
"""

import asyncio
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "imds-guard")
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,32,256").split(",")]
EXTRA_CONCURRENCY = [int(c) for c in
                     os.environ.get("BENCH_EXTRA_CONCURRENCY", "32,256").split(",")]
PORTS = {"direct": 18080, "nginx": 18281, "nginx-cache": 18282, "imds-guard": 18181,
         "imds-guard-nocache": 18183, "imds-guard-passthrough": 18185}
# The admin port of each guard.
ADMIN = {"imds-guard": 18182, "imds-guard-nocache": 18184, "imds-guard-passthrough": 18186}
# What each guard adds to the common config (before [inventory]).
GUARDS = {
    "imds-guard": [],
    "imds-guard-nocache": ["[cache]", "enabled = false"],
    "imds-guard-passthrough": ["[imdsv2]", 'tokens = "passthrough"'],
}
NO_LIMITS = ["[limits]", "pod_requests_per_second = 0", "upstream_requests_per_second = 0"]
# Run for every request and concurrency; the others for the GET at EXTRA_CONCURRENCY.
FULL = ["direct", "nginx", "imds-guard"]
EXTRA = ["nginx-cache", "imds-guard-nocache", "imds-guard-passthrough"]
GET_PATH = "/latest/meta-data/placement/availability-zone"
PODS = 250
RULES = 30
# The cold start.
COLD_PODS = 200
COLD_GUARD, COLD_ADMIN, COUNTER = 18191, 18192, 18090
CREDENTIALS = "/latest/meta-data/iam/security-credentials/"


def need(tool, package):
    if shutil.which(tool):
        return
    if os.geteuid() == 0:
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", package],
                       check=True, env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    if not shutil.which(tool):
        sys.exit(f"{tool} is missing: apt-get install {package}")


def pod_ip(i):
    """Pod 0 is 127.0.0.1 (wrk's source address); the others are spread over 10.1.0.0/16."""
    return "127.0.0.1" if i == 0 else f"10.1.{i // 250}.{i % 250 + 1}"


def guard_config(name):
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{PORTS[name]}"',
        f'admin_listen = "127.0.0.1:{ADMIN[name]}"',
        "header_read_timeout_ms = 60000",
        "max_connections = 20000",
        "max_connections_per_source = 10000",
        "[upstream]",
        f'url = "http://127.0.0.1:{PORTS["direct"]}"',
        *GUARDS[name],
        *NO_LIMITS,
        "[inventory]",
        'source = "static"',
    ]
    for i in range(PODS):
        app = "web" if i == 0 else f"app-{i % RULES}"
        lines += ["[[inventory.pods]]", f'ip = "{pod_ip(i)}"', f'namespace = "ns-{i % 10}"',
                  f'name = "pod-{i}"', f'labels = {{ app = "{app}" }}']
    # Tens of rules of a realistic shape; the benchmarked pod (app=web, ns-0) is selected by the last.
    for r in range(RULES - 1):
        lines += ["[[rules]]", f'name = "rule-{r}"', f'namespaces = ["ns-{r % 10}"]',
                  f'pod_labels = {{ app = "app-{r}" }}',
                  'allow = ["/latest/meta-data/**", "/latest/dynamic/instance-identity/document"]',
                  'deny = ["/latest/meta-data/iam/**"]']
    lines += ["[[rules]]", 'name = "web"', 'namespaces = ["ns-0"]', 'pod_labels = { app = "web" }',
              'allow = ["/latest/meta-data/**", "/latest/dynamic/instance-identity/document"]',
              'deny = ["/latest/meta-data/iam/**"]']
    return "\n".join(lines) + "\n"


def cold_ip(i):
    return f"127.0.{1 + i // 250}.{i % 250 + 1}"


def cold_guard_config(tokens):
    """A node of COLD_PODS pods that may read the node's credentials. Guard tokens with the
    default limits; passthrough (for comparison: every request forwarded) with limits off, since
    there the node's budget would refuse most of the burst."""
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{COLD_GUARD}"',
        f'admin_listen = "127.0.0.1:{COLD_ADMIN}"',
        "[upstream]",
        f'url = "http://127.0.0.1:{COUNTER}"',
        "[imdsv2]",
        f'tokens = "{tokens}"',
        *(NO_LIMITS if tokens == "passthrough" else []),
        "[inventory]",
        'source = "static"',
    ]
    for i in range(COLD_PODS):
        lines += ["[[inventory.pods]]", f'ip = "{cold_ip(i)}"', 'namespace = "apps"',
                  f'name = "sdk-{i}"', 'labels = { app = "sdk" }']
    lines += ["[[rules]]", 'name = "sdk"', 'namespaces = ["apps"]', 'pod_labels = { app = "sdk" }',
              'allow = ["/latest/meta-data/**"]', "deny = []"]
    return "\n".join(lines) + "\n"


def nginx_filter(workdir, port, log, cached):
    """One server: the filter, and for `cached` proxy_cache on the stable paths."""
    cache = """
            proxy_cache imds;
            proxy_cache_valid 200 300s;
            proxy_cache_lock on;""" if cached else ""
    stable = f"""
        location ~ ^/latest/meta-data/(placement/|services/|(instance-id|ami-id|instance-type|local-ipv4|mac|hostname|local-hostname)/?$) {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;{cache}
        }}""" if cached else ""
    return f"""
    server {{
        listen 127.0.0.1:{port} reuseport backlog=4096;
        access_log {workdir}/{log} {"cached" if cached else "combined"};
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For "";
        location ^~ /latest/meta-data/iam/ {{ return 403; }}{stable}
        location /latest/meta-data/ {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;
        }}
        location = /latest/dynamic/instance-identity/document {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;{cache}
        }}
        location = /latest/api/token {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;
        }}
        location / {{ return 403; }}
    }}"""


def nginx_config(workdir):
    """The same filter in nginx: geo on the source address, location rules for the same paths,
    upstream keep-alive, and an access log (as imds-guard writes audit lines). Two servers in one
    nginx: `nginx` forwards every allowed request, `nginx-cache` keeps the stable paths in a
    proxy_cache (its access log also names the cache status, for the check before the load)."""
    geo = "\n".join(f"        {pod_ip(i)} {'web' if i == 0 else f'app-{i % RULES}'};" for i in range(PODS))
    return f"""
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 20000; }}
http {{
    log_format cached '$remote_addr - $remote_user [$time_local] "$request" $status '
                      '$body_bytes_sent "$http_referer" "$http_user_agent" $upstream_cache_status';
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    proxy_cache_path {workdir}/cache levels=1:2 keys_zone=imds:1m max_size=16m inactive=10m
                     use_temp_path=off;
    # Cache hits are files: keep them open rather than open each one per request.
    open_file_cache max=64 inactive=60s;
    geo $pod_app {{
        default none;
{geo}
    }}
    map $pod_app $allowed {{ default 0; web 1; ~^app- 1; }}
    upstream imds {{ server 127.0.0.1:{PORTS["direct"]}; keepalive 256; }}
{nginx_filter(workdir, PORTS["nginx"], "nginx-access.log", False)}
{nginx_filter(workdir, PORTS["nginx-cache"], "nginx-cache-access.log", True)}
}}
"""


def wait_port(port, timeout=10.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"nothing listens on 127.0.0.1:{port}")


def to_ms(text):
    value, unit = re.match(r"([\d.]+)(us|ms|s)", text).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def cpu_seconds(pids):
    """User plus system CPU time used so far by `pids`."""
    ticks = 0
    for pid in pids:
        with open(f"/proc/{pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


def wrk(port, concurrency, request, workdir, pids):
    """req/s, p50 ms, p99 ms, and CPU microseconds per request used by `pids` (the server)."""
    script = os.path.join(workdir, f"{request}.lua")
    url = f"http://127.0.0.1:{port}" + ("/latest/api/token" if request == "PUT token" else GET_PATH)
    threads = min(2, concurrency)
    cpu_before = cpu_seconds(pids)
    out = subprocess.run(["wrk", f"-t{threads}", f"-c{concurrency}", f"-d{SECONDS}s", "--latency",
                          "-s", script, url], capture_output=True, text=True, check=True).stdout
    cpu = cpu_seconds(pids) - cpu_before
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = to_ms(re.search(r"\s50%\s+([\d.]+\w+)", out).group(1))
    p99 = to_ms(re.search(r"\s99%\s+([\d.]+\w+)", out).group(1))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if non2xx:
        sys.exit(f"{port} {request}: {non2xx.group(1)} non-2xx answers: the load is not measuring "
                 f"what it should\n{out}")
    return rps, p50, p99, cpu * 1e6 / max(requests, 1)


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def hold_idle_connections(port, count):
    """Opens `count` keep-alive connections, one request each, and keeps them open."""
    held = []
    request = f"GET {GET_PATH} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    for _ in range(count):
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(request)
        held.append(s)
    for s in held:
        s.settimeout(5)
        s.recv(4096)
    return held


def cache_counts(admin):
    """imds-guard's cache counters by result, from its /metrics."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{admin}/metrics", timeout=5).read().decode()
    counts = {}
    for result, value in re.findall(r'^imds_guard_cache_requests_total\{result="(\w+)"\} (\d+)',
                                    text, re.M):
        counts[result] = int(value)
    return counts


def check_caches(workdir):
    """Before the load: the cached targets answer the benchmarked GET from their cache."""
    for _ in range(2):
        for target in ["nginx-cache", "imds-guard"]:
            urllib.request.urlopen(f"http://127.0.0.1:{PORTS[target]}{GET_PATH}", timeout=5).read()
    time.sleep(0.3)  # nginx logs a request after answering it
    with open(os.path.join(workdir, "nginx-cache-access.log")) as log:
        last = log.read().splitlines()[-1]
    if not last.endswith(" HIT"):
        sys.exit(f"nginx-cache did not answer {GET_PATH} from its cache: {last}")
    if cache_counts(ADMIN["imds-guard"]).get("hit", 0) < 1:
        sys.exit(f"imds-guard did not answer {GET_PATH} from its cache")


# --- The cold start ------------------------------------------------------------------------------

async def read_message(reader):
    """One HTTP/1.1 message (head and Content-Length body), or None at a clean end of stream."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if e.partial:
            raise
        return None
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            key, value = line.split(":", 1)
            headers[key.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise RuntimeError("chunked messages are not relayed by the counting forwarder")
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return lines[0], head, body


async def counting_forwarder(seen):
    """An HTTP forwarder in front of the emulator that records every request the service gets."""
    async def serve(reader, writer):
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", PORTS["direct"])
        try:
            while (message := await read_message(reader)) is not None:
                start, head, body = message
                method, target = start.split(" ")[:2]
                seen.append((method, target))
                up_writer.write(head + body)
                await up_writer.drain()
                answer = await read_message(up_reader)
                if answer is None:
                    break
                writer.write(answer[1] + answer[2])
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.CancelledError):
            pass
        finally:
            up_writer.close()
            writer.close()

    return await asyncio.start_server(serve, "127.0.0.1", COUNTER, backlog=1024)


async def exchange(reader, writer, method, path, headers):
    head = f"{method} {path} HTTP/1.1\r\nHost: 169.254.169.254\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    if method == "PUT":
        head += "Content-Length: 0\r\n"
    writer.write((head + "\r\n").encode())
    await writer.drain()
    start, _, body = await read_message(reader)
    status = int(start.split(" ")[1])
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status} {body[:200]!r}")
    return body.decode()


async def cold_pod(ip, connected, go):
    """What an SDK does for credentials: a token, the role name, the role's credentials."""
    reader, writer = await asyncio.open_connection("127.0.0.1", COLD_GUARD, local_addr=(ip, 0))
    connected.release()
    await go.wait()
    try:
        token = await exchange(reader, writer, "PUT", "/latest/api/token",
                               {"X-aws-ec2-metadata-token-ttl-seconds": "21600"})
        role = (await exchange(reader, writer, "GET", CREDENTIALS,
                               {"X-aws-ec2-metadata-token": token})).split()[0]
        credentials = json.loads(await exchange(reader, writer, "GET", CREDENTIALS + role,
                                                {"X-aws-ec2-metadata-token": token}))
        if credentials.get("Code") != "Success" or not credentials.get("AccessKeyId"):
            raise RuntimeError(f"{ip}: not credentials: {credentials}")
        return 3
    finally:
        writer.close()


async def cold_start(workdir, tokens):
    """A guard started fresh, COLD_PODS pods fetching credentials at once; what the service saw."""
    seen = []
    server = await counting_forwarder(seen)
    config = os.path.join(workdir, f"cold-{tokens}.toml")
    with open(config, "w") as f:
        f.write(cold_guard_config(tokens))
    audit = open(os.path.join(workdir, f"cold-{tokens}-audit.log"), "w")
    guard = subprocess.Popen([BIN, "run", "--config", config], stdout=audit,
                             stderr=subprocess.DEVNULL,
                             env=dict(os.environ, RUST_LOG="warn", MALLOC_ARENA_MAX="1"))
    try:
        for _ in range(200):
            try:
                _, w = await asyncio.open_connection("127.0.0.1", COLD_ADMIN)
                w.close()
                break
            except OSError:
                await asyncio.sleep(0.05)
        else:
            sys.exit(f"the cold-start guard ({tokens}) did not start")
        connected, go = asyncio.Semaphore(0), asyncio.Event()
        pods = [asyncio.ensure_future(cold_pod(cold_ip(i), connected, go))
                for i in range(COLD_PODS)]
        for _ in range(COLD_PODS):
            await connected.acquire()
        started = time.monotonic()
        go.set()
        results = await asyncio.gather(*pods, return_exceptions=True)
        elapsed = time.monotonic() - started
        failures = [r for r in results if isinstance(r, BaseException)]
        if failures:
            print(f"cold start ({tokens}): {len(failures)} pods failed, e.g. {failures[0]!r}",
                  file=sys.stderr)
        await asyncio.sleep(0.2)
    finally:
        guard.send_signal(signal.SIGTERM)
        guard.wait(timeout=15)
        server.close()
        await server.wait_closed()
    listing = sum(1 for m, t in seen if t.rstrip("/") == CREDENTIALS.rstrip("/"))
    role = sum(1 for m, t in seen
               if t.startswith(CREDENTIALS) and len(t.rstrip("/")) > len(CREDENTIALS))
    token_puts = sum(1 for m, t in seen if m == "PUT" and t == "/latest/api/token")
    return {"pod_requests": COLD_PODS * 3, "served": COLD_PODS - len(failures), "seen": len(seen),
            "listing": listing, "role": role, "token_puts": token_puts,
            "other": len(seen) - listing - role - token_puts, "elapsed": elapsed}


def main():
    need("wrk", "wrk")
    need("nginx", "nginx")
    if not os.path.exists(BIN) or os.environ.get("BENCH_BUILD", "1") == "1":
        # Into ROOT/target whatever CARGO_TARGET_DIR says, as BIN is found there.
        subprocess.run(["cargo", "build", "--release", "--locked", "--quiet"], cwd=ROOT, check=True,
                       env=dict(os.environ, CARGO_TARGET_DIR=os.path.join(ROOT, "target")))
    workdir = tempfile.mkdtemp(prefix="imds-guard-bench-")
    # nginx's workers (another user when run as root) reach their cache files through it.
    os.chmod(workdir, 0o711)
    with open(os.path.join(workdir, "GET.lua"), "w") as f:
        f.write('wrk.method = "GET"\n')
    # As the SDKs ask: a 6-hour token.
    with open(os.path.join(workdir, "PUT token.lua"), "w") as f:
        f.write('wrk.method = "PUT"\nwrk.headers["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"\n')
    configs = {}
    for name in GUARDS:
        configs[name] = os.path.join(workdir, f"{name}.toml")
        with open(configs[name], "w") as f:
            f.write(guard_config(name))
    with open(os.path.join(workdir, "nginx.conf"), "w") as f:
        f.write(nginx_config(workdir))

    procs = []
    try:
        emulator = subprocess.Popen([BIN, "emulate", "--listen", f"127.0.0.1:{PORTS['direct']}"],
                                    stderr=subprocess.DEVNULL)
        procs.append(emulator)
        guards = {}
        for name in GUARDS:
            audit = open(os.path.join(workdir, f"{name}-audit.log"), "w")
            # As deployed: the DaemonSet and the image set MALLOC_ARENA_MAX=1.
            guards[name] = subprocess.Popen([BIN, "run", "--config", configs[name]], stdout=audit,
                                            stderr=subprocess.DEVNULL,
                                            env=dict(os.environ, RUST_LOG="warn",
                                                     MALLOC_ARENA_MAX="1"))
            procs.append(guards[name])
        subprocess.run(["nginx", "-c", os.path.join(workdir, "nginx.conf")], check=True)
        for port in PORTS.values():
            wait_port(port)
        time.sleep(0.5)
        guard = guards["imds-guard"]
        idle_rss = rss_kib(guard.pid, "VmRSS")
        check_caches(workdir)
        with open(os.path.join(workdir, "nginx.pid")) as f:
            nginx_master = f.read().strip()
        # The workers answer; the cache manager and loader (which exits after a minute) do not.
        nginx_workers = [int(p) for p in subprocess.run(
            ["pgrep", "-P", nginx_master, "-f", "worker process"], capture_output=True, text=True,
            check=True).stdout.split()]
        if len(nginx_workers) != 2:
            sys.exit(f"expected nginx's 2 workers, found {nginx_workers}")
        # Whose CPU time is counted for each target: the server answering on its port.
        servers = {"direct": [emulator.pid], "nginx": nginx_workers, "nginx-cache": nginx_workers,
                   **{name: [p.pid] for name, p in guards.items()}}

        def targets(request, concurrency):
            extra = EXTRA if request == "GET" and concurrency in EXTRA_CONCURRENCY else []
            return [t for t in PORTS if t in FULL or t in extra]

        results = {}
        for round_no in range(ROUNDS):
            for request in ["GET", "PUT token"]:
                for concurrency in CONCURRENCY:
                    # Alternate the order, so no target always runs on a cooler (or hotter) machine.
                    order = targets(request, concurrency)
                    for target in (order if round_no % 2 == 0 else order[::-1]):
                        cell = results.setdefault((target, request, concurrency), [])
                        cell.append(wrk(PORTS[target], concurrency, request, workdir,
                                        servers[target]))
            print(f"round {round_no + 1}/{ROUNDS} done", file=sys.stderr)
        peak_rss = rss_kib(guard.pid, "VmHWM")
        hits = cache_counts(ADMIN["imds-guard"])

        held = hold_idle_connections(PORTS["imds-guard"], 5000)
        time.sleep(0.5)
        held_rss = rss_kib(guard.pid, "VmRSS")
        held_peak = rss_kib(guard.pid, "VmHWM")
        for s in held:
            s.close()

        cold = {tokens: asyncio.run(cold_start(workdir, tokens))
                for tokens in ["guard", "passthrough"]}

        median = lambda values: statistics.median(values)
        print(f"\n{ROUNDS} rounds x {SECONDS} s per cell, wrk -t2 (-t1 at c=1), medians; "
              f"{os.cpu_count()} cores; imds-guard with {PODS} pods and {RULES} rules, limits off\n")
        print("| request | c | target | req/s | p50 ms | p99 ms | server CPU µs/req |")
        print("|---|---|---|---|---|---|---|")
        row = {}
        for request in ["GET", "PUT token"]:
            for concurrency in CONCURRENCY:
                for target in targets(request, concurrency):
                    cells = results[(target, request, concurrency)]
                    row[(target, request, concurrency)] = tuple(
                        median([c[i] for c in cells]) for i in range(4))
                    rps, p50, p99, cpu = row[(target, request, concurrency)]
                    print(f"| {request} | {concurrency} | {target} | {rps:.0f} | {p50:.3f} | "
                          f"{p99:.3f} | {cpu:.1f} |")
        print("\nimds-guard answered the benchmarked GET from its cache "
              f"({hits.get('hit', 0)} hits, {hits.get('miss', 0)} miss(es)) and the token PUT "
              "itself (guard tokens); direct and nginx got the token from the emulator.")

        print("\n| GET | c | ratio of req/s | value | target | result |")
        print("|---|---|---|---|---|---|")
        comparisons = [("cached", "imds-guard", "direct", 1.0),
                       ("cached", "imds-guard", "nginx-cache", 1.2),
                       ("uncached", "imds-guard-nocache", "direct", 0.5),
                       ("uncached", "imds-guard-nocache", "nginx", 1.0),
                       ("uncached", "imds-guard-passthrough", "nginx", None)]
        for kind, ours, theirs, target in comparisons:
            for concurrency in EXTRA_CONCURRENCY:
                a, b = row.get((ours, "GET", concurrency)), row.get((theirs, "GET", concurrency))
                if a is None or b is None:
                    continue
                ratio = a[0] / b[0]
                verdict = "" if target is None else ("PASS" if ratio >= target else "MISS")
                goal = "—" if target is None else f"≥ {target:.1f}"
                print(f"| {kind} | {concurrency} | {ours}/{theirs} | {ratio:.3f} | {goal} | "
                      f"{verdict} |")
        if 1 in CONCURRENCY:
            print()
            for request in ["GET", "PUT token"]:
                d, g = row[("direct", request, 1)], row[("imds-guard", request, 1)]
                print(f"{request} at c=1, imds-guard over direct: "
                      f"p50 {1000 * (g[1] - d[1]):+.0f} µs, p99 {1000 * (g[2] - d[2]):+.0f} µs")
        print(f"\nimds-guard memory: idle {idle_rss / 1024:.1f} MiB RSS; peak after the load "
              f"{peak_rss / 1024:.1f} MiB; with 5,000 idle keep-alive connections "
              f"{held_rss / 1024:.1f} MiB RSS (peak {held_peak / 1024:.1f} MiB)")

        print(f"\nCold start: {COLD_PODS} pods at once, each PUT /latest/api/token, GET "
              f"{CREDENTIALS}, GET {CREDENTIALS}ROLE, against a freshly started guard (guard tokens "
              f"with the default limits; passthrough with limits off, for comparison); what the "
              f"service saw, counted by a forwarder in front of it\n")
        print("| guard | requests from pods | pods with credentials | ms until the last | "
              "service saw: listing | role | token PUT | other | credential requests | target |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for tokens, c in cold.items():
            credential = c["listing"] + c["role"]
            verdict = (f"≤ 3: {'PASS' if credential <= 3 and c['served'] == COLD_PODS else 'MISS'}"
                       if tokens == "guard" else "—")
            print(f"| {tokens} | {c['pod_requests']} | {c['served']} | {1000 * c['elapsed']:.0f} | "
                  f"{c['listing']} | {c['role']} | {c['token_puts']} | {c['other']} | "
                  f"{credential} | {verdict} |")
    finally:
        subprocess.run(["nginx", "-c", os.path.join(workdir, "nginx.conf"), "-s", "stop"],
                       stderr=subprocess.DEVNULL)
        for p in procs:
            p.send_signal(signal.SIGTERM)
        for p in procs:
            try:
                p.wait(timeout=15)
            except subprocess.TimeoutExpired:
                p.kill()
        # The audit and access logs of a run are gigabytes.
        if os.environ.get("BENCH_KEEP") != "1":
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
