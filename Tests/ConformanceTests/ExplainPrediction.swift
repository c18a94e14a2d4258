import Capture
import Netfilter
import PodLab
@testable import SluiceInit

/// `sluice-init explain` checked against the kernel: for every probe of the matrix, the walk of the live
/// ruleset (read back over netlink, as `explain` does) must predict where the real packet landed.
enum ExplainPrediction {
    /// The outcome `explain` predicts for `probe` in `lab`, or why it could not say.
    static func predict(_ probe: ProbeSpec, in lab: PodLab, matrix: ProbeMatrix) -> Result<Outcome, PredictionFailure> {
        var options = ExplainOptions()
        options.transport = probe.transport
        options.destination = probe.destination
        switch probe.side {
        case .pod:
            let owner = probe.owner ?? .root
            options.uid = owner.uid
            options.gid = owner.gid
            options.source = probe.source
        case .peer:
            guard let (interface, peer) = arrival(of: probe.destination.address, matrix: matrix) else {
                return .failure(PredictionFailure(reason: "no pod interface receives \(probe.destination.address)"))
            }
            options.inputInterface = interface
            options.source = peer
        }
        let walk: PacketWalk
        do {
            walk = try lab.pod.run { try ExplainCommand.explain(options, environment: [:]) }
        } catch {
            return .failure(PredictionFailure(reason: "explain failed: \(error)"))
        }
        switch walk.fate {
        case .redirected(let to, _):
            return .success(captured(port: to.port, original: probe.destination, transport: probe.transport))
        case .transparentProxy(let port, _):
            return .success(captured(port: port, original: probe.destination, transport: probe.transport))
        case .delivered(let endpoint):
            return .success(deliveredInPod(endpoint, transport: probe.transport, layout: matrix.layout))
        case .leaves(let endpoint, _):
            return .success(reachesPeer(endpoint, transport: probe.transport, layout: matrix.layout))
        case .forwarded, .dropped:
            return .success(.nowhere("explain: \(walk.summary)"))
        case .undetermined(let at, let reason):
            return .failure(PredictionFailure(reason: "undetermined at \(at): \(reason)"))
        }
    }

    struct PredictionFailure: Error, CustomStringConvertible {
        var reason: String
        var description: String { reason }
    }

    /// The pod interface a peer probe to `address` arrives on, and the peer's address on that link.
    private static func arrival(of address: IPAddress, matrix: ProbeMatrix) -> (String, IPAddress)? {
        let family = address.family
        if address == PodLab.podAddress(family) { return (PodLab.podInterface, PodLab.peerAddress(family)) }
        for link in matrix.links where link.podAddresses(family).contains(address) {
            return (link.name, link.peerAddresses(family)[0])
        }
        for transit in matrix.transitRoutes where transit.destination == address {
            if transit.interface == PodLab.podInterface { return (PodLab.podInterface, PodLab.peerAddress(family)) }
            guard let link = matrix.links.first(where: { $0.name == transit.interface }) else { return nil }
            return (link.name, link.peerAddresses(family)[0])
        }
        return nil
    }

    /// The listener a capture port leads to in the lab.
    private static func captured(port: UInt16, original: Endpoint, transport: TransportProtocol) -> Outcome {
        switch (transport, port) {
        case (.tcp, 15001): return .landed(.proxyOutbound(originalDestination: original))
        case (.tcp, 15006): return .landed(.proxyInbound(originalDestination: original))
        case (_, RulesetBuilder.dnsProxyPort): return .landed(.dnsProxy)
        default: return .nowhere("explain: captured to port \(port), where the lab has no listener")
        }
    }

    /// Not captured and local: whatever the pod listens on there.
    private static func deliveredInPod(_ endpoint: Endpoint, transport: TransportProtocol, layout: PodLab.Layout) -> Outcome {
        switch transport {
        case .tcp:
            if endpoint.port == 15001 { return .landed(.proxyOutbound(originalDestination: endpoint)) }
            if endpoint.port == 15006 { return .landed(.proxyInbound(originalDestination: endpoint)) }
            if endpoint.port == 15053 && endpoint.address.isLoopback { return .landed(.dnsProxy) }
            if layout.ports.podTCP.contains(endpoint.port) { return .landed(.direct(.pod, endpoint)) }
        case .udp:
            if endpoint.port == 15053 && endpoint.address.isLoopback { return .landed(.dnsProxy) }
            if layout.ports.podUDP.contains(endpoint) { return .landed(.direct(.pod, endpoint)) }
        }
        return .nowhere("explain: delivered to \(endpoint), where nothing listens")
    }

    /// Not captured, leaving the pod: the peer answers on the addresses it owns.
    private static func reachesPeer(_ endpoint: Endpoint, transport: TransportProtocol, layout: PodLab.Layout) -> Outcome {
        let family = endpoint.address.family
        let owned = [PodLab.peerAddress(family)] + PodLab.externalAddresses(family) + layout.links.flatMap { $0.peerAddresses(family) }
        guard owned.contains(endpoint.address) else { return .nowhere("explain: leaves for \(endpoint), which nobody owns") }
        let ports = transport == .tcp ? layout.ports.peerTCP : layout.ports.peerUDP
        return ports.contains(endpoint.port) ? .landed(.direct(.peer, endpoint)) : .nowhere("explain: the peer has no listener on \(endpoint)")
    }
}
