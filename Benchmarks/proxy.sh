#!/usr/bin/env bash
# Data-plane benchmark: small HTTP requests at fixed rates, max requests/s and a bulk stream between two
# pods, (a) direct, (b) through sluice-init's redirect + sluice-proxy in both pods (started by
# pilot-agent), (c) through the same redirect + socat. Prints one table with the issue's targets.
# Everything runs in network namespaces this script creates (named sluiceproxybench-<pid>-*) and removes.
#
#   sudo Benchmarks/proxy.sh                     # full run (~3 minutes on 2 cores, plus builds)
#   sudo Benchmarks/proxy.sh --rates 1000,5000,10000 --seconds 20 --rounds 3
#   sudo SLUICE_PROXY=path/to/sluice-proxy Benchmarks/proxy.sh
#   sudo Benchmarks/proxy.sh --selftest          # only the load generator's self-test
#   Benchmarks/proxy.sh --help                   # every option of the driver (proxy_bench.py)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(dirname "$here")
cd "$root"
export PATH=/opt/swift/usr/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [[ ${1:-} == --help || ${1:-} == -h ]]; then
    exec python3 "$here/proxy_bench.py" --work /nonexistent --prefix x --httpload x --help
fi
if [[ $(id -u) -ne 0 ]]; then
    echo "proxy.sh: must run as root (it creates network namespaces, applies capture rules, starts pilot-agent as root)" >&2
    exit 1
fi

# Only the benchmark needs these: socat for case (c), gcc for httpload.c, python3 for the driver.
packages=()
command -v socat >/dev/null || packages+=(socat)
command -v gcc >/dev/null || packages+=(gcc)
command -v python3 >/dev/null || packages+=(python3)
if ((${#packages[@]})); then
    echo "proxy.sh: installing ${packages[*]} with apt-get"
    apt-get update
    DEBIAN_FRONTEND=noninteractive apt-get install -y "${packages[@]}"
fi
for tool in ip setpriv gcc python3 socat; do
    command -v "$tool" >/dev/null || { echo "proxy.sh: $tool is required" >&2; exit 1; }
done

# The binaries under test. A default path that is missing is built (release, static Swift stdlib, as
# the other benchmarks measure); NO_BUILD=1 or an explicit path never builds.
sluice_init=${SLUICE_INIT:-.build/release/sluice-init}
pilot_agent=${PILOT_AGENT:-.build/release/pilot-agent}
sluice_proxy=${SLUICE_PROXY:-.build/release/sluice-proxy}
build() {  # build PRODUCT PATH EXPLICIT -> 0 if PATH is (now) executable
    local product=$1 path=$2 explicit=$3
    [[ -x $path ]] && return 0
    if [[ -n $explicit || -n ${NO_BUILD:-} ]]; then
        return 1
    fi
    if ! command -v swift >/dev/null; then
        echo "proxy.sh: $path is missing and swift is not on PATH to build it" >&2
        return 1
    fi
    echo "proxy.sh: building $product (swift build -c release --static-swift-stdlib --product $product)"
    swift build -c release --static-swift-stdlib --product "$product" >&2 || return 1
    [[ -x $path ]]
}
if ! build sluice-init "$sluice_init" "${SLUICE_INIT:-}"; then
    echo "proxy.sh: $sluice_init is not built; cases (b) and (c) need it (swift build -c release --static-swift-stdlib --product sluice-init)" >&2
    exit 1
fi
skip_b=
if ! build pilot-agent "$pilot_agent" "${PILOT_AGENT:-}"; then
    skip_b="pilot-agent is missing at $pilot_agent (swift build -c release --static-swift-stdlib --product pilot-agent)"
elif ! build sluice-proxy "$sluice_proxy" "${SLUICE_PROXY:-}"; then
    skip_b="sluice-proxy is missing at $sluice_proxy (swift build -c release --static-swift-stdlib --product sluice-proxy, or SLUICE_PROXY=path)"
fi
[[ -z $skip_b ]] || echo "proxy.sh: SKIPPING case (b): $skip_b" >&2

work=$(mktemp -d /tmp/sluice-proxy-bench.XXXXXX)
# The agents' root directories live here and the agents switch to uid 1337.
chmod 755 "$work"
prefix="sluiceproxybench-$$"
driver_pid=

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n $driver_pid ]] && kill -0 "$driver_pid" 2>/dev/null; then
        kill "$driver_pid" 2>/dev/null || true
        wait "$driver_pid" 2>/dev/null || true
    fi
    local ns pid
    for ns in $(ip netns list | awk '{print $1}' | grep "^${prefix}-" || true); do
        # Whatever still runs in our namespaces was started by this run: end it by pid.
        for pid in $(ip netns pids "$ns" 2>/dev/null || true); do
            kill -KILL "$pid" 2>/dev/null || true
        done
        ip netns del "$ns" 2>/dev/null || true
    done
    [[ -z $skip_b ]] || echo "proxy.sh: case (b) was skipped: $skip_b" >&2
    if [[ -n ${KEEP_WORK:-} ]]; then
        echo "proxy.sh: logs kept in $work"
    else
        rm -rf "$work"
    fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

gcc -O2 -Wall -o "$work/httpload" "$here/httpload.c" -lpthread

# The driver bounds every load and wait itself; the outer timeout is the last resort.
timeout --kill-after=15 3600 python3 "$here/proxy_bench.py" \
    --work "$work" --prefix "$prefix" --httpload "$work/httpload" --socat "$(command -v socat)" \
    --sluice-init "$sluice_init" --agent "$pilot_agent" --proxy "$sluice_proxy" --skip-b "$skip_b" "$@" &
driver_pid=$!
wait "$driver_pid"
