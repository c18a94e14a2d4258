import Capture

/// The 28 configurations of Istio's capture goldens (`shared/istio-capture/testdata/INDEX.md`), built
/// the way Istio's tests build them: fields set directly on the base config, which captures neither
/// inbound (`-b ""`) nor by CIDR (`-i ""`). Plus the injector default.
enum GoldenConfigurations {
    static let injectorDefaultName = "injector-default"

    static var all: [(name: String, config: CaptureConfig)] {
        var result: [(String, CaptureConfig)] = [(injectorDefaultName, .injectorDefault)]
        result += istioCases
        return result
    }

    static var istioCases: [(String, CaptureConfig)] {
        let base = CaptureConfig()
        func with(_ change: (inout CaptureConfig) -> Void) -> CaptureConfig {
            var config = base
            change(&config)
            return config
        }
        func cidrs(_ list: String...) -> [CIDR] { list.map { CIDR($0)! } }
        func servers(_ list: String...) -> [IPAddress] { list.map { IPAddress($0)! } }
        let uid34gid12: (inout CaptureConfig) -> Void = { $0.proxyUIDs = [3, 4]; $0.proxyGIDs = [1, 2] }
        return [
            ("empty", base),
            ("inbound-ports-include", with { $0.inboundPorts = .only([32000, 31000]) }),
            ("inbound-ports-wildcard", with { $0.inboundPorts = .all }),
            ("inbound-ports-tproxy", with { $0.inboundPorts = .only([32000, 31000]); $0.interceptionMode = .tproxy }),
            ("inbound-ports-wildcard-tproxy", with { $0.inboundPorts = .all; $0.interceptionMode = .tproxy }),
            ("inbound-ports-empty-tproxy", with { $0.interceptionMode = .tproxy }),
            ("outbound-ports-include", with { $0.outboundIncludedPorts = [32000, 31000] }),
            ("ipnets", with { $0.outboundDestinations = .only(cidrs("10.0.0.0/8")) }),
            ("kube-virt-interfaces", with { $0.virtualInterfaces = ["eth1", "eth2"]; $0.outboundDestinations = .all }),
            ("ipnets-with-kube-virt-interfaces", with {
                $0.virtualInterfaces = ["eth1", "eth2"]; $0.outboundDestinations = .only(cidrs("10.0.0.0/8"))
            }),
            ("ip-range", with {
                $0.outboundExcludedCIDRs = cidrs("1.1.0.0/16"); $0.outboundDestinations = .only(cidrs("9.9.0.0/16"))
                $0.dns = .init(captureAll: false, servers: servers("127.0.0.53")); uid34gid12(&$0)
            }),
            ("tproxy", with {
                $0.interceptionMode = .tproxy; $0.inboundPorts = .all
                $0.outboundExcludedCIDRs = cidrs("1.1.0.0/16"); $0.outboundDestinations = .only(cidrs("9.9.0.0/16"))
                $0.dns = .init(captureAll: false, servers: servers("127.0.0.53"))
                $0.excludedInterfaces = ["not-istio-nic"]; $0.enableIPv6 = true
            }),
            ("ipv6-empty-inbound-ports", with { $0.enableIPv6 = true }),
            ("ipv6-inbound-ports", with { $0.inboundPorts = .only([4000, 5000]); $0.enableIPv6 = true }),
            ("ipv6-virt-interfaces", with {
                $0.inboundPorts = .only([4000, 5000]); $0.virtualInterfaces = ["eth0", "eth1"]; $0.enableIPv6 = true
            }),
            ("ipv6-ipnets", with {
                $0.inboundPorts = .only([4000, 5000]); $0.inboundExcludedPorts = [6000, 7000]
                $0.virtualInterfaces = ["eth0", "eth1"]
                $0.outboundExcludedCIDRs = cidrs("2001:db8::/32"); $0.outboundDestinations = .only(cidrs("2001:db8::/32"))
                $0.enableIPv6 = true
            }),
            ("ipv6-uid-gid", with {
                $0.inboundPorts = .only([4000, 5000]); $0.inboundExcludedPorts = [6000, 7000]
                $0.virtualInterfaces = ["eth0", "eth1"]
                $0.outboundExcludedCIDRs = cidrs("2001:db8::/32"); $0.outboundDestinations = .only(cidrs("2001:db8::/32"))
                $0.enableIPv6 = true; uid34gid12(&$0)
            }),
            ("ipv6-outbound-ports", with { $0.outboundIncludedPorts = [32000, 31000]; $0.enableIPv6 = true }),
            ("dns-uid-gid", with {
                $0.dns = .init(captureAll: false, servers: servers("127.0.0.53", "::127.0.0.53"))
                $0.enableIPv6 = true; uid34gid12(&$0)
            }),
            // Redirect-DNS with no servers and no capture-all: resolution turns DNS capture off.
            ("ipv6-dns-uid-gid", with { $0.enableIPv6 = true; uid34gid12(&$0) }),
            ("outbound-owner-groups", with { $0.ownerGroups = .only([Self.javaGroup, 202]) }),
            ("outbound-owner-groups-exclude", with { $0.ownerGroups = .allExcept([888, Self.ftpGroup]) }),
            ("ipv6-dns-outbound-owner-groups", with { $0.enableIPv6 = true; $0.ownerGroups = .only([Self.javaGroup, 202]) }),
            ("ipv6-dns-outbound-owner-groups-exclude", with {
                $0.enableIPv6 = true; $0.ownerGroups = .allExcept([888, Self.ftpGroup])
            }),
            ("loopback-outbound-iprange", with {
                $0.outboundDestinations = .only(cidrs("127.1.2.3/32"))
                $0.dns = .init(captureAll: false, servers: servers("127.0.0.53")); uid34gid12(&$0)
            }),
            ("basic-exclude-nic", with { $0.excludedInterfaces = ["not-istio-nic"] }),
            ("drop-invalid", with { $0.dropInvalid = true }),
            ("host-ipv4-loopback-cidr", with { $0.ipv4LoopbackCIDR = CIDR("127.0.0.1/8")! }),
        ]
    }

    /// The goldens name groups `java` and `ftp`; configurations carry resolved GIDs, so the tests
    /// use these stand-ins and map the names when reading Istio's text.
    static let javaGroup: UInt32 = 4101
    static let ftpGroup: UInt32 = 4102
}
