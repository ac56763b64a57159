"""Shared rig of the reliability scripts (benchmarks/slow-clients, benchmarks/faults,
scripts/tls-scan): the example policy on loopback, the gateway and the demo upstream, a client at a
steady request rate, /proc sampling, and the source-address shim for load tools.

Processes, certificates and the HTTP client come from tests/integration/harness.py; the wrk
output parser from benchmarks/run. Everything listens on and connects to 127.0.0.0/8 only.
"""
import calendar
import importlib.machinery
import importlib.util
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(os.environ.get("BUILD_DIR", os.path.join(ROOT, "build")))
CONF = os.path.join(ROOT, "conf")
os.environ.setdefault("PORTCULLIS_BIN", os.path.join(BUILD, "portcullis"))
os.environ.setdefault("DEMO_UPSTREAM_BIN", os.path.join(BUILD, "demo-upstream"))

sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
import harness  # noqa: E402


def _load_bench_run():
    path = os.path.join(ROOT, "benchmarks", "run")
    loader = importlib.machinery.SourceFileLoader("bench_run", path)
    spec = importlib.util.spec_from_loader("bench_run", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


bench_run = _load_bench_run()
parse_latency = bench_run.parse_latency


def require(*tools):
    missing = [t for t in tools if not shutil.which(t)]
    if missing:
        sys.exit(f"missing: {', '.join(missing)} (run scripts/install-deps)")
    for binary in (harness.portcullis_bin(), harness.demo_upstream_bin()):
        if not os.path.exists(binary):
            sys.exit(f"{binary} is missing: build it first (scripts/build)")


def raise_nofile():
    """The load tools inherit this; the gateway too unless a script lowers it."""
    import resource
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def dev_cert():
    """conf/tls/dev.{crt,key} and conf/keys (scripts/dev-cert, idempotent); the CA of the client."""
    subprocess.run([os.path.join(ROOT, "scripts", "dev-cert")], check=True,
                   env=dict(os.environ), stdout=subprocess.DEVNULL)
    harness.DEFAULT_CA = os.path.join(CONF, "tls", "dev.crt")
    return harness.DEFAULT_CA


# ---- the example policy on loopback -------------------------------------------------------------


def example_policy(folder, upstream_address, access_log=None, **overrides):
    """conf/portcullis.yaml as shipped, moved onto loopback: the TLS, redirect and admin listeners
    on 127.0.0.1 with free ports, upstream `core` at upstream_address, the access log to a file in
    folder (or `access_log`). Its certificate, key, JWKS and schema paths keep working through
    links in folder. Keyword arguments are deep-merged over the top-level sections, and a route
    `download` (/size/... on the demo upstream) is added for slow-read tests."""
    import yaml
    with open(os.path.join(CONF, "portcullis.yaml")) as f:
        policy = yaml.safe_load(f)
    for name in ("tls", "keys", "schemas"):
        link = os.path.join(folder, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(CONF, name), link)
    os.makedirs(os.path.join(folder, "state"), exist_ok=True)  # state.memory.path's folder
    for listener in policy["server"]["listen"]:
        listener["address"] = "127.0.0.1:0"
    policy["server"]["admin"]["address"] = "127.0.0.1:0"
    policy["upstreams"]["core"]["endpoints"] = [upstream_address]
    policy["logging"]["access_log"] = access_log or os.path.join(folder, "access.log")
    policy["routes"].append({"name": "download", "match": {"path_prefix": "/size"},
                             "upstream": "core"})
    return harness.deep_merge(policy, overrides) if overrides else policy


def limits_of(policy):
    return policy["server"]["limits"]


def start_upstream(port=0, threads=2):
    """demo-upstream on 127.0.0.1 (recording nothing, so its memory stays flat)."""
    return harness.Upstream(name="core", threads=threads, port=port,
                            extra_args=["--max-records", "0"])


def start_gateway(policy, folder, nofile=None):
    """The gateway on `policy`, its files in folder; with nofile, under `ulimit -n nofile`."""
    binary = None
    if nofile:
        binary = os.path.join(folder, "portcullis-limited")
        with open(binary, "w") as f:
            f.write(f"#!/bin/sh\nulimit -n {int(nofile)}\nexec {harness.portcullis_bin()} \"$@\"\n")
        os.chmod(binary, 0o755)
    return harness.Gateway(policy, binary=binary, workdir=folder)


def admin_metric(gateway, name):
    """The sum of a metric's samples on the admin listener, or None when unreachable."""
    try:
        response = harness.plain_request(gateway.admin_port, "GET", "/metrics", read_timeout=2)
    except (OSError, ValueError, TimeoutError):
        return None
    total = None
    for line in response.text.splitlines():
        if line.startswith(name) and (len(line) == len(name) or line[len(name)] in " {"):
            total = (total or 0.0) + float(line.rsplit(" ", 1)[1])
    return total


def read_access_log(path):
    entries = []
    with open(path, errors="replace") as f:
        for line in f:
            try:
                entries.append(json.loads(line))
            except ValueError:
                pass
    return entries


def log_time(entry):
    """An access-log entry's time (when the request ended) as Unix seconds."""
    stamp = entry["time"]  # 2026-12-03T09:45:12.345Z
    seconds = calendar.timegm(time.strptime(stamp[:19], "%Y-%m-%dT%H:%M:%S"))
    return seconds + float(stamp[19:-1] or 0)


# ---- /proc --------------------------------------------------------------------------------------

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def proc_stats(pid):
    """RSS (KiB), open descriptors, CPU seconds (user + system) and seconds spent runnable but
    waiting for a CPU (run-queue wait, summed over its threads) of one process."""
    stats = {"rss_kib": 0, "fds": 0, "cpu_seconds": 0.0, "wait_seconds": 0.0}
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                stats["rss_kib"] = int(line.split()[1])
        stats["fds"] = len(os.listdir(f"/proc/{pid}/fd"))
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        stats["cpu_seconds"] = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                stats["wait_seconds"] += int(f.read().split()[1]) / 1e9
    except (OSError, IndexError, ValueError):
        pass
    return stats


class Sampler:
    """Samples a process's RSS, descriptors and CPU (and a gateway's open connections) every
    `interval` seconds in a thread, until stop()."""

    def __init__(self, pid, interval=0.5, gateway=None):
        self.pid, self.interval, self.gateway = pid, interval, gateway
        self.samples = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self):
        while not self._stop.is_set():
            sample = proc_stats(self.pid)
            sample["time"] = time.time()
            if self.gateway is not None:
                sample["connections"] = admin_metric(self.gateway, "portcullis_active_connections")
            self.samples.append(sample)
            self._stop.wait(self.interval)

    def stop(self):
        self._stop.set()
        self._thread.join()
        return self.samples

    def peak(self, key):
        values = [s[key] for s in self.samples if s.get(key) is not None]
        return max(values) if values else None

    def cpu_percent(self, key="cpu_seconds"):
        """CPU time (or with key="wait_seconds", run-queue wait) in % of the sampled wall time."""
        if len(self.samples) < 2:
            return float("nan")
        first, last = self.samples[0], self.samples[-1]
        return 100.0 * (last[key] - first[key]) / (last["time"] - first["time"])


TCP_COUNTERS = ("ListenOverflows", "ListenDrops", "TCPReqQFullDrop", "SyncookiesSent",
                "TCPSynRetrans", "RetransSegs")


def tcp_counters():
    """The machine's TCP counters that show dropped connection attempts and retransmissions
    (/proc/net/netstat and /proc/net/snmp; they count every process on the machine)."""
    found = {}
    for path in ("/proc/net/netstat", "/proc/net/snmp"):
        lines = open(path).read().splitlines()
        for names, values in zip(lines[::2], lines[1::2]):
            for name, value in zip(names.split()[1:], values.split()[1:]):
                if name in TCP_COUNTERS:
                    found[name] = int(value)
    return found


def counters_since(before):
    after = tcp_counters()
    return {name: after[name] - before.get(name, 0) for name in after if after[name] != before.get(name, 0)}


# ---- a client at a steady rate ------------------------------------------------------------------


def percentile(values, p):
    """Nearest-rank percentile of values (p in 0..100); nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


class SteadyClient:
    """Sends GET `path` at `rate` requests per second for `duration` seconds, each on a new TLS
    connection from 127.0.0.1 that verifies the development certificate (open loop: a slow
    answer does not delay the next request). A request's latency runs from the moment it was due
    to its complete response, so time spent waiting to start counts too. Anything but a 200
    within `timeout` seconds is a failure."""

    def __init__(self, port, rate=50, duration=30, path="/api/hello", timeout=5.0):
        self.port, self.rate, self.duration, self.path, self.timeout = (port, rate, duration,
                                                                        path, timeout)
        self.results = []  # (due, latency seconds, status or error text, stage times)

    def _one(self, due):
        # Stage times: start delay, TCP connect, TLS handshake, request to complete response.
        marks = [time.monotonic()]
        outcome = None
        sock = None
        try:
            raw = socket.create_connection(("127.0.0.1", self.port), timeout=self.timeout)
            marks.append(time.monotonic())
            context = harness.client_context()
            raw.settimeout(max(0.1, due + self.timeout - time.monotonic()))
            sock = context.wrap_socket(raw, server_hostname="localhost")
            marks.append(time.monotonic())
            harness.send(sock, harness.build_request("GET", self.path,
                                                     headers=[("Connection", "close")]))
            response = harness.read_response(sock, timeout=max(0.1, due + self.timeout
                                                               - time.monotonic()))
            marks.append(time.monotonic())
            outcome = response.status
        except Exception as error:  # noqa: BLE001 - every failure is a result
            outcome = type(error).__name__
        finally:
            if sock is not None:
                sock.close()
        end = time.monotonic()
        stages = [marks[0] - due] + [b - a for a, b in zip(marks, marks[1:])]
        self.results.append((due, end - due, outcome, stages))

    def run(self):
        count = int(self.rate * self.duration)
        workers = max(8, min(256, int(self.rate * self.timeout)))
        start = time.monotonic() + 0.1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            for i in range(count):
                due = start + i / self.rate
                delay = due - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._one, due)
        return self.summary()

    def summary(self):
        ok = [lat for _, lat, outcome, _ in self.results if outcome == 200]
        failures = {}
        for _, _, outcome, _ in self.results:
            if outcome != 200:
                failures[str(outcome)] = failures.get(str(outcome), 0) + 1
        latencies = [lat for _, lat, _, _ in self.results]
        slowest = sorted(self.results, key=lambda r: -r[1])[:5]
        return {
            "sent": len(self.results),
            "ok": len(ok),
            "success": 100.0 * len(ok) / len(self.results) if self.results else float("nan"),
            "failures": failures,
            "p50_ms": 1000 * percentile(ok, 50),
            "p99_ms": 1000 * percentile(ok, 99),
            "max_ms": 1000 * max(latencies) if latencies else float("nan"),
            "over_1s": sum(1 for lat in latencies if lat > 1.0),
            # The slowest requests: total and stage times (start delay, connect, TLS handshake,
            # response; the stages a failure did not reach are left out), in ms.
            "slowest_ms": [[round(1000 * lat), [round(1000 * x, 1) for x in stages], str(out)]
                           for _, lat, out, stages in slowest],
        }


# ---- load tools -----------------------------------------------------------------------------------


def build_source_shim(folder):
    """Compiles benchmarks/source_address.c; LD_PRELOAD it with PORTCULLIS_SOURCE_ADDR=127.0.0.N
    to make a tool connect from that address."""
    out = os.path.join(folder, "source_address.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", out,
                    os.path.join(ROOT, "benchmarks", "source_address.c"), "-ldl"], check=True)
    return out


def from_address(shim, address):
    """An environment that makes a child process connect from `address`."""
    env = dict(os.environ)
    env["LD_PRELOAD"] = shim
    env["PORTCULLIS_SOURCE_ADDR"] = address
    return env


def run_wrk(url, duration, connections=20, timeout=10, extra=()):
    """wrk -t1 with --latency; returns its parsed output (requests, rps, p99, errors)."""
    out = subprocess.run(["wrk", "-t1", f"-c{connections}", f"-d{duration}s",
                          f"--timeout={timeout}s", "--latency", *extra, url],
                         capture_output=True, text=True, timeout=duration + 60).stdout
    return parse_wrk(out)


def parse_wrk(out):
    result = {"text": out}
    match = re.search(r"(\d+) requests in", out)
    result["requests"] = int(match.group(1)) if match else 0
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    result["rps"] = float(match.group(1)) if match else 0.0
    match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    result["non2xx"] = int(match.group(1)) if match else 0
    match = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    # wrk prints the line only when there was an error.
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                       map(int, match.groups()) if match else (0, 0, 0, 0)))
    result["p99_ms"] = parse_latency(out, "99%")
    return result


def _process_cpu():
    """{pid: (command, CPU seconds)} of every process."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            text = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        command = text[text.index("(") + 1:text.rindex(")")]
        fields = text.rsplit(")", 1)[1].split()
        found[pid] = (command, (int(fields[11]) + int(fields[12])) / CLOCK_TICKS)
    return found


def machine_note(seconds=2.0):
    """What else runs: how busy the CPUs were over `seconds`, and the busiest processes then."""
    cpus_before, procs_before = bench_run.cpu_times(), _process_cpu()
    time.sleep(seconds)
    cpus_after, procs_after = bench_run.cpu_times(), _process_cpu()
    busy = bench_run.busy_percent(cpus_before, cpus_after, list(cpus_after))
    usage = {}
    for pid, (command, cpu) in procs_after.items():
        earlier = procs_before[pid][1] if pid in procs_before else 0.0  # new: all of its time
        usage[command] = usage.get(command, 0.0) + (cpu - earlier) / seconds
    top = sorted(usage.items(), key=lambda item: -item[1])[:5]
    listed = ", ".join(f"{c} {100 * u:.0f}%" for c, u in top if u >= 0.05)
    load = " ".join(open("/proc/loadavg").read().split()[:3])
    return (f"CPUs {busy:.0f}% busy over {seconds:.0f} s (load average {load}); busiest: "
            f"{listed or 'none above 5% of a CPU'}")


def wait_until(predicate, timeout, interval=0.2):
    """Polls predicate until truthy or timeout; returns its last value."""
    deadline = time.monotonic() + timeout
    value = predicate()
    while not value and time.monotonic() < deadline:
        time.sleep(interval)
        value = predicate()
    return value
