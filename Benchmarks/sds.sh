#!/usr/bin/env bash
# SDS benchmarks, in one run:
#  A. exec of pilot-agent (CA_PROVIDER=local) to the first `default` secret on the workload socket,
#     ECDSA and RSA keys, median of N fresh starts, each in its own network namespace and root;
#  B. 1,000 StreamSecrets streams watching `default` over 10 connections: time from the rotation
#     timer firing until the last stream has the new certificate (new key, CSR, signing, 1,000 pushes).
#
#   swift build -c release --static-swift-stdlib --product pilot-agent
#   swift build -c release --static-swift-stdlib --product sluice-test-dataplane
#   swift build -c release --product sluice-sds --product sds-push-bench
#   sudo Benchmarks/sds.sh [--runs 20] [--streams 1000] [--rounds 3]
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cd "$(dirname "$here")"
if [[ $(id -u) -ne 0 ]]; then
    echo "sds.sh: must run as root (it creates network namespaces; the agent switches to 1337 itself)" >&2
    exit 1
fi
exec python3 "$here/sds_bench.py" "$@"
