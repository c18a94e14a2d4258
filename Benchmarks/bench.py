#!/usr/bin/env python3
"""Benchmark driver for sluice-init (started by Benchmarks/run.sh, which owns cleanup and tools).

A. Apply time, on a fresh network namespace per repetition: sluice-init vs `nft -f` of the same
   ruleset text (sluice-init --dry-run) vs Istio's iptables-restore command sequence.
B. At scale (10,000 -x CIDRs + 1,000 -o ports): apply time of sluice-init vs Istio-style one-rule-per-
   entry `nft -f`, and new TCP connections per second through each ruleset.

Every contender is timed the same way: this process setns()es itself into the fresh namespace, then
posix_spawn()s the command(s) and waits; the clock covers fork+exec+run+exit of every process the
contender needs, and nothing else (namespace creation and deletion are outside the clock).
"""
from __future__ import annotations

import argparse
import contextlib
import ctypes
import difflib
import json
import os
import pathlib
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep Benchmarks/ free of __pycache__
sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
import istio_rules  # noqa: E402
from benchkit import load_average  # noqa: E402

CLONE_NEWNET = 0x40000000
libc = ctypes.CDLL(None, use_errno=True)
# The same argv as CaptureConfig.injectorDefaultArguments (Sources/Capture/InjectorDefault.swift).
INJECTOR_FLAGS = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "",
                  "-b", "*", "-d", "15090,15021,15020"]
POD_V4, POD_V6 = "192.0.2.10/24", "2001:db8::10/64"
DNS_V4, DNS_V6 = "192.0.2.53", "2001:db8::53"
PEER_TARGET = ("198.51.100.1", 80)    # dialled by the client; the rules redirect it to the pod's 15001
CLIENT_UID = 1000
# Linux refuses a single argv string longer than 32 pages (MAX_ARG_STRLEN, 131072 bytes).
MAX_ARG_STRLEN = 131072


class BenchError(Exception):
    pass


class CommandTimeout(BenchError):
    pass


# ---------------------------------------------------------------------------------------------
# Namespaces

class Namespaces:
    """Named network namespaces under one prefix (run.sh deletes any left over on exit)."""

    def __init__(self, prefix: str, ip: str):
        self.prefix, self.ip, self.counter = prefix, ip, 0
        self.home = os.open("/proc/self/ns/net", os.O_RDONLY | os.O_CLOEXEC)

    def create(self, setup_lines: list[str] = ()) -> str:
        self.counter += 1
        name = f"{self.prefix}-{self.counter}"
        subprocess.run([self.ip, "netns", "add", name], check=True)
        batch = ["link set lo up", *setup_lines]
        subprocess.run([self.ip, "-n", name, "-batch", "-"], input="\n".join(batch) + "\n", text=True, check=True)
        return name

    def delete(self, name: str):
        subprocess.run([self.ip, "netns", "del", name], check=False)

    @contextlib.contextmanager
    def entered(self, name: str):
        fd = os.open(f"/run/netns/{name}", os.O_RDONLY | os.O_CLOEXEC)
        try:
            if libc.setns(fd, CLONE_NEWNET) != 0:
                raise BenchError(f"setns({name}): {os.strerror(ctypes.get_errno())}")
            try:
                yield
            finally:
                if libc.setns(self.home, CLONE_NEWNET) != 0:
                    raise BenchError(f"setns(home): {os.strerror(ctypes.get_errno())}")
        finally:
            os.close(fd)

    @contextlib.contextmanager
    def fresh(self, setup_lines: list[str]):
        name = self.create(setup_lines)
        try:
            with self.entered(name):
                yield name
        finally:
            self.delete(name)


def pod_setup(ipv6: bool) -> list[str]:
    """A pod with one non-loopback address (sluice-init, like istio-iptables, needs one to decide IPv6).
    A veth pair with both ends in the pod stands in for the pod's NIC: not every kernel has `dummy`."""
    lines = ["link add eth0 type veth peer name eth0-peer", f"addr add {POD_V4} dev eth0"]
    if ipv6:
        lines.append(f"addr add {POD_V6} dev eth0 nodad")
    lines += ["link set eth0-peer up", "link set eth0 up"]
    return lines


# ---------------------------------------------------------------------------------------------
# Timed execution

class Step:
    """One process of a contender: argv, optional stdin file. stdout goes to /dev/null for everyone."""

    def __init__(self, argv: list[str], stdin: str | None = None):
        self.argv, self.stdin = argv, stdin


def _on_alarm(signum, frame):
    raise CommandTimeout("command exceeded its time limit")


signal.signal(signal.SIGALRM, _on_alarm)


def run_steps(steps: list[Step], errlog: str, limit_s: float = 60.0) -> float:
    """Runs the steps in order in the current netns; returns elapsed seconds (all of them)."""
    env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "LC_ALL": "C"}
    pid = None
    signal.setitimer(signal.ITIMER_REAL, limit_s)
    try:
        start = time.perf_counter()
        for step in steps:
            actions = [(os.POSIX_SPAWN_OPEN, 1, "/dev/null", os.O_WRONLY, 0),
                       (os.POSIX_SPAWN_OPEN, 2, errlog, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)]
            if step.stdin:
                actions.append((os.POSIX_SPAWN_OPEN, 0, step.stdin, os.O_RDONLY, 0))
            pid = os.posix_spawn(step.argv[0], step.argv, env, file_actions=actions)
            _, status = os.waitpid(pid, 0)
            pid = None
            if status != 0:
                code = os.waitstatus_to_exitcode(status)
                tail = pathlib.Path(errlog).read_text(errors="replace")[-2000:]
                raise BenchError(f"{' '.join(step.argv)[:200]} exited {code}:\n{tail}")
        return time.perf_counter() - start
    except CommandTimeout:
        if pid:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
        raise
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


# ---------------------------------------------------------------------------------------------
# Observing the kernel (untimed)

def ruleset_summary(nft: str) -> dict[str, int]:
    """Rules per table and elements per set, from `nft -j list ruleset` in the current netns."""
    out = subprocess.run([nft, "-j", "list", "ruleset"], capture_output=True, text=True, check=True).stdout
    counts: dict[str, int] = {}
    for item in json.loads(out).get("nftables", []):
        if "rule" in item:
            key = f"{item['rule']['family']} {item['rule']['table']}"
            counts[key] = counts.get(key, 0) + 1
        elif "set" in item:
            key = f"set {item['set']['name']}"
            counts[key] = len(item["set"].get("elem", []))
    return counts


def redirected_to_proxy(nft: str) -> int | None:
    """Packets counted by the rules of chain istio-redirect (the REDIRECT to 15001), or None if uncounted."""
    out = subprocess.run([nft, "-j", "list", "chain", "inet", "istio-proxy-nat", "istio-redirect"],
                         capture_output=True, text=True)
    if out.returncode != 0:
        return None
    total, seen = 0, False
    for item in json.loads(out.stdout).get("nftables", []):
        for expr in item.get("rule", {}).get("expr", []):
            if "counter" in expr:
                total += expr["counter"]["packets"]
                seen = True
    return total if seen else None


# ---------------------------------------------------------------------------------------------
# Statistics and printing

def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def describe_ms(values: list[float]) -> str:
    ms = [v * 1000 for v in values]
    return (f"median {statistics.median(ms):8.2f} ms   p10 {quantile(ms, 0.1):8.2f}   p90 {quantile(ms, 0.9):8.2f}"
            f"   min {min(ms):8.2f}   n={len(ms)}")


def fmt_ms(values: list[float]) -> str:
    median = statistics.median(values) * 1000
    return f"{median:.1f} ms" if median >= 10 else f"{median:.2f} ms"


# ---------------------------------------------------------------------------------------------
# The benchmark

class Bench:
    def __init__(self, args):
        self.args = args
        self.work = pathlib.Path(args.work)
        self.tools = {name: shutil.which(name) for name in
                      ("ip", "nft", "iptables-nft-save", "ip6tables-nft-save", "iptables-nft-restore",
                       "ip6tables-nft-restore")}
        missing = [name for name, path in self.tools.items() if not path]
        if missing:
            raise BenchError(f"missing tools: {', '.join(missing)}")
        self.nft = self.tools["nft"]
        self.ns = Namespaces(args.prefix, self.tools["ip"])
        sluice = pathlib.Path(args.sluice)
        self.sluice = str(sluice.resolve()) if sluice.is_file() and os.access(sluice, os.X_OK) else None
        self.errlog = str(self.work / "stderr.log")
        self.results: dict[str, dict[str, list[float]]] = {}
        self.notes: list[str] = []
        self.load_at_start = load_average()
        self.resolv = self.work / "resolv.conf"
        self.resolv.write_text(f"nameserver {DNS_V4}\nnameserver {DNS_V6}\n")

    def write(self, name: str, text: str) -> str:
        path = self.work / name
        path.write_text(text)
        return str(path)

    # -- contenders ---------------------------------------------------------------------------

    def sluice_dry_run(self, flags: list[str], ipv6: bool, name: str) -> str:
        """The nft text sluice-init would commit, rendered in a pod set up like the timed ones."""
        with self.ns.fresh(pod_setup(ipv6)):
            out = subprocess.run([self.sluice, *flags, "--dry-run"], capture_output=True, text=True, timeout=60)
            if out.returncode != 0:
                raise BenchError(f"sluice-init --dry-run failed ({out.returncode}): {out.stderr.strip()[:500]}")
            path = self.write(name, out.stdout)
            check = subprocess.run([self.nft, "-c", "-f", path], capture_output=True, text=True, timeout=120)
            if check.returncode != 0:
                raise BenchError(f"nft -c rejects sluice-init --dry-run output ({path}): {check.stderr.strip()[:500]}")
        return path

    def istio_iptables_steps(self, config: istio_rules.IstioConfig, tag: str) -> list[Step]:
        """Istio's recorded sequence (istio-iptables goldens): state-check saves, restores, final saves."""
        t = self.tools
        v4_text = istio_rules.iptables_restore(config, 4)
        if tag == "default" and v4_text != istio_rules.RULES_MD_INJECTOR_DEFAULT:
            raise BenchError("the injector-default restore text is not RULES.md §1 verbatim")
        steps = [Step([t["iptables-nft-save"]]), Step([t["ip6tables-nft-save"]]),
                 Step([t["iptables-nft-restore"], "--noflush"], self.write(f"istio-{tag}.v4.restore", v4_text))]
        if config.ipv6:
            v6_text = istio_rules.iptables_restore(config, 6)
            steps.append(Step([t["ip6tables-nft-restore"], "--noflush"], self.write(f"istio-{tag}.v6.restore", v6_text)))
        steps.append(Step([t["iptables-nft-save"]]))
        if config.ipv6:
            steps.append(Step([t["ip6tables-nft-save"]]))
        return steps

    # -- A and B(1): apply time -----------------------------------------------------------------

    def measure_apply(self, key: str, contenders: dict[str, list[Step]], ipv6: bool, reps: int, budget_s: float,
                      min_reps: int) -> dict[str, list[float]]:
        times: dict[str, list[float]] = {name: [] for name in contenders}
        rulesets: dict[str, str] = {}
        names = list(contenders)
        started = time.monotonic()
        for rep in range(reps):
            if rep >= min_reps and time.monotonic() - started > budget_s:
                self.notes.append(f"{key}: stopped after {rep} repetitions (time budget {budget_s:.0f} s)")
                break
            # Rotating the order spreads any drift (page cache, netns teardown backlog) evenly.
            for name in names[rep % len(names):] + names[:rep % len(names)]:
                with self.ns.fresh(pod_setup(ipv6)):
                    # The kernel tears down the previous netns asynchronously (kworkers); on 2 cores that
                    # work would otherwise land inside the next contender's clock.
                    time.sleep(self.args.settle)
                    times[name].append(run_steps(contenders[name], self.errlog))
                    if rep == 0:
                        # -s: without counter values, which background packets (IPv6 DAD, MLD) may have bumped.
                        rulesets[name] = subprocess.run([self.nft, "-s", "list", "ruleset"], capture_output=True,
                                                        text=True, check=True).stdout
                        summary = ruleset_summary(self.nft)
                        if not summary and name != "sluice --help":
                            raise BenchError(f"{key}/{name}: no rules in the kernel after apply")
                        print(f"    {name:<28} kernel: " + (", ".join(f"{k} {v}" for k, v in sorted(summary.items()))
                                                                  or "no rules"), flush=True)
        if "sluice" in rulesets and "nft -f" in rulesets:
            same = rulesets["sluice"] == rulesets["nft -f"]
            print(f"    sluice-init and nft -f of its --dry-run text leave the same ruleset: {'yes' if same else 'NO'}")
            if not same:
                diff = list(difflib.unified_diff(rulesets["nft -f"].splitlines(), rulesets["sluice"].splitlines(),
                                                 "after nft -f of --dry-run", "after sluice-init", lineterm="", n=1))
                print("\n".join(f"      {line}" for line in diff[:40]))
                self.notes.append(f"{key}: kernel rulesets of sluice-init and nft -f of its --dry-run text differ")
        for name in names:
            print(f"    {name:<28} {describe_ms(times[name])}", flush=True)
        self.results[key] = times
        return times

    def part_a(self):
        args = self.args
        configs = [
            ("default", "apply (injector default)", INJECTOR_FLAGS, istio_rules.injector_default(), False),
            ("dualstack-dns", "apply (dual-stack + DNS)",
             INJECTOR_FLAGS + ["--redirect-dns", "--dual-stack", "--resolv-conf", str(self.resolv)],
             istio_rules.injector_default(redirect_dns=True, dns_v4=[DNS_V4], dns_v6=[DNS_V6], ipv6=True), True),
        ]
        for tag, label, flags, config, ipv6 in configs:
            print(f"\n== A. {label}: {args.reps} repetitions, fresh netns each", flush=True)
            contenders: dict[str, list[Step]] = {}
            if self.sluice:
                contenders["sluice"] = [Step([self.sluice, *flags])]
                text = self.sluice_dry_run(flags, ipv6, f"sluice-{tag}.nft")
                contenders["nft -f"] = [Step([self.nft, "-f", text])]
                if args.diagnose:
                    contenders["sluice --help"] = [Step([self.sluice, "--help"])]
                    contenders["nft -f w/o delete table"] = [Step([self.nft, "-f", self.write(
                        f"sluice-{tag}.nodelete.nft", without_table_deletes(pathlib.Path(text).read_text()))])]
            else:
                # Stand-in until sluice-init is built: Istio's own nft text for the same flags.
                text = self.write(f"istio-{tag}.nft", istio_rules.nft_transaction(config))
                contenders["istio-style nft -f*"] = [Step([self.nft, "-f", text])]
            contenders["istio iptables"] = self.istio_iptables_steps(config, tag)
            self.measure_apply(label, contenders, ipv6, args.reps, args.budget, min(args.reps, 50))

    def scale_config(self) -> tuple[list[str], istio_rules.IstioConfig]:
        cidrs = exclude_cidrs(self.args.cidrs)
        ports = [str(p) for p in range(20000, 20000 + self.args.ports)]
        x_arg, o_arg = ",".join(cidrs), ",".join(ports)
        if len(x_arg) + 1 > MAX_ARG_STRLEN:
            raise BenchError(f"-x list is {len(x_arg)} bytes, over the kernel's {MAX_ARG_STRLEN}-byte argument limit")
        flags = list(INJECTOR_FLAGS)
        flags[flags.index("-x") + 1] = x_arg
        flags += ["-o", o_arg]
        config = istio_rules.injector_default(exclude_cidrs=cidrs, exclude_ports=ports)
        return flags, config

    def part_b_apply(self):
        args = self.args
        flags, config = self.scale_config()
        label = f"apply @{len(config.exclude_cidrs) // 1000}k CIDRs + {len(config.exclude_ports)} ports"
        print(f"\n== B1. {label}: up to {args.scale_reps} repetitions (at least {args.scale_min_reps}), fresh netns each",
              flush=True)
        contenders: dict[str, list[Step]] = {}
        if self.sluice:
            contenders["sluice"] = [Step([self.sluice, *flags])]
            text = self.sluice_dry_run(flags, False, "sluice-scale.nft")
            contenders["nft -f"] = [Step([self.nft, "-f", text])]
        else:
            text = self.write("sets-scale.nft", istio_rules.sets_transaction(config))
            contenders["nft -f (sets)*"] = [Step([self.nft, "-f", text])]
        istio_text = self.write("istio-scale.nft", istio_rules.nft_transaction(config))
        contenders["istio-style nft -f"] = [Step([self.nft, "-f", istio_text])]
        self.measure_apply(label, contenders, False, args.scale_reps, args.scale_budget, args.scale_min_reps)

    # -- B(2): connections per second -----------------------------------------------------------

    def conn_topology(self) -> tuple[str, str]:
        peer = self.ns.create(["addr add 198.51.100.1/32 dev lo"])
        pod = self.ns.create([])
        subprocess.run([self.tools["ip"], "-n", pod, "link", "add", "eth0", "type", "veth", "peer", "name", "eth0",
                        "netns", peer], check=True)
        subprocess.run([self.tools["ip"], "-n", pod, "-batch", "-"], text=True, check=True,
                       input="addr add 192.0.2.2/24 dev eth0\nlink set eth0 up\n"
                             "route add 198.51.100.0/24 via 192.0.2.1\n")
        subprocess.run([self.tools["ip"], "-n", peer, "-batch", "-"], text=True, check=True,
                       input="addr add 192.0.2.1/24 dev eth0\nlink set eth0 up\n")
        return pod, peer

    def measure_connections(self, apply_steps: list[Step]) -> dict:
        pod, peer = self.conn_topology()
        seconds = self.args.conn_seconds
        try:
            with self.ns.entered(pod):
                run_steps(apply_steps, self.errlog, limit_s=120)
                # Closed (reset) connections linger in conntrack for 10 s by default; a short timeout keeps
                # the table far from nf_conntrack_max during a long run. Same for every contender.
                with contextlib.suppress(OSError):
                    pathlib.Path("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_close").write_text("1")
                listener = subprocess.Popen([self.args.connbench, "listen", "15001", str(int(seconds) + 10)],
                                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                try:
                    if listener.stdout.readline().strip() != "listening":
                        raise BenchError("listener did not start: " + listener.stderr.read()[:300])
                    client = subprocess.run([self.args.connbench, "connect", PEER_TARGET[0], str(PEER_TARGET[1]),
                                             str(seconds), str(CLIENT_UID), str(self.args.conn_max)],
                                            capture_output=True, text=True, timeout=seconds + 30)
                finally:
                    listener.terminate()
                    with contextlib.suppress(subprocess.TimeoutExpired):
                        listener.wait(timeout=10)
                    if listener.poll() is None:
                        listener.kill()
                        listener.wait()
                if client.returncode != 0:
                    raise BenchError(f"client failed: {client.stderr.strip()[:300]}")
                fields = dict(item.split("=", 1) for item in client.stdout.split())
                result = {"ok": int(fields["ok"]), "failed": int(fields["failed"]), "seconds": float(fields["seconds"]),
                          "lasterror": os.strerror(int(fields.get("lasterrno", "0"))), "redirected": redirected_to_proxy(self.nft)}
                result["rate"] = result["ok"] / result["seconds"]
                return result
        finally:
            self.ns.delete(pod)
            self.ns.delete(peer)

    def part_b_connections(self):
        args = self.args
        flags, config = self.scale_config()
        default_config = istio_rules.injector_default()
        print(f"\n== B2. new TCP connections/s, client uid {CLIENT_UID} -> {PEER_TARGET[0]}:{PEER_TARGET[1]} "
              f"(redirected to the pod's 15001), {args.conn_seconds:g} s x {args.conn_rounds} rounds each", flush=True)
        if self.sluice:
            scale_sluice = ("sluice", [Step([self.sluice, *flags])])
            default_sluice = ("sluice", [Step([self.sluice, *INJECTOR_FLAGS])])
        else:
            scale_sluice = ("nft -f (sets)*", [Step([self.nft, "-f", self.write("sets-scale.nft",
                                                                              istio_rules.sets_transaction(config))])])
            default_sluice = ("nft -f (sets)*", [Step([self.nft, "-f", self.write(
                "sets-default.nft", istio_rules.sets_transaction(default_config))])])
        istio_scale = ("istio-style nft", [Step([self.nft, "-f", self.write("istio-scale.nft",
                                                                          istio_rules.nft_transaction(config))])])
        istio_default = ("istio-style nft", [Step([self.nft, "-f", self.write(
            "istio-default.nft", istio_rules.nft_transaction(default_config))])])
        label_scale = f"connections/s @{len(config.exclude_cidrs) // 1000}k CIDRs"
        cases = [(label_scale, [scale_sluice, istio_scale])]
        if not args.skip_baseline:
            cases.append(("connections/s (injector default)", [default_sluice, istio_default]))
        for label, contenders in cases:
            rates: dict[str, list[float]] = {name: [] for name, _ in contenders}
            for round_index in range(args.conn_rounds):
                for name, steps in contenders[round_index % 2:] + contenders[:round_index % 2]:
                    result = self.measure_connections(steps)
                    rates[name].append(result["rate"])
                    redirected = result["redirected"]
                    print(f"    {label:<34} {name:<18} round {round_index + 1}: {result['rate']:9.0f} conn/s  "
                          f"ok={result['ok']} failed={result['failed']} "
                          f"counted by istio-redirect={redirected if redirected is not None else 'n/a'}", flush=True)
                    if result["ok"] == 0:
                        raise BenchError(f"{label}/{name}: no connection succeeded ({result['lasterror']})")
                    if result["failed"]:
                        self.notes.append(f"{label}/{name}: {result['failed']} failed connects ({result['lasterror']})")
                    if redirected is not None and redirected < result["ok"]:
                        self.notes.append(f"{label}/{name}: only {redirected} of {result['ok']} connections "
                                          "were counted by the REDIRECT rule")
            self.results[label] = rates

    # -- summary --------------------------------------------------------------------------------

    def summary(self):
        print("\n" + "=" * 100)
        print(machine_line(self.sluice, self.nft, self.tools["iptables-nft-restore"]))
        print(f"load average at start: {self.load_at_start}, at end: {load_average()}")
        with contextlib.suppress(ValueError):
            if float(self.load_at_start.split()[0]) > 0.5:
                self.notes.append(f"the machine was busy before the run (load {self.load_at_start}): other work "
                                  "shares these cores, so figures are noisier and slower than on an idle machine")
        if not self.sluice:
            print(f"WARNING: sluice-init not found at {self.args.sluice}: figures marked * use a set-based nft "
                  "text written by this benchmark instead of sluice-init; they are NOT sluice-init's figures")
        print("-" * 100)
        verdicts = []
        for label, times in self.results.items():
            if label.startswith("connections/s"):
                names = list(times)
                ours, theirs = (statistics.median(times[n]) for n in names)
                ratio = ours / theirs
                print(f"{label:<34} {names[0]} {ours:.0f} | {names[1]} {theirs:.0f} | ratio {ratio:.1f}x")
                if "@" in label:
                    verdicts.append(f"{label}: {ratio:.1f}x (target >= 5x) {'met' if ratio >= 5 else 'NOT met'}")
                continue
            names = list(times)
            base = statistics.median(times[names[0]])
            parts = [f"{names[0]} {fmt_ms(times[names[0]])}"]
            for name in names[1:]:
                parts.append(f"{name} {fmt_ms(times[name])} ({base / statistics.median(times[name]):.2f}x)")
            n = min(len(v) for v in times.values())
            print(f"{label:<34} " + " | ".join(parts) + f"   [n={n}]")
            if names[0] == "sluice":
                for name in names[1:]:
                    ratio = base / statistics.median(times[name])
                    if name == "nft -f":
                        verdicts.append(f"{label}: sluice/nft -f {ratio:.2f}x (target <= 1.2x) "
                                        f"{'met' if ratio <= 1.2 else 'NOT met'}")
                    elif name == "istio iptables":
                        verdicts.append(f"{label}: sluice/istio iptables {ratio:.2f}x (target <= 0.5x) "
                                        f"{'met' if ratio <= 0.5 else 'NOT met'}")
        print("-" * 100)
        print("ratios in parentheses: first contender's median / that contender's median (lower = first is faster)")
        for line in verdicts:
            print(f"target  {line}")
        for note in self.notes:
            print(f"note    {note}")


def without_table_deletes(text: str) -> str:
    """The dry-run text minus its "add table T / delete table T" pairs: the same end state on a fresh
    netns, without the table deletions (diagnostic: what those deletions cost)."""
    lines, out = text.splitlines(), []
    for index, line in enumerate(lines):
        if line.startswith("delete table "):
            continue
        if index + 1 < len(lines) and lines[index + 1] == "delete " + line[len("add "):]:
            continue
        out.append(line)
    return "\n".join(out) + "\n"


def exclude_cidrs(count: int) -> list[str]:
    """`count` distinct host CIDRs in 10.0.0.0/8, shortest text first so 10,000 of them fit in one argv
    string (Linux caps each at 128 KiB). Only even last octets, so no two are adjacent and a set
    implementation cannot merge them into fewer ranges than Istio has rules."""
    by_digits = {1: range(0, 10), 2: range(10, 100), 3: range(100, 256)}
    out: list[str] = []
    for total in range(3, 10):
        for da in (1, 2, 3):
            for db in (1, 2, 3):
                dc = total - da - db
                if dc not in by_digits:
                    continue
                for a in by_digits[da]:
                    for b in by_digits[db]:
                        for c in by_digits[dc]:
                            if c % 2 == 0:
                                out.append(f"10.{a}.{b}.{c}/32")
                                if len(out) == count:
                                    return out
    raise BenchError(f"cannot make {count} CIDRs")


def machine_line(sluice: str | None, nft: str, iptables: str) -> str:
    cpu = ""
    with contextlib.suppress(OSError):
        match = re.search(r"model name\s*:\s*(.+)", pathlib.Path("/proc/cpuinfo").read_text())
        cpu = match.group(1).strip() if match else ""
    versions = []
    for tool in (nft, iptables):
        out = subprocess.run([tool, "--version"], capture_output=True, text=True)
        versions.append((out.stdout or out.stderr).strip().splitlines()[0] if (out.stdout or out.stderr) else tool)
    built = ""
    if sluice:
        built = time.strftime(" (built %Y-%m-%d %H:%M)", time.localtime(os.path.getmtime(sluice)))
    return (f"machine: nproc {os.cpu_count()} ({cpu}), kernel {platform.release()}, {versions[0]}, {versions[1]}\n"
            f"sluice-init: {sluice or 'not built'}{built}")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sluice", required=True, help="path of the sluice-init binary (may not exist yet)")
    parser.add_argument("--work", required=True, help="scratch directory (rule texts, stderr log)")
    parser.add_argument("--prefix", required=True, help="prefix of the netns names this run creates")
    parser.add_argument("--connbench", required=True, help="compiled Benchmarks/connbench.c")
    parser.add_argument("--reps", type=int, default=50, help="A: repetitions per contender (default 50)")
    parser.add_argument("--budget", type=float, default=300, help="A: seconds per configuration before stopping")
    parser.add_argument("--scale-reps", type=int, default=50, help="B1: repetitions per contender (default 50)")
    parser.add_argument("--scale-min-reps", type=int, default=10, help="B1: repetitions even over budget")
    parser.add_argument("--scale-budget", type=float, default=240, help="B1: seconds before stopping at >= min reps")
    parser.add_argument("--cidrs", type=int, default=10000, help="B: -x CIDRs (default 10000)")
    parser.add_argument("--ports", type=int, default=1000, help="B: -o ports (default 1000, from 20000)")
    parser.add_argument("--conn-seconds", type=float, default=5, help="B2: seconds per measurement (max 60)")
    parser.add_argument("--conn-rounds", type=int, default=3, help="B2: measurements per contender (median)")
    parser.add_argument("--conn-max", type=int, default=5_000_000, help="B2: connection cap per measurement")
    parser.add_argument("--skip-baseline", action="store_true", help="B2: skip the no-lists baseline")
    parser.add_argument("--settle", type=float, default=0.02,
                        help="A/B1: untimed pause in each fresh netns before the clock starts (default 0.02 s)")
    parser.add_argument("--diagnose", action="store_true",
                        help="A: also time `sluice-init --help` (process start-up alone) and nft -f of the dry-run "
                             "text without its delete-table lines")
    parser.add_argument("--only", choices=["A", "B1", "B2"], action="append", help="run only these parts")
    parser.add_argument("--check-goldens", metavar="TESTDATA", help="verify Istio text generators against goldens")
    args = parser.parse_args()
    if not 0 < args.conn_seconds <= 60:
        parser.error("--conn-seconds must be in (0, 60]")
    if args.check_goldens:
        failures = istio_rules.check_goldens(pathlib.Path(args.check_goldens))
        if failures:
            raise SystemExit(f"Istio text generators differ from goldens: {', '.join(failures)}")
        print(f"Istio text generators reproduce the goldens in {args.check_goldens}")
    bench = Bench(args)
    print(machine_line(bench.sluice, bench.nft, bench.tools["iptables-nft-restore"]), flush=True)
    parts = args.only or ["A", "B1", "B2"]
    try:
        if "A" in parts:
            bench.part_a()
        if "B1" in parts:
            bench.part_b_apply()
        if "B2" in parts:
            bench.part_b_connections()
    finally:
        bench.summary()


if __name__ == "__main__":
    try:
        main()
    except BenchError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        sys.exit(1)
