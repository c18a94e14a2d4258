/// What `CaptureConfig.resolve` needs to know about the system, injected so resolution stays pure.
/// The live implementation (`LiveSystemFacts` in SluiceInit) asks NSS, the file system and the kernel.
public protocol SystemFacts {
    /// The UID of a user name (`getpwnam`), nil if there is no such user.
    func userID(named name: String) -> UInt32?
    /// The GID of a group name (`getgrnam`), nil if there is no such group.
    func groupID(named name: String) -> UInt32?
    /// The text of the resolv.conf file at `path`, nil if it cannot be read.
    func resolvConf(at path: String) -> String?
    /// The non-loopback addresses of the current network namespace's interfaces, in kernel order.
    func interfaceAddresses() -> [IPAddress]
}

/// How to run, beside what to program: the flags that do not shape the ruleset.
public struct RunOptions: Sendable, Hashable {
    /// `-n/--dry-run`
    public var dryRun = false
    /// `DRY_RUN_FILE_PATH`, nil when unset or empty.
    public var dryRunFilePath: String? = nil
    /// `--cleanup-only`
    public var cleanupOnly = false
    /// `--skip-rule-apply`
    public var skipRuleApply = false
    /// `--run-validation`
    public var runValidation = false
    /// `--iptables-probe-port`
    public var probePort: UInt16 = 15002
    /// `--probe-timeout`
    public var probeTimeout: Duration = .seconds(5)
    /// The first usable local address (Istio's `HostIP`): the validation picks its family from it.
    /// nil when the namespace has no non-loopback, non-link-local address.
    public var hostAddress: IPAddress? = nil
    /// `--network-namespace`: recorded only; like Istio, the command does not enter it.
    public var networkNamespace = ""
    /// Accepted for compatibility and ignored: Sluice always programs nftables over netlink in one
    /// atomic transaction, so there is no binary to pick, nothing to reconcile and nothing to force.
    public var cniMode = false
    public var reconcile = false
    public var forceApply = false
    public var nativeNftables = false
    public var forceIptablesBinary = ""
    /// pilot-agent's logging flags as given (`log_output_level` → values).
    public var loggingFlags: [String: [String]] = [:]

    public init() {}
}

/// The outcome of resolving settings against the system.
public struct ResolvedCapture: Sendable, Hashable {
    public var config: CaptureConfig
    public var runOptions: RunOptions
    /// Things Istio tolerates silently or with a log line; the command prints them.
    public var warnings: [String]

    public init(config: CaptureConfig, runOptions: RunOptions, warnings: [String]) {
        self.config = config
        self.runOptions = runOptions
        self.warnings = warnings
    }
}

extension CaptureConfig {
    /// Validates the raw settings and fills in what Istio derives at run time: the proxy UID from
    /// `$ENVOY_USER`, GIDs from UIDs, group names, DNS servers from resolv.conf and IPv6 from the
    /// interface addresses.
    public static func resolve(
        _ settings: CaptureSettings, facts: some SystemFacts
    ) throws(ConfigurationError) -> ResolvedCapture {
        var resolver = Resolver(settings: settings)
        let config = try resolver.resolveConfig(facts: facts)
        return ResolvedCapture(config: config, runOptions: resolver.runOptions(), warnings: resolver.warnings)
    }

    /// The nameservers of a resolv.conf, IPv4 first then IPv6 (Istio's `DNSServersV4` + `DNSServersV6`),
    /// each in file order. Like Istio's `IPsSplitV4V6`, values that are not plain addresses are skipped;
    /// Sluice also skips zoned ones (`fe80::1%eth0`), which no rule can match (`ResolvConf.parse`).
    public static func nameservers(inResolvConf text: String) -> [IPAddress] {
        let servers = ResolvConf.parse(text).resolvConf.nameservers.map(\.address)
        return servers.filter { $0.family == .ipv4 } + servers.filter { $0.family == .ipv6 }
    }

    /// Istio's `getLocalIP`: the usable addresses are those that are not loopback, link-local unicast or
    /// link-local multicast, IPv4-mapped ones counted as IPv4. Without dual-stack the first usable
    /// address decides; with it, any IPv6 one turns IPv6 on. nil when no address is usable.
    public static func detectIPv6(
        addresses: [IPAddress], dualStack: Bool
    ) -> (hostAddress: IPAddress, enableIPv6: Bool)? {
        let usable = addresses.map(\.unmapped).filter { address in
            !address.isLoopback && !address.isLinkLocal && !address.isLinkLocalMulticast
        }
        guard let first = usable.first else { return nil }
        let enableIPv6 = dualStack ? usable.contains { $0.family == .ipv6 } : first.family == .ipv6
        return (first, enableIPv6)
    }
}

extension IPAddress {
    /// `::ffff:a.b.c.d` as the IPv4 address it wraps (Go's `netip.Addr.Unmap`).
    var unmapped: IPAddress {
        guard family == .ipv6, bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff
        else { return self }
        return IPAddress(family: .ipv4, bytes: Array(bytes[12...]))
    }

    /// 224.0.0.0/24 and ff02::/16 (any flags nibble), as Go's `IsLinkLocalMulticast`.
    var isLinkLocalMulticast: Bool {
        switch family {
        case .ipv4: bytes[0] == 224 && bytes[1] == 0 && bytes[2] == 0
        case .ipv6: bytes[0] == 0xff && bytes[1] & 0x0f == 0x02
        }
    }
}

/// One resolution pass; collects warnings as it goes.
private struct Resolver {
    let settings: CaptureSettings
    var warnings: [String] = []
    var hostAddress: IPAddress? = nil

    init(settings: CaptureSettings) {
        self.settings = settings
    }

    typealias Input = CaptureSettings.Input

    mutating func resolveConfig(facts: some SystemFacts) throws(ConfigurationError) -> CaptureConfig {
        var config = CaptureConfig()
        config.proxyPort = try port(settings.envoyPort, .envoyPort)
        config.inboundCapturePort = try port(settings.inboundCapturePort, .inboundCapturePort)
        config.inboundTunnelPort = try port(settings.inboundTunnelPort, .inboundTunnelPort)

        config.proxyUIDs = try proxyUIDs(facts: facts)
        if settings.proxyGID.isEmpty {
            // Istio copies the UID text into the GID when -g is not given ("for TPROXY, as uid and gid
            // are the same").
            config.proxyGIDs = config.proxyUIDs
        } else {
            config.proxyGIDs = try identities(
                settings.proxyGID, .proxyGID, kind: "GID", lookUp: facts.groupID(named:), noun: "group")
        }
        if config.proxyUIDs.isEmpty {
            warnings.append("\(settings.label(of: .proxyUID)) lists no UID: the proxy's own traffic is not exempt from capture")
        }

        switch settings.inboundInterceptionMode {
        case "TPROXY":
            config.interceptionMode = .tproxy
            // Istio reads -t and -r only in TPROXY mode, so they are only checked then.
            config.tproxyMark = try positive32(settings.inboundTProxyMark, .inboundTProxyMark, what: "fwmark")
            config.tproxyRouteTable = try positive32(
                settings.inboundTProxyRouteTable, .inboundTProxyRouteTable, what: "routing table")
            // The kernel's own tables: a `local default` route in main (254) would deliver every packet
            // of the pod locally; default (253) and local (255) are no better.
            if [253, 254, 255].contains(config.tproxyRouteTable) {
                throw ConfigurationError(
                    "routing table \(config.tproxyRouteTable) in \(settings.label(of: .inboundTProxyRouteTable)) is one "
                        + "of the kernel's own (253 default, 254 main, 255 local): pick a free table such as 133")
            }
        case "", "REDIRECT":
            config.interceptionMode = .redirect
        default:
            config.interceptionMode = .redirect
            warnings.append(
                "\(settings.label(of: .inboundInterceptionMode)) is \(goQuoted(settings.inboundInterceptionMode)), "
                    + "not TPROXY: using REDIRECT, as Istio does")
        }

        switch settings.inboundPorts {
        case "": config.inboundPorts = .none
        case "*": config.inboundPorts = .all
        default: config.inboundPorts = .only(try ports(settings.inboundPorts, .inboundPorts))
        }
        config.inboundExcludedPorts = try ports(settings.localExcludePorts, .localExcludePorts)
        config.excludedInterfaces = try interfaces(settings.excludeInterfaces, .excludeInterfaces)

        switch settings.serviceCIDR {
        case "": config.outboundDestinations = .none
        case "*": config.outboundDestinations = .all
        default: config.outboundDestinations = .only(try cidrs(settings.serviceCIDR, .serviceCIDR))
        }
        if settings.serviceExcludeCIDR == "*" {
            throw ConfigurationError(
                "\"*\" is not allowed in \(settings.label(of: .serviceExcludeCIDR)) (OUTBOUND_IP_RANGES_EXCLUDE): "
                    + "list the CIDRs to exclude")
        }
        config.outboundExcludedCIDRs = try cidrs(settings.serviceExcludeCIDR, .serviceExcludeCIDR)
        config.outboundIncludedPorts = try ports(settings.outboundPorts, .outboundPorts)
        config.outboundExcludedPorts = try ports(settings.localOutboundPortsExclude, .localOutboundPortsExclude)
        config.virtualInterfaces = try interfaces(settings.kubeVirtInterfaces, .kubeVirtInterfaces)

        config.ownerGroups = try ownerGroups(facts: facts)
        config.ipv4LoopbackCIDR = try loopbackCIDR()
        switch settings.forceIptablesBinary {
        case "", "legacy", "nft": break
        default:
            throw ConfigurationError(
                "invalid value \(goQuoted(settings.forceIptablesBinary)) for \(settings.label(of: .forceIptablesBinary)): "
                    + "want \"\", legacy or nft")
        }

        config.dropInvalid = settings.dropInvalid
        config.dns = try dnsCapture(facts: facts)

        if let detected = CaptureConfig.detectIPv6(addresses: facts.interfaceAddresses(), dualStack: settings.dualStack) {
            config.enableIPv6 = detected.enableIPv6
            hostAddress = detected.hostAddress
        } else {
            // Istio fails here with "no valid local IP address found". Sluice carries on with IPv4 rules
            // only: an init container in a namespace that has nothing but `lo` (yet) must still be able
            // to install capture, and with no IPv6 address there is no IPv6 traffic to capture.
            config.enableIPv6 = false
            warnings.append(
                "no non-loopback, non-link-local address in this network namespace: IPv6 rules disabled "
                    + "(Istio would stop with \"no valid local IP address found\")")
        }
        return config
    }

    func runOptions() -> RunOptions {
        var options = RunOptions()
        options.dryRun = settings.dryRun
        options.dryRunFilePath = settings.dryRunFilePath.isEmpty ? nil : settings.dryRunFilePath
        options.cleanupOnly = settings.cleanupOnly
        options.skipRuleApply = settings.skipRuleApply
        options.runValidation = settings.runValidation
        options.probePort = settings.iptablesProbePort
        options.probeTimeout = settings.probeTimeout
        options.hostAddress = hostAddress
        options.networkNamespace = settings.networkNamespace
        options.cniMode = settings.cniMode
        options.reconcile = settings.reconcile
        options.forceApply = settings.forceApply
        options.nativeNftables = settings.nativeNftables
        options.forceIptablesBinary = settings.forceIptablesBinary
        options.loggingFlags = settings.loggingFlags
        return options
    }

    // MARK: - Pieces

    /// Istio's `config.Split`: comma separated, empty items dropped, nothing trimmed (Go's
    /// `netip.ParsePrefix(" 10.0.0.0/8")` fails too, and the error shows the space).
    static func split(_ text: String) -> [String] {
        text.split(separator: ",", omittingEmptySubsequences: true).map(String.init)
    }

    /// Istio hands ports to iptables verbatim; Sluice needs numbers. Plain decimal only: iptables would
    /// read a leading zero as octal and nft as decimal, so such a port is ambiguous and refused.
    func port(_ text: String, _ input: Input) throws(ConfigurationError) -> UInt16 {
        guard !text.isEmpty, text.count <= 5, text.allSatisfy(\.isASCIIDigit), text.first != "0",
              let value = UInt32(text), value <= 65535 else {
            throw ConfigurationError("invalid port \(goQuoted(text)) in \(settings.label(of: input)): want 1-65535")
        }
        return UInt16(value)
    }

    func ports(_ text: String, _ input: Input) throws(ConfigurationError) -> [UInt16] {
        var result: [UInt16] = []
        for item in Self.split(text) { result.append(try port(item, input)) }
        return result
    }

    func cidrs(_ text: String, _ input: Input) throws(ConfigurationError) -> [CIDR] {
        var result: [CIDR] = []
        for item in Self.split(text) {
            guard let cidr = CIDR(item) else {
                throw ConfigurationError(
                    "invalid CIDR \(goQuoted(item)) in \(settings.label(of: input)): want addr/len such as 10.0.0.0/8")
            }
            result.append(cidr)
        }
        return result
    }

    /// Linux's `dev_valid_name`: 1-15 bytes, not "." or "..", no '/', ':' or whitespace; and no '"',
    /// which Linux allows but nft's string syntax cannot carry (the `--dry-run` text would break). A trailing
    /// '+' (iptables' wildcard, which istio-init users write) or '*' (nft's) matches every interface
    /// with that prefix; both become nft's '*' so the dry-run text and the netlink rule agree.
    func interfaces(_ text: String, _ input: Input) throws(ConfigurationError) -> [String] {
        var result: [String] = []
        for written in Self.split(text) {
            var name = written
            if name.hasSuffix("+") { name = String(name.dropLast()) + "*" }
            if name == "*" || name.dropLast().contains("*") {
                throw ConfigurationError(
                    "invalid interface name \(goQuoted(written)) in \(settings.label(of: input)): a wildcard is a "
                        + "prefix followed by one trailing '+' or '*', such as eth+")
            }
            let bytes = Array(name.utf8)
            let bad: Set<UInt8> = [UInt8(ascii: "/"), UInt8(ascii: ":"), UInt8(ascii: "\""), 0x20, 0x09, 0x0a, 0x0b, 0x0c, 0x0d]
            guard (1...15).contains(bytes.count), name != ".", name != "..", !bytes.contains(where: bad.contains)
            else {
                throw ConfigurationError(
                    "invalid interface name \(goQuoted(written)) in \(settings.label(of: input)): want 1-15 bytes "
                        + "without '/', ':', '\"' or whitespace, not \".\" or \"..\"")
            }
            result.append(name)
        }
        return result
    }

    /// A numeric ID, or a name looked up through NSS as iptables' `--uid-owner`/`--gid-owner` would.
    func identities(
        _ text: String, _ input: Input, kind: String,
        lookUp: (String) -> UInt32?, noun: String
    ) throws(ConfigurationError) -> [UInt32] {
        var result: [UInt32] = []
        for item in Self.split(text) {
            result.append(try identity(item, label: settings.label(of: input), kind: kind, lookUp: lookUp, noun: noun))
        }
        return result
    }

    func identity(
        _ item: String, label: String, kind: String, lookUp: (String) -> UInt32?, noun: String
    ) throws(ConfigurationError) -> UInt32 {
        if item.allSatisfy(\.isASCIIDigit) {
            // (uid_t)-1 means "no change" to the kernel, so it cannot be an owner.
            guard item == "0" || item.first != "0", let value = UInt32(item), value < UInt32.max else {
                throw ConfigurationError(
                    "invalid \(kind) \(goQuoted(item)) in \(label): want a decimal \(kind) 0-4294967294 "
                        + "without leading zeros, or a \(noun) name")
            }
            return value
        }
        guard let value = lookUp(item) else {
            throw ConfigurationError(
                "unknown \(noun) \(goQuoted(item)) in \(label): want a numeric \(kind) or an existing \(noun) name")
        }
        return value
    }

    mutating func proxyUIDs(facts: some SystemFacts) throws(ConfigurationError) -> [UInt32] {
        if settings.proxyUID.isEmpty {
            // Istio: `user.Lookup($ENVOY_USER)`, and 1337 if that fails for any reason.
            if !settings.envoyUser.isEmpty, let uid = facts.userID(named: settings.envoyUser) { return [uid] }
            return [1337]
        }
        return try identities(settings.proxyUID, .proxyUID, kind: "UID", lookUp: facts.userID(named:), noun: "user")
    }

    func positive32(_ text: String, _ input: Input, what: String) throws(ConfigurationError) -> UInt32 {
        guard text.allSatisfy(\.isASCIIDigit), text.first != "0", let value = UInt32(text) else {
            throw ConfigurationError(
                "invalid \(what) \(goQuoted(text)) in \(settings.label(of: input)): want 1-4294967295")
        }
        return value
    }

    /// Istio's `ParseInterceptFilter` + `ValidateOwnerGroups`.
    mutating func ownerGroups(facts: some SystemFacts) throws(ConfigurationError) -> CaptureConfig.OwnerGroups {
        let groupLookup = facts.groupID(named:)
        if settings.outboundOwnerGroups == "*" {
            let excluded = try identities(settings.outboundOwnerGroupsExclude, .outboundOwnerGroupsExclude,
                                          kind: "GID", lookUp: groupLookup, noun: "group")
            return excluded.isEmpty ? .all : .allExcept(excluded)
        }
        let label = settings.label(of: .outboundOwnerGroups)
        let items = Self.split(settings.outboundOwnerGroups)
        // All included groups end up in one rule with a match per group; Istio caps it at 64.
        guard items.count <= 64 else {
            throw ConfigurationError(
                "\(label) lists \(items.count) groups: at most 64 are allowed; list fewer, or use \"*\" "
                    + "with ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE")
        }
        let included = try identities(settings.outboundOwnerGroups, .outboundOwnerGroups,
                                      kind: "GID", lookUp: groupLookup, noun: "group")
        if included.isEmpty {
            warnings.append(
                "\(label) is set but lists no group: no outbound traffic is captured (as in Istio); "
                    + "unset it or use \"*\" to capture every group")
        }
        return .only(included)
    }

    /// Istio's `ValidateIPv4LoopbackCidr`.
    func loopbackCIDR() throws(ConfigurationError) -> CIDR {
        let text = settings.outboundIPv4LoopbackCIDR
        let label = settings.label(of: .outboundIPv4LoopbackCIDR)
        guard let cidr = CIDR(text) else {
            throw ConfigurationError(
                "invalid CIDR \(goQuoted(text)) in \(label): want an IPv4 loopback prefix such as 127.0.0.1/32")
        }
        guard cidr.family == .ipv4, cidr.address.isLoopback, (8...32).contains(cidr.prefixLength) else {
            throw ConfigurationError(
                "\(label) \(goQuoted(text)) is not an IPv4 loopback prefix with a mask of 8 to 32: "
                    + "want one inside 127.0.0.0/8 such as 127.0.0.1/32")
        }
        return cidr
    }

    mutating func dnsCapture(facts: some SystemFacts) throws(ConfigurationError) -> CaptureConfig.DNSCapture? {
        guard settings.redirectDNS else { return nil }
        if settings.captureAllDNS { return .init(captureAll: true, servers: []) }
        let path = settings.resolvConfPath
        guard let text = facts.resolvConf(at: path) else {
            throw ConfigurationError(
                "cannot read \(path) (\(settings.label(of: .resolvConf))) for DNS capture: "
                    + "point --resolv-conf at a readable file, or add --capture-all-dns")
        }
        let servers = CaptureConfig.nameservers(inResolvConf: text)
        if servers.isEmpty {
            warnings.append(
                "DNS capture disabled: no usable nameserver in \(path) and --capture-all-dns is off (as Istio does)")
            return nil
        }
        return .init(captureAll: false, servers: servers)
    }
}
