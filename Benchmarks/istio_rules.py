"""Istio's own rule text for the benchmark's configurations, written the way Istio writes it.

Two renderings of one configuration (REDIRECT mode only, which is all the benchmark needs):

* `iptables_restore(config, family)`: the `iptables-restore --noflush` input of Istio's iptables
  backend (reference/capture/RULES.md §1 and §3; the injector default is exactly RULES.md §1's text).
* `nft_transaction(config)`: the `nft -f` text of Istio's native-nftables backend, one rule per list
  entry (`tools/istio-nftables/pkg/capture/run.go`, goldens in istio-capture/testdata/istio-nftables).

Both are checked against Istio's golden files by `check_goldens()` (run by `bench.py --check-goldens`),
so the text the benchmark feeds to iptables-restore / nft is Istio's, not an approximation of it.

`sets_transaction(config)` is a set-based rendering used only as a stand-in while sluice-init is not
built; the benchmark marks every figure that comes from it.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import pathlib

LOOPBACK = {4: "127.0.0.1/32", 6: "::1/128"}
PASSTHROUGH = {4: "127.0.0.6/32", 6: "::6/128"}
HOST_PREFIX = {4: "/32", 6: "/128"}
NFT_FAMILY = {4: "ip", 6: "ip6"}


@dataclasses.dataclass
class IstioConfig:
    """The subset of istio-iptables flags the benchmark uses; defaults are Istio's test base config."""
    proxy_port: str = "15001"
    inbound_capture_port: str = "15006"
    tunnel_port: str = "15008"
    uids: list[str] = dataclasses.field(default_factory=lambda: ["1337"])
    gids: list[str] = dataclasses.field(default_factory=lambda: ["1337"])
    inbound_ports: str = ""            # -b: "*", "" or comma list
    inbound_exclude: list[str] = dataclasses.field(default_factory=list)   # -d (only with -b '*')
    include_cidrs: str = ""            # -i: "*", "" or comma list
    exclude_cidrs: list[str] = dataclasses.field(default_factory=list)     # -x
    exclude_ports: list[str] = dataclasses.field(default_factory=list)     # -o
    dns_v4: list[str] = dataclasses.field(default_factory=list)           # resolv.conf servers
    dns_v6: list[str] = dataclasses.field(default_factory=list)
    redirect_dns: bool = False
    ipv6: bool = False

    @property
    def dns(self) -> bool:
        # Istio disables DNS capture when resolv.conf names no server (capture-all is not used here).
        return self.redirect_dns and bool(self.dns_v4 or self.dns_v6)

    def cidrs(self, text_or_list, family: int) -> list[str]:
        items = text_or_list.split(",") if isinstance(text_or_list, str) else text_or_list
        return [c for c in items if c and c != "*" and ipaddress.ip_network(c, strict=False).version == family]

    def dns_servers(self, family: int) -> list[str]:
        return self.dns_v4 if family == 4 else self.dns_v6


def injector_default(**changes) -> IstioConfig:
    """`-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`."""
    config = IstioConfig(inbound_ports="*", inbound_exclude=["15090", "15021", "15020"], include_cidrs="*")
    return dataclasses.replace(config, **changes)


# ---------------------------------------------------------------------------------------------
# iptables-restore text (RULES.md §1)

def iptables_restore(config: IstioConfig, family: int) -> str:
    nat: list[tuple[str, str]] = []   # (chain, rest of the -A line)
    raw: list[tuple[str, str]] = []
    loopback, dns = LOOPBACK[family], config.dns

    nat.append(("ISTIO_INBOUND", f"-p tcp --dport {config.tunnel_port} -j RETURN"))
    nat.append(("ISTIO_REDIRECT", f"-p tcp -j REDIRECT --to-ports {config.proxy_port}"))
    nat.append(("ISTIO_IN_REDIRECT", f"-p tcp -j REDIRECT --to-ports {config.inbound_capture_port}"))
    if config.inbound_ports:
        nat.append(("PREROUTING", "-p tcp -j ISTIO_INBOUND"))
        if config.inbound_ports == "*":
            for port in config.inbound_exclude:
                nat.append(("ISTIO_INBOUND", f"-p tcp --dport {port} -j RETURN"))
            nat.append(("ISTIO_INBOUND", "-p tcp -j ISTIO_IN_REDIRECT"))
        else:
            for port in config.inbound_ports.split(","):
                nat.append(("ISTIO_INBOUND", f"-p tcp --dport {port} -j ISTIO_IN_REDIRECT"))
    nat.append(("OUTPUT", "-j ISTIO_OUTPUT"))
    for port in config.exclude_ports:
        nat.append(("ISTIO_OUTPUT", f"-p tcp --dport {port} -j RETURN"))
        nat.append(("ISTIO_OUTPUT", f"-p udp --dport {port} -j RETURN"))
    nat.append(("ISTIO_OUTPUT", f"-o lo -s {PASSTHROUGH[family]} -j RETURN"))
    for owner, ids in (("uid", config.uids), ("gid", config.gids)):
        for ident in ids:
            # Only the UID hairpin rule gets the multiport variant with DNS on (RULES.md §1 step 12).
            ports = "-m multiport ! --dports 53,15008" if dns and owner == "uid" else f"! --dport {config.tunnel_port}"
            nat.append(("ISTIO_OUTPUT", f"-o lo ! -d {loopback} -p tcp {ports} -m owner --{owner}-owner {ident} "
                                        "-j ISTIO_IN_REDIRECT"))
            bypass = "-o lo -p tcp ! --dport 53" if dns else "-o lo"
            nat.append(("ISTIO_OUTPUT", f"{bypass} -m owner ! --{owner}-owner {ident} -j RETURN"))
            nat.append(("ISTIO_OUTPUT", f"-m owner --{owner}-owner {ident} -j RETURN"))
    if dns:
        servers = [s + HOST_PREFIX[family] for s in config.dns_servers(family)]
        if servers:
            nat.append(("ISTIO_OUTPUT", "-j ISTIO_OUTPUT_DNS"))
            for server in servers:
                nat.append(("ISTIO_OUTPUT_DNS", f"-p tcp --dport 53 -d {server} -j REDIRECT --to-ports 15053"))
                nat.append(("ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -d {server} -j REDIRECT --to-port 15053"))
        raw.append(("OUTPUT", "-j ISTIO_OUTPUT_DNS"))
        for owner, ids in (("uid", config.uids), ("gid", config.gids)):
            for ident in ids:
                raw.append(("ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -m owner --{owner}-owner {ident} -j CT --zone 1"))
                raw.append(("ISTIO_OUTPUT_DNS", f"-p udp --sport 15053 -m owner --{owner}-owner {ident} -j CT --zone 2"))
        raw.append(("PREROUTING", "-j ISTIO_INBOUND"))
        for server in servers:
            raw.append(("ISTIO_OUTPUT_DNS", f"-p udp --dport 53 -d {server} -j CT --zone 2"))
            raw.append(("ISTIO_INBOUND", f"-p udp --sport 53 -s {server} -j CT --zone 1"))
    nat.append(("ISTIO_OUTPUT", f"-d {loopback} -j RETURN"))
    for cidr in config.cidrs(config.exclude_cidrs, family):
        nat.append(("ISTIO_OUTPUT", f"-d {cidr} -j RETURN"))
    if config.include_cidrs == "*":
        nat.append(("ISTIO_OUTPUT", "-j ISTIO_REDIRECT"))
    else:
        for cidr in config.cidrs(config.include_cidrs, family):
            nat.append(("ISTIO_OUTPUT", f"-d {cidr} -j ISTIO_REDIRECT"))

    out: list[str] = []
    for name, rules in (("nat", nat), ("raw", raw)):   # alphabetical, non-empty only
        if not rules:
            continue
        out.append(f"* {name}")
        out += [f"-N {chain}" for chain in _declared_chains(rules)]
        out += [f"-A {chain} {rest}" for chain, rest in rules]
        out.append("COMMIT")
    return "\n".join(out) + "\n"


def _declared_chains(rules: list[tuple[str, str]]) -> list[str]:
    """Every non-built-in chain that has rules or is a jump target, in order of first appearance."""
    seen: list[str] = []
    for chain, rest in rules:
        target = rest.split(" -j ")[-1].split()[0] if " -j " in f" {rest}" else ""
        for name in (chain, target):
            if name.startswith("ISTIO_") and name not in seen:
                seen.append(name)
    return seen


# ---------------------------------------------------------------------------------------------
# nft transaction text, Istio's native-nftables style (one rule per list entry)

NAT_CHAIN_ORDER = ["prerouting", "output", "istio-inbound", "istio-redirect", "istio-in-redirect",
                   "istio-output", "istio-output-dns"]
RAW_CHAIN_ORDER = ["prerouting", "output", "istio-inbound", "istio-output-dns"]
BASE_CHAINS = {
    ("istio-proxy-nat", "prerouting"): "{ type nat hook prerouting priority -100 ; }",
    ("istio-proxy-nat", "output"): "{ type nat hook output priority -100 ; }",
    ("istio-proxy-raw", "prerouting"): "{ type filter hook prerouting priority -300 ; }",
    ("istio-proxy-raw", "output"): "{ type filter hook output priority -300 ; }",
}


def nft_transaction(config: IstioConfig, *, port_set: str | None = None, cidr_set: str | None = None) -> str:
    """Istio's nft text. With `port_set`/`cidr_set` the -o and -x lists become one set lookup each
    (the stand-in for Sluice's rendering); otherwise one rule per entry, as Istio writes it."""
    nat: list[tuple[str, str]] = []
    raw: list[tuple[str, str]] = []
    v6, dns = config.ipv6, config.dns

    def both(chain: str, v4_rule: str, v6_rule: str, table=nat):
        table.append((chain, v4_rule))
        if v6:
            table.append((chain, v6_rule))

    nat.append(("istio-inbound", f"meta l4proto tcp tcp dport {config.tunnel_port} counter return"))
    nat.append(("istio-redirect", f"meta l4proto tcp counter redirect to :{config.proxy_port}"))
    nat.append(("istio-in-redirect", f"meta l4proto tcp counter redirect to :{config.inbound_capture_port}"))
    if config.inbound_ports:
        nat.append(("prerouting", "meta l4proto tcp counter jump istio-inbound"))
        if config.inbound_ports == "*":
            for port in config.inbound_exclude:
                nat.append(("istio-inbound", f"meta l4proto tcp tcp dport {port} counter return"))
            nat.append(("istio-inbound", "meta l4proto tcp counter jump istio-in-redirect"))
        else:
            for port in config.inbound_ports.split(","):
                nat.append(("istio-inbound", f"meta l4proto tcp tcp dport {port} counter jump istio-in-redirect"))
    nat.append(("output", "counter jump istio-output"))
    if port_set and config.exclude_ports:
        nat.append(("istio-output", f"tcp dport @{port_set} counter return"))
        nat.append(("istio-output", f"udp dport @{port_set} counter return"))
    else:
        for port in config.exclude_ports:
            nat.append(("istio-output", f"tcp dport {port} counter return"))
            nat.append(("istio-output", f"udp dport {port} counter return"))
    both("istio-output", "oifname lo ip saddr 127.0.0.6/32 counter return", "oifname lo ip6 saddr ::6/128 counter return")
    for owner, ids in (("uid", config.uids), ("gid", config.gids)):
        for ident in ids:
            ports = "{ 53, 15008 }" if dns and owner == "uid" else config.tunnel_port
            both("istio-output",
                 f"oifname lo meta l4proto tcp ip daddr != 127.0.0.1/32 tcp dport != {ports} sk{owner} {ident} "
                 "counter jump istio-in-redirect",
                 f"oifname lo meta l4proto tcp ip6 daddr != ::1/128 tcp dport != {ports} sk{owner} {ident} "
                 "counter jump istio-in-redirect")
            if dns:
                nat.append(("istio-output", f"oifname lo meta l4proto tcp tcp dport != 53 sk{owner} != {ident} counter return"))
            else:
                nat.append(("istio-output", f"oifname lo sk{owner} != {ident} counter return"))
            nat.append(("istio-output", f"sk{owner} {ident} counter return"))
    if dns:
        raw.append(("output", "counter jump istio-output-dns"))
        nat.append(("istio-output", "counter jump istio-output-dns"))
        for proto in ("tcp", "udp"):
            for family in (4, 6):
                if family == 6 and not v6:
                    continue
                for server in config.dns_servers(family):
                    nat.append(("istio-output-dns", f"{NFT_FAMILY[family]} daddr {server}{HOST_PREFIX[family]} "
                                                    f"{proto} dport 53 counter redirect to :15053"))
        for owner, ids in (("uid", config.uids), ("gid", config.gids)):
            for ident in ids:
                raw.append(("istio-output-dns", f"udp dport 53 meta sk{owner} {ident} counter ct zone set 1"))
                raw.append(("istio-output-dns", f"udp sport 15053 meta sk{owner} {ident} counter ct zone set 2"))
        raw.append(("prerouting", "counter jump istio-inbound"))
        for family in (4, 6):
            if family == 6 and not v6:
                continue
            for server in config.dns_servers(family):
                host = f"{server}{HOST_PREFIX[family]}"
                raw.append(("istio-output-dns", f"udp dport 53 {NFT_FAMILY[family]} daddr {host} counter ct zone set 2"))
                raw.append(("istio-inbound", f"udp sport 53 {NFT_FAMILY[family]} saddr {host} counter ct zone set 1"))
    both("istio-output", "ip daddr 127.0.0.1/32 counter return", "ip6 daddr ::1/128 counter return")
    v4_excludes, v6_excludes = config.cidrs(config.exclude_cidrs, 4), config.cidrs(config.exclude_cidrs, 6)
    if cidr_set and v4_excludes:
        nat.append(("istio-output", f"ip daddr @{cidr_set} counter return"))
    else:
        nat += [("istio-output", f"ip daddr {cidr} counter return") for cidr in v4_excludes]
    if v6:
        nat += [("istio-output", f"ip6 daddr {cidr} counter return") for cidr in v6_excludes]
    if config.include_cidrs == "*":
        nat.append(("istio-output", "counter jump istio-redirect"))
    else:
        nat += [("istio-output", f"ip daddr {c} counter jump istio-redirect") for c in config.cidrs(config.include_cidrs, 4)]
        if v6:
            nat += [("istio-output", f"ip6 daddr {c} counter jump istio-redirect")
                    for c in config.cidrs(config.include_cidrs, 6)]

    sets = []
    if port_set and config.exclude_ports:
        sets.append(f"add set inet istio-proxy-nat {port_set} {{ type inet_service ; }}")
        sets.append(f"add element inet istio-proxy-nat {port_set} {{ {', '.join(config.exclude_ports)} }}")
    if cidr_set and v4_excludes:
        sets.append(f"add set inet istio-proxy-nat {cidr_set} {{ type ipv4_addr ; flags interval ; }}")
        sets.append(f"add element inet istio-proxy-nat {cidr_set} {{ {', '.join(v4_excludes)} }}")

    out: list[str] = []
    for table, rules, order, extra in (("istio-proxy-nat", nat, NAT_CHAIN_ORDER, sets),
                                       ("istio-proxy-raw", raw, RAW_CHAIN_ORDER, [])):
        if not rules:
            continue
        prefix = f"inet {table}"
        out += [f"add table {prefix}", f"flush table {prefix}"]
        used = {chain for chain, _ in rules}
        for chain in order:
            if chain in used:
                base = BASE_CHAINS.get((table, chain))
                out.append(f"add chain {prefix} {chain}" + (f" {base}" if base else ""))
        out += extra
        out += [f"add rule {prefix} {chain} {rest}" for chain, rest in rules]
    return "\n".join(out) + "\n"


def sets_transaction(config: IstioConfig) -> str:
    return nft_transaction(config, port_set="outbound-exclude-ports", cidr_set="outbound-exclude-ipv4")


# ---------------------------------------------------------------------------------------------
# Self-check against Istio's goldens

def _golden_cases() -> dict[str, IstioConfig]:
    multi = dict(uids=["3", "4"], gids=["1", "2"])
    return {
        "empty": IstioConfig(),
        "inbound-ports-wildcard": IstioConfig(inbound_ports="*"),
        "inbound-ports-include": IstioConfig(inbound_ports="32000,31000"),
        "ipnets": IstioConfig(include_cidrs="10.0.0.0/8"),
        "ip-range": IstioConfig(exclude_cidrs=["1.1.0.0/16"], include_cidrs="9.9.0.0/16", redirect_dns=True,
                                dns_v4=["127.0.0.53"], **multi),
        "dns-uid-gid": IstioConfig(redirect_dns=True, dns_v4=["127.0.0.53"], dns_v6=["::127.0.0.53"], ipv6=True, **multi),
        "ipv6-dns-uid-gid": IstioConfig(redirect_dns=True, ipv6=True, **multi),
        "ipv6-empty-inbound-ports": IstioConfig(ipv6=True),
        "ipv6-inbound-ports": IstioConfig(inbound_ports="4000,5000", ipv6=True),
    }


def check_goldens(testdata: pathlib.Path) -> list[str]:
    """Compares both renderings with Istio's goldens; returns the names that differ (empty = all equal)."""
    failures = []
    for name, config in _golden_cases().items():
        nft_golden = testdata / "istio-nftables" / f"{name}.golden"
        if nft_golden.exists() and nft_transaction(config).rstrip("\n") != nft_golden.read_text().rstrip("\n"):
            failures.append(f"istio-nftables/{name}")
        ipt_golden = testdata / "istio-iptables" / f"{name}.golden"
        if ipt_golden.exists():
            # The golden is the recorded command sequence: saves, the restore input(s), final saves.
            expected = [line for line in ipt_golden.read_text().splitlines() if not line.endswith("tables-save")]
            rendered = iptables_restore(config, 4) + (iptables_restore(config, 6) if config.ipv6 else "")
            if rendered.splitlines() != expected:
                failures.append(f"istio-iptables/{name}")
    return failures


RULES_MD_INJECTOR_DEFAULT = """\
* nat
-N ISTIO_INBOUND
-N ISTIO_REDIRECT
-N ISTIO_IN_REDIRECT
-N ISTIO_OUTPUT
-A ISTIO_INBOUND -p tcp --dport 15008 -j RETURN
-A ISTIO_REDIRECT -p tcp -j REDIRECT --to-ports 15001
-A ISTIO_IN_REDIRECT -p tcp -j REDIRECT --to-ports 15006
-A PREROUTING -p tcp -j ISTIO_INBOUND
-A ISTIO_INBOUND -p tcp --dport 15090 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15021 -j RETURN
-A ISTIO_INBOUND -p tcp --dport 15020 -j RETURN
-A ISTIO_INBOUND -p tcp -j ISTIO_IN_REDIRECT
-A OUTPUT -j ISTIO_OUTPUT
-A ISTIO_OUTPUT -o lo -s 127.0.0.6/32 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --uid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --uid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -o lo ! -d 127.0.0.1/32 -p tcp ! --dport 15008 -m owner --gid-owner 1337 -j ISTIO_IN_REDIRECT
-A ISTIO_OUTPUT -o lo -m owner ! --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -m owner --gid-owner 1337 -j RETURN
-A ISTIO_OUTPUT -d 127.0.0.1/32 -j RETURN
-A ISTIO_OUTPUT -j ISTIO_REDIRECT
COMMIT
"""
"""RULES.md §1 "Rendered default", verbatim: the restore input for the injector-default contender."""
