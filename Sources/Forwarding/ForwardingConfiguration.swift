import Capture

/// Where a forwarding listener sends what it accepts: Envoy's ORIGINAL_DST cluster, reduced to what
/// the L4 path needs.
public struct ForwardingCluster: Sendable, Hashable {
    public var name: String
    /// The stats scope: `cluster.<statName>.` (Envoy uses alt_stat_name when the cluster has one).
    public var statName: String
    public var connectTimeout: Duration
    /// upstream_bind_config: the source address for each family (Istio's 127.0.0.6 and ::6 for
    /// inbound, so the forwarded leg is not captured again). A destination of a family with no
    /// source address here is dialled from the kernel's choice.
    public var sourceAddresses: [IPAddress]
    /// circuit_breakers max_connections: upstream connections beyond it are refused (`upstream_cx_overflow`).
    public var maxConnections: Int?

    public init(
        name: String, statName: String? = nil, connectTimeout: Duration = .seconds(5),
        sourceAddresses: [IPAddress] = [], maxConnections: Int? = nil
    ) {
        self.name = name
        self.statName = statName ?? name
        self.connectTimeout = connectTimeout
        self.sourceAddresses = sourceAddresses
        self.maxConnections = maxConnections
    }

    func sourceAddress(for family: IPFamily) -> IPAddress? {
        sourceAddresses.first { $0.family == family }
    }
}

/// A listener whose filter chain is Envoy's `tcp_proxy` to an ORIGINAL_DST cluster: Istio's
/// `virtualOutbound` (15001) and `virtualInbound` (15006).
public struct ForwardingListener: Sendable, Hashable {
    public var name: String
    /// The stats scope: `listener.<statName>.` (`0.0.0.0_15001`).
    public var statName: String
    /// Every address to bind (the bootstrap's address, then additional_addresses).
    public var addresses: [Endpoint]
    /// `transparent: true`: IP_TRANSPARENT on the listening socket, so TPROXY'd connections to any
    /// address are accepted and their local address is the original destination.
    public var transparent: Bool
    /// The `original_dst` listener filter: forward to conntrack's original destination
    /// (SO_ORIGINAL_DST), or to the local address when there is none (TPROXY).
    public var useOriginalDestination: Bool
    /// The `original_src` listener filter: the upstream leg keeps the downstream's source address
    /// (IP_TRANSPARENT) and carries this mark, so TPROXY routing sends replies back to the proxy.
    public var originalSourceMark: UInt32?
    /// traffic_direction INBOUND: drained by `/drain_listeners?inboundonly`.
    public var isInbound: Bool
    /// tcp_proxy stat_prefix: `tcp.<prefix>.`.
    public var tcpStatPrefix: String
    public var cluster: ForwardingCluster
    /// tcp_proxy idle_timeout: a connection with no bytes either way for this long is closed
    /// (Envoy's default is one hour); nil disables it.
    public var idleTimeout: Duration?

    public init(
        name: String, statName: String, addresses: [Endpoint], transparent: Bool = false,
        useOriginalDestination: Bool = true, originalSourceMark: UInt32? = nil, isInbound: Bool = false,
        tcpStatPrefix: String, cluster: ForwardingCluster, idleTimeout: Duration? = .seconds(3600)
    ) {
        self.name = name
        self.statName = statName
        self.addresses = addresses
        self.transparent = transparent
        self.useOriginalDestination = useOriginalDestination
        self.originalSourceMark = originalSourceMark
        self.isInbound = isInbound
        self.tcpStatPrefix = tcpStatPrefix
        self.cluster = cluster
        self.idleTimeout = idleTimeout
    }
}

public struct ForwardingConfiguration: Sendable {
    public var listeners: [ForwardingListener]
    /// Worker threads, each with its own epoll loop (Envoy's --concurrency).
    public var workers: Int
    /// Ports of the proxy's own listeners: a connection whose original destination is one of them on
    /// a local address would be forwarded back to the proxy forever, so it is refused.
    public var ownPorts: Set<UInt16>
    /// overload_manager global_downstream_max_connections, across every forwarding listener.
    public var maxActiveDownstreamConnections: Int?
    /// Bytes a pipe may hold between a read and a write; bigger moves more per system call.
    public var pipeCapacity: Int

    public init(
        listeners: [ForwardingListener], workers: Int, ownPorts: Set<UInt16> = [],
        maxActiveDownstreamConnections: Int? = nil, pipeCapacity: Int = 256 * 1024
    ) {
        self.listeners = listeners
        self.workers = max(1, workers)
        self.ownPorts = ownPorts.union(listeners.flatMap { $0.addresses.map(\.port) })
        self.maxActiveDownstreamConnections = maxActiveDownstreamConnections
        self.pipeCapacity = pipeCapacity
    }
}

public struct ForwardingError: Error, CustomStringConvertible, Equatable {
    public var message: String
    public var description: String { message }

    public init(_ message: String) {
        self.message = message
    }
}
