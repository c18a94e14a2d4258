import Capture
import Glibc
import Netfilter
import PodLab
@testable import SluiceInit
import Testing

/// `sluice-init --run-validation` (the built binary) in a pod namespace whose proxy has not started
/// yet, as in an init container: Istio's probe passes only when capture works, and Sluice's read-back
/// catches rules another agent changed.
@Suite("sluice-init --run-validation")
struct ValidationKernelTests {
    @Test("injector default + --run-validation passes as root (read-back and probe)", arguments: Family.allCases)
    func validationPasses(family: Family) throws {
        let pod = try UnstartedPod(family)
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation"])
        #expect(result.status == 0, "\(result)")
        let loopback = family == .ipv4 ? "127.0.0.1" : "[::1]"
        let probe = family == .ipv4 ? "127.0.0.6:15002" : "[::6]:15002"
        #expect(result.standardOutput.contains("read back 1 tables"), "\(result)")
        #expect(result.standardOutput.contains(
            "validation passed: a probe from \(loopback):0 as uid 1337 gid 1337 to \(probe) was redirected to "
                + "\(loopback):15006 with original port 15002"), "\(result)")
        // Sockets and threads are gone with the process; the rules stay in place for the pod.
        #expect(try pod.lab.listRuleset(counters: false).contains("istio-proxy-nat"))
    }

    @Test("--run-validation --skip-rule-apply without rules: 126, connection refused, within the timeout")
    func validationWithoutRulesFails() throws {
        let pod = try UnstartedPod(.ipv4, apply: false)
        let start = ContinuousClock.now
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation", "--skip-rule-apply", "--probe-timeout", "2s"])
        let elapsed = ContinuousClock.now - start
        #expect(result.status == 126, "\(result)")
        #expect(result.standardError.hasPrefix(
            "sluice-init: nftables validation failed; workload is not ready for Istio: validation timeout after 2s: "),
            "\(result)")
        #expect(result.standardError.contains("dialing 127.0.0.6:15002 from 127.0.0.1:0 as uid 1337 gid 1337 failed "
                                              + "with connection refused"), "\(result)")
        #expect(result.standardError.contains("When using Istio CNI, this can occur if a pod is scheduled before the node is ready."))
        #expect(result.standardError.contains("allowing nftables rules to be established"))
        // Istio's cadence: a dial per second until the timeout, then out.
        #expect(elapsed >= .seconds(2) && elapsed < .seconds(5), "took \(elapsed)")
        #expect(result.standardError.contains("(3 of 3 attempts)") || result.standardError.contains("(2 of 2 attempts)"),
                "\(result)")
        #expect(try pod.lab.listRuleset(counters: false).isEmpty, "--skip-rule-apply must not program anything")
    }

    @Test("CNI mode: --skip-rule-apply validates rules programmed earlier", arguments: Family.allCases)
    func validationOnlyPassesWithRules(family: Family) throws {
        let pod = try UnstartedPod(family)
        let before = try pod.lab.listRuleset(handles: true, counters: false)
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation", "--skip-rule-apply", "--probe-timeout", "2s"])
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("validation passed"))
        #expect(!result.standardOutput.contains("read back"), "no read-back of someone else's rules")
        // Only the counters moved (the probe went through the rules): same rules, same handles.
        #expect(try pod.lab.listRuleset(handles: true, counters: false) == before)
    }

    @Test("a foreign rule inserted ahead of the hairpin: a validate-only run exits 126, connection refused")
    func foreignRuleAheadFailsTheProbe() throws {
        let pod = try UnstartedPod(.ipv4)
        try pod.lab.loadRuleset("insert rule inet istio-proxy-nat istio-output tcp dport 15002 return\n")
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation", "--skip-rule-apply", "--probe-timeout", "2s"])
        #expect(result.status == 126, "\(result)")
        #expect(result.standardError.contains("failed with connection refused"), "\(result)")
        #expect(result.standardError.contains("nothing redirected it"), "\(result)")
    }

    @Test("another agent redirects the probe elsewhere first: 126, redirected to the wrong port")
    func probeRedirectedElsewhereFails() throws {
        let pod = try UnstartedPod(.ipv4)
        // Someone listens where the foreign rule sends the probe, so the dial itself succeeds.
        let elsewhere = try ProbeServer(side: .pod, namespace: pod.lab.pod,
                                        listeners: [Listener(.tcp, Endpoint(IPAddress("127.0.0.1")!, 8080), .app)])
        defer { elsewhere.stop() }
        try pod.lab.loadRuleset("""
            table inet foreign {
              chain output {
                type nat hook output priority -150; policy accept;
                tcp dport 15002 redirect to :8080
              }
            }

            """)
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation", "--skip-rule-apply", "--probe-timeout", "2s"])
        #expect(result.status == 126, "\(result)")
        #expect(result.standardError.contains("dials to 127.0.0.6:15002 connected but never reached 127.0.0.1:15001 and "
                                              + "127.0.0.1:15006: the probe was redirected to the wrong port"), "\(result)")
        #expect(!elsewhere.arrivals.isEmpty)
    }

    @Test("15001 and 15006 already taken (the proxy runs): 126, no listener available, at once")
    func noListenerAvailable() throws {
        try requireRoot()
        // The lab's own proxy listeners hold both ports, as a started sidecar would.
        let lab = try PodLab()
        let start = ContinuousClock.now
        let result = try lab.sluiceInit(CaptureConfig.injectorDefaultArguments + ["--run-validation"])
        #expect(result.status == 126, "\(result)")
        #expect(result.standardError.contains("no listener available: 127.0.0.1:15001 (Address already in use), "
                                              + "127.0.0.1:15006 (Address already in use)"), "\(result)")
        #expect(ContinuousClock.now - start < .seconds(4), "no waiting for the probe timeout")
    }

    @Test("the kernel's rules differ from the programmed ones (changed by another agent): 126 naming the rule")
    func readbackNamesTheChangedRule() throws {
        let pod = try UnstartedPod(.ipv4)
        try pod.replaceHairpinRuleKeepingItsComment()
        // The check sluice-init runs right after its transaction, against a kernel another agent changed.
        let resolved = try CaptureConfig.resolve(
            CaptureSettings.parse(arguments: pod.arguments, environment: [:]), facts: LiveSystemFacts())
        let ruleset = RulesetBuilder.build(resolved.config).stamped()
        var streams = StandardStreams(captured: ("", ""))
        let status = try pod.lab.pod.run { Validation.afterApply(ruleset, resolved, output: &streams) }
        let error = streams.captured!.err
        #expect(status == 126)
        #expect(error.hasPrefix("sluice-init: nftables validation failed; workload is not ready for Istio: "
                                + "the kernel does not hold the rules sluice-init programmed: chain "
                                + "istio-output of inet istio-proxy-nat: rule 2 is `"), "\(error)")
        #expect(error.contains("[ immediate reg 0 return ] comment \"\(UnstartedPod.hairpinComment)\"` in the kernel, expected `"))
        #expect(error.contains("[ immediate reg 0 jump -> istio-in-redirect ] comment \"\(UnstartedPod.hairpinComment)\"`"))
        #expect(error.contains("Another agent"))
        #expect(error.split(separator: "\n").count == 1, "one line: \(error)")
    }

    @Test("a re-run over drifted rules rebuilds them (as Istio's flush does) and then validates")
    func rerunOverwritesDrift() throws {
        let pod = try UnstartedPod(.ipv4)
        let programmed = try pod.lab.listRuleset(counters: false)
        try pod.replaceHairpinRuleKeepingItsComment()
        #expect(try pod.lab.listRuleset(counters: false) != programmed)
        let result = try pod.lab.sluiceInit(pod.arguments + ["--run-validation", "--probe-timeout", "2s"])
        #expect(result.status == 0, "\(result)")
        #expect(result.standardOutput.contains("programmed inet istio-proxy-nat"), "\(result)")
        #expect(try pod.lab.listRuleset(counters: false) == programmed)
    }
}

/// The read-back and probe decisions that need no namespace.
@Suite struct ValidationProbeTests {
    @Test func rootProbesAsTheFirstProxyIdentity() {
        #expect(ValidationProbe.probeOwner(effectiveUID: 0, proxyUIDs: [1337, 1338], proxyGIDs: [2000])
            == SocketOwner(uid: 1337, gid: 2000))
        #expect(ValidationProbe.probeOwner(effectiveUID: 0, proxyUIDs: [1337], proxyGIDs: []) == SocketOwner(uid: 1337, gid: 1337))
        // The proxy itself (Istio's validation container) and anyone else probe as themselves.
        #expect(ValidationProbe.probeOwner(effectiveUID: 1337, proxyUIDs: [1337], proxyGIDs: [1337]) == nil)
        #expect(ValidationProbe.probeOwner(effectiveUID: 0, proxyUIDs: [], proxyGIDs: []) == nil)
    }

    @Test func familyAndPortsFollowIstio() {
        var config = CaptureConfig.injectorDefault
        config.proxyPort = 15101
        config.inboundCapturePort = 15106
        var options = RunOptions()
        options.probePort = 15102
        options.probeTimeout = .seconds(3)
        var probe = ValidationProbe(config: config, options: options, effectiveUID: 1337)
        #expect(probe.family == .ipv4 && probe.listenPorts == [15101, 15106] && probe.probePort == 15102)
        #expect(probe.probeTarget == "127.0.0.6:15102" && probe.listenAddress.description == "127.0.0.1")
        #expect(probe.timeout == .seconds(3) && probe.probeOwner == nil)
        options.hostAddress = IPAddress("2001:db8:1::2")
        probe = ValidationProbe(config: config, options: options, effectiveUID: 1337)
        #expect(probe.family == .ipv6 && probe.probeTarget == "[::6]:15102" && probe.listenAddress.description == "::1")
    }
}

/// A pod whose proxy has not started (the init container's view): the lab's own proxy listeners on
/// 15001/15006 are stopped so the validator can listen there, and sluice-init has programmed the pod
/// unless told not to. The IPv6 variant removes the pod's IPv4 address, so IPv6 is its first address
/// and the validator uses ::1 and ::6. Rulesets are compared without counter values
/// (`counters: false`): the probe itself moves them.
struct UnstartedPod {
    let lab: PodLab
    let arguments: [String]

    init(_ family: Family, apply: Bool = true) throws {
        try requireRoot()
        lab = try PodLab()
        lab.podServer.stop()
        if family == .ipv6 {
            try lab.ip(["-4", "address", "flush", "dev", PodLab.podInterface])
        }
        arguments = CaptureConfig.injectorDefaultArguments
        if apply {
            let result = try lab.sluiceInit(arguments)
            try #require(result.status == 0, "sluice-init \(arguments) failed: \(result)")
        }
    }

    static let hairpinComment = "proxy (uid 1337) calling its own pod IP goes to the inbound listener (hairpin)"

    /// Another agent's edit that a comment-only comparison would miss: same comment, other content.
    func replaceHairpinRuleKeepingItsComment() throws {
        let listing = try PodLab.runTool("nft", ["-a", "list", "chain", "inet", "istio-proxy-nat", "istio-output"], in: lab.pod)
        let handle = try #require(PodLab.ruleHandles(in: listing).first { $0.rule.contains(Self.hairpinComment) }?.handle,
                                  "\(listing)")
        try lab.loadRuleset("replace rule inet istio-proxy-nat istio-output handle \(handle) "
                            + "oifname \"lo\" meta l4proto tcp counter return comment \"\(Self.hairpinComment)\"\n")
    }
}
