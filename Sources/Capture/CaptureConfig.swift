/// A validated capture configuration: everything `RulesetBuilder` needs, with Istio's defaults already
/// resolved (proxy UID looked up, GIDs defaulted, DNS servers read, IPv6 detected, group names resolved).
///
/// Built from `istio-iptables` flags and environment by `CaptureSettings` + `CaptureConfig.resolve`;
/// constructed directly in tests.
public struct CaptureConfig: Sendable, Hashable {
    public enum InterceptionMode: String, Sendable, Hashable {
        case redirect = "REDIRECT"
        case tproxy = "TPROXY"
    }

    /// `-b`: which inbound TCP ports are captured.
    public enum InboundPorts: Sendable, Hashable {
        /// `-b ""`: no inbound capture at all (no prerouting jump).
        case none
        /// `-b '*'`: every port except `-d` and the tunnel port.
        case all
        case only([UInt16])
    }

    /// `-i`: which outbound destinations are captured.
    public enum OutboundDestinations: Sendable, Hashable {
        /// `-i ""`: no CIDR-based capture (only `-q` ports).
        case none
        /// `-i '*'`
        case all
        case only([CIDR])
    }

    /// `ISTIO_OUTBOUND_OWNER_GROUPS` / `_EXCLUDE`, with names resolved to GIDs.
    public enum OwnerGroups: Sendable, Hashable {
        case all
        /// Only processes in one of these groups are captured.
        case only([UInt32])
        /// Everyone but processes in these groups is captured.
        case allExcept([UInt32])
    }

    public struct DNSCapture: Sendable, Hashable {
        /// `--capture-all-dns`: every port-53 destination, not just the resolv.conf servers.
        public var captureAll: Bool
        /// Nameservers from resolv.conf (empty with `captureAll`).
        public var servers: [IPAddress]

        public init(captureAll: Bool, servers: [IPAddress]) {
            self.captureAll = captureAll
            self.servers = servers
        }
    }

    /// `-p`
    public var proxyPort: UInt16 = 15001
    /// `-z`
    public var inboundCapturePort: UInt16 = 15006
    /// `-e`
    public var inboundTunnelPort: UInt16 = 15008
    /// `-u`, one rule triplet each, in order.
    public var proxyUIDs: [UInt32] = [1337]
    /// `-g`, one rule triplet each, in order.
    public var proxyGIDs: [UInt32] = [1337]
    /// `-m`
    public var interceptionMode: InterceptionMode = .redirect
    /// `-t`
    public var tproxyMark: UInt32 = 1337
    /// `-r`
    public var tproxyRouteTable: UInt32 = 133
    /// `-b`
    public var inboundPorts: InboundPorts = .none
    /// `-d`, honoured only with `-b '*'`.
    public var inboundExcludedPorts: [UInt16] = []
    /// `-c`
    public var excludedInterfaces: [String] = []
    /// `-i`
    public var outboundDestinations: OutboundDestinations = .none
    /// `-x`
    public var outboundExcludedCIDRs: [CIDR] = []
    /// `-q`
    public var outboundIncludedPorts: [UInt16] = []
    /// `-o`, TCP and UDP.
    public var outboundExcludedPorts: [UInt16] = []
    /// `-k`
    public var virtualInterfaces: [String] = []
    /// `--redirect-dns` after resolution: nil when DNS capture is off, or was asked for but no
    /// nameserver was found and capture-all is off (Istio then disables it with a warning).
    public var dns: DNSCapture? = nil
    /// `--drop-invalid`
    public var dropInvalid: Bool = false
    /// Whether IPv6-specific rules are written (Istio's `ENABLE_INBOUND_IPV6`).
    public var enableIPv6: Bool = false
    public var ownerGroups: OwnerGroups = .all
    /// `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR`
    public var ipv4LoopbackCIDR: CIDR = CIDR("127.0.0.1/32")!

    public init() {}

    /// The configuration the sidecar injector renders by default:
    /// `-p 15001 -z 15006 -u 1337 -m REDIRECT -i '*' -x "" -b '*' -d 15090,15021,15020`.
    public static var injectorDefault: CaptureConfig {
        var config = CaptureConfig()
        config.inboundPorts = .all
        config.inboundExcludedPorts = [15090, 15021, 15020]
        config.outboundDestinations = .all
        return config
    }
}
