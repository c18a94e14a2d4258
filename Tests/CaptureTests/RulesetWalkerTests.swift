import Capture
import Testing

/// A pod like the conformance lab's: eth0 with one address per family (and a link-local one listed
/// first, which REDIRECT must skip for a global destination), lo, and a second interface eth1 with
/// IPv4 only.
enum WalkLab {
    static let podIPv4 = ip("192.0.2.2")
    static let podIPv6 = ip("2001:db8:1::2")
    static let eth1IPv4 = ip("198.51.100.74")

    static let environment = WalkEnvironment(interfaceAddresses: [
        "lo": [ip("127.0.0.1"), .ipv6Loopback],
        "eth0": [ip("fe80::2"), podIPv4, podIPv6],
        "eth1": [eth1IPv4],
    ])

    static func podAddress(_ family: IPFamily) -> IPAddress { family == .ipv4 ? podIPv4 : podIPv6 }

    /// A process in the pod as `uid`/`gid`; the source and output interface the kernel's route lookup
    /// would pick (lo for local destinations).
    static func local(_ transport: TransportProtocol, to destination: Endpoint, uid: UInt32 = 1000, gid: UInt32 = 1000,
                      source: IPAddress? = nil, state: ConnectionStates = .new) -> PacketProbe {
        let isLocal = environment.isLocal(destination.address)
        let family = destination.address.family
        let loopbackSource = family == .ipv4 ? ip("127.0.0.1") : .ipv6Loopback
        let defaultSource = destination.address.isLoopback ? loopbackSource : podAddress(family)
        return PacketProbe(transport: transport, source: Endpoint(source ?? defaultSource, 40312),
                           destination: destination,
                           origin: .local(uid: uid, gid: gid, outputInterface: isLocal ? "lo" : "eth0"),
                           connectionState: state)
    }

    /// The peer sending to the pod (or through it) on `interface`.
    static func arriving(_ transport: TransportProtocol, to destination: Endpoint, on interface: String = "eth0",
                         state: ConnectionStates = .new) -> PacketProbe {
        let source = ip(destination.address.family == .ipv4 ? "192.0.2.1" : "2001:db8:1::1")
        return PacketProbe(transport: transport, source: Endpoint(source, 51000), destination: destination,
                           origin: .arriving(inputInterface: interface), connectionState: state)
    }

    static func walk(_ config: CaptureConfig, _ probe: PacketProbe) -> PacketWalk {
        RulesetWalker(ruleset: RulesetBuilder.build(config), environment: environment).walk(probe)
    }

    static func nat(_ chain: String, _ index: Int) -> RuleLocation {
        RuleLocation(table: RulesetBuilder.natTable, chain: chain, index: index)
    }

    static func mangle(_ chain: String, _ index: Int) -> RuleLocation {
        RuleLocation(table: RulesetBuilder.mangleTable, chain: chain, index: index)
    }
}

/// An address literal in a test; a malformed one is a mistake in the test.
private func ip(_ text: String) -> IPAddress {
    guard let address = IPAddress(text) else { preconditionFailure("not an address: \(text)") }
    return address
}

@Suite struct RulesetWalkerTests {
    // MARK: Outbound

    @Test func appTCPToAnExternalAddressIsRedirectedToTheOutboundListener() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "203.0.113.1:80"))
        #expect(walk.fate == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
        #expect(walk.summary == "redirected to 127.0.0.1:15001 by istio-redirect rule 1 "
                + "(original destination 203.0.113.1:80 kept for SO_ORIGINAL_DST)")
        // RULES.md's rendered default: the capture jump is istio-output rule 9.
        #expect(walk.steps.filter(\.matched).map(\.location) == [
            WalkLab.nat("output", 0), WalkLab.nat("istio-output", 8), WalkLab.nat("istio-redirect", 0),
        ])
        // Redirected to 127.0.0.1, the packet comes back in through lo: nothing there in REDIRECT mode.
        #expect(walk.notes.contains { $0.hasPrefix("the packet comes back in through lo") })
    }

    @Test func ipv6IsCapturedByTheFamilyFreeRulesEvenWithIPv6Off() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "[2001:db8:2::1]:80"))
        #expect(walk.fate == .redirected(to: "[::1]:15001", by: WalkLab.nat("istio-redirect", 0)))
    }

    @Test func theProxyUIDIsNeverCaptured() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "203.0.113.1:80", uid: 1337))
        #expect(walk.fate == .leaves("203.0.113.1:80", interface: "eth0"))
        #expect(walk.summary == "not captured: leaves via eth0 to 203.0.113.1:80")
        #expect(walk.steps.last(where: \.matched)?.location == WalkLab.nat("istio-output", 3))
        #expect(walk.notes.contains("the policy accept of istio-proxy-nat/output ended the chain without NAT"))
    }

    @Test func appUDPLeavesBecauseOnlyTCPIsRedirected() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.udp, to: "203.0.113.1:5000"))
        #expect(walk.fate == .leaves("203.0.113.1:5000", interface: "eth0"))
        let redirectRule = walk.steps.first { $0.location == WalkLab.nat("istio-redirect", 0) }
        #expect(redirectRule?.mismatch == "meta l4proto tcp (packet: udp)")
    }

    @Test func anExcludedCIDRLeavesDirectly() {
        var config = CaptureConfig.injectorDefault
        config.outboundExcludedCIDRs = [CIDR("203.0.113.0/24")!]
        let walk = WalkLab.walk(config, WalkLab.local(.tcp, to: "203.0.113.1:80"))
        #expect(walk.fate == .leaves("203.0.113.1:80", interface: "eth0"))
        #expect(walk.steps.last(where: \.matched)?.effect == "return")
        #expect(walk.steps.last(where: \.matched)?.rule.comment == "-x: excluded destinations go direct")
        // Outside the -x set the capture rule still applies, and the set lookup says why it did not match.
        let other = WalkLab.walk(config, WalkLab.local(.tcp, to: "198.51.100.1:80"))
        #expect(other.fate == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
        #expect(other.steps.contains {
            $0.mismatch == "ip daddr @outbound-exclude-ipv4 (packet: 198.51.100.1, not in the set)"
        })
    }

    @Test func includedCIDRsAndPortsDecideOutboundCapture() {
        var config = CaptureConfig()
        config.outboundDestinations = .only([CIDR("198.51.100.0/24")!])
        config.outboundIncludedPorts = [8000]
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "198.51.100.1:80")).fate
                == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "203.0.113.1:80")).fate
                == .leaves("203.0.113.1:80", interface: "eth0"))
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "203.0.113.1:8000")).fate
                == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
    }

    @Test func ownerGroupsOutsideTheIncludeListAreNotCaptured() {
        var config = CaptureConfig.injectorDefault
        config.ownerGroups = .only([4101])
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "203.0.113.1:80", gid: 4101)).fate
                == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
        let other = WalkLab.walk(config, WalkLab.local(.tcp, to: "203.0.113.1:80", gid: 1000))
        #expect(other.fate == .leaves("203.0.113.1:80", interface: "eth0"))
        #expect(other.steps.last(where: \.matched)?.rule.comment == "ISTIO_OUTBOUND_OWNER_GROUPS: only these groups are captured")
    }

    // MARK: Loopback and the pod's own address

    @Test func appToLoopbackIsDeliveredAndLoopsBackThroughPrerouting() {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        let walk = WalkLab.walk(config, WalkLab.local(.tcp, to: "127.0.0.1:8080"))
        #expect(walk.fate == .delivered("127.0.0.1:8080"))
        #expect(walk.steps.last(where: { $0.matched && !$0.loopedBack })?.location == WalkLab.nat("istio-output", 2))
        // Back through lo, mangle's istio-inbound lets the app's own loopback traffic through.
        let looped = walk.steps.filter(\.loopedBack)
        #expect(!looped.isEmpty && looped.allSatisfy { $0.hook == .prerouting })
        #expect(looped.last(where: \.matched)?.location == WalkLab.mangle("istio-inbound", 2))
        #expect(walk.summary == "not captured: delivered to 127.0.0.1:8080 in this namespace")
    }

    @Test func loopbackOtherThan127001IsCapturedWhenIncluded() {
        var config = CaptureConfig()
        config.outboundDestinations = .only([CIDR("127.1.2.3/32")!])
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "127.1.2.3:8080")).fate
                == .redirected(to: "127.0.0.1:15001", by: WalkLab.nat("istio-redirect", 0)))
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "127.0.0.1:8080")).fate == .delivered("127.0.0.1:8080"))
    }

    @Test func theProxyCallingItsOwnPodIPGoesToTheInboundListener() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "192.0.2.2:8080", uid: 1337))
        #expect(walk.fate == .redirected(to: "127.0.0.1:15006", by: WalkLab.nat("istio-in-redirect", 0)))
        // The tunnel port is exempt from the hairpin.
        #expect(WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "192.0.2.2:15008", uid: 1337)).fate
                == .delivered("192.0.2.2:15008"))
        // A process with only the proxy's GID passes the UID triplet's loopback bypass first.
        #expect(WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "192.0.2.2:8080", gid: 1337)).fate
                == .delivered("192.0.2.2:8080"))
        #expect(WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "192.0.2.2:8080")).fate == .delivered("192.0.2.2:8080"))
    }

    @Test func theInboundPassthroughSourceIsNotCapturedAgain() {
        var config = CaptureConfig.injectorDefault
        config.enableIPv6 = true
        let walk = WalkLab.walk(config, WalkLab.local(.tcp, to: "192.0.2.2:8080", uid: 1337, source: ip("127.0.0.6")))
        #expect(walk.fate == .delivered("192.0.2.2:8080"))
        #expect(walk.steps.last(where: \.matched)?.location == WalkLab.nat("istio-output", 0))
        let ipv6 = WalkLab.walk(config, WalkLab.local(.tcp, to: "[2001:db8:1::2]:8080", uid: 1337, source: ip("::6")))
        #expect(ipv6.fate == .delivered("[2001:db8:1::2]:8080"))
        #expect(ipv6.steps.last(where: \.matched)?.location == WalkLab.nat("istio-output", 1))
        #expect(ipv6.steps.first { $0.location == WalkLab.nat("istio-output", 0) }?.mismatch
                == "ip saddr 127.0.0.6/32 (packet: ::6, not IPv4)")
    }

    // MARK: DNS

    @Test func dnsToAResolvConfServerGoesToTheDNSProxy() {
        var config = CaptureConfig.injectorDefault
        config.dns = .init(captureAll: false, servers: [ip("10.96.0.10"), ip("127.0.0.53")])
        for transport in [TransportProtocol.udp, .tcp] {
            let walk = WalkLab.walk(config, WalkLab.local(transport, to: "10.96.0.10:53"))
            guard case .redirected(let target, let location) = walk.fate else {
                Issue.record("\(transport) DNS not redirected: \(walk.summary)")
                continue
            }
            #expect(target == "127.0.0.1:15053")
            #expect(location.chain == "istio-output-dns")
            #expect(walk.steps.contains { $0.location.table == RulesetBuilder.rawTable && $0.effect == "ct zone set 2" }
                    == (transport == .udp))
        }
        // A local resolver is captured too, UDP and TCP: the loopback bypass exempts port 53.
        #expect(WalkLab.walk(config, WalkLab.local(.udp, to: "127.0.0.53:53")).fate.redirectTarget == "127.0.0.1:15053")
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "127.0.0.53:53")).fate.redirectTarget == "127.0.0.1:15053")
        // Another server's UDP is not captured.
        #expect(WalkLab.walk(config, WalkLab.local(.udp, to: "203.0.113.1:53")).fate
                == .leaves("203.0.113.1:53", interface: "eth0"))
    }

    @Test func theAgentsOwnQueriesLeaveInZoneOneAndTheFirstZoneWins() {
        var config = CaptureConfig.injectorDefault
        config.dns = .init(captureAll: false, servers: [ip("10.96.0.10")])
        let walk = WalkLab.walk(config, WalkLab.local(.udp, to: "10.96.0.10:53", uid: 1337, gid: 1337))
        #expect(walk.fate == .leaves("10.96.0.10:53", interface: "eth0"))
        let zoneEffects = walk.steps.filter { $0.location.table == RulesetBuilder.rawTable && $0.matched }.compactMap(\.effect)
        #expect(zoneEffects == [
            "jump istio-output-dns", "ct zone set 1",
            "ct zone set 1 (no effect: the packet already has its conntrack zone)",
            "ct zone set 2 (no effect: the packet already has its conntrack zone)",
        ])
    }

    // MARK: Inbound

    @Test func inboundToThePodIsRedirectedToTheInboundListener() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.arriving(.tcp, to: "192.0.2.2:8080"))
        #expect(walk.fate == .redirected(to: "192.0.2.2:15006", by: WalkLab.nat("istio-in-redirect", 0)))
        // IPv6: the first address of the destination's scope, not the link-local one listed first.
        let ipv6 = WalkLab.walk(.injectorDefault, WalkLab.arriving(.tcp, to: "[2001:db8:1::2]:8080"))
        #expect(ipv6.fate == .redirected(to: "[2001:db8:1::2]:15006", by: WalkLab.nat("istio-in-redirect", 0)))
        // Transit traffic is captured too, redirected to the interface's address.
        #expect(WalkLab.walk(.injectorDefault, WalkLab.arriving(.tcp, to: "203.0.113.241:8080")).fate
                == .redirected(to: "192.0.2.2:15006", by: WalkLab.nat("istio-in-redirect", 0)))
    }

    @Test func inboundExclusionsReachTheAppDirectly() {
        #expect(WalkLab.walk(.injectorDefault, WalkLab.arriving(.tcp, to: "192.0.2.2:15090")).fate == .delivered("192.0.2.2:15090"))
        #expect(WalkLab.walk(.injectorDefault, WalkLab.arriving(.tcp, to: "192.0.2.2:15008")).fate == .delivered("192.0.2.2:15008"))
        #expect(WalkLab.walk(.injectorDefault, WalkLab.arriving(.udp, to: "192.0.2.2:5000")).fate == .delivered("192.0.2.2:5000"))
        var config = CaptureConfig()
        config.inboundPorts = .only([4000])
        #expect(WalkLab.walk(config, WalkLab.arriving(.tcp, to: "192.0.2.2:8080")).fate == .delivered("192.0.2.2:8080"))
        let transit = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "203.0.113.241:8080"))
        #expect(transit.fate == .forwarded("203.0.113.241:8080"))
        #expect(transit.summary == "not captured: 203.0.113.241 is not local, so the packet is routed onward (forwarding)")
    }

    @Test func tproxyModeHandsNewInboundConnectionsToTheTransparentListener() {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        config.enableIPv6 = true
        let walk = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "192.0.2.2:8080"))
        #expect(walk.fate == .transparentProxy(port: 15006, by: WalkLab.mangle("istio-tproxy", 0)))
        #expect(walk.steps.last?.effect == "tproxy ip to :15006, meta mark set 1337, accept")
        let ipv6 = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "[2001:db8:1::2]:8080"))
        #expect(ipv6.fate == .transparentProxy(port: 15006, by: WalkLab.mangle("istio-tproxy", 1)))
        // Packets of established connections are marked for the lo policy route, not TPROXY'd again.
        let established = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "192.0.2.2:8080", state: .established))
        #expect(established.fate == .delivered("192.0.2.2:8080"))
        #expect(established.steps.filter(\.matched).map(\.location.chain).contains("istio-divert"))
        #expect(established.notes.contains { $0.hasPrefix("nat chains see only the first packet of a connection") } == false)
    }

    @Test func theProxyHairpinInTPROXYModeIsMarkedAndRedirected() {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        let walk = WalkLab.walk(config, WalkLab.local(.tcp, to: "192.0.2.2:8080", uid: 1337))
        #expect(walk.fate == .redirected(to: "127.0.0.1:15006", by: WalkLab.nat("istio-in-redirect", 0)))
        #expect(walk.steps.contains { $0.effect == "meta mark set 1338" && !$0.loopedBack })
        // Back through lo with mark 1338, istio-tproxy sees the rewritten destination 127.0.0.1.
        #expect(walk.steps.contains {
            $0.loopedBack && $0.mismatch == "ip daddr != 127.0.0.1/32 (packet: 127.0.0.1)"
        })
        #expect(walk.notes.contains { $0.hasPrefix("istio-proxy-mangle/output is a route chain") })
        // To the tunnel port NAT is skipped, so the looped-back packet is TPROXY'd: mangle has no 15008 exemption.
        #expect(WalkLab.walk(config, WalkLab.local(.tcp, to: "192.0.2.2:15008", uid: 1337)).fate
                == .transparentProxy(port: 15006, by: WalkLab.mangle("istio-tproxy", 0)))
    }

    @Test func virtualInterfaceTrafficIsCapturedAsOutbound() {
        var config = CaptureConfig.injectorDefault
        config.virtualInterfaces = ["eth1"]
        let walk = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "198.51.100.74:8080", on: "eth1"))
        #expect(walk.fate == .redirected(to: "198.51.100.74:15001", by: WalkLab.nat("istio-redirect", 0)))
        // eth1 has no IPv6 address: REDIRECT has nothing to rewrite to, and the kernel drops the packet.
        let ipv6 = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "[2001:db8:3::1]:8080", on: "eth1"))
        #expect(ipv6.fate == .dropped(by: WalkLab.nat("istio-redirect", 0)))
        #expect(ipv6.steps.last?.effect == "redirect to :15001: the packet is dropped")
        // UDP passes istio-redirect and hits the return rule.
        #expect(WalkLab.walk(config, WalkLab.arriving(.udp, to: "198.51.100.74:5000", on: "eth1")).fate
                == .delivered("198.51.100.74:5000"))
    }

    @Test func excludedInterfacesAreNotCaptured() {
        var config = CaptureConfig.injectorDefault
        config.excludedInterfaces = ["eth1"]
        #expect(WalkLab.walk(config, WalkLab.arriving(.tcp, to: "198.51.100.74:8080", on: "eth1")).fate
                == .delivered("198.51.100.74:8080"))
        let out = PacketProbe(transport: .tcp, source: "198.51.100.74:40000", destination: "198.51.100.73:80",
                              origin: .local(uid: 1000, gid: 1000, outputInterface: "eth1"))
        #expect(WalkLab.walk(config, out).fate == .leaves("198.51.100.73:80", interface: "eth1"))
    }

    // MARK: Connection state

    @Test func invalidTCPIsDroppedWithDropInvalid() {
        var config = CaptureConfig.injectorDefault
        config.dropInvalid = true
        let walk = WalkLab.walk(config, WalkLab.arriving(.tcp, to: "192.0.2.2:8080", state: .invalid))
        #expect(walk.fate == .dropped(by: WalkLab.mangle("istio-drop", 0)))
        #expect(walk.summary == "dropped by istio-drop rule 1")
        #expect(WalkLab.walk(config, WalkLab.arriving(.tcp, to: "192.0.2.2:8080")).fate
                == .redirected(to: "192.0.2.2:15006", by: WalkLab.nat("istio-in-redirect", 0)))
    }

    @Test func natChainsSeeOnlyTheFirstPacketOfAConnection() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "203.0.113.1:80", state: .established))
        #expect(walk.fate == .leaves("203.0.113.1:80", interface: "eth0"))
        #expect(walk.steps.isEmpty)
        #expect(walk.notes.contains {
            $0.hasPrefix("nat chains see only the first packet of a connection: istio-proxy-nat/output was skipped")
        })
    }

    @Test func connectionMarksAreSavedAndRestored() {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        // The app's reply on a connection the proxy opened with mark 1337 gets the mark back.
        var reply = WalkLab.local(.tcp, to: "192.0.2.1:51000", state: .established)
        reply.connectionMark = 1337
        let walk = WalkLab.walk(config, reply)
        #expect(walk.steps.contains { $0.effect == "meta mark set ct mark (1337)" })
        #expect(walk.notes.contains { $0.contains("its mark change (0 → 1337)") })
        #expect(walk.fate == .leaves("192.0.2.1:51000", interface: "eth0"))
        // The proxy's marked packet arriving back through lo saves its mark on the connection.
        var marked = WalkLab.arriving(.tcp, to: "192.0.2.2:8080", on: "lo", state: .established)
        marked.mark = 1337
        let saved = WalkLab.walk(config, marked)
        #expect(saved.steps.contains { $0.effect == "ct mark set meta mark (1337)" })
    }

    @Test func chainsBeforeConntrackSeeEveryPacketAsInvalid() {
        // The nft gotcha: below priority -200 no conntrack entry is attached yet, so `ct state` reads invalid.
        let ruleset = Ruleset(tables: [Table(name: "t", chains: [
            Chain(name: "early", base: BaseChain(type: .filter, hook: .prerouting, priority: -300),
                  rules: [Rule([.connectionMark(0)], [.verdict(.accept)], comment: "no ct mark yet"),
                          Rule([.connectionState(.new)], [.verdict(.accept)], comment: "not new yet"),
                          Rule([.connectionState(.invalid)], [.counter], comment: "invalid")]),
            Chain(name: "late", base: BaseChain(type: .filter, hook: .prerouting, priority: 0),
                  rules: [Rule([.connectionState(.new)], [.verdict(.drop)], comment: "new")]),
        ])])
        let walk = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment).walk(WalkLab.arriving(.tcp, to: "192.0.2.2:8080"))
        #expect(walk.steps.map(\.mismatch) == [
            "ct mark 0 (packet: no conntrack entry)",
            "ct state new (packet: invalid: no conntrack entry before priority -200)",
            nil, nil,
        ])
        #expect(walk.fate == .dropped(by: RuleLocation(table: "t", chain: "late", index: 0)))
    }

    // MARK: Kernel ordering, hand-made rulesets

    @Test func natChainsRunAtTheNATCoresPlaceAndStopAfterARedirect() {
        func rule(_ statements: [Statement], _ comment: String) -> Rule { Rule([], [.counter] + statements, comment: comment) }
        // Priority -300 for a nat chain does not put it before the -150 filter chain: all nat chains run at -100.
        let ruleset = Ruleset(tables: [
            Table(name: "first-nat", chains: [
                Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -300),
                      rules: [rule([.redirect(toPort: 9000)], "first nat")]),
            ]),
            Table(name: "second-nat", chains: [
                Chain(name: "output", base: BaseChain(type: .nat, hook: .output, priority: -200),
                      rules: [rule([.redirect(toPort: 9001)], "second nat")]),
            ]),
            Table(name: "filter", chains: [
                Chain(name: "late", base: BaseChain(type: .filter, hook: .output, priority: 10), rules: [rule([], "late")]),
                Chain(name: "early", base: BaseChain(type: .filter, hook: .output, priority: -150), rules: [rule([], "early")]),
            ]),
        ])
        let walk = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment).walk(WalkLab.local(.tcp, to: "203.0.113.1:80"))
        #expect(walk.steps.map(\.rule.comment) == ["early", "first nat", "late"])
        #expect(walk.fate == .redirected(to: "127.0.0.1:9000", by: RuleLocation(table: "first-nat", chain: "output", index: 0)))
        #expect(walk.notes.contains {
            $0 == "second-nat/output was skipped: the redirect of first-nat/output rule 1 already decided this connection's NAT"
        })
        #expect(walk.steps.last?.effect == "continue")
    }

    @Test func returnAndChainEndsGoBackToTheCaller() {
        let ruleset = Ruleset(tables: [Table(name: "t", chains: [
            Chain(name: "output", base: BaseChain(type: .filter, hook: .output, priority: 0), rules: [
                Rule([], [.verdict(.jump("a"))], comment: "to a"),
                Rule([], [.setPacketMark(7)], comment: "after a"),
                Rule([.packetMark(7, negated: false)], [.verdict(.drop)], comment: "drop marked"),
            ]),
            Chain(name: "a", rules: [
                Rule([], [.verdict(.jump("b"))], comment: "to b"),
                Rule([.transportProtocol(.udp)], [.verdict(.return)], comment: "udp returns"),
            ]),
            Chain(name: "b", rules: [Rule([.transportProtocol(.tcp)], [.verdict(.return)], comment: "tcp returns")]),
        ])])
        let walk = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment).walk(WalkLab.local(.tcp, to: "203.0.113.1:80"))
        #expect(walk.steps.map(\.rule.comment) == ["to a", "to b", "tcp returns", "udp returns", "after a", "drop marked"])
        #expect(walk.fate == .dropped(by: RuleLocation(table: "t", chain: "output", index: 2)))
    }

    @Test func socketMatchesNeverHoldWithoutASocket() {
        let ruleset = Ruleset(tables: [Table(name: "t", chains: [
            Chain(name: "prerouting", base: BaseChain(type: .filter, hook: .prerouting, priority: 0), rules: [
                Rule([.socketUID(1337, negated: true)], [.verdict(.drop)], comment: "not the proxy"),
                Rule([.socketGID(1337, negated: false)], [.verdict(.drop)], comment: "the proxy's group"),
            ]),
        ])])
        let walker = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment)
        let looped = walker.walk(WalkLab.local(.tcp, to: "127.0.0.1:8080"))
        #expect(looped.fate == .delivered("127.0.0.1:8080"))
        #expect(looped.steps.map(\.mismatch) == ["meta skuid != 1337 (packet: no socket)", "meta skgid 1337 (packet: no socket)"])
        #expect(looped.steps.allSatisfy { $0.loopedBack })
        #expect(walker.walk(WalkLab.arriving(.tcp, to: "192.0.2.2:8080")).fate == .delivered("192.0.2.2:8080"))
    }

    @Test func undecodedRulesAndMissingPiecesEndTheWalkUndetermined() {
        var ruleset = RulesetBuilder.build(.injectorDefault)
        let natIndex = ruleset.tables.firstIndex { $0.name == RulesetBuilder.natTable }!
        let outputIndex = ruleset.tables[natIndex].chains.firstIndex { $0.name == "istio-output" }!
        ruleset.tables[natIndex].chains[outputIndex].rules[4] = Rule([], [], comment: "")
        let unknown = WalkLab.nat("istio-output", 4)
        let walker = RulesetWalker(ruleset: ruleset, unknownRules: [unknown], environment: WalkLab.environment)
        let walk = walker.walk(WalkLab.local(.tcp, to: "203.0.113.1:80"))
        guard case .undetermined(let location, let reason) = walk.fate else {
            Issue.record("expected undetermined, got \(walk.summary)")
            return
        }
        #expect(location == unknown)
        #expect(reason.contains("outside Sluice's vocabulary"))
        #expect(walk.summary.hasPrefix("undetermined at istio-proxy-nat/istio-output rule 5: "))
        // A packet decided before the unknown rule is not affected.
        #expect(walker.walk(WalkLab.local(.tcp, to: "203.0.113.1:80", uid: 1337)).fate
                == .leaves("203.0.113.1:80", interface: "eth0"))

        let broken = Ruleset(tables: [Table(name: "t", chains: [
            Chain(name: "output", base: BaseChain(type: .filter, hook: .output, priority: 0), rules: [
                Rule([.destinationPortInSet(.tcp, set: "absent")], [.verdict(.accept)], comment: ""),
                Rule([], [.verdict(.jump("nowhere"))], comment: ""),
            ]),
        ])])
        let brokenWalker = RulesetWalker(ruleset: broken, environment: WalkLab.environment)
        #expect(brokenWalker.walk(WalkLab.local(.tcp, to: "203.0.113.1:80")).fate
                == .undetermined(at: RuleLocation(table: "t", chain: "output", index: 0), reason: "set @absent is not in table t"))
        #expect(brokenWalker.walk(WalkLab.local(.udp, to: "203.0.113.1:80")).fate
                == .undetermined(at: RuleLocation(table: "t", chain: "output", index: 1),
                                 reason: "it jumps to chain nowhere, which table t does not have"))
    }

    @Test func aJumpLoopIsCutAtTheKernelsStackDepth() {
        let ruleset = Ruleset(tables: [Table(name: "t", chains: [
            Chain(name: "output", base: BaseChain(type: .filter, hook: .output, priority: 0),
                  rules: [Rule([], [.verdict(.jump("a"))], comment: "")]),
            Chain(name: "a", rules: [Rule([], [.verdict(.jump("a"))], comment: "")]),
        ])])
        let walk = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment).walk(WalkLab.local(.tcp, to: "203.0.113.1:80"))
        guard case .undetermined(_, let reason) = walk.fate else {
            Issue.record("expected undetermined, got \(walk.summary)")
            return
        }
        #expect(reason.contains("16 nested chains"))
        #expect(walk.steps.count == 17)
    }

    // MARK: Every configuration

    /// Every golden configuration, every kind of probe the conformance matrix sends: the walk always
    /// ends in a decided fate, and every step names a rule that exists where it says.
    @Test(arguments: GoldenConfigurationsForWalker.names)
    func everyProbeOfEveryConfigurationHasADecidedFate(name: String) throws {
        let config = try #require(GoldenConfigurationsForWalker.config(named: name))
        let ruleset = RulesetBuilder.build(config)
        let walker = RulesetWalker(ruleset: ruleset, environment: WalkLab.environment)
        var probes: [PacketProbe] = []
        for family in IPFamily.allCases {
            let external = ip(family == .ipv4 ? "203.0.113.1" : "2001:db8:2::1")
            let loopback = family == .ipv4 ? ip("127.0.0.1") : .ipv6Loopback
            let pod = WalkLab.podAddress(family)
            for (uid, gid) in [(UInt32(1000), UInt32(1000)), (1337, 1000), (1000, 1337), (3, 1000), (1000, 4101)] {
                for transport in [TransportProtocol.tcp, .udp] {
                    for destination in [Endpoint(external, 80), Endpoint(loopback, 8080), Endpoint(pod, 8080), Endpoint(external, 53)] {
                        probes.append(WalkLab.local(transport, to: destination, uid: uid, gid: gid))
                    }
                }
                probes.append(WalkLab.local(.tcp, to: Endpoint(pod, 8080), uid: uid, gid: gid,
                                            source: ip(family == .ipv4 ? "127.0.0.6" : "::6")))
            }
            for port: UInt16 in [8080, 15008, 15090, 4000, 32000] {
                probes.append(WalkLab.arriving(.tcp, to: Endpoint(pod, port)))
                probes.append(WalkLab.arriving(.tcp, to: Endpoint(pod, port), on: "eth1"))
            }
            probes.append(WalkLab.arriving(.udp, to: Endpoint(pod, 5000)))
        }
        for probe in probes {
            let walk = walker.walk(probe)
            if case .undetermined = walk.fate { Issue.record("\(name): \(probe.summary): \(walk.summary)") }
            for step in walk.steps {
                let rules = ruleset.table(named: step.location.table)?.chain(named: step.location.chain)?.rules ?? []
                let rule = rules.indices.contains(step.location.index) ? rules[step.location.index] : nil
                #expect(rule == step.rule, "\(name): \(step.location.qualifiedDescription)")
                #expect((step.mismatch == nil) != (step.effect == nil))
            }
        }
    }

    // MARK: The explanation text

    @Test func theExplanationListsTheMatchedRulesAndVerboseAddsTheOthers() {
        let walk = WalkLab.walk(.injectorDefault, WalkLab.local(.tcp, to: "203.0.113.1:80"))
        let nat = "istio-proxy-nat"
        #expect(walk.explanation(verbose: false) == """
            redirected to 127.0.0.1:15001 by istio-redirect rule 1 (original destination 203.0.113.1:80 kept for SO_ORIGINAL_DST)
            packet: tcp 192.0.2.2:40312 → 203.0.113.1:80 from uid 1000 gid 1000, routed via eth0, ct state new
            output  \(nat)/output rule 1: jump istio-output   # every locally generated packet goes through istio-output
            output  \(nat)/istio-output rule 9: jump istio-redirect   # -i '*': all other outbound TCP is captured
            output  \(nat)/istio-redirect rule 1: redirect to :15001   # outbound capture: to the proxy's outbound listener
            note: the packet comes back in through lo: prerouting sees it with iif lo and without a socket \
            (meta skuid/skgid never match), and skips the nat chains (NAT is decided once per connection, in output)

            """)
        #expect(walk.explanation(verbose: true) == """
            redirected to 127.0.0.1:15001 by istio-redirect rule 1 (original destination 203.0.113.1:80 kept for SO_ORIGINAL_DST)
            packet: tcp 192.0.2.2:40312 → 203.0.113.1:80 from uid 1000 gid 1000, routed via eth0, ct state new
            output  \(nat)/output rule 1: jump istio-output   # every locally generated packet goes through istio-output
            output  \(nat)/istio-output rule 1: no match: oifname "lo" (packet: eth0)   \
            # the proxy's inbound passthrough (source 127.0.0.6) is not captured again
            output  \(nat)/istio-output rule 2: no match: oifname "lo" (packet: eth0)   \
            # proxy (uid 1337) calling its own pod IP goes to the inbound listener (hairpin)
            output  \(nat)/istio-output rule 3: no match: oifname "lo" (packet: eth0)   \
            # apps (not uid 1337) talking over loopback are not captured
            output  \(nat)/istio-output rule 4: no match: meta skuid 1337 (packet: uid 1000)   \
            # the proxy's own traffic (uid 1337) is never captured: no loops
            output  \(nat)/istio-output rule 5: no match: oifname "lo" (packet: eth0)   \
            # proxy (gid 1337) calling its own pod IP goes to the inbound listener (hairpin)
            output  \(nat)/istio-output rule 6: no match: oifname "lo" (packet: eth0)   \
            # apps (not gid 1337) talking over loopback are not captured
            output  \(nat)/istio-output rule 7: no match: meta skgid 1337 (packet: gid 1000)   \
            # the proxy's own traffic (gid 1337) is never captured: no loops
            output  \(nat)/istio-output rule 8: no match: ip daddr 127.0.0.1/32 (packet: 203.0.113.1)   \
            # traffic to localhost is not captured
            output  \(nat)/istio-output rule 9: jump istio-redirect   # -i '*': all other outbound TCP is captured
            output  \(nat)/istio-redirect rule 1: redirect to :15001   # outbound capture: to the proxy's outbound listener
            note: the packet comes back in through lo: prerouting sees it with iif lo and without a socket \
            (meta skuid/skgid never match), and skips the nat chains (NAT is decided once per connection, in output)

            """)
    }

    @Test func theExplanationMarksTheLoopedBackPass() {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        let text = WalkLab.walk(config, WalkLab.local(.tcp, to: "127.0.0.1:8080")).explanation(verbose: false)
        #expect(text.contains("\noutput           istio-proxy-nat/istio-output rule 3: return   # apps (not uid 1337)"))
        #expect(text.contains("\nprerouting (lo)  istio-proxy-mangle/istio-inbound rule 3: return   #"))
    }
}

/// The golden configurations by name, for parameterised tests.
enum GoldenConfigurationsForWalker {
    static var names: [String] { GoldenConfigurations.all.map(\.name) }
    static func config(named name: String) -> CaptureConfig? { GoldenConfigurations.all.first { $0.name == name }?.config }
}

extension PacketFate {
    var redirectTarget: Endpoint? {
        if case .redirected(let target, _) = self { return target }
        return nil
    }
}

