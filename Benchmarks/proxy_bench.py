#!/usr/bin/env python3
"""Data-plane benchmark driver (started by Benchmarks/proxy.sh, which owns tools, builds and cleanup).

Two pods in network namespaces joined by a veth pair:

    client pod  eth0 192.0.2.2/24  <---->  server pod  eth0 192.0.2.1/24
    app: httpload (uid 1000)               app: httpload serve :8080 (uid 1000)

Cases, each on a fresh pair of namespaces, all with the same load:
  (a) direct   no capture rules: client app -> server app.
  (b) sluice   sluice-init (injector default) in both pods, `pilot-agent proxy sidecar` (as root; it
               switches to 1337 and starts sluice-proxy): client app -> client pod's outbound listener
               (15001) -> server pod's inbound listener (15006) -> server app. Two proxy hops.
  (c) socat    the same rules, socat as uid 1337 instead of agent + proxy: in the client pod
               `TCP-LISTEN:15001,fork,reuseaddr TCP:192.0.2.1:8080`, in the server pod
               `TCP-LISTEN:15006,fork,reuseaddr TCP:192.0.2.1:8080,bind=127.0.0.6` (socat cannot read
               SO_ORIGINAL_DST, so it is pointed at the one destination the benchmark uses).

Per case: small requests (1 KB responses) at each fixed rate over keep-alive connections, open loop,
latency counted from each request's due time; the most requests/s a closed loop gets; one bulk
stream (median of --bulk-reps). For (b) and (c): each relay's CPU time (utime+stime from
/proc/<pid>/stat, children included) across each load, and its peak memory.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True

from benchkit import BenchError, in_netns, load_average  # noqa: E402 (after the bytecode switch)

CLK_TCK = os.sysconf("SC_CLK_TCK")

# The same argv as CaptureConfig.injectorDefaultArguments (Sources/Capture/InjectorDefault.swift).
INJECTOR_FLAGS = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
                  "-b", "*", "-d", "15090,15021,15020"]
CLIENT_IP, SERVER_IP, PREFIX_LEN = "192.0.2.2", "192.0.2.1", 24
APP_PORT = 8080
APP_UID = 1000
PROXY_UID = 1337
CASES = {"a": "(a) direct", "b": "(b) sluice-proxy", "c": "(c) socat"}

# The targets.
TARGET_ADDED_P50_US = 50.0
TARGET_BULK_RATIO = 0.70
TARGET_VCPU_PER_1K_RPS = 0.1
TARGET_RSS_MB = 20.0


def log(text: str = ""):
    print(text, flush=True)


# ---------------------------------------------------------------------------------------------
# Namespaces and processes

def http_get(port: int, path: str, timeout: float = 1.0):
    """One GET to 127.0.0.1:port in the current netns: (status, body) or (None, error)."""
    import socket
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".encode())
            data = b""
            # Bounded: Connection: close ends the response; 64 MB is far more than any admin page.
            while len(data) < 64 << 20:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
    except OSError as error:
        return None, str(error)
    head, _, body = data.partition(b"\r\n\r\n")
    try:
        status = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        return None, "not an HTTP response"
    if b"transfer-encoding: chunked" in head.lower():
        body = dechunk(body)
    return status, body.decode(errors="replace")


def dechunk(body: bytes) -> bytes:
    out, rest = b"", body
    for _ in range(1_000_000):
        size_line, _, rest = rest.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            break
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out


def listening_ports() -> list[int]:
    """TCP ports in LISTEN state in the current netns (IPv4 and IPv6)."""
    ports = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    if fields[3] == "0A":
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except FileNotFoundError:
            pass
    return sorted(ports)


class Lab:
    """Namespaces and processes of one run; `close()` ends every process and deletes every namespace."""

    def __init__(self, prefix: str, ip: str, work: str):
        self.prefix, self.ip, self.work = prefix, ip, work
        self.namespaces: list[str] = []
        self.processes: list[subprocess.Popen] = []

    def sh(self, *argv, timeout=30):
        result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
        if result.returncode != 0:
            raise BenchError(f"{' '.join(argv)}: {result.stderr.strip()[:400]}")
        return result.stdout

    def netns(self, name: str) -> str:
        full = f"{self.prefix}-{name}"
        self.sh(self.ip, "netns", "add", full)
        self.namespaces.append(full)
        self.sh(self.ip, "-n", full, "link", "set", "lo", "up")
        return full

    def pods(self, tag: str) -> tuple[str, str]:
        client, server = self.netns(f"{tag}-client"), self.netns(f"{tag}-server")
        self.sh(self.ip, "-n", client, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0", "netns", server)
        for ns, address in ((client, CLIENT_IP), (server, SERVER_IP)):
            self.sh(self.ip, "-n", ns, "addr", "add", f"{address}/{PREFIX_LEN}", "dev", "eth0")
            self.sh(self.ip, "-n", ns, "link", "set", "eth0", "up")
        return client, server

    def spawn(self, ns: str, argv: list[str], log_name: str, env=None, stdout_pipe=False) -> subprocess.Popen:
        """A long-running process in `ns`. `ip netns exec` execs in place, so the pid is the program's."""
        log_file = open(os.path.join(self.work, log_name), "ab")
        process = subprocess.Popen([self.ip, "netns", "exec", ns, *argv], env=env,
                                   stdout=subprocess.PIPE if stdout_pipe else log_file, stderr=log_file,
                                   stdin=subprocess.DEVNULL)
        log_file.close()
        process.log_path = os.path.join(self.work, log_name)
        self.processes.append(process)
        return process

    def run(self, ns: str, argv: list[str], timeout: float) -> subprocess.CompletedProcess:
        try:
            return subprocess.run([self.ip, "netns", "exec", ns, *argv], capture_output=True, text=True,
                                  timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired:
            raise BenchError(f"{os.path.basename(argv[0])} {' '.join(argv[1:3])} took longer than {timeout:g} s")

    def stop(self, process: subprocess.Popen, grace: float = 15.0):
        """SIGTERM, then SIGKILL after `grace` seconds; also kills what it left in our namespaces."""
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        if process in self.processes:
            self.processes.remove(process)

    def delete_netns(self, ns: str):
        # Anything still running in the namespace was started by this run (an orphaned proxy, a socat
        # child): end it by pid before the namespace goes.
        pids = subprocess.run([self.ip, "netns", "pids", ns], capture_output=True, text=True).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        subprocess.run([self.ip, "netns", "del", ns], capture_output=True)
        if ns in self.namespaces:
            self.namespaces.remove(ns)

    def close(self):
        for process in list(self.processes):
            try:
                self.stop(process, grace=5)
            except Exception:
                process.kill()
        for ns in list(self.namespaces):
            self.delete_netns(ns)


def wait_for_line(process: subprocess.Popen, expected: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not ready:
            break
        line = process.stdout.readline().decode().strip()
        if line == expected:
            return
        if not line and process.poll() is not None:
            break
    raise BenchError(f"{process.args[4]} did not print {expected!r} within {timeout:g} s (log: {process.log_path})")


def wait_until(what: str, check, timeout: float, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(interval)
    raise BenchError(f"{what}: not within {timeout:g} s" + (f" (last: {last})" if last not in (None, False) else ""))


def tail(path: str, lines: int = 12) -> str:
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


# ---------------------------------------------------------------------------------------------
# /proc accounting

def proc_stat(pid: int):
    """(ppid, utime+stime, cutime+cstime) in seconds, or None if the process is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK, (int(fields[13]) + int(fields[14])) / CLK_TCK


def children_of(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] == pid:
                found.append(int(entry))
    return found


def status_kb(pid: int, field: str) -> int | None:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return None


def pss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        pass
    return 0


class Relay:
    """One hop's relay process: sluice-proxy (one process) or a forking socat (a parent and one child per
    connection). CPU = own utime+stime + reaped children's (cutime+cstime) + live children's."""

    def __init__(self, label: str, pid: int, forking: bool):
        self.label, self.pid, self.forking = label, pid, forking
        self.peak_kb = 0

    def cpu_seconds(self) -> float:
        own = proc_stat(self.pid)
        if own is None:
            raise BenchError(f"{self.label} relay (pid {self.pid}) is gone")
        total = own[1] + own[2]
        for child in children_of(self.pid):
            stat = proc_stat(child)
            if stat:
                total += stat[1] + stat[2]
        return total

    def live_children(self) -> int:
        return len(children_of(self.pid))

    def sample_memory(self):
        if self.forking:
            # Forked children share most pages with the parent: the sum of PSS counts each page once.
            kb = pss_kb(self.pid) + sum(pss_kb(child) for child in children_of(self.pid))
        else:
            kb = status_kb(self.pid, "VmHWM") or 0
        self.peak_kb = max(self.peak_kb, kb)


# ---------------------------------------------------------------------------------------------
# Load

def parse_fields(text: str) -> dict:
    fields = {}
    for item in text.split():
        key, _, value = item.partition("=")
        try:
            fields[key] = float(value)
        except ValueError:
            fields[key] = value
    return fields


def run_load(lab: Lab, ns: str, argv: list[str], timeout: float, relays: list[Relay]) -> dict:
    """Runs one httpload client in `ns` with the relays' CPU read just before and just after."""
    for relay in relays:
        if relay.forking:
            # socat's per-connection children from the previous load must be gone (reaped into the
            # parent's cutime) so none is counted twice or half.
            wait_until(f"{relay.label} socat children to exit", lambda: relay.live_children() == 0 or None, 10)
    before = {relay.label: relay.cpu_seconds() for relay in relays}
    started = time.monotonic()
    process = subprocess.Popen([lab.ip, "netns", "exec", ns, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, stdin=subprocess.DEVNULL)
    lab.processes.append(process)
    deadline = started + timeout
    while process.poll() is None and time.monotonic() < deadline:
        for relay in relays:
            relay.sample_memory()
        time.sleep(0.2)
    if process.poll() is None:
        lab.stop(process, grace=2)
        raise BenchError(f"httpload {argv[1]} took longer than {timeout:g} s")
    out, err = process.communicate()
    lab.processes.remove(process)
    wall = time.monotonic() - started
    for relay in relays:
        relay.sample_memory()
        if relay.forking:
            wait_until(f"{relay.label} socat children to exit", lambda: relay.live_children() == 0 or None, 10)
    after = {relay.label: relay.cpu_seconds() for relay in relays}
    result = parse_fields(out)
    if process.returncode != 0 or not out.strip():
        why = err.strip()[:400] or (f"no response completed ({result.get('errors', 0):.0f} errors, "
                                    f"{result.get('unfinished', 0):.0f} requests unanswered)")
        raise BenchError(f"httpload {' '.join(argv[1:4])} failed: {why}")
    result["wall"] = wall
    result["cpu"] = {}
    for relay in relays:
        spent = after[relay.label] - before[relay.label]
        handled = result.get("total_ok", 0) or 0
        result["cpu"][relay.label] = {
            "seconds": spent,
            "per_1k": spent / handled * 1000 if handled else None,
            "vcpu": spent / wall,
        }
    return result


# ---------------------------------------------------------------------------------------------
# Benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.ip = shutil.which("ip") or "/usr/sbin/ip"
        self.lab = Lab(args.prefix, self.ip, args.work)
        self.notes: list[str] = []
        self.results: dict[str, list[dict]] = {case: [] for case in args.cases}
        self.skipped: dict[str, str] = {}
        self.load_at_start = load_average()

    # -- helpers ---------------------------------------------------------------------------------

    def httpload(self, *argv) -> list[str]:
        return [self.args.httpload, *[str(a) for a in argv]]

    def start_server(self, ns: str, tag: str, delay_us: int = 0) -> subprocess.Popen:
        server = self.lab.spawn(ns, self.httpload("serve", APP_PORT, "--threads", self.args.server_threads,
                                                  "--uid", APP_UID, "--delay-us", delay_us),
                                f"{tag}-server.log", stdout_pipe=True)
        wait_for_line(server, "listening", 10)
        return server

    def stop_server(self, server: subprocess.Popen) -> dict:
        self.lab.stop(server, grace=5)
        out = server.stdout.read().decode()
        server.stdout.close()
        return parse_fields(out.strip().splitlines()[-1]) if out.strip() else {}

    def sluice_init(self, ns: str):
        result = self.lab.run(ns, [self.args.sluice_init, *INJECTOR_FLAGS], timeout=30)
        if result.returncode != 0:
            raise BenchError(f"sluice-init in {ns} failed: {(result.stderr or result.stdout).strip()[:400]}")

    def start_socat(self, ns: str, tag: str, listen_port: int, bind: str | None) -> Relay:
        target = f"TCP:{SERVER_IP}:{APP_PORT}" + (f",bind={bind}" if bind else "")
        process = self.lab.spawn(ns, ["setpriv", f"--reuid={PROXY_UID}", f"--regid={PROXY_UID}", "--clear-groups",
                                      self.args.socat, f"TCP-LISTEN:{listen_port},fork,reuseaddr", target],
                                 f"{tag}-socat-{listen_port}.log")

        def listening():
            if process.poll() is not None:
                raise BenchError(f"socat in {ns} exited with {process.returncode}: {tail(process.log_path, 3)}")
            return listen_port in in_netns(ns, listening_ports)

        wait_until(f"socat listening on {listen_port} in {ns}", listening, 10)
        return Relay("outbound" if listen_port == 15001 else "inbound", process.pid, forking=True)

    def start_agent(self, ns: str, tag: str, pod_ip: str, pod_name: str) -> tuple[subprocess.Popen, Relay]:
        root = tempfile.mkdtemp(prefix=f"{tag}-{pod_name}-root-", dir=self.args.work)
        os.chmod(root, 0o755)
        proxy_config = {"binaryPath": self.args.proxy, "terminationDrainDuration": "0.1s"}
        if self.args.proxy_concurrency:
            proxy_config["concurrency"] = self.args.proxy_concurrency
        env = {
            "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
            "POD_NAME": pod_name, "POD_NAMESPACE": "default", "CA_PROVIDER": "local", "INSTANCE_IP": pod_ip,
            "PROXY_CONFIG": json.dumps(proxy_config),
        }
        agent = self.lab.spawn(ns, [self.args.agent, "proxy", "sidecar", "--root", root], f"{tag}-{pod_name}-agent.log", env=env)

        port = self.args.ready_port

        def ready():
            if agent.poll() is not None:
                raise BenchError(f"pilot-agent in the {pod_name} pod exited with {agent.returncode}\n"
                                 f"its log ({agent.log_path}) ends:\n{tail(agent.log_path)}")
            status, _ = in_netns(ns, lambda: http_get(port, "/healthz/ready", timeout=0.5))
            return status == 200 or (f"/healthz/ready on {port}: {status}" if status else None)

        try:
            wait_until(f"{pod_name} pod: readiness on {port} (/healthz/ready)", ready, self.args.ready_timeout, interval=0.1)
        except BenchError as error:
            if agent.poll() is not None:
                raise
            raise BenchError(f"{error}\nthe agent's log ({agent.log_path}) ends:\n{tail(agent.log_path)}")
        proxy_name = os.path.basename(self.args.proxy)

        def proxy_pid():
            # The data plane is the agent's child (comm is cut to 15 characters).
            for child in children_of(agent.pid):
                try:
                    if os.path.basename(os.readlink(f"/proc/{child}/exe")) == proxy_name:
                        return child
                except OSError:
                    pass
            return None

        pid = None
        for _ in range(50):
            pid = proxy_pid()
            if pid:
                break
            time.sleep(0.1)
        if not pid:
            raise BenchError(f"{pod_name}: no {proxy_name} process under pilot-agent (pid {agent.pid})")
        return agent, Relay("outbound" if pod_name.startswith("client") else "inbound", pid, forking=False)

    def proxy_stats(self, ns: str) -> dict[str, int]:
        """The proxy's non-zero connection counters of the capture listeners and of every cluster."""
        status, body = in_netns(ns, lambda: http_get(15000, "/stats", timeout=2))
        if status != 200:
            return {}
        stats = {}
        for line in body.splitlines():
            name, _, value = line.partition(": ")
            wanted = (name.startswith(("listener.0.0.0.0_15001.", "listener.0.0.0.0_15006.")) and name.endswith(".downstream_cx_total")
                      and ".worker_" not in name) or (name.startswith("cluster.") and name.endswith(".upstream_cx_total"))
            if wanted and value.strip().isdigit() and int(value) > 0:
                stats[name] = int(value)
        return stats

    # -- one case --------------------------------------------------------------------------------

    def run_case(self, case: str, round_index: int) -> dict:
        args = self.args
        tag = f"r{round_index}{case}"
        label = CASES[case]
        log(f"\n== {label}, round {round_index + 1}")
        client, server_ns = self.lab.pods(tag)
        result: dict = {"case": case}
        relays: list[Relay] = []
        agents: list[subprocess.Popen] = []
        server = None
        try:
            server = self.start_server(server_ns, tag)
            if case in ("b", "c"):
                self.sluice_init(client)
                self.sluice_init(server_ns)
            if case == "c":
                relays.append(self.start_socat(client, tag, 15001, None))
                relays.append(self.start_socat(server_ns, tag, 15006, "127.0.0.6"))
            if case == "b":
                t0 = time.monotonic()
                for ns, ip, name in ((client, CLIENT_IP, "client"), (server_ns, SERVER_IP, "server")):
                    agent, relay = self.start_agent(ns, tag, ip, name)
                    agents.append(agent)
                    relays.append(relay)
                log(f"    both pods ready on {args.ready_port} after {time.monotonic() - t0:.2f} s "
                    f"(sluice-proxy pids: outbound {relays[0].pid}, inbound {relays[1].pid})")
            common = ["--conns", args.conns, "--seconds", args.seconds, "--warmup", args.warmup, "--uid", APP_UID]
            budget = args.seconds + args.warmup + 30
            result["rate"] = {}
            for rate in args.rates:
                measured = run_load(self.lab, client, self.httpload("rate", SERVER_IP, APP_PORT, "--rate", rate, *common),
                                    budget, relays)
                result["rate"][str(rate)] = measured
                log(f"    {rate:>6} rps x {args.conns} conns: achieved {measured['rps']:.0f} rps, "
                    f"p50 {measured['p50_us']:.1f} p90 {measured['p90_us']:.1f} p99 {measured['p99_us']:.1f} "
                    f"p99.9 {measured['p999_us']:.1f} max {measured['max_us']:.1f} us "
                    f"(generator lag p50 {measured['lag_p50_us']:.1f} p99 {measured['lag_p99_us']:.1f} us; "
                    f"unfinished {measured['unfinished']:.0f}, errors {measured['errors']:.0f})" + cpu_text(measured))
                self.check_load(label, f"{rate} rps", measured)
            measured = run_load(self.lab, client, self.httpload("max", SERVER_IP, APP_PORT, "--conns", args.max_conns,
                                                               "--seconds", args.max_seconds, "--warmup", args.warmup,
                                                               "--uid", APP_UID),
                                args.max_seconds + args.warmup + 30, relays)
            result["max"] = measured
            log(f"    max    x {args.max_conns} conns: {measured['rps']:.0f} rps, p50 {measured['p50_us']:.1f} "
                f"p99 {measured['p99_us']:.1f} us (errors {measured['errors']:.0f})" + cpu_text(measured))
            self.check_load(label, "max", measured)
            bulk = []
            for _ in range(args.bulk_reps):
                try:
                    bulk.append(run_load(self.lab, client, self.httpload("bulk", SERVER_IP, APP_PORT, "--bytes", args.bulk_bytes,
                                                                         "--timeout", args.bulk_timeout, "--uid", APP_UID),
                                         args.bulk_timeout + 30, relays))
                except BenchError as error:
                    # A stream slower than bytes / --bulk-timeout misses the target anyway; keep the other figures.
                    if case == "a":
                        raise
                    self.notes.append(f"{label}: bulk stream failed: {error}")
                    log(f"    bulk {args.bulk_bytes / 1e9:g} GB: FAILED: {error}")
                    break
            if bulk:
                result["bulk_gbps"] = statistics.median(b["gbps"] for b in bulk)
                log(f"    bulk {args.bulk_bytes / 1e9:g} GB x {len(bulk)}: "
                    + ", ".join(f"{b['gbps']:.2f}" for b in bulk) + f" Gbit/s (median {result['bulk_gbps']:.2f})")
            result["rss_mb"] = {relay.label: relay.peak_kb / 1024 for relay in relays}
            if relays:
                kind = "PSS summed over socat and its children" if case == "c" else "VmHWM"
                log("    peak memory (" + kind + "): " + ", ".join(f"{k} {v:.1f} MB" for k, v in result["rss_mb"].items()))
            if case == "b":
                for ns, name in ((client, "client"), (server_ns, "server")):
                    stats = self.proxy_stats(ns)
                    result.setdefault("stats", {})[name] = stats
                    log(f"    {name} proxy /stats: " + (", ".join(f"{k}={v}" for k, v in stats.items()) or "(no non-zero connection counters)"))
                    listener = "listener.0.0.0.0_15001" if name == "client" else "listener.0.0.0.0_15006"
                    if not stats.get(listener + ".downstream_cx_total"):
                        self.notes.append(f"{label}: the {name} pod's proxy /stats shows no {listener}.downstream_cx_total")
            for agent in agents:
                self.lab.stop(agent, grace=15)
            agents = []
            summary = self.stop_server(server)
            server = None
            result["server"] = summary
            log(f"    server app: {summary.get('accepted', 0):.0f} connections accepted, "
                f"{summary.get('from_127_0_0_6', 0):.0f} of them from 127.0.0.6, {summary.get('requests', 0):.0f} requests")
            # Every connection must have crossed the inbound hop in (b)/(c) and none in (a): otherwise the
            # case did not measure what its name says.
            accepted, via_inbound = summary.get("accepted", 0), summary.get("from_127_0_0_6", 0)
            if case == "a" and via_inbound:
                raise BenchError("direct case: connections arrived from 127.0.0.6 (rules left over?)")
            if case in ("b", "c") and (accepted == 0 or via_inbound != accepted):
                raise BenchError(f"{label}: only {via_inbound:.0f} of {accepted:.0f} connections came through the "
                                 "inbound hop (127.0.0.6): the capture path was not taken")
            return result
        finally:
            for agent in agents:
                self.lab.stop(agent, grace=15)
            if server is not None:
                self.lab.stop(server, grace=5)
            self.lab.delete_netns(client)
            self.lab.delete_netns(server_ns)

    def check_load(self, label: str, what: str, measured: dict):
        if measured["errors"] or measured["unfinished"]:
            self.notes.append(f"{label} @ {what}: {measured['errors']:.0f} errors, {measured['unfinished']:.0f} "
                              "requests due in the window never completed")
        if what.endswith("rps"):
            target = float(what.split()[0])
            if measured["rps"] < 0.98 * target:
                self.notes.append(f"{label} @ {what}: achieved only {measured['rps']:.0f} rps: the fixed rate was "
                                  "not sustained, so its latency is queueing, not the path")

    # -- self-test of the load generator ---------------------------------------------------------

    def selftest(self) -> bool:
        """Checks httpload's latency arithmetic against a server with a known delay, in a scratch netns."""
        log("== load generator self-test (server with a fixed response delay, loopback)")
        ns = self.lab.netns("selftest")
        ok = True
        checks = []
        try:
            slow = self.start_server(ns, "selftest", delay_us=2000)
            r = run_load(self.lab, ns, self.httpload("rate", "127.0.0.1", APP_PORT, "--rate", 200, "--conns", 4,
                                                     "--seconds", 2, "--warmup", 0.2), 30, [])
            checks.append(("2 ms delay, 200 rps, 4 conns: p50 within [2000, 2600] us",
                           2000 <= r["p50_us"] <= 2600, f"p50 {r['p50_us']:.0f} us"))
            checks.append(("... every latency >= the delay", r["completed"] > 0 and r["p50_us"] >= 2000 and
                           r["max_us"] >= r["p99_us"] >= r["p90_us"] >= r["p50_us"] >= 2000,
                           f"p50/p90/p99/max {r['p50_us']:.0f}/{r['p90_us']:.0f}/{r['p99_us']:.0f}/{r['max_us']:.0f}"))
            checks.append(("... 400 requests due in 2 s, all completed, ~200 rps", r["completed"] == 400 and
                           abs(r["rps"] - 200) <= 4, f"completed {r['completed']:.0f}, {r['rps']:.1f} rps"))
            self.stop_server(slow)
            # One connection, 100 rps due, 20 ms per response: request i (0-99) is due at 10i ms and done at
            # about 20(i+1) ms, so its latency is 10i + 20 ms: p50 (i = 49) ~510 ms, max (i = 99) ~1010 ms.
            # A generator that timed from the actual send (coordinated omission) would say ~20 ms.
            slower = self.start_server(ns, "selftest", delay_us=20000)
            r = run_load(self.lab, ns, self.httpload("rate", "127.0.0.1", APP_PORT, "--rate", 100, "--conns", 1,
                                                     "--seconds", 1, "--warmup", 0, "--drain", 5), 30, [])
            checks.append(("20 ms delay, 100 rps due on 1 conn: p50 ~510 ms (not 20 ms)", 505e3 <= r["p50_us"] <= 560e3,
                           f"p50 {r['p50_us'] / 1000:.1f} ms"))
            checks.append(("... max ~1010 ms", 1005e3 <= r["max_us"] <= 1100e3, f"max {r['max_us'] / 1000:.1f} ms"))
            checks.append(("... ~50 responses inside the 1 s window, all 100 completed after it",
                           45 <= r["rps"] <= 51 and r["completed"] == 100, f"{r['rps']:.0f} rps, completed {r['completed']:.0f}"))
            r = run_load(self.lab, ns, self.httpload("max", "127.0.0.1", APP_PORT, "--conns", 2, "--seconds", 1,
                                                     "--warmup", 0), 30, [])
            checks.append(("closed loop, 2 conns, 20 ms delay: ~100 rps, p50 within [20, 22] ms",
                           90 <= r["rps"] <= 100 and 20e3 <= r["p50_us"] <= 22e3, f"{r['rps']:.0f} rps, p50 {r['p50_us'] / 1000:.2f} ms"))
            self.stop_server(slower)
            big = self.start_server(ns, "selftest")
            r = run_load(self.lab, ns, self.httpload("bulk", "127.0.0.1", APP_PORT, "--bytes", 100_000_000), 60, [])
            checks.append(("bulk: 100 MB counted", r["bytes"] == 100_000_000, f"{r['gbps']:.1f} Gbit/s"))
            self.stop_server(big)
        finally:
            self.lab.delete_netns(ns)
        for name, passed, detail in checks:
            log(f"    {'pass' if passed else 'FAIL'}  {name}: {detail}")
            ok = ok and passed
        return ok

    # -- run -------------------------------------------------------------------------------------

    def run(self):
        args = self.args
        log(machine_line(args))
        log(f"load average at start: {self.load_at_start}")
        log(f"load: fixed rates {', '.join(map(str, args.rates))} rps x {args.conns} keep-alive conns, "
            f"{args.warmup:g} s warm-up + {args.seconds:g} s measured; closed loop x {args.max_conns} conns for "
            f"{args.max_seconds:g} s; bulk {args.bulk_bytes / 1e9:g} GB x {args.bulk_reps}; "
            f"server threads {args.server_threads}; {args.rounds} round(s)")
        if not args.skip_selftest and not self.selftest():
            raise BenchError("the load generator's self-test failed: its figures cannot be trusted")
        if args.selftest:
            return
        if args.keep_cpus_busy:
            # In a namespace of the run, so proxy.sh's trap finds them even if this driver is killed; bounded
            # by time as well (the run's own last-resort limit).
            spin_ns = self.lab.netns("spin")
            for index in range(os.cpu_count() or 1):
                self.lab.spawn(spin_ns, [args.httpload, "spin", "3600"], f"spin-{index}.log")
            log(f"\nDIAGNOSTIC: {os.cpu_count()} SCHED_IDLE spinners keep every CPU out of idle (--keep-cpus-busy)")
        if "b" in args.cases and args.skip_b:
            self.skipped["b"] = args.skip_b
            log(f"\nSKIP (b): {args.skip_b}")
        cases = [c for c in args.cases if c not in self.skipped]
        for round_index in range(args.rounds):
            # Rotating the order spreads drift (other load, page cache) over all cases.
            order = cases[round_index % len(cases):] + cases[:round_index % len(cases)]
            for case in order:
                try:
                    self.results[case].append(self.run_case(case, round_index))
                except BenchError as error:
                    if case == "a":
                        raise
                    log("    FAILED: " + str(error).replace("\n", "\n        "))
                    self.skipped[case] = f"failed: {str(error).splitlines()[0]}"
                    cases.remove(case)
        self.summary()

    # -- summary ---------------------------------------------------------------------------------

    def median(self, case: str, get):
        values = []
        for run in self.results.get(case, []):
            try:
                value = get(run)
            except (KeyError, TypeError):
                continue
            if value is not None:
                values.append(value)
        return statistics.median(values) if values else None

    def summary(self):
        """One table: a row per measure, a column per case, the issue's target and a pass/FAIL mark."""
        args = self.args
        rates = [str(r) for r in args.rates]
        cases = args.cases
        marks: dict[str, list[bool]] = {}

        def value(case, get):
            return self.median(case, get)

        def judged(case, text, passed):
            marks.setdefault(case, []).append(passed)
            return f"{text} {'pass' if passed else 'FAIL'}"

        def row(label, cell, target=""):
            cells = []
            for case in cases:
                if not self.results[case]:
                    cells.append("skipped" if case in self.skipped else "-")
                else:
                    cells.append(cell(case) or "-")
            return [label, *cells, target]

        def latency(r):
            def cell(case):
                p50 = value(case, lambda run: run["rate"][r]["p50_us"])
                p99 = value(case, lambda run: run["rate"][r]["p99_us"])
                return f"{p50:.0f} / {p99:.0f}" if p50 is not None else None
            return cell

        def added(r):
            direct = value("a", lambda run: run["rate"][r]["p50_us"])

            def cell(case):
                p50 = value(case, lambda run: run["rate"][r]["p50_us"])
                if case == "a" or p50 is None or direct is None:
                    return None
                per_hop = (p50 - direct) / 2
                return judged(case, f"{per_hop:.1f}", per_hop <= TARGET_ADDED_P50_US)
            return cell

        def bulk(case):
            gbps = value(case, lambda run: run["bulk_gbps"])
            direct = value("a", lambda run: run["bulk_gbps"])
            if gbps is None:
                return None
            if case == "a" or not direct:
                return f"{gbps:.2f}"
            ratio = gbps / direct
            return judged(case, f"{gbps:.2f} ({ratio * 100:.0f}%)", ratio >= TARGET_BULK_RATIO)

        def pair(case, get, limit, digits):
            if case == "a":
                return None
            out = value(case, lambda run: get(run, "outbound"))
            inn = value(case, lambda run: get(run, "inbound"))
            if out is None or inn is None:
                return None
            return judged(case, f"{out:.{digits}f} | {inn:.{digits}f}", max(out, inn) <= limit)

        def cpu(r):
            return lambda case: pair(case, lambda run, hop: run["rate"][r]["cpu"][hop]["per_1k"], TARGET_VCPU_PER_1K_RPS, 3)

        table = [["", *[CASES[c] for c in cases], "target"]]
        table.append(row(f"max rps ({args.max_conns} conns, closed loop)",
                         lambda case: f"{value(case, lambda run: run['max']['rps']):.0f}"
                         if value(case, lambda run: run["max"]["rps"]) is not None else None))
        for r in rates:
            table.append(row(f"p50 / p99 us @ {r} rps", latency(r)))
        for r in rates:
            table.append(row(f"added p50 per hop us @ {r} rps", added(r), f"<= {TARGET_ADDED_P50_US:.0f}"))
        table.append(row(f"bulk Gbit/s (% of direct)", bulk, f">= {TARGET_BULK_RATIO * 100:.0f}%"))
        for r in rates:
            table.append(row(f"proxy vCPU per 1k rps @ {r}, out | in", cpu(r), f"<= {TARGET_VCPU_PER_1K_RPS:g}"))
        table.append(row("proxy peak RSS MB, out | in",
                         lambda case: pair(case, lambda run, hop: run["rss_mb"][hop], TARGET_RSS_MB, 1),
                         f"<= {TARGET_RSS_MB:.0f}"))

        log("\n" + "=" * 100)
        log(machine_line(args))
        log(f"load average at start: {self.load_at_start}, at end: {load_average()}")
        widths = [max(len(line[i]) for line in table) for i in range(len(table[0]))]
        for line in table:
            log("  ".join(cell.ljust(widths[i]) for i, cell in enumerate(line)).rstrip())
        log("")
        log("added p50 per hop = (p50 of the case - p50 of (a) at the same rate) / 2. vCPU per 1k rps = the relay's "
            "CPU-seconds per 1,000 requests handled (warm-up included), outbound hop | inbound hop. Peak RSS: "
            "sluice-proxy's VmHWM; for socat the most PSS its listener and per-connection children held together "
            "(sampled every 0.2 s).")
        if args.keep_cpus_busy:
            log("DIAGNOSTIC run (--keep-cpus-busy): SCHED_IDLE spinners kept every CPU out of idle, so these latency "
                "and CPU figures leave out what waking an idle vCPU costs; compare with a normal run, not with the targets.")
        rounds = len(self.results["a"])
        if rounds > 1:
            log(f"Every figure is the median over {rounds} rounds.")
        if self.load_at_start and float(self.load_at_start.split()[0]) > 0.5:
            self.notes.append(f"the 1-minute load average was {self.load_at_start.split()[0]} at the start: something "
                              "else was running, and on 2 cores that shows in every figure")
        for case, reason in self.skipped.items():
            log(f"note: {CASES[case]} {'skipped: ' if not reason.startswith('failed') else ''}{reason}")
        for note in self.notes:
            log(f"note: {note}")
        for case in cases:
            if marks.get(case):
                log(f"{CASES[case]}: {sum(marks[case])} of {len(marks[case])} target checks pass")


def cpu_text(measured: dict) -> str:
    if not measured.get("cpu"):
        return ""
    return "; CPU " + ", ".join(f"{label} {c['seconds']:.2f} s = {c['per_1k']:.3f} s/1k req, {c['vcpu']:.3f} vCPU"
                                for label, c in measured["cpu"].items() if c["per_1k"] is not None)


def machine_line(args) -> str:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    socat = "-"
    if args.socat:
        out = subprocess.run([args.socat, "-V"], capture_output=True, text=True).stdout
        socat = next((line.split()[2] for line in out.splitlines() if line.startswith("socat version")), "?")
    return (f"machine: {os.cpu_count()} CPUs ({cpu}), kernel {platform.release()}, socat {socat}, "
            f"sluice-proxy {args.proxy if not args.skip_b else '(not run)'}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", required=True, help="scratch directory (logs, agent roots)")
    parser.add_argument("--prefix", required=True, help="prefix of the netns names this run creates")
    parser.add_argument("--httpload", required=True, help="compiled Benchmarks/httpload.c")
    parser.add_argument("--sluice-init", default=".build/release/sluice-init", help="proxy.sh: $SLUICE_INIT")
    parser.add_argument("--agent", default=".build/release/pilot-agent", help="proxy.sh: $PILOT_AGENT")
    parser.add_argument("--proxy", default=".build/release/sluice-proxy",
                        help="the data plane pilot-agent starts in (b), as ProxyConfig binaryPath (proxy.sh: $SLUICE_PROXY)")
    parser.add_argument("--socat", default=shutil.which("socat"))
    parser.add_argument("--skip-b", default="", help="reason to skip case (b) (set by proxy.sh when a binary is missing)")
    parser.add_argument("--cases", default="abc", help="which cases to run, e.g. ac (default abc; (a) always runs)")
    parser.add_argument("--rates", default="1000,5000", help="fixed rates in requests/s, comma-separated (default 1000,5000)")
    parser.add_argument("--conns", type=int, default=16, help="keep-alive connections at the fixed rates (default 16)")
    parser.add_argument("--seconds", type=float, default=10, help="measured seconds per fixed rate (default 10)")
    parser.add_argument("--warmup", type=float, default=1, help="unrecorded warm-up seconds before each load (default 1)")
    parser.add_argument("--max-conns", type=int, default=16, help="connections of the closed-loop max-rps load (default 16)")
    parser.add_argument("--max-seconds", type=float, default=10, help="measured seconds of the max-rps load (default 10)")
    parser.add_argument("--bulk-bytes", type=float, default=2e9, help="bytes of one bulk stream (default 2e9)")
    parser.add_argument("--bulk-reps", type=int, default=3, help="bulk streams per case, median reported (default 3)")
    parser.add_argument("--bulk-timeout", type=float, default=120, help="seconds one bulk stream may take (default 120)")
    parser.add_argument("--server-threads", type=int, default=1, help="threads of the server app (default 1)")
    parser.add_argument("--proxy-concurrency", type=int, default=0,
                        help="ProxyConfig concurrency for (b) (default: unset, the agent's default)")
    parser.add_argument("--ready-timeout", type=float, default=30, help="seconds to wait for readiness (default 30)")
    parser.add_argument("--ready-port", type=int, default=15021,
                        help="(b): port of /healthz/ready in each pod: 15021 (default) is the proxy's route to the "
                             "agent, as a kubelet probes it; 15020 is the agent's own")
    parser.add_argument("--rounds", type=int, default=1, help="repeat every case, order rotated; medians (default 1)")
    parser.add_argument("--keep-cpus-busy", action="store_true",
                        help="diagnostic: one SCHED_IDLE busy loop per CPU for the whole run, so no CPU idles; shows "
                             "how much of the latency is the cost of waking idle (v)CPUs")
    parser.add_argument("--selftest", action="store_true", help="only run the load generator's self-test")
    parser.add_argument("--skip-selftest", action="store_true", help="skip the load generator's self-test")
    args = parser.parse_args()
    args.rates = [int(r) for r in args.rates.split(",") if r.strip()]
    args.cases = ["a"] + [c for c in "bc" if c in args.cases]
    args.bulk_bytes = int(args.bulk_bytes)
    limits = [(1 <= len(args.rates) <= 8 and all(1 <= r <= 1_000_000 for r in args.rates), "--rates: 1-8 rates of 1-1000000"),
              (1 <= args.conns <= 1000 and 1 <= args.max_conns <= 1000, "--conns/--max-conns: 1-1000"),
              (0 < args.seconds <= 600 and 0 < args.max_seconds <= 600 and 0 <= args.warmup <= 60, "--seconds/--max-seconds 0-600, --warmup 0-60"),
              (1 <= args.bulk_bytes <= 10**12 and 1 <= args.bulk_reps <= 20, "--bulk-bytes 1-1e12, --bulk-reps 1-20"),
              (1 <= args.rounds <= 20 and 1 <= args.server_threads <= 16, "--rounds 1-20, --server-threads 1-16")]
    for ok, message in limits:
        if not ok:
            parser.error(message)
    for name in ("sluice_init", "agent", "proxy"):
        setattr(args, name, os.path.abspath(getattr(args, name)))
    if "c" in args.cases and not args.socat:
        parser.error("socat is not installed")
    # proxy.sh's cleanup sends SIGTERM: end our processes and namespaces on the way out.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(143))
    bench = Bench(args)
    try:
        bench.run()
    except BenchError as error:
        sys.exit(f"proxy_bench: {error}")
    finally:
        bench.lab.close()


if __name__ == "__main__":
    main()
