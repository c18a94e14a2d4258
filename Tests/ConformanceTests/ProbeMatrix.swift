import Capture
import Netfilter
import PodLab

/// One probe: a TCP connection or one UDP datagram, from the pod as some socket owner or from the peer.
/// Its description is its identity in the report and in the allow-list.
struct ProbeSpec: Sendable, Hashable, CustomStringConvertible {
    var transport: TransportProtocol
    var side: Side
    var owner: SocketOwner?
    /// Who sends, in the report: "app", "proxy uid 3", "group java", "peer".
    var who: String
    var source: IPAddress?
    var destination: Endpoint
    /// Why this destination: "in -i 198.51.100.0/24", "inbound, -d port", "DNS, resolv.conf server".
    var what: String

    var description: String {
        "\(transport.rawValue) \(who)\(source.map { " from \($0)" } ?? "") → \(destination) (\(what))"
    }

    func run(in lab: PodLab, timeout: Duration) -> Outcome {
        let result = switch transport {
        case .tcp: lab.connect(from: side, as: owner, to: destination, source: source, timeout: timeout)
        case .udp: lab.sendDatagram(from: side, as: owner, to: destination, source: source, timeout: timeout)
        }
        return Outcome(result, transport: transport)
    }
}

/// Where a probe ended up. Not landing anywhere is one outcome whatever the reason (refused, dropped,
/// unreachable): which of these a prober sees can depend on ICMP rate limits, not on the rules. The
/// reason is kept for the report.
///
/// Before any probe, applying the ruleset is an outcome too: Istio's `nft -f` or `sluice-init` may
/// refuse a configuration the other accepts.
enum Outcome: Sendable, Hashable, CustomStringConvertible {
    case landed(Landing)
    case nowhere(String)
    case applied
    /// The kernel (or `sluice-init`) refused the ruleset; nothing was programmed.
    case rejected(String)

    static func == (lhs: Outcome, rhs: Outcome) -> Bool {
        switch (lhs, rhs) {
        case (.landed(let left), .landed(let right)): left == right
        case (.nowhere, .nowhere), (.applied, .applied), (.rejected, .rejected): true
        default: false
        }
    }

    func hash(into hasher: inout Hasher) {
        switch self {
        case .landed(let landing): hasher.combine(landing)
        case .nowhere: hasher.combine(0)
        case .applied: hasher.combine(1)
        case .rejected: hasher.combine(2)
        }
    }

    init(_ result: ProbeResult, transport: TransportProtocol) {
        guard case .failed(let message) = result.landing else {
            self = .landed(result.landing)
            return
        }
        if message.contains("within") {
            self = .nowhere("no answer")
        } else if message.contains("refused") {
            // A refused datagram is an ICMP error, which the kernel rate-limits: the same path can show
            // up as either, so UDP folds them together.
            self = .nowhere(transport == .udp ? "no answer" : "refused")
        } else if message.contains("unreachable") || message.contains("No route") {
            self = .nowhere("unreachable")
        } else {
            self = .nowhere(message)
        }
    }

    var description: String {
        switch self {
        case .landed(let landing): landing.description
        case .nowhere(let reason): "nowhere (\(reason))"
        case .applied: "ruleset applied"
        case .rejected(let reason): "ruleset rejected: \(reason)"
        }
    }
}

/// The probes for one configuration: the same list goes through Istio's pod and Sluice's.
struct ProbeMatrix {
    let testCase: ConformanceCase
    /// GIDs of the owner groups the configuration names (`java`, `ftp`, or numeric).
    let groupIDs: [String: UInt32]
    let links: [PodLab.Link]

    struct Sender {
        var who: String
        var owner: SocketOwner
    }

    // MARK: What the configuration says

    var proxyUIDs: [UInt32] {
        let uids = testCase.list("-u").compactMap(UInt32.init)
        return uids.isEmpty ? [1337] : uids
    }

    /// Istio copies the UID text into the GID when `-g` is not given.
    var proxyGIDs: [UInt32] {
        let gids = testCase.list("-g").compactMap(UInt32.init)
        return gids.isEmpty ? proxyUIDs : gids
    }

    var ownerGroupNames: [String] {
        ["ISTIO_OUTBOUND_OWNER_GROUPS", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"].flatMap { name in
            (testCase.environment[name] ?? "").split(separator: ",").map(String.init).filter { $0 != "*" }
        }
    }

    var inboundPorts: [UInt16] { testCase.list("-b").compactMap(UInt16.init) }
    var inboundExcludedPorts: [UInt16] { testCase.list("-d").compactMap(UInt16.init) }
    var outboundIncludedPorts: [UInt16] { testCase.list("-q").compactMap(UInt16.init) }
    var includedCIDRs: [CIDR] { testCase.list("-i").compactMap(CIDR.init) }
    var excludedCIDRs: [CIDR] { testCase.list("-x").compactMap(CIDR.init) }
    var nameservers: [IPAddress] { (testCase.labNameservers ?? []).compactMap(IPAddress.init) }

    /// `-k` and `-c` interfaces the lab must add (`eth0` is the pod's own).
    static func linkNames(_ testCase: ConformanceCase) -> [String] {
        var names: [String] = []
        for name in testCase.list("-k") + testCase.list("-c") where name != PodLab.podInterface && !names.contains(name) {
            names.append(name)
        }
        return names
    }

    /// The app, every proxy UID and GID on its own, and every owner group the configuration names.
    var senders: [Sender] {
        var result = [Sender(who: "app", owner: .app)]
        for uid in proxyUIDs { result.append(Sender(who: "proxy uid \(uid)", owner: SocketOwner(uid: uid, gid: 1000))) }
        for gid in proxyGIDs { result.append(Sender(who: "proxy gid \(gid)", owner: SocketOwner(uid: 1000, gid: gid))) }
        for name in ownerGroupNames {
            guard let gid = UInt32(name) ?? groupIDs[name] else { continue }
            result.append(Sender(who: "group \(name)", owner: SocketOwner(uid: 1000, gid: gid)))
        }
        var seen: Set<SocketOwner> = []
        return result.filter { seen.insert($0.owner).inserted }
    }

    // MARK: The lab both pods are built as

    /// Listeners for every port a probe may reach, and the proxy's listeners owned by the first proxy
    /// UID/GID (the DNS proxy's replies are matched by owner).
    var layout: PodLab.Layout {
        var layout = PodLab.Layout()
        layout.proxy = SocketOwner(uid: proxyUIDs[0], gid: proxyGIDs[0])
        layout.transparentInboundListener = testCase.tproxy
        layout.links = links
        var podTCP: Set<UInt16> = Set(Self.podServicePorts + [53])
        podTCP.formUnion(inboundPorts)
        podTCP.formUnion(inboundExcludedPorts)
        layout.ports.podTCP = podTCP.sorted()
        layout.ports.peerTCP = Array(Set(layout.ports.peerTCP + outboundIncludedPorts)).sorted()
        var podUDP: [Endpoint] = [Endpoint(Self.localNameserver, 53)]
        for address in [PodLab.podIPv4, PodLab.podIPv6, PodLab.loopback(.ipv4), PodLab.loopback(.ipv6)]
            + links.flatMap({ $0.podAddresses.map(\.address) }) {
            podUDP.append(Endpoint(address, Self.udpPort))
        }
        layout.ports.podUDP = podUDP
        return layout
    }

    /// The app port (first), the tunnel port and the agent's ports, served directly in the pod: the
    /// lab's own defaults.
    static let podServicePorts = PodLab.Ports().podTCP
    static let udpPort: UInt16 = 5000
    static let localNameserver = IPAddress("127.0.0.53")!

    /// Outside the pod, reached through eth0: the peer's own address and the "external" ones.
    static func externals(_ family: IPFamily) -> [IPAddress] {
        [PodLab.peerAddress(family)] + PodLab.externalAddresses(family)
    }

    // MARK: The probes

    /// IPv6 is probed in every configuration: the pod has IPv6 addresses either way, and Istio's
    /// nftables rules without an address match apply to IPv6 even when IPv6 is "off" (RULES.md §3).
    var probes: [ProbeSpec] {
        var result: [ProbeSpec] = []
        for sender in senders {
            for family in IPFamily.allCases { result += outbound(from: sender, family) }
        }
        for family in IPFamily.allCases { result += inbound(family) }
        return result
    }

    private func outbound(from sender: Sender, _ family: IPFamily) -> [ProbeSpec] {
        var result: [ProbeSpec] = []
        func probe(_ transport: TransportProtocol, _ address: IPAddress, _ port: UInt16, _ what: String,
                   source: IPAddress? = nil) {
            result.append(ProbeSpec(transport: transport, side: .pod, owner: sender.owner, who: sender.who,
                                    source: source, destination: Endpoint(address, port), what: what))
        }
        for address in Self.externals(family) {
            let what = "outside, " + ranges(containing: address)
            probe(.tcp, address, 80, what)
            probe(.udp, address, Self.udpPort, what)
        }
        for port in outboundIncludedPorts {
            probe(.tcp, Self.externals(family)[1], port, "outside, -q port")
        }
        probe(.tcp, PodLab.loopback(family), 8080, "loopback")
        probe(.udp, PodLab.loopback(family), Self.udpPort, "loopback")
        probe(.tcp, PodLab.podAddress(family), 8080, "own pod IP")
        probe(.tcp, PodLab.podAddress(family), 15008, "own pod IP, tunnel port")
        probe(.udp, PodLab.podAddress(family), Self.udpPort, "own pod IP")
        if family == .ipv4 {
            probe(.tcp, IPAddress("127.1.2.3")!, 8080, "loopback, not 127.0.0.1")
        }
        if family == .ipv4 || testCase.ipv6 {
            // The inbound passthrough: the proxy forwarding to the app from 127.0.0.6 / ::6. ::6 exists
            // on lo only where IPv6 is on.
            probe(.tcp, PodLab.podAddress(family), 8080, "inbound passthrough source",
                  source: family == .ipv4 ? IPAddress("127.0.0.6")! : IPAddress("::6")!)
        }
        let servers = nameservers.filter { $0.family == family }
        for server in servers {
            probe(.udp, server, 53, "DNS, resolv.conf server")
            probe(.tcp, server, 53, "DNS, resolv.conf server")
        }
        if let other = Self.externals(family).last(where: { !servers.contains($0) }) {
            probe(.udp, other, 53, "DNS, not a resolv.conf server")
            probe(.tcp, other, 53, "DNS, not a resolv.conf server")
        }
        for link in links {
            for address in link.peerAddresses(family) {
                let what = "via \(link.name), " + ranges(containing: address)
                probe(.tcp, address, 80, what)
                probe(.udp, address, Self.udpPort, what)
            }
        }
        return result
    }

    private func inbound(_ family: IPFamily) -> [ProbeSpec] {
        var result: [ProbeSpec] = []
        func probe(_ transport: TransportProtocol, _ address: IPAddress, _ port: UInt16, _ what: String) {
            result.append(ProbeSpec(transport: transport, side: .peer, owner: nil, who: "peer", source: nil,
                                    destination: Endpoint(address, port), what: what))
        }
        let pod = PodLab.podAddress(family)
        var ports: [(UInt16, String)] = [(8080, "inbound, port not listed")]
        for port in Self.podServicePorts.dropFirst() { ports.append((port, "inbound, sidecar port")) }
        for port in inboundPorts { ports.append((port, "inbound, -b port")) }
        for port in inboundExcludedPorts { ports.append((port, "inbound, -d port")) }
        var seen: Set<UInt16> = []
        for (port, what) in ports where seen.insert(port).inserted {
            probe(.tcp, pod, port, what)
        }
        probe(.udp, pod, Self.udpPort, "inbound")
        for link in links {
            for address in link.podAddresses(family) {
                let what = "inbound via \(link.name), " + ranges(containing: address)
                probe(.tcp, address, 8080, what)
                probe(.udp, address, Self.udpPort, what)
            }
        }
        for transit in transitRoutes where transit.prefix.family == family {
            probe(.tcp, transit.destination, 8080,
                  "not a pod address, routed via \(transit.interface), " + ranges(containing: transit.destination))
        }
        return result
    }

    /// Prefixes the peer routes through the pod although the pod owns no address in them: what a VM
    /// behind a `-k` interface sends, and what only TPROXY's policy route (or a REDIRECT) delivers
    /// locally. Without capture the pod, which does not forward, drops them.
    struct TransitRoute {
        var prefix: CIDR
        var gateway: IPAddress
        var interface: String
        /// The address probes dial inside `prefix`.
        var destination: IPAddress
    }

    var transitRoutes: [TransitRoute] {
        func route(_ prefix: String, via gateway: IPAddress, _ interface: String) -> TransitRoute {
            let cidr = CIDR(prefix)!
            var bytes = cidr.network.bytes
            bytes[bytes.count - 1] |= 1
            return TransitRoute(prefix: cidr, gateway: gateway, interface: interface,
                                destination: IPAddress(family: cidr.family, bytes: bytes))
        }
        var result = [
            route("203.0.113.240/29", via: PodLab.podIPv4, PodLab.podInterface),
            route("2001:db8:3::/64", via: PodLab.podIPv6, PodLab.podInterface),
        ]
        for (index, link) in links.enumerated() {
            let number = index + 1
            let pod = link.podAddresses.map(\.address)
            // Inside and outside the ranges the lab maps Istio's CIDRs to, like the link's own subnets.
            result.append(route("198.51.100.\(128 + 8 * number)/29", via: pod[0], link.name))
            result.append(route("203.0.113.\(128 + 8 * number)/29", via: pod[1], link.name))
            result.append(route("2001:db8:2:0:a\(number)::/80", via: pod[2], link.name))
            result.append(route("2001:db8:\(20 + number)::/64", via: pod[3], link.name))
        }
        return result
    }

    /// "in -i 198.51.100.0/24, in -x ..." or "in no -i/-x range", for the report.
    private func ranges(containing address: IPAddress) -> String {
        let hits = excludedCIDRs.filter { $0.contains(address) }.map { "in -x \($0)" }
            + includedCIDRs.filter { $0.contains(address) }.map { "in -i \($0)" }
        return hits.isEmpty ? "in no -i/-x range" : hits.joined(separator: ", ")
    }
}
