// sluice-demo: builds a pod and a peer in network namespaces, runs the real `sluice-init` (the binary
// next to this one) inside the pod with the sidecar injector's default flags, sends real connections
// and prints where each one landed. Exit 0 only if every connection landed where Istio's rules say.
import Capture
import Netfilter
import PodLab
#if canImport(Glibc)
import Glibc
#endif

struct Case {
    var label: String
    var expected: Landing
    var probe: (PodLab) -> ProbeResult
}

let cases: [Case] = [
    Case(label: "app (uid 1000) → 198.51.100.1:80",
         expected: .proxyOutbound(originalDestination: "198.51.100.1:80")) { $0.connect(as: .app, to: "198.51.100.1:80") },
    Case(label: "proxy (uid 1337) → 198.51.100.1:80",
         expected: .direct(.peer, "198.51.100.1:80")) { $0.connect(as: .proxy, to: "198.51.100.1:80") },
    Case(label: "peer → pod 192.0.2.2:8080",
         expected: .proxyInbound(originalDestination: "192.0.2.2:8080")) { $0.connect(from: .peer, to: "192.0.2.2:8080") },
    Case(label: "peer → pod 192.0.2.2:15021 (readiness)",
         expected: .direct(.pod, "192.0.2.2:15021")) { $0.connect(from: .peer, to: "192.0.2.2:15021") },
    Case(label: "app (uid 1000) → 127.0.0.1:8080",
         expected: .direct(.pod, "127.0.0.1:8080")) { $0.connect(as: .app, to: "127.0.0.1:8080") },
    Case(label: "app (uid 1000) → [2001:db8:2::1]:80",
         expected: .proxyOutbound(originalDestination: "[2001:db8:2::1]:80")) { $0.connect(as: .app, to: "[2001:db8:2::1]:80") },
]

/// To fd 2 directly: Swift 6 treats C's `stderr` global as shared mutable state.
func printError(_ message: String) {
    let bytes = Array("sluice-demo: \(message)\n".utf8)
    _ = write(2, bytes, bytes.count)
}

func fail(_ message: String) -> Never {
    printError(message)
    exit(1)
}

func indented(_ text: String) -> String {
    text.split(separator: "\n").map { "    \($0)" }.joined(separator: "\n")
}

/// Tables, chains (hooked ones first) and each rule's comment, as the kernel holds them.
func summary(_ snapshot: NftablesSnapshot) -> String {
    if snapshot.tables.isEmpty { return "  (no istio-proxy tables)" }
    var lines: [String] = []
    for table in snapshot.tables {
        lines.append("  table inet \(table.name)" + (table.comment.map { "  (\($0))" } ?? ""))
        let hooked = table.chains.filter { $0.base != nil }
        for chain in hooked + table.chains.filter({ $0.base == nil }) {
            lines.append("    \(chain.name): \(chain.rules.count) rule\(chain.rules.count == 1 ? "" : "s")")
            for rule in chain.rules { lines.append("      - \(rule.comment ?? "(no comment)")") }
        }
    }
    return lines.joined(separator: "\n")
}

guard geteuid() == 0 else { fail("needs root: it creates network namespaces and programs nftables in them") }
// The same lookup as the tests': `$SLUICE_INIT`, or the build directory this executable sits in.
let sluiceInit: String
do {
    sluiceInit = try PodLab.sluiceInitExecutable()
} catch {
    fail("\(error)")
}

let lab: PodLab
do {
    lab = try PodLab(prefix: "sluice-demo")
} catch {
    fail("cannot build the lab: \(error)")
}
print("lab: pod netns \(lab.podNamespaceName) (eth0 192.0.2.2, 2001:db8:1::2), "
    + "peer netns \(lab.peerNamespaceName) (198.51.100.1, 203.0.113.1, 2001:db8:2::1)")

var allLanded = true
do {
    let quoted = CaptureConfig.injectorDefaultArguments.map { $0.isEmpty || $0 == "*" ? "'\($0)'" : $0 }
    print("$ sluice-init \(quoted.joined(separator: " "))")
    let result = try lab.run(sluiceInit, CaptureConfig.injectorDefaultArguments)
    let output = result.standardOutput + result.standardError
    if !output.isEmpty { print(indented(output)) }
    guard result.status == 0 else {
        lab.tearDown()
        fail("sluice-init exited \(result.status)")
    }

    print("connections:")
    for testCase in cases {
        let landing = testCase.probe(lab).landing
        if landing == testCase.expected {
            print("  ✔ \(testCase.label) … landed on \(landing)")
        } else {
            allLanded = false
            print("  ✘ \(testCase.label) … landed on \(landing); Istio's rules say \(testCase.expected)")
        }
    }

    print("ruleset in the pod (read back over netlink):")
    let snapshot = try lab.pod.run { try NftablesReadback().read() }
    print(summary(snapshot))
} catch {
    allLanded = false
    printError("\(error)")
}
lab.tearDown()
print(allLanded ? "every connection landed where Istio's rules say" : "some connections did not land where Istio's rules say")
exit(allLanded ? 0 : 1)
