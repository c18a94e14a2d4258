import GRPCCore
import GRPCNIOTransportHTTP2

/// CA_ADDR resolved as usual (IPv4, IPv6 or DNS) but with the TLS server name as the channel's
/// authority. grpc-swift takes the SNI name and the name the certificate is checked against from the
/// authority; grpc-go, which Istio uses, lets the TLS ServerName (ISTIOD_SAN) override both the
/// verified name and the :authority, so a CA_ADDR that is an IP still verifies as istiod's DNS SAN.
struct ServerNameTarget: ResolvableTarget, Sendable {
    var address: CAAddress
    /// nil: the resolver's own (none for IP addresses, which are then verified against the IP SAN).
    var authority: String?
}

struct ServerNameResolverFactory: NameResolverFactory, Sendable {
    typealias Target = ServerNameTarget

    func resolver(for target: ServerNameTarget) -> NameResolver {
        let resolved: NameResolver
        switch target.address.kind {
        case .ipv4:
            resolved = NameResolvers.IPv4().resolver(for: .ipv4(address: target.address.host, port: target.address.port))
        case .ipv6:
            resolved = NameResolvers.IPv6().resolver(for: .ipv6(address: target.address.host, port: target.address.port))
        case .dnsName:
            resolved = NameResolvers.DNS().resolver(for: .dns(host: target.address.host, port: target.address.port))
        }
        return NameResolver(names: resolved.names, updateMode: resolved.updateMode,
                            authority: target.authority ?? resolved.authority)
    }

    static var registry: NameResolverRegistry {
        var registry = NameResolverRegistry()
        registry.registerFactory(ServerNameResolverFactory())
        return registry
    }
}
