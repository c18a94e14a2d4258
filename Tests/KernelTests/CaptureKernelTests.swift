import Capture
import Glibc
import Netfilter
import PodLab
import Testing

/// `sluice-init` (the built binary) programs a pod's namespace, then real connections show where
/// packets land, case by case against RULES.md §3. Every test builds its own lab.
@Suite("sluice-init in a pod namespace")
struct CaptureKernelTests {
    // MARK: Outbound

    @Test("O1: app → external lands on 15001 with the original destination", arguments: Family.allCases)
    func appOutboundIsCaptured(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(as: .app, to: family.external(80)).landing
            == .proxyOutbound(originalDestination: family.external(80)))
        #expect(pod.lab.connect(as: .app, to: family.otherExternal(443)).landing
            == .proxyOutbound(originalDestination: family.otherExternal(443)))
    }

    @Test("O8: the proxy UID (and GID) go direct", arguments: Family.allCases)
    func proxyGoesDirect(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(as: .proxy, to: family.external(80)).landing == .direct(.peer, family.external(80)))
        // Istio writes a GID triplet too (-g defaults to -u): GID 1337 alone is enough.
        #expect(pod.lab.connect(as: SocketOwner(uid: 1000, gid: 1337), to: family.external(80)).landing
            == .direct(.peer, family.external(80)))
    }

    @Test("O13: app → loopback goes direct", arguments: Family.allCases)
    func appToLoopbackGoesDirect(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(as: .app, to: family.loopback(8080)).landing == .direct(.pod, family.loopback(8080)))
        // App to its own pod IP leaves via lo too and is not captured.
        #expect(pod.lab.connect(as: .app, to: family.pod(8080)).landing == .direct(.pod, family.pod(8080)))
    }

    @Test("O9: proxy → own pod IP (hairpin) lands on 15006", arguments: Family.allCases)
    func proxyHairpinIsCapturedInbound(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(as: .proxy, to: family.pod(8080)).landing
            == .proxyInbound(originalDestination: family.pod(8080)))
        // O11/O12: loopback and the tunnel port stay direct for the proxy.
        #expect(pod.lab.connect(as: .proxy, to: family.loopback(8080)).landing == .direct(.pod, family.loopback(8080)))
        #expect(pod.lab.connect(as: .proxy, to: family.pod(15008)).landing == .direct(.pod, family.pod(15008)))
    }

    @Test("O10: the inbound passthrough source (127.0.0.6 / ::6) is not captured", arguments: Family.allCases)
    func passthroughSourceIsNotCaptured(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(as: .proxy, to: family.pod(8080), source: family.passthroughSource).landing
            == .direct(.pod, family.pod(8080)))
    }

    @Test("O3: a -x CIDR goes direct, others are still captured", arguments: Family.allCases)
    func excludedCIDRGoesDirect(family: Family) throws {
        let pod = try CapturedPod(family, replacing: ["-x", family.excludedCIDR])
        #expect(pod.lab.connect(as: .app, to: family.insideExcludedCIDR(80)).landing
            == .direct(.peer, family.insideExcludedCIDR(80)))
        #expect(pod.lab.connect(as: .app, to: family.outsideExcludedCIDR(80)).landing
            == .proxyOutbound(originalDestination: family.outsideExcludedCIDR(80)))
    }

    @Test("O4: a -o port goes direct (TCP and UDP), others are still captured", arguments: Family.allCases)
    func excludedOutboundPortGoesDirect(family: Family) throws {
        let pod = try CapturedPod(family, extra: ["-o", "8000,5000"])
        #expect(pod.lab.connect(as: .app, to: family.external(8000)).landing == .direct(.peer, family.external(8000)))
        #expect(pod.lab.sendDatagram(as: .app, to: family.external(5000)).landing == .direct(.peer, family.external(5000)))
        #expect(pod.lab.connect(as: .app, to: family.external(80)).landing
            == .proxyOutbound(originalDestination: family.external(80)))
    }

    @Test("O7: UDP other than DNS goes direct", arguments: Family.allCases)
    func udpGoesDirect(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.sendDatagram(as: .app, to: family.external(5000)).landing == .direct(.peer, family.external(5000)))
        // Without --redirect-dns, port 53 is just UDP.
        #expect(pod.lab.sendDatagram(as: .app, to: family.external(53)).landing == .direct(.peer, family.external(53)))
    }

    // MARK: Inbound

    @Test("I1: peer → pod app port lands on 15006", arguments: Family.allCases)
    func inboundIsCaptured(family: Family) throws {
        let pod = try CapturedPod(family)
        #expect(pod.lab.connect(from: .peer, to: family.pod(8080)).landing
            == .proxyInbound(originalDestination: family.pod(8080)))
    }

    @Test("I2/I3: peer → pod 15021 (-d) and 15008 (tunnel) go direct", arguments: Family.allCases)
    func inboundExclusionsGoDirect(family: Family) throws {
        let pod = try CapturedPod(family)
        for port: UInt16 in [15021, 15090, 15020, 15008] {
            #expect(pod.lab.connect(from: .peer, to: family.pod(port)).landing == .direct(.pod, family.pod(port)))
        }
    }

    // MARK: DNS

    @Test("D1-D3, D6: with --redirect-dns, app DNS to the resolv.conf server lands on 15053; the proxy's goes direct",
          arguments: Family.allCases)
    func dnsCapture(family: Family) throws {
        let resolvConf = try TemporaryFile(contents: "search example.test\nnameserver \(family.dnsServer)\noptions ndots:5\n")
        defer { resolvConf.remove() }
        let pod = try CapturedPod(family, extra: ["--redirect-dns", "--resolv-conf", resolvConf.path])
        let server = Endpoint(family.dnsServer, 53)
        #expect(pod.lab.sendDatagram(as: .app, to: server).landing == .dnsProxy)
        #expect(pod.lab.connect(as: .app, to: server).landing == .dnsProxy)
        #expect(pod.lab.sendDatagram(as: .proxy, to: server).landing == .direct(.peer, server))
        #expect(pod.lab.connect(as: .proxy, to: server).landing == .direct(.peer, server))
        // D6: port 53 elsewhere is not the configured server: UDP direct (TCP is ordinary outbound).
        #expect(pod.lab.sendDatagram(as: .app, to: family.external(53)).landing == .direct(.peer, family.external(53)))
        // The app is still captured after DNS (a fresh query, fresh conntrack entry).
        #expect(pod.lab.sendDatagram(as: .app, to: server).landing == .dnsProxy)
    }

    // MARK: Lifecycle

    @Test("an identical re-run changes nothing (handles and counters included)", arguments: Family.allCases)
    func identicalRerunIsNoOp(family: Family) throws {
        let pod = try CapturedPod(family)
        // Traffic first, so counters are non-zero and a re-created table would show.
        #expect(pod.lab.connect(as: .app, to: family.external(80)).landing
            == .proxyOutbound(originalDestination: family.external(80)))
        let before = try pod.lab.listRuleset(handles: true)
        #expect(before.contains("istio-proxy-nat"))
        let rerun = try pod.lab.sluiceInit(pod.arguments)
        #expect(rerun.status == 0, "\(rerun)")
        #expect(try pod.lab.listRuleset(handles: true) == before)
    }

    @Test("--cleanup-only removes every istio-proxy table and keeps a foreign one")
    func cleanupOnly() throws {
        let pod = try CapturedPod(.ipv4, extra: ["--redirect-dns", "--capture-all-dns"])
        try pod.lab.loadRuleset("table inet foreign {\n chain output {\n type filter hook output priority 0; policy accept;\n counter\n }\n}\n")
        #expect(try pod.lab.listRuleset(handles: true).contains("istio-proxy-raw"))
        let cleanup = try pod.lab.sluiceInit(pod.arguments + ["--cleanup-only"])
        #expect(cleanup.status == 0, "\(cleanup)")
        let after = try pod.lab.listRuleset(handles: true)
        #expect(!after.contains("istio-proxy"), "left behind:\n\(after)")
        #expect(after.contains("table inet foreign"))
        #expect(pod.lab.connect(as: .app, to: Family.ipv4.external(80)).landing == .direct(.peer, Family.ipv4.external(80)))
        // Nothing left to clean: still success.
        #expect(try pod.lab.sluiceInit(pod.arguments + ["--cleanup-only"]).status == 0)
    }

    @Test("bad input exits 2 with one line naming it, and the ruleset stays byte-for-byte the same",
          arguments: BadInput.all)
    func badInputChangesNothing(bad: BadInput) throws {
        let pod = try CapturedPod(.ipv4)
        try pod.lab.loadRuleset("table ip foreign {\n chain c {\n counter\n }\n}\n")
        let before = try pod.lab.listRuleset(handles: true)
        let result = try pod.lab.sluiceInit(bad.arguments)
        #expect(result.status == 2, "\(result)")
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "want one line on stderr, got:\n\(result.standardError)")
        #expect(result.standardError.contains(bad.named), "the message must name \(bad.named): \(result.standardError)")
        #expect(try pod.lab.listRuleset(handles: true) == before)
    }

    @Test("without CAP_NET_ADMIN: exit 2 naming the capability to add, ruleset unchanged")
    func missingNetAdminChangesNothing() throws {
        let pod = try CapturedPod(.ipv4)
        let before = try pod.lab.listRuleset(handles: true)
        // Root without NET_ADMIN in its bounding set: what an init container gets when the pod spec
        // forgets `capabilities.add: [NET_ADMIN]`.
        let result = try pod.lab.run(try PodLab.systemExecutable("setpriv"),
                                     ["--bounding-set", "-net_admin", try PodLab.sluiceInitExecutable()]
                                         + CapturedPod.replacing(["-x", "203.0.113.0/24"]))
        #expect(result.status == 2, "\(result)")
        let lines = result.standardError.split(separator: "\n", omittingEmptySubsequences: true)
        #expect(lines.count == 1, "want one line on stderr, got:\n\(result.standardError)")
        #expect(result.standardError.contains("NET_ADMIN"))
        #expect(result.standardError.contains("securityContext"))
        #expect(try pod.lab.listRuleset(handles: true) == before)
    }
}

/// One invalid command line and the text its error must contain.
struct BadInput: Sendable, CustomTestStringConvertible {
    var arguments: [String]
    var named: String
    var testDescription: String

    static let all: [BadInput] = [
        BadInput(arguments: CaptureConfig.injectorDefaultArguments + ["--no-such-flag"], named: "no-such-flag",
                 testDescription: "unknown flag"),
        BadInput(arguments: CapturedPod.replacing(["-x", "10.0.0.0/33"]), named: "10.0.0.0/33",
                 testDescription: "bad CIDR"),
        BadInput(arguments: CapturedPod.replacing(["-d", "15090,99999"]), named: "99999", testDescription: "bad port"),
        BadInput(arguments: CapturedPod.replacing(["-u", "4294967295"]), named: "4294967295", testDescription: "bad UID"),
        BadInput(arguments: CaptureConfig.injectorDefaultArguments + ["-c", "averyverylonginterface0"],
                 named: "averyverylonginterface0", testDescription: "bad interface name"),
        BadInput(arguments: CapturedPod.replacing(["-x", "*"]), named: "*", testDescription: "* in -x"),
    ]
}

/// The pod side of the lab after `sluice-init` ran in it successfully. "Nothing changed" is judged on
/// `lab.listRuleset(handles: true)`: handles and counters included, so a re-created table would show.
struct CapturedPod {
    /// The injector default with one flag's value replaced (`["-x", "10.0.0.0/8"]`).
    static func replacing(_ flagAndValue: [String]) -> [String] {
        var arguments = CaptureConfig.injectorDefaultArguments
        let index = arguments.firstIndex(of: flagAndValue[0])!
        arguments[index + 1] = flagAndValue[1]
        return arguments
    }

    let lab: PodLab
    let arguments: [String]

    init(_ family: Family, replacing: [String]? = nil, extra: [String] = []) throws {
        try requireRoot()
        lab = try PodLab()
        arguments = (replacing.map(Self.replacing) ?? CaptureConfig.injectorDefaultArguments) + family.arguments + extra
        let result = try lab.sluiceInit(arguments)
        try #require(result.status == 0, "sluice-init \(arguments) failed: \(result)")
    }
}

/// The lab's addresses per family. IPv6 runs pass `--dual-stack`: the pod's first address is IPv4, and
/// Istio enables its IPv6 rules (and `::6` on lo) only for IPv6 pods or with dual-stack.
enum Family: String, CaseIterable, Sendable, CustomTestStringConvertible {
    case ipv4
    case ipv6

    var testDescription: String { rawValue }

    var arguments: [String] { self == .ipv4 ? [] : ["--dual-stack"] }

    var ipFamily: IPFamily { self == .ipv4 ? .ipv4 : .ipv6 }

    func external(_ port: UInt16) -> Endpoint { Endpoint(PodLab.externalAddresses(ipFamily)[0], port) }

    /// Another captured destination: 203.0.113.1, or the peer's veth address for IPv6.
    func otherExternal(_ port: UInt16) -> Endpoint {
        Endpoint(self == .ipv4 ? PodLab.externalIPv4[1] : PodLab.peerIPv6, port)
    }

    func pod(_ port: UInt16) -> Endpoint { Endpoint(PodLab.podAddress(ipFamily), port) }

    func loopback(_ port: UInt16) -> Endpoint { Endpoint(PodLab.loopback(ipFamily), port) }

    var passthroughSource: IPAddress { IPAddress(self == .ipv4 ? "127.0.0.6" : "::6")! }

    var excludedCIDR: String { self == .ipv4 ? "203.0.113.0/24" : "2001:db8:2::/64" }
    func insideExcludedCIDR(_ port: UInt16) -> Endpoint { self == .ipv4 ? otherExternal(port) : external(port) }
    func outsideExcludedCIDR(_ port: UInt16) -> Endpoint { self == .ipv4 ? external(port) : otherExternal(port) }

    /// Not `external`, so "port 53 elsewhere" has somewhere to go.
    var dnsServer: IPAddress { self == .ipv4 ? PodLab.externalIPv4[1] : PodLab.peerIPv6 }
}
