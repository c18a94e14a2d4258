import Capture
import Glibc
import Netfilter
import PodLab
import Testing

/// The lab itself, before any capture rules: the topology routes, the probes report honestly, and a
/// hand-written nft ruleset shows that `SO_ORIGINAL_DST` and the socket-owner switch work.
@Suite("Pod lab")
struct PodLabTests {
    @Test func probesReachThePeerAndThePodWithoutRules() throws {
        try requireRoot()
        let lab = try PodLab()
        defer { lab.tearDown() }

        #expect(lab.connect(as: .app, to: "198.51.100.1:80").landing == .direct(.peer, "198.51.100.1:80"))
        #expect(lab.connect(as: .proxy, to: "203.0.113.1:443").landing == .direct(.peer, "203.0.113.1:443"))
        #expect(lab.connect(as: .app, to: "[2001:db8:2::1]:80").landing == .direct(.peer, "[2001:db8:2::1]:80"))
        #expect(lab.connect(from: .peer, to: "192.0.2.2:8080").landing == .direct(.pod, "192.0.2.2:8080"))
        #expect(lab.connect(from: .peer, to: "[2001:db8:1::2]:15021").landing == .direct(.pod, "[2001:db8:1::2]:15021"))
        #expect(lab.connect(as: .app, to: "127.0.0.1:8080").landing == .direct(.pod, "127.0.0.1:8080"))
        #expect(lab.sendDatagram(as: .app, to: "203.0.113.1:53").landing == .direct(.peer, "203.0.113.1:53"))
        #expect(lab.sendDatagram(as: .app, to: "[2001:db8:2::1]:5000").landing == .direct(.peer, "[2001:db8:2::1]:5000"))

        let arrival = try #require(lab.connect(as: .app, to: "198.51.100.1:80").arrival)
        #expect(arrival.remote.address == PodLab.podIPv4)

        guard case .failed = lab.connect(as: .app, to: "198.51.100.1:9").landing else {
            Issue.record("a port nobody serves must fail, not land somewhere")
            return
        }
    }

    @Test func tearDownRemovesBothNamespaces() throws {
        try requireRoot()
        let lab = try PodLab()
        let names = [lab.podNamespaceName, lab.peerNamespaceName]
        for name in names { #expect(access("/run/netns/\(name)", F_OK) == 0) }
        lab.tearDown()
        lab.tearDown()
        for name in names { #expect(access("/run/netns/\(name)", F_OK) != 0) }
    }

    /// A minimal ruleset of our own (not sluice-init's): it redirects only UID 1000's port-80 traffic,
    /// so it checks the probe's SO_ORIGINAL_DST report and the per-thread setfsuid/setfsgid switch.
    @Test func probesReportOriginalDestinationAndSocketOwner() throws {
        try requireRoot()
        let lab = try PodLab()
        defer { lab.tearDown() }
        let rules = """
            table inet lab-probe-check {
                chain output {
                    type nat hook output priority -100; policy accept;
                    meta skuid 1000 tcp dport 80 redirect to :15001
                    meta skgid 2000 tcp dport 80 redirect to :15006
                    meta skuid 1000 udp dport 53 redirect to :15053
                }
            }
            """
        try lab.loadRuleset(rules)

        #expect(lab.connect(as: .app, to: "198.51.100.1:80").landing == .proxyOutbound(originalDestination: "198.51.100.1:80"))
        #expect(lab.connect(as: .app, to: "[2001:db8:2::1]:80").landing
            == .proxyOutbound(originalDestination: "[2001:db8:2::1]:80"))
        #expect(lab.connect(as: SocketOwner(uid: 3000, gid: 2000), to: "203.0.113.1:80").landing
            == .proxyInbound(originalDestination: "203.0.113.1:80"))
        #expect(lab.connect(as: .proxy, to: "198.51.100.1:80").landing == .direct(.peer, "198.51.100.1:80"))
        #expect(lab.connect(to: "198.51.100.1:80").landing == .direct(.peer, "198.51.100.1:80"))
        #expect(lab.sendDatagram(as: .app, to: "203.0.113.1:53").landing == .dnsProxy)
        #expect(lab.sendDatagram(as: .app, to: "[2001:db8:2::1]:53").landing == .dnsProxy)
        #expect(lab.sendDatagram(as: .proxy, to: "203.0.113.1:53").landing == .direct(.peer, "203.0.113.1:53"))

        let outbound = lab.podServer.arrivals.filter { $0.role == .outboundProxy }
        #expect(outbound.count == 2)
        #expect(outbound.first?.local == "127.0.0.1:15001")
    }

    @Test func runLeavesTheCallingThreadWhereItWas() throws {
        try requireRoot()
        let lab = try PodLab()
        defer { lab.tearDown() }
        func currentNamespace() -> String {
            var buffer = [CChar](repeating: 0, count: 64)
            let length = readlink("/proc/thread-self/ns/net", &buffer, buffer.count - 1)
            return String(decoding: buffer[0..<max(0, length)].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        }
        let here = currentNamespace()
        let there = try lab.pod.run { currentNamespace() }
        #expect(there != here)
        #expect(try lab.pod.run { currentNamespace() } == there)
        #expect(try lab.peer.run { currentNamespace() } != there)
        #expect(currentNamespace() == here)
        #expect(throws: SystemCallError.self) { try NetworkNamespace.open(named: "sluice-lab-no-such-namespace") }
    }

    @Test func routeNetlinkErrorsNameTheCall() throws {
        try requireRoot()
        let lab = try PodLab()
        defer { lab.tearDown() }
        try lab.pod.run {
            let netlink = try RouteNetlink()
            #expect(try netlink.interfaceIndex(named: "lo") == 1)
            #expect(throws: SystemCallError(call: "RTM_GETLINK dev nosuch0", errno: ENODEV)) {
                try netlink.interfaceIndex(named: "nosuch0")
            }
            #expect(throws: SystemCallError(call: "RTM_NEWADDR 192.0.2.2/24 dev eth0", errno: EEXIST)) {
                try netlink.addAddress(PodLab.podIPv4, prefixLength: 24, to: "eth0")
            }
            // sluice-init's ::6 on lo: idempotent.
            try RouteNetlink.ensureAddress(IPAddress("::6")!, prefixLength: 128, on: "lo")
            try RouteNetlink.ensureAddress(IPAddress("::6")!, prefixLength: 128, on: "lo")
        }
        let addresses = try lab.ip(["-6", "addr", "show", "dev", "lo"])
        #expect(addresses.contains("inet6 ::6/128"))
    }
}
