#!/usr/bin/env python3
"""Side-by-side load test: the emulator direct, nginx with an equivalent source-IP and path
filter, and imds-guard, driven by wrk with the same load, in alternating rounds; medians.

    python3 bench/run.py                 # 3 rounds x 5 s per cell
    BENCH_SECONDS=10 BENCH_ROUNDS=5 python3 bench/run.py

Needs wrk and nginx (Debian packages; installed when missing and running as root). Prints one
table: req/s, p50, p99 and the CPU time the server itself used per request (the emulator for
direct, nginx's workers, imds-guard; the load generator and the emulator behind a proxy share the
same cores) per target, concurrency and request, and the ratios imds-guard/nginx and
imds-guard/direct; then imds-guard's memory: idle with 250 pods, peak after the load, and with
5,000 idle keep-alive connections open. Everything listens on 127.0.0.1 only.
"""

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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "imds-guard")
SECONDS = int(os.environ.get("BENCH_SECONDS", "5"))
ROUNDS = int(os.environ.get("BENCH_ROUNDS", "3"))
CONCURRENCY = [int(c) for c in os.environ.get("BENCH_CONCURRENCY", "1,32,256").split(",")]
PORTS = {"direct": 18080, "nginx": 18281, "imds-guard": 18181}
ADMIN = 18182
GET_PATH = "/latest/meta-data/placement/availability-zone"
PODS = 250
RULES = 30


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


def guard_config(audit_dir):
    lines = [
        "[server]",
        f'listen = "127.0.0.1:{PORTS["imds-guard"]}"',
        f'admin_listen = "127.0.0.1:{ADMIN}"',
        "header_read_timeout_ms = 60000",
        "max_connections = 20000",
        "max_connections_per_source = 10000",
        "[upstream]",
        f'url = "http://127.0.0.1:{PORTS["direct"]}"',
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


def nginx_config(workdir):
    """The same filter in nginx: geo on the source address, location rules for the same paths,
    upstream keep-alive, and an access log (as imds-guard writes audit lines)."""
    geo = "\n".join(f"        {pod_ip(i)} {'web' if i == 0 else f'app-{i % RULES}'};" for i in range(PODS))
    return f"""
worker_processes 2;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log;
events {{ worker_connections 20000; }}
http {{
    access_log {workdir}/nginx-access.log combined;
    client_body_temp_path {workdir}/body;
    proxy_temp_path {workdir}/proxy;
    fastcgi_temp_path {workdir}/fastcgi;
    uwsgi_temp_path {workdir}/uwsgi;
    scgi_temp_path {workdir}/scgi;
    geo $pod_app {{
        default none;
{geo}
    }}
    map $pod_app $allowed {{ default 0; web 1; ~^app- 1; }}
    upstream imds {{ server 127.0.0.1:{PORTS["direct"]}; keepalive 256; }}
    server {{
        listen 127.0.0.1:{PORTS["nginx"]} reuseport backlog=4096;
        proxy_http_version 1.1;
        proxy_set_header Connection "";
        proxy_set_header X-Forwarded-For "";
        location ^~ /latest/meta-data/iam/ {{ return 403; }}
        location /latest/meta-data/ {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;
        }}
        location = /latest/dynamic/instance-identity/document {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;
        }}
        location = /latest/api/token {{
            if ($allowed = 0) {{ return 403; }}
            proxy_pass http://imds;
        }}
        location / {{ return 403; }}
    }}
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


def main():
    need("wrk", "wrk")
    need("nginx", "nginx")
    if not os.path.exists(BIN) or os.environ.get("BENCH_BUILD", "1") == "1":
        subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=ROOT, check=True)
    workdir = tempfile.mkdtemp(prefix="imds-guard-bench-")
    with open(os.path.join(workdir, "GET.lua"), "w") as f:
        f.write('wrk.method = "GET"\n')
    # As the SDKs ask: a 6-hour token.
    with open(os.path.join(workdir, "PUT token.lua"), "w") as f:
        f.write('wrk.method = "PUT"\nwrk.headers["X-aws-ec2-metadata-token-ttl-seconds"] = "21600"\n')
    config = os.path.join(workdir, "config.toml")
    with open(config, "w") as f:
        f.write(guard_config(workdir))
    with open(os.path.join(workdir, "nginx.conf"), "w") as f:
        f.write(nginx_config(workdir))

    procs = []
    try:
        emulator = subprocess.Popen([BIN, "emulate", "--listen", f"127.0.0.1:{PORTS['direct']}"],
                                    stderr=subprocess.DEVNULL)
        procs.append(emulator)
        audit = open(os.path.join(workdir, "audit.log"), "w")
        # As deployed: the DaemonSet and the image set MALLOC_ARENA_MAX=1.
        guard = subprocess.Popen([BIN, "run", "--config", config], stdout=audit,
                                 stderr=subprocess.DEVNULL,
                                 env=dict(os.environ, RUST_LOG="warn", MALLOC_ARENA_MAX="1"))
        procs.append(guard)
        subprocess.run(["nginx", "-c", os.path.join(workdir, "nginx.conf")], check=True)
        for port in PORTS.values():
            wait_port(port)
        time.sleep(0.5)
        idle_rss = rss_kib(guard.pid, "VmRSS")
        with open(os.path.join(workdir, "nginx.pid")) as f:
            nginx_master = f.read().strip()
        nginx_workers = subprocess.run(["pgrep", "-P", nginx_master], capture_output=True,
                                       text=True, check=True).stdout.split()
        # Whose CPU time is counted for each target: the server answering on its port.
        servers = {"direct": [emulator.pid], "nginx": [int(p) for p in nginx_workers],
                   "imds-guard": [guard.pid]}

        results = {}
        targets = list(PORTS)
        for round_no in range(ROUNDS):
            # Alternate the order, so no target always runs on a cooler (or hotter) machine.
            order = targets if round_no % 2 == 0 else targets[::-1]
            for request in ["GET", "PUT token"]:
                for concurrency in CONCURRENCY:
                    for target in order:
                        cell = results.setdefault((target, request, concurrency), [])
                        cell.append(wrk(PORTS[target], concurrency, request, workdir,
                                        servers[target]))
            print(f"round {round_no + 1}/{ROUNDS} done", file=sys.stderr)
        peak_rss = rss_kib(guard.pid, "VmHWM")

        held = hold_idle_connections(PORTS["imds-guard"], 5000)
        time.sleep(0.5)
        held_rss = rss_kib(guard.pid, "VmRSS")
        held_peak = rss_kib(guard.pid, "VmHWM")
        for s in held:
            s.close()

        median = lambda values: statistics.median(values)
        print(f"\n{ROUNDS} rounds x {SECONDS} s per cell, wrk -t2 (-t1 at c=1), medians; "
              f"{os.cpu_count()} cores; imds-guard with {PODS} pods and {RULES} rules\n")
        print("| request | c | target | req/s | p50 ms | p99 ms | server CPU µs/req |")
        print("|---|---|---|---|---|---|---|")
        ratios = []
        for request in ["GET", "PUT token"]:
            for concurrency in CONCURRENCY:
                row = {}
                for target in targets:
                    cells = results[(target, request, concurrency)]
                    row[target] = tuple(median([c[i] for c in cells]) for i in range(4))
                    rps, p50, p99, cpu = row[target]
                    print(f"| {request} | {concurrency} | {target} | {rps:.0f} | {p50:.3f} | "
                          f"{p99:.3f} | {cpu:.1f} |")
                ratios.append((request, concurrency,
                               row["imds-guard"][0] / row["nginx"][0],
                               row["imds-guard"][0] / row["direct"][0],
                               row["imds-guard"][2] - row["direct"][2]))
        print("\n| request | c | imds-guard/nginx req/s | imds-guard/direct req/s | added p99 ms |")
        print("|---|---|---|---|---|")
        for request, concurrency, vs_nginx, vs_direct, added in ratios:
            print(f"| {request} | {concurrency} | {vs_nginx:.2f} | {vs_direct:.2f} | {added:.3f} |")
        print(f"\nimds-guard memory: idle {idle_rss / 1024:.1f} MiB RSS; peak after the load "
              f"{peak_rss / 1024:.1f} MiB; with 5,000 idle keep-alive connections "
              f"{held_rss / 1024:.1f} MiB RSS (peak {held_peak / 1024:.1f} MiB)")
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


if __name__ == "__main__":
    main()
