import Capture
import Logging
import NIOCore
import NIOPosix

/// What the proxy listens on and forwards to, resolved from `DNS_PROXY_ADDR`, `DNS_FORWARD_*` and resolv.conf.
public struct DNSProxyConfiguration: Sendable, Equatable {
    /// One UDP and one TCP listener on each.
    public var listenAddresses: [Endpoint]
    /// The resolv.conf nameservers.
    public var upstreams: [Endpoint]
    public var forwardInParallel: Bool
    public var forwardTimeout: Duration
    public var forwardBeforeTableLoads: Bool

    public init(listenAddresses: [Endpoint], upstreams: [Endpoint], forwardInParallel: Bool = false,
                forwardTimeout: Duration = .seconds(5), forwardBeforeTableLoads: Bool = false) {
        self.listenAddresses = listenAddresses
        self.upstreams = upstreams
        self.forwardInParallel = forwardInParallel
        self.forwardTimeout = forwardTimeout
        self.forwardBeforeTableLoads = forwardBeforeTableLoads
    }

    /// Istio's listeners for `DNS_PROXY_ADDR` (DNS.md §1): the default `localhost:15053` becomes
    /// 127.0.0.1 when resolv.conf has an IPv4 server and [::1] when it has an IPv6 one (127.0.0.1 when it
    /// has none, so the table is still served); any other value must be `<ip>:<port>` or `[<ipv6>]:<port>`.
    public static func listenAddresses(for proxyAddress: String, upstreams: [Endpoint]) throws(DNSProxyConfigurationError) -> [Endpoint] {
        guard let separator = proxyAddress.lastIndex(of: ":"),
              let port = UInt16(proxyAddress[proxyAddress.index(after: separator)...]) else {
            throw DNSProxyConfigurationError("DNS_PROXY_ADDR=\"\(proxyAddress)\" is not host:port: use localhost:15053, 127.0.0.1:15053 or [::1]:15053")
        }
        var host = String(proxyAddress[..<separator])
        if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
        if host == "localhost" {
            let families = Set(upstreams.map(\.address.family))
            var addresses: [Endpoint] = []
            if families.contains(.ipv4) || families.isEmpty { addresses.append(Endpoint(IPAddress("127.0.0.1")!, port)) }
            if families.contains(.ipv6) { addresses.append(Endpoint(.ipv6Loopback, port)) }
            return addresses
        }
        guard let address = IPAddress(host) else {
            throw DNSProxyConfigurationError("DNS_PROXY_ADDR=\"\(proxyAddress)\": \"\(host)\" is not an IP address: use localhost or an address of this pod")
        }
        return [Endpoint(address, port)]
    }
}

public struct DNSProxyConfigurationError: Error, Sendable, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// The DNS proxy: UDP and TCP listeners on every listen address, answering from the lookup table and
/// forwarding the rest. Everything runs on one event loop: a query is a few microseconds of work, and
/// one loop keeps the forwarder's bookkeeping free of locks.
public final class DNSProxyServer: Sendable {
    /// The bound addresses, in the order of the configuration (a port 0 is replaced by the kernel's).
    public let addresses: [Endpoint]
    private let channels: [any Channel]
    private let forwarder: UpstreamForwarder

    private init(addresses: [Endpoint], channels: [any Channel], forwarder: UpstreamForwarder) {
        self.addresses = addresses
        self.channels = channels
        self.forwarder = forwarder
    }

    public static func start(_ configuration: DNSProxyConfiguration, store: LookupTableStore, metrics: DNSProxyMetrics = .none,
                             group: any EventLoopGroup, logger: Logger) async throws -> DNSProxyServer {
        let eventLoop = group.next()
        let forwarder = try await UpstreamForwarder.start(
            upstreams: configuration.upstreams, forwardInParallel: configuration.forwardInParallel,
            timeout: configuration.forwardTimeout, eventLoop: eventLoop, metrics: metrics)
        let pipeline = QueryPipeline(answerer: QueryAnswerer(forwardBeforeTableLoads: configuration.forwardBeforeTableLoads),
                                     store: store, forwarder: forwarder, metrics: metrics)
        var channels: [any Channel] = []
        var addresses: [Endpoint] = []
        do {
            for address in configuration.listenAddresses {
                let (udp, tcp, bound) = try await bindPair(address, pipeline: pipeline, eventLoop: eventLoop)
                channels += [udp, tcp]
                addresses.append(bound)
            }
        } catch {
            for channel in channels { try? await channel.close() }
            await forwarder.close()
            throw DNSProxyConfigurationError("DNS proxy: cannot listen: \(error)")
        }
        return DNSProxyServer(addresses: addresses, channels: channels, forwarder: forwarder)
    }

    /// Both protocols on the same port: with port 0 the TCP listener takes the port the kernel gave UDP.
    private static func bindPair(_ address: Endpoint, pipeline: QueryPipeline, eventLoop: any EventLoop) async throws
        -> (any Channel, any Channel, Endpoint) {
        let host = address.address.description
        // Sockets are made on the event loop's thread: they belong to that thread's network namespace,
        // which is the pod's in the agent and the test's netns in the tests.
        let udp = try await eventLoop.flatSubmit {
            DatagramBootstrap(group: eventLoop)
                .channelOption(.socketOption(.so_reuseaddr), value: 1)
                // NIO splits one buffer into equal slots for a vector read: each slot holds a query and one
                // byte more, so an oversized datagram shows as one.
                .channelOption(.recvAllocator, value: FixedSizeRecvByteBufferAllocator(
                    capacity: (DNSDatagramHandler.largestQuery + 1) * DNSDatagramHandler.datagramsPerRead))
                .channelOption(.datagramVectorReadMessageCount, value: DNSDatagramHandler.datagramsPerRead)
                .channelOption(.socketOption(.so_rcvbuf), value: 4 << 20)
                .channelInitializer { channel in
                    channel.eventLoop.makeCompletedFuture {
                        try channel.pipeline.syncOperations.addHandler(DNSDatagramHandler(pipeline: pipeline))
                    }
                }
                .bind(host: host, port: Int(address.port))
        }.get()
        let port = udp.localAddress?.port ?? Int(address.port)
        do {
            let tcp = try await eventLoop.flatSubmit {
                ServerBootstrap(group: eventLoop)
                    .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
                    .serverChannelOption(.backlog, value: 256)
                    .childChannelInitializer { channel in
                        channel.eventLoop.makeCompletedFuture {
                            try channel.pipeline.syncOperations.addHandler(DNSStreamHandler(pipeline: pipeline))
                        }
                    }
                    .bind(host: host, port: port)
            }.get()
            return (udp, tcp, Endpoint(address.address, UInt16(port)))
        } catch {
            try? await udp.close()
            throw error
        }
    }

    /// Stops listening; queries still waiting upstream are abandoned.
    public func close() async {
        for channel in channels { try? await channel.close() }
        await forwarder.close()
    }
}
