#!/usr/bin/env bash
# DNS proxy benchmark, in one run: dnsperf against (a) the agent's proxy answering from its name
# table, (b) the proxy forwarding to dnsmasq, (c) dnsmasq directly. QPS, median and p99 latency.
#
#   swift build -c release --static-swift-stdlib --product pilot-agent
#   swift build -c release --static-swift-stdlib --product sluice-test-dataplane
#   sudo Benchmarks/dns.sh [--seconds 10] [--rate 2000]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$here")"
if [[ $(id -u) -ne 0 ]]; then
    echo "dns.sh: must run as root (it creates a network namespace; the agent switches to 1337 itself)" >&2
    exit 1
fi
missing=()
for tool in dnsperf:dnsperf dnsmasq:dnsmasq-base dig:bind9-dnsutils ip:iproute2; do
    command -v "${tool%%:*}" >/dev/null 2>&1 || missing+=("${tool##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}" >/dev/null
fi
exec python3 "$here/dns_bench.py" "$@"
