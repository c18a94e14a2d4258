#!/usr/bin/env bash
# Benchmarks of sluice-init: apply time vs `nft -f` and vs Istio's iptables-restore sequence, and at
# scale (10k CIDRs, 1k ports) apply time and new connections/s vs Istio's one-rule-per-entry nft.
# Everything runs in network namespaces this script creates (named sluicebench-<pid>-N) and removes.
#
#   sudo Benchmarks/run.sh                      # full run (~4-6 minutes on 2 cores)
#   SLUICE_INIT=path/to/sluice-init Benchmarks/run.sh --reps 20 --conn-seconds 3
#   Benchmarks/run.sh --help                    # every option of the driver (bench.py)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cd "$root"

if [[ ${1:-} == --help || ${1:-} == -h ]]; then
    exec python3 "$here/bench.py" --help
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "run.sh: must run as root (it creates network namespaces and programs netfilter)" >&2
    exit 1
fi

missing=()
for tool in nft iptables-nft-restore ip6tables-nft-restore iptables-nft-save ip6tables-nft-save; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
for tool in gcc python3; do
    command -v "$tool" >/dev/null || missing+=("$tool")
done
if ((${#missing[@]})); then
    # Only the benchmarks need these (scripts/install-dependencies covers building and testing):
    # Istio's iptables-restore path for comparison, gcc for connbench.c, python3 for the driver.
    echo "run.sh: installing nftables, iptables, gcc and python3 (missing: ${missing[*]})"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y nftables iptables gcc python3
fi
for tool in ip gcc python3 nft iptables-nft-restore; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is required" >&2; exit 1; }
done

sluice_init=${SLUICE_INIT:-.build/release/sluice-init}
sluice_warning=
if [[ ! -f $sluice_init || ! -x $sluice_init ]]; then
    # The run still works, with a stand-in, but its sluice rows then measure no sluice-init at all:
    # say so before and after, where nobody can miss it.
    sluice_warning="WARNING: $sluice_init is not built: the sluice rows (marked *) measure a stand-in nft -f text, NOT sluice-init. Build it with: swift build -c release --static-swift-stdlib --product sluice-init"
    echo "$sluice_warning" >&2
fi
work=$(mktemp -d /tmp/sluice-bench.XXXXXX)
prefix="sluicebench-$$"
driver_pid=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
        kill "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    [[ -z ${sluice_warning:-} ]] || echo "$sluice_warning" >&2
    local ns
    for ns in $(ip netns list | awk '{print $1}' | grep "^${prefix}-" || true); do
        ip netns del "$ns" 2>/dev/null || true
    done
    if [[ -n ${KEEP_WORK:-} ]]; then
        echo "run.sh: rule texts and logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gcc -O2 -Wall -o "$work/connbench" "$here/connbench.c"

golden_args=()
# Istio's goldens, checked out next to this repository (../shared/istio-capture).
testdata=${ISTIO_TESTDATA:-$root/../shared/istio-capture/testdata}
[[ -d $testdata ]] && golden_args=(--check-goldens "$testdata")

# The driver bounds every loop itself; the outer timeout is the last resort.
timeout --kill-after=15 2400 python3 "$here/bench.py" \
    --sluice "$sluice_init" --work "$work" --prefix "$prefix" --connbench "$work/connbench" \
    "${golden_args[@]}" "$@" &
driver_pid=$!
wait "$driver_pid"
