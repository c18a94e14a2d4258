#!/usr/bin/env bash
# pilot-agent benchmarks: exec to readiness (median of 20 fresh starts) and resident memory after a
# minute idle. Runs in network namespaces it creates (sluiceagentbench-<pid>-N) and removes.
#
#   swift build -c release --static-swift-stdlib --product pilot-agent
#   swift build -c release --static-swift-stdlib --product sluice-test-dataplane
#   sudo Benchmarks/agent.sh [--runs 20] [--idle-seconds 60]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$here")"
if [[ $(id -u) -ne 0 ]]; then
    echo "agent.sh: must run as root (it creates network namespaces; the agent switches to 1337 itself)" >&2
    exit 1
fi
# The data plane the agent starts: sluice-proxy when it is built, else the stand-in admin-only data plane.
dataplane=.build/release/sluice-test-dataplane
[[ -x .build/release/sluice-proxy ]] && dataplane=.build/release/sluice-proxy
exec python3 "$here/agent_bench.py" --dataplane "$dataplane" "$@"
