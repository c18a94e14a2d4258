/// Turns a `CaptureConfig` into the ruleset Istio's native-nftables mode would program, rule for rule
/// and in the same order (`tools/istio-nftables/pkg/capture/run.go`, checked against Istio's goldens),
/// with one deliberate difference: a user list (`-b`, `-d`, `-i`, `-x`, `-q`, `-o`) becomes one rule
/// that looks the packet up in a named set, where Istio writes one rule per entry. Every such list's
/// rules are consecutive and share one verdict, so the set lookup decides every packet the same way
/// while costing one lookup instead of N rule evaluations.
public enum RulesetBuilder {
    public static let natTable = "istio-proxy-nat"
    public static let mangleTable = "istio-proxy-mangle"
    public static let rawTable = "istio-proxy-raw"

    /// Istio's agent DNS listener; not configurable in Istio either.
    public static let dnsProxyPort: UInt16 = 15053

    public static func build(_ config: CaptureConfig) -> Ruleset {
        var nat = TableDraft(name: natTable, chainOrder: NatChain.order)
        var mangle = TableDraft(name: mangleTable, chainOrder: MangleChain.order)
        var raw = TableDraft(name: rawTable, chainOrder: RawChain.order)
        let context = BuildContext(config: config)

        addExcludedInterfaceRules(config, nat: &nat, mangle: &mangle)
        addVirtualInterfaceReturnRules(config, nat: &nat)
        if config.dropInvalid { addDropInvalidRules(mangle: &mangle) }
        addCaptureChains(config, nat: &nat)
        switch config.interceptionMode {
        case .redirect: addInboundRedirectRules(config, nat: &nat)
        case .tproxy: addInboundTproxyRules(config, mangle: &mangle)
        }
        nat.append(NatChain.output, [], .jump(NatChain.istioOutput),
                   "every locally generated packet goes through istio-output")
        addOutboundExcludedPortRules(config, nat: &nat)
        addProxyRules(context, nat: &nat)
        addOwnerGroupRules(config, nat: &nat)
        if let dns = context.dns { addDNSRules(context, dns: dns, nat: &nat, raw: &raw) }
        addLoopbackReturnRules(config, nat: &nat)
        addOutboundExcludedCIDRRules(config, nat: &nat)
        addOutboundIncludedPortRules(config, nat: &nat)
        addOutboundIncludedCIDRRules(config, nat: &nat)
        if config.interceptionMode == .tproxy { addTproxyMarkRules(config, mangle: &mangle) }

        return Ruleset(tables: [nat, mangle, raw].compactMap { $0.table() })
    }

    // MARK: - Rule groups, in Istio's order

    /// `-c`: packets entering or leaving these interfaces are never captured.
    private static func addExcludedInterfaceRules(_ config: CaptureConfig, nat: inout TableDraft, mangle: inout TableDraft) {
        for name in config.excludedInterfaces {
            nat.append(NatChain.prerouting, [.inputInterface(name)], .return,
                       "-c: traffic arriving on \(name) is not captured")
            nat.append(NatChain.output, [.outputInterface(name)], .return,
                       "-c: traffic leaving via \(name) is not captured")
        }
        guard config.interceptionMode == .tproxy else { return }
        for name in config.excludedInterfaces {
            mangle.append(MangleChain.prerouting, [.inputInterface(name)], .return,
                          "-c: traffic arriving on \(name) is not captured")
            mangle.append(MangleChain.output, [.outputInterface(name)], .return,
                          "-c: traffic leaving via \(name) is not captured")
        }
    }

    /// `-k`: packets from virtual interfaces (KubeVirt, docker0) are never inbound-captured; the
    /// redirect rules that treat them as outbound are inserted above these later.
    private static func addVirtualInterfaceReturnRules(_ config: CaptureConfig, nat: inout TableDraft) {
        for name in config.virtualInterfaces {
            nat.insertAtTop(NatChain.prerouting, [.inputInterface(name)], .return,
                            "-k: traffic from virtual interface \(name) is not inbound traffic")
        }
    }

    /// `--drop-invalid`: drop out-of-window TCP instead of letting the kernel answer with a reset.
    private static func addDropInvalidRules(mangle: inout TableDraft) {
        mangle.append(MangleChain.prerouting, [.transportProtocol(.tcp), .connectionState(.invalid)],
                      .jump(MangleChain.istioDrop), "--drop-invalid: conntrack-invalid TCP is dropped")
        mangle.append(MangleChain.istioDrop, [], .drop, "--drop-invalid")
    }

    /// The chains every configuration has: the tunnel-port exemption and the two redirect targets.
    private static func addCaptureChains(_ config: CaptureConfig, nat: inout TableDraft) {
        nat.append(NatChain.istioInbound,
                   [.transportProtocol(.tcp), .destinationPort(.tcp, config.inboundTunnelPort, negated: false)],
                   .return, "tunnel port \(config.inboundTunnelPort) (HBONE) is never captured")
        nat.append(NatChain.istioRedirect, [.transportProtocol(.tcp)],
                   [.counter, .redirect(toPort: config.proxyPort)],
                   "outbound capture: to the proxy's outbound listener")
        nat.append(NatChain.istioInRedirect, [.transportProtocol(.tcp)],
                   [.counter, .redirect(toPort: config.inboundCapturePort)],
                   "inbound capture: to the proxy's inbound listener")
    }

    /// `-b` / `-d`: inbound TCP capture (REDIRECT mode).
    private static func addInboundRedirectRules(_ config: CaptureConfig, nat: inout TableDraft) {
        if config.inboundPorts == .none { return }
        nat.append(NatChain.prerouting, [.transportProtocol(.tcp)], .jump(NatChain.istioInbound),
                   "inbound TCP is decided in istio-inbound")
        switch config.inboundPorts {
        case .none:
            return
        case .all:
            if !config.inboundExcludedPorts.isEmpty {
                let set = nat.addPortSet("inbound-exclude-ports", config.inboundExcludedPorts)
                nat.append(NatChain.istioInbound, [.transportProtocol(.tcp), .destinationPortInSet(.tcp, set: set)],
                           .return, "-d: excluded inbound ports reach the app directly")
            }
            nat.append(NatChain.istioInbound, [.transportProtocol(.tcp)], .jump(NatChain.istioInRedirect),
                       "-b '*': all other inbound TCP goes to the proxy")
        case .only(let ports) where !ports.isEmpty:
            let set = nat.addPortSet("inbound-ports", ports)
            nat.append(NatChain.istioInbound, [.transportProtocol(.tcp), .destinationPortInSet(.tcp, set: set)],
                       .jump(NatChain.istioInRedirect), "-b: these inbound ports go to the proxy")
        case .only:
            // `-b ","`: Istio still hooks prerouting but captures no port.
            break
        }
    }

    /// `-b` / `-d` in TPROXY mode: new inbound connections are delivered to the transparent listener
    /// unchanged (original source and destination kept); packets of established ones are marked and
    /// policy-routed to `lo`.
    private static func addInboundTproxyRules(_ config: CaptureConfig, mangle: inout TableDraft) {
        if config.inboundPorts == .none { return }
        let mark = config.tproxyMark
        mangle.append(MangleChain.istioDivert, [], [.counter, .setPacketMark(mark)],
                      "TPROXY: mark established inbound packets for the lo policy route")
        mangle.append(MangleChain.istioDivert, [], .accept, "TPROXY")
        for family in config.enabledFamilies {
            mangle.append(MangleChain.istioTproxy,
                          [.transportProtocol(.tcp), .destinationAddress(config.loopbackCIDR(for: family), negated: true)],
                          [.tproxy(family, toPort: config.inboundCapturePort), .setPacketMark(mark), .counter, .verdict(.accept)],
                          "TPROXY: new inbound connections go to the inbound listener")
        }
        mangle.append(MangleChain.prerouting, [.transportProtocol(.tcp)], .jump(MangleChain.istioInbound),
                      "inbound TCP is decided in istio-inbound")
        let established: Match = .connectionState([.related, .established])
        switch config.inboundPorts {
        case .none:
            return
        case .all:
            if !config.inboundExcludedPorts.isEmpty {
                let set = mangle.addPortSet("inbound-exclude-ports", config.inboundExcludedPorts)
                mangle.append(MangleChain.istioInbound, [.transportProtocol(.tcp), .destinationPortInSet(.tcp, set: set)],
                              .return, "-d: excluded inbound ports reach the app directly")
            }
            mangle.append(MangleChain.istioInbound, [.transportProtocol(.tcp), established],
                          .jump(MangleChain.istioDivert), "TPROXY: established inbound connections")
            mangle.append(MangleChain.istioInbound, [.transportProtocol(.tcp)], .jump(MangleChain.istioTproxy),
                          "-b '*': all other inbound TCP goes to the proxy")
        case .only(let ports) where !ports.isEmpty:
            let set = mangle.addPortSet("inbound-ports", ports)
            mangle.append(MangleChain.istioInbound, [.transportProtocol(.tcp), established, .destinationPortInSet(.tcp, set: set)],
                          .jump(MangleChain.istioDivert), "TPROXY: established inbound connections on -b ports")
            mangle.append(MangleChain.istioInbound, [.transportProtocol(.tcp), .destinationPortInSet(.tcp, set: set)],
                          .jump(MangleChain.istioTproxy), "-b: these inbound ports go to the proxy")
        case .only:
            // `-b ","`: Istio still hooks prerouting but captures no port.
            break
        }
    }

    /// TPROXY's marks: the proxy's upstream mark is saved on the connection so the app's replies are
    /// routed back to the proxy, and the proxy's hairpin gets 1338 so istio-inbound does not skip it.
    /// Written even with `-b ""`, as Istio does.
    private static func addTproxyMarkRules(_ config: CaptureConfig, mangle: inout TableDraft) {
        let mark = config.tproxyMark
        let outboundMark: UInt32 = 1338
        mangle.append(MangleChain.prerouting, [.transportProtocol(.tcp), .packetMark(mark, negated: false)],
                      [.counter, .saveMarkToConnection], "TPROXY: remember the proxy's mark on the connection")
        mangle.append(MangleChain.output, [.outputInterface("lo"), .transportProtocol(.tcp), .packetMark(mark, negated: false)],
                      .return, "TPROXY: already marked")
        let owners = config.proxyUIDs.map { Match.socketUID($0, negated: false) }
            + config.proxyGIDs.map { Match.socketGID($0, negated: false) }
        for owner in owners {
            for family in config.enabledFamilies {
                mangle.append(MangleChain.output,
                              [.outputInterface("lo"), .transportProtocol(.tcp),
                               .destinationAddress(config.loopbackCIDR(for: family), negated: true), owner],
                              [.counter, .setPacketMark(outboundMark)], "TPROXY: the proxy's hairpin to its own pod IP")
            }
        }
        mangle.append(MangleChain.output, [.transportProtocol(.tcp), .connectionMark(mark)],
                      [.counter, .restoreMarkFromConnection], "TPROXY: app replies follow the proxy's mark back to lo")
        mangle.insert(MangleChain.istioInbound, at: 0, [.transportProtocol(.tcp), .packetMark(mark, negated: false)],
                      .return, "TPROXY: already diverted; no second TPROXY")
        // Both at index 1, as Istio inserts them: the IPv6 rule ends up above the IPv4 one.
        for family in config.enabledFamilies {
            let source = IPAddress.passthroughSource(family)
            mangle.insert(MangleChain.istioInbound, at: 1,
                          [.inputInterface("lo"), .transportProtocol(.tcp), .sourceAddress(source.hostPrefix, negated: false)],
                          .return, "the proxy's inbound passthrough (source \(source)) is not captured again")
        }
        mangle.insert(MangleChain.istioInbound, at: 2,
                      [.inputInterface("lo"), .transportProtocol(.tcp), .packetMark(outboundMark, negated: true)],
                      .return, "app to itself over lo is not captured; the proxy's hairpin (1338) is")
    }

    /// `-o`: evaluated first, TCP and UDP, so even the proxy's own checks never see these ports.
    private static func addOutboundExcludedPortRules(_ config: CaptureConfig, nat: inout TableDraft) {
        guard !config.outboundExcludedPorts.isEmpty else { return }
        let set = nat.addPortSet("outbound-exclude-ports", config.outboundExcludedPorts)
        nat.append(NatChain.istioOutput, [.destinationPortInSet(.tcp, set: set)], .return,
                   "-o: excluded outbound TCP ports go direct")
        nat.append(NatChain.istioOutput, [.destinationPortInSet(.udp, set: set)], .return,
                   "-o: excluded outbound UDP ports go direct")
    }

    /// The 127.0.0.6 passthrough and, per proxy UID then per proxy GID, the hairpin / loopback /
    /// proxy-bypass triplet.
    private static func addProxyRules(_ context: BuildContext, nat: inout TableDraft) {
        let config = context.config
        for family in config.enabledFamilies {
            let source = IPAddress.passthroughSource(family)
            nat.append(NatChain.istioOutput, [.outputInterface("lo"), .sourceAddress(source.hostPrefix, negated: false)],
                       .return, "the proxy's inbound passthrough (source \(source)) is not captured again")
        }
        for uid in config.proxyUIDs {
            addProxyTriplet(context, owner: .socketUID(uid, negated: false), notOwner: .socketUID(uid, negated: true),
                            ownerText: "uid \(uid)", hairpinExcludesDNS: true, nat: &nat)
        }
        for gid in config.proxyGIDs {
            // Istio's GID hairpin rule never gets the port-53 exclusion, unlike the UID one.
            addProxyTriplet(context, owner: .socketGID(gid, negated: false), notOwner: .socketGID(gid, negated: true),
                            ownerText: "gid \(gid)", hairpinExcludesDNS: false, nat: &nat)
        }
    }

    private static func addProxyTriplet(
        _ context: BuildContext, owner: Match, notOwner: Match, ownerText: String,
        hairpinExcludesDNS: Bool, nat: inout TableDraft
    ) {
        let config = context.config
        let dnsOn = context.dns != nil
        var hairpinPorts: [Match] = []
        if dnsOn && hairpinExcludesDNS { hairpinPorts.append(.destinationPort(.tcp, 53, negated: true)) }
        hairpinPorts.append(.destinationPort(.tcp, config.inboundTunnelPort, negated: true))
        let hairpinComment = "proxy (\(ownerText)) calling its own pod IP goes to the inbound listener (hairpin)"
        for family in config.enabledFamilies {
            nat.append(NatChain.istioOutput,
                       [.outputInterface("lo"), .transportProtocol(.tcp),
                        .destinationAddress(config.loopbackCIDR(for: family), negated: true)] + hairpinPorts + [owner],
                       .jump(NatChain.istioInRedirect), hairpinComment)
        }
        // With a loopback CIDR in -i the user wants loopback traffic captured, so no bypass.
        if !context.includesLoopback {
            if dnsOn {
                // A DNS server on localhost must still be captured over TCP, hence "not port 53".
                nat.append(NatChain.istioOutput,
                           [.outputInterface("lo"), .transportProtocol(.tcp), .destinationPort(.tcp, 53, negated: true),
                            notOwner],
                           .return, "apps (not \(ownerText)) talking over loopback are not captured, except DNS")
            } else {
                nat.append(NatChain.istioOutput, [.outputInterface("lo"), notOwner], .return,
                           "apps (not \(ownerText)) talking over loopback are not captured")
            }
        }
        nat.append(NatChain.istioOutput, [owner], .return,
                   "the proxy's own traffic (\(ownerText)) is never captured: no loops")
    }

    /// `ISTIO_OUTBOUND_OWNER_GROUPS[_EXCLUDE]`: after the proxy rules, before DNS, so excluded groups
    /// escape DNS capture too.
    private static func addOwnerGroupRules(_ config: CaptureConfig, nat: inout TableDraft) {
        switch config.ownerGroups {
        case .all:
            return
        case .only(let groups):
            nat.append(NatChain.istioOutput, groups.map { .socketGID($0, negated: true) }, .return,
                       "ISTIO_OUTBOUND_OWNER_GROUPS: only these groups are captured")
        case .allExcept(let groups):
            for gid in groups {
                nat.append(NatChain.istioOutput, [.socketGID(gid, negated: false)], .return,
                           "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: group \(gid) is not captured")
            }
        }
    }

    /// `--redirect-dns`: port 53 to the agent's DNS proxy, and conntrack zones in the raw table so the
    /// agent's upstream queries and the apps' queries to the same server never share a conntrack entry
    /// (Istio issue 33469). The zone rules for the proxy's UIDs/GIDs come first: the first zone set on
    /// a packet wins.
    private static func addDNSRules(_ context: BuildContext, dns: DNSPlan, nat: inout TableDraft, raw: inout TableDraft) {
        let config = context.config
        let proxyPort = dnsProxyPort
        raw.append(RawChain.output, [], .jump(RawChain.istioOutputDNS), "DNS conntrack zones")
        nat.append(NatChain.istioOutput, [], .jump(NatChain.istioOutputDNS), "DNS capture")
        for proto in [TransportProtocol.tcp, .udp] {
            let comment = "DNS over \(proto.rawValue.uppercased()) goes to the agent's DNS proxy"
            if dns.captureAll {
                nat.append(NatChain.istioOutputDNS, [.transportProtocol(proto), .destinationPort(proto, 53, negated: false)],
                           [.counter, .redirect(toPort: proxyPort)], comment)
            } else {
                for server in dns.servers {
                    nat.append(NatChain.istioOutputDNS,
                               [.destinationAddress(server.hostPrefix, negated: false),
                                .destinationPort(proto, 53, negated: false)],
                               [.counter, .redirect(toPort: proxyPort)],
                               "DNS to \(server) over \(proto.rawValue.uppercased()) goes to the agent's DNS proxy")
                }
            }
        }
        let owners = config.proxyUIDs.map { (Match.socketUID($0, negated: false), "uid \($0)") }
            + config.proxyGIDs.map { (Match.socketGID($0, negated: false), "gid \($0)") }
        for (owner, text) in owners {
            raw.append(RawChain.istioOutputDNS, [.destinationPort(.udp, 53, negated: false), owner],
                       [.counter, .setConntrackZone(1)], "zone 1: the agent (\(text)) querying upstream")
            raw.append(RawChain.istioOutputDNS, [.sourcePort(.udp, proxyPort), owner],
                       [.counter, .setConntrackZone(2)], "zone 2: the agent (\(text)) answering apps")
        }
        raw.append(RawChain.prerouting, [], .jump(RawChain.istioInbound), "DNS conntrack zones for replies")
        if dns.captureAll {
            raw.append(RawChain.istioOutputDNS, [.destinationPort(.udp, 53, negated: false)],
                       [.counter, .setConntrackZone(2)], "zone 2: apps querying DNS")
            raw.append(RawChain.istioInbound, [.sourcePort(.udp, 53)],
                       [.counter, .setConntrackZone(1)], "zone 1: upstream DNS answering the agent")
        } else {
            for server in dns.servers {
                raw.append(RawChain.istioOutputDNS,
                           [.destinationPort(.udp, 53, negated: false), .destinationAddress(server.hostPrefix, negated: false)],
                           [.counter, .setConntrackZone(2)], "zone 2: apps querying \(server)")
                raw.append(RawChain.istioInbound,
                           [.sourcePort(.udp, 53), .sourceAddress(server.hostPrefix, negated: false)],
                           [.counter, .setConntrackZone(1)], "zone 1: \(server) answering the agent")
            }
        }
    }

    /// Apps and proxies talking to localhost explicitly are not captured.
    private static func addLoopbackReturnRules(_ config: CaptureConfig, nat: inout TableDraft) {
        for family in config.enabledFamilies {
            nat.append(NatChain.istioOutput, [.destinationAddress(config.loopbackCIDR(for: family), negated: false)],
                       .return, "traffic to localhost is not captured")
        }
    }

    /// `-x`: before any include rule.
    private static func addOutboundExcludedCIDRRules(_ config: CaptureConfig, nat: inout TableDraft) {
        for family in config.enabledFamilies {
            let cidrs = config.outboundExcludedCIDRs.filter { $0.family == family }
            guard !cidrs.isEmpty else { continue }
            let set = nat.addAddressSet("outbound-exclude-\(family.rawValue)", family, cidrs)
            nat.append(NatChain.istioOutput, [.destinationAddressInSet(family, set: set)], .return,
                       "-x: excluded destinations go direct")
        }
    }

    /// `-q`: these ports are captured whatever `-i` says (but after `-x`).
    private static func addOutboundIncludedPortRules(_ config: CaptureConfig, nat: inout TableDraft) {
        guard !config.outboundIncludedPorts.isEmpty else { return }
        let set = nat.addPortSet("outbound-include-ports", config.outboundIncludedPorts)
        nat.append(NatChain.istioOutput, [.destinationPortInSet(.tcp, set: set)], .jump(NatChain.istioRedirect),
                   "-q: these outbound TCP ports are captured")
    }

    /// `-i` (and `-k`, whose traffic is treated as outbound).
    private static func addOutboundIncludedCIDRRules(_ config: CaptureConfig, nat: inout TableDraft) {
        switch config.outboundDestinations {
        case .none:
            return
        case .all:
            nat.append(NatChain.istioOutput, [], .jump(NatChain.istioRedirect), "-i '*': all other outbound TCP is captured")
            for name in config.virtualInterfaces {
                nat.insertAtTop(NatChain.prerouting, [.inputInterface(name)], .jump(NatChain.istioRedirect),
                                "-k: traffic from virtual interface \(name) is captured as outbound")
            }
        case .only(let cidrs):
            // Istio writes v4 CIDRs before v6 ones; only the v6 ones depend on IPv6 being enabled.
            for family in config.enabledFamilies {
                let familyCIDRs = cidrs.filter { $0.family == family }
                guard !familyCIDRs.isEmpty else { continue }
                let set = nat.addAddressSet("outbound-include-\(family.rawValue)", family, familyCIDRs)
                for name in config.virtualInterfaces {
                    nat.insertAtTop(NatChain.prerouting, [.inputInterface(name), .destinationAddressInSet(family, set: set)],
                                    .jump(NatChain.istioRedirect),
                                    "-k: traffic from \(name) to included destinations is captured as outbound")
                }
                nat.append(NatChain.istioOutput, [.destinationAddressInSet(family, set: set)], .jump(NatChain.istioRedirect),
                           "-i: outbound TCP to these destinations is captured")
            }
        }
    }
}

// MARK: - Chain names and base chains

enum NatChain {
    static let prerouting = "prerouting"
    static let output = "output"
    static let istioInbound = "istio-inbound"
    static let istioRedirect = "istio-redirect"
    static let istioInRedirect = "istio-in-redirect"
    static let istioOutput = "istio-output"
    static let istioOutputDNS = "istio-output-dns"

    static let order: [(String, BaseChain?)] = [
        (prerouting, BaseChain(type: .nat, hook: .prerouting, priority: -100)),
        (output, BaseChain(type: .nat, hook: .output, priority: -100)),
        (istioInbound, nil), (istioRedirect, nil), (istioInRedirect, nil), (istioOutput, nil), (istioOutputDNS, nil),
    ]
}

enum MangleChain {
    static let prerouting = "prerouting"
    static let output = "output"
    static let istioDivert = "istio-divert"
    static let istioTproxy = "istio-tproxy"
    static let istioInbound = "istio-inbound"
    static let istioDrop = "istio-drop"

    static let order: [(String, BaseChain?)] = [
        (prerouting, BaseChain(type: .filter, hook: .prerouting, priority: -150)),
        // A route-type output chain makes the kernel re-route packets whose mark a rule changed.
        (output, BaseChain(type: .route, hook: .output, priority: -150)),
        (istioDivert, nil), (istioTproxy, nil), (istioInbound, nil), (istioDrop, nil),
    ]
}

enum RawChain {
    static let prerouting = "prerouting"
    static let output = "output"
    static let istioInbound = "istio-inbound"
    static let istioOutputDNS = "istio-output-dns"

    static let order: [(String, BaseChain?)] = [
        (prerouting, BaseChain(type: .filter, hook: .prerouting, priority: -300)),
        (output, BaseChain(type: .filter, hook: .output, priority: -300)),
        (istioInbound, nil), (istioOutputDNS, nil),
    ]
}

// MARK: - Drafting

/// Facts derived once from the config that several rule groups depend on.
private struct BuildContext {
    let config: CaptureConfig
    let dns: DNSPlan?
    let includesLoopback: Bool

    init(config: CaptureConfig) {
        self.config = config
        self.dns = DNSPlan(config)
        if case .only(let cidrs) = config.outboundDestinations {
            // Istio checks the address as written (host bits included), e.g. 127.1.2.3/32.
            includesLoopback = cidrs.contains { $0.address.isLoopback }
        } else {
            includesLoopback = false
        }
    }
}

private struct DNSPlan {
    let captureAll: Bool
    let servers: [IPAddress]

    /// nil when DNS capture is off or has nothing to capture. Servers of a family whose rules are not
    /// written (IPv6 off) are dropped first: Istio would otherwise jump to a chain with no rules.
    init?(_ config: CaptureConfig) {
        guard let dns = config.dns else { return nil }
        let servers = dns.servers.filter { $0.family == .ipv4 || config.enableIPv6 }
        guard dns.captureAll || !servers.isEmpty else { return nil }
        captureAll = dns.captureAll
        // Istio writes every IPv4 server's rule before any IPv6 server's.
        self.servers = servers.filter { $0.family == .ipv4 } + servers.filter { $0.family == .ipv6 }
    }
}

extension CaptureConfig {
    /// Families whose address-specific rules are written.
    var enabledFamilies: [IPFamily] { enableIPv6 ? [.ipv4, .ipv6] : [.ipv4] }

    /// What "localhost" means in the loopback rules: `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR` for IPv4,
    /// always `::1/128` for IPv6.
    func loopbackCIDR(for family: IPFamily) -> CIDR {
        family == .ipv4 ? ipv4LoopbackCIDR : IPAddress.ipv6Loopback.hostPrefix
    }
}

extension IPAddress {
    /// The source the proxy binds when forwarding inbound traffic to the app, so it is not captured
    /// again (Pilot's "magic upstream bind").
    public static func passthroughSource(_ family: IPFamily) -> IPAddress {
        switch family {
        case .ipv4: IPAddress(family: .ipv4, bytes: [127, 0, 0, 6])
        case .ipv6: IPAddress(family: .ipv6, bytes: Array(repeating: 0, count: 15) + [6])
        }
    }
}

extension IPAddress {
    /// The address as a full-length prefix (`/32`, `/128`), as Istio writes DNS server matches.
    var hostPrefix: CIDR { CIDR(address: self, prefixLength: family.addressLength * 8) }
}

/// A table being assembled: rules per chain plus sets, turned into a `Table` with only the chains
/// that got rules (Istio creates no empty chains, and a table without rules is not written at all).
private struct TableDraft {
    let name: String
    let chainOrder: [(String, BaseChain?)]
    var rules: [String: [Rule]] = [:]
    var sets: [NamedSet] = []

    init(name: String, chainOrder: [(String, BaseChain?)]) {
        self.name = name
        self.chainOrder = chainOrder
    }

    mutating func append(_ chain: String, _ matches: [Match], _ verdict: Verdict, _ comment: String) {
        append(chain, matches, [.counter, .verdict(verdict)], comment)
    }

    mutating func append(_ chain: String, _ matches: [Match], _ statements: [Statement], _ comment: String) {
        rules[chain, default: []].append(Rule(matches, statements, comment: comment))
    }

    /// Istio's `insert ... index 0`: the newest insert ends up first.
    mutating func insertAtTop(_ chain: String, _ matches: [Match], _ verdict: Verdict, _ comment: String) {
        insert(chain, at: 0, matches, verdict, comment)
    }

    /// Istio's `insert ... index N`, which becomes an append when the chain has N rules or fewer
    /// (Istio issue 58135: an index past the end is an error in nft).
    mutating func insert(_ chain: String, at index: Int, _ matches: [Match], _ verdict: Verdict, _ comment: String) {
        var chainRules = rules[chain, default: []]
        chainRules.insert(Rule(matches, [.counter, .verdict(verdict)], comment: comment), at: min(index, chainRules.count))
        rules[chain] = chainRules
    }

    mutating func addPortSet(_ name: String, _ ports: [UInt16]) -> String {
        sets.append(NamedSet(name: name, elements: .ports(Array(Set(ports)).sorted())))
        return name
    }

    mutating func addAddressSet(_ name: String, _ family: IPFamily, _ cidrs: [CIDR]) -> String {
        sets.append(NamedSet(name: name, elements: .addresses(family, AddressRange.merging(cidrs))))
        return name
    }

    func table() -> Table? {
        let chains = chainOrder.compactMap { name, base -> Chain? in
            guard let chainRules = rules[name], !chainRules.isEmpty else { return nil }
            return Chain(name: name, base: base, rules: chainRules)
        }
        guard !chains.isEmpty else { return nil }
        return Table(name: name, sets: sets, chains: chains)
    }
}
