#!/usr/bin/env python3
"""pilot-agent start-up and footprint, in one run on this machine.

A: time from exec of `pilot-agent proxy sidecar` to the first 200 from /healthz/ready on 15020,
   median (and p90) of N fresh starts, each in a network namespace of its own (so Istio's fixed
   ports are free) with a root directory of its own. The agent starts as root and switches to 1337,
   writes the bootstrap, starts the data plane and waits for its listeners, as in a pod.
B: the agent's resident memory (VmRSS of the agent process alone) after it sat idle, ready, for
   --idle-seconds (default 60), with readiness and metrics scraped once a second as a kubelet and
   Prometheus would not be doing more often.

Istio's pilot-agent is not runnable here (no Go toolchain or Istio image on this machine); the
ratios use the figure the issue gives for it (about 40-50 MB resident, taken as 45 MB) and the
issue's targets (ready <= 150 ms, RSS <= 20 MB).
"""
import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep Benchmarks/ free of __pycache__
from benchkit import BenchError, in_netns  # noqa: E402

ISTIO_AGENT_RSS_MB = 45.0
TARGET_READY_MS = 150.0
TARGET_RSS_MB = 20.0


def sh(*args, check=True):
    return subprocess.run(args, check=check, capture_output=True, text=True)


def get(path, port=15020, timeout=0.5):
    """One HTTP/1.1 GET on 127.0.0.1 inside the current netns; the status code, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            head = s.recv(64)
            return int(head.split(b" ")[1]) if head.startswith(b"HTTP/") else None
    except OSError:
        return None


def start_agent(agent, dataplane, root, extra_env=None):
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "POD_NAME": "bench-0", "POD_NAMESPACE": "default", "CA_PROVIDER": "local", "INSTANCE_IP": "127.0.0.1",
        "PROXY_CONFIG": json.dumps({"binaryPath": dataplane, "terminationDrainDuration": "0.1s"}),
    }
    env.update(extra_env or {})
    log = open(os.path.join(root, "agent.log"), "wb")
    return subprocess.Popen([agent, "proxy", "sidecar", "--root", root], env=env, stdout=log, stderr=log)


def in_child(netns, work, timeout=300.0):
    """Runs `work(root)` in a forked child inside `netns` with a fresh root directory, so the parent
    never changes namespace; returns what `work` returned (JSON-serialisable), or None on failure."""
    def with_root():
        root = tempfile.mkdtemp(prefix="sluice-agent-bench-")
        os.chmod(root, 0o755)
        try:
            return work(root)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    try:
        return in_netns(netns, with_root, timeout=timeout, label="agent_bench")
    except BenchError:
        return None


def one_start(agent, dataplane, netns, deadline_s=10.0):
    """Exec the agent, poll readiness every millisecond: the time to the first 200, in ms."""
    def work(root):
        t0 = time.monotonic()
        proc = start_agent(agent, dataplane, root)
        ready_ms = None
        while time.monotonic() - t0 < deadline_s:
            if get("/healthz/ready", timeout=0.2) == 200:
                ready_ms = (time.monotonic() - t0) * 1000
                break
            time.sleep(0.001)
        proc.terminate()
        proc.wait(timeout=10)
        return ready_ms
    return in_child(netns, work)


def idle_rss(agent, dataplane, netns, idle_seconds):
    """The agent's VmRSS once a second while it idles, ready, for `idle_seconds`."""
    def work(root):
        proc = start_agent(agent, dataplane, root)
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and get("/healthz/ready") != 200:
            time.sleep(0.01)
        samples = []
        end = time.monotonic() + idle_seconds
        while time.monotonic() < end:
            get("/healthz/ready")
            get("/stats/prometheus")
            with open(f"/proc/{proc.pid}/status") as status:
                samples.append(next(int(line.split()[1]) for line in status if line.startswith("VmRSS:")))
            time.sleep(1)
        proc.terminate()
        proc.wait(timeout=10)
        return {"first_kb": samples[0], "last_kb": samples[-1], "max_kb": max(samples)}
    return in_child(netns, work)


def make_netns(name, made):
    """A network namespace with lo up, recorded in `made` so the caller's cleanup deletes it."""
    sh("ip", "netns", "add", name)
    made.append(name)
    sh("ip", "-n", name, "link", "set", "lo", "up")
    return name


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--agent", default=".build/release/pilot-agent")
    parser.add_argument("--dataplane", default=".build/release/sluice-test-dataplane")
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--idle-seconds", type=int, default=60)
    args = parser.parse_args()
    agent, dataplane = os.path.abspath(args.agent), os.path.abspath(args.dataplane)
    for path in (agent, dataplane):
        if not os.access(path, os.X_OK):
            sys.exit(f"agent_bench: {path} is not built (see Benchmarks/README.md)")

    prefix = f"sluiceagentbench-{os.getpid()}"
    made = []
    try:
        times = []
        for run in range(args.runs):
            name = make_netns(f"{prefix}-{run}", made)
            ready = one_start(agent, dataplane, name)
            if ready is None:
                sys.exit(f"agent_bench: run {run}: never ready (see the agent's log)")
            times.append(ready)
            sh("ip", "netns", "del", name)
            made.remove(name)
        name = make_netns(f"{prefix}-idle", made)
        rss = idle_rss(agent, dataplane, name, args.idle_seconds)
        if rss is None:
            sys.exit("agent_bench: the idle run failed (see above)")
    finally:
        for name in made:
            sh("ip", "netns", "del", name, check=False)

    times.sort()
    median = statistics.median(times)
    p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
    rss_mb = rss["last_kb"] / 1024
    print(f"A  exec -> /healthz/ready 200, {len(times)} runs: median {median:.1f} ms, p90 {p90:.1f} ms, "
          f"min {times[0]:.1f} ms  (target <= {TARGET_READY_MS:.0f} ms: {'met' if median <= TARGET_READY_MS else 'NOT met'}; "
          f"median / target = {median / TARGET_READY_MS:.2f})")
    print(f"B  agent RSS after {args.idle_seconds} s idle: {rss_mb:.1f} MB (first {rss['first_kb'] / 1024:.1f}, "
          f"max {rss['max_kb'] / 1024:.1f})  (target <= {TARGET_RSS_MB:.0f} MB: {'met' if rss_mb <= TARGET_RSS_MB else 'NOT met'}; "
          f"Sluice / Istio pilot-agent ~{ISTIO_AGENT_RSS_MB:.0f} MB = {rss_mb / ISTIO_AGENT_RSS_MB:.2f})")


if __name__ == "__main__":
    main()
