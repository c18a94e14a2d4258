/// The raw settings of `sluice-init` exactly as Istio's `istio-iptables` cobra/pflag command sees them:
/// strings stay strings (Istio passes most of them verbatim to iptables), booleans, the probe port and
/// the probe timeout are already typed because pflag types them. Validation and defaulting that needs
/// the system (user lookup, resolv.conf, interface addresses) happens in `CaptureConfig.resolve`.
///
/// Precedence, as Istio's `pkg/flag` implements it: flag default < BindEnv env var (flag name upper-cased,
/// `-` → `_`) < AdditionalEnv env var < command line. An env value the flag type cannot parse is
/// silently ignored, because Istio discards the error of `fs.Set`.
public struct CaptureSettings: Sendable, Hashable {
    /// Where a setting's current value came from; errors name the env var when it came from one.
    public enum Source: Sendable, Hashable {
        case defaultValue
        case environment(String)
        /// The spelling used on the command line (`-p`, `--envoy-port`).
        case commandLine(String)
    }

    // MARK: istio-iptables flags (FLAGS.md §2)

    /// `-p/--envoy-port` (no env var in Istio).
    public var envoyPort = "15001"
    /// `-z/--inbound-capture-port`
    public var inboundCapturePort = "15006"
    /// `-e/--inbound-tunnel-port`
    public var inboundTunnelPort = "15008"
    /// `-u/--proxy-uid`; empty means "UID of `$ENVOY_USER`, else 1337".
    public var proxyUID = ""
    /// `-g/--proxy-gid`; empty means "same as the proxy UIDs".
    public var proxyGID = ""
    /// `-m/--istio-inbound-interception-mode`; only the exact text `TPROXY` selects TPROXY.
    public var inboundInterceptionMode = ""
    /// `-t/--istio-inbound-tproxy-mark`
    public var inboundTProxyMark = "1337"
    /// `-r/--istio-inbound-tproxy-route-table`
    public var inboundTProxyRouteTable = "133"
    /// `-b/--istio-inbound-ports`: `*`, a list, or empty (no inbound capture).
    public var inboundPorts = ""
    /// `-d/--istio-local-exclude-ports`
    public var localExcludePorts = ""
    /// `-c/--istio-exclude-interfaces`
    public var excludeInterfaces = ""
    /// `-i/--istio-service-cidr`: `*`, a list, or empty (no CIDR-based outbound capture).
    public var serviceCIDR = ""
    /// `-x/--istio-service-exclude-cidr`
    public var serviceExcludeCIDR = ""
    /// `-q/--istio-outbound-ports`
    public var outboundPorts = ""
    /// `-o/--istio-local-outbound-ports-exclude`
    public var localOutboundPortsExclude = ""
    /// `-k/--kube-virt-interfaces`
    public var kubeVirtInterfaces = ""
    /// `-n/--dry-run`
    public var dryRun = false
    /// `--iptables-probe-port`
    public var iptablesProbePort: UInt16 = 15002
    /// `--probe-timeout`
    public var probeTimeout: Duration = .seconds(5)
    /// `--skip-rule-apply`
    public var skipRuleApply = false
    /// `--run-validation`
    public var runValidation = false
    /// `--redirect-dns` (env `REDIRECT_DNS`, beaten by `ISTIO_META_DNS_CAPTURE`)
    public var redirectDNS = false
    /// `--capture-all-dns`
    public var captureAllDNS = false
    /// `--drop-invalid` (env `DROP_INVALID`, beaten by `INVALID_DROP`)
    public var dropInvalid = false
    /// `--dual-stack` (env `DUAL_STACK`, beaten by `ISTIO_DUAL_STACK`)
    public var dualStack = false
    /// `--network-namespace`
    public var networkNamespace = ""
    /// `--cni-mode`
    public var cniMode = false
    /// `--reconcile`
    public var reconcile = false
    /// `--cleanup-only`
    public var cleanupOnly = false
    /// `--force-apply`
    public var forceApply = false
    /// `--native-nftables`
    public var nativeNftables = false
    /// `--force-iptables-binary`: "", `legacy` or `nft` (checked in `resolve`).
    public var forceIptablesBinary = ""

    // MARK: Sluice's own

    /// `--resolv-conf` (env `SLUICE_RESOLV_CONF`): the file whose nameservers DNS capture targets.
    public var resolvConfPath = "/etc/resolv.conf"
    /// `-h/--help`
    public var help = false

    // MARK: env-only inputs

    /// `ISTIO_OUTBOUND_OWNER_GROUPS`
    public var outboundOwnerGroups = "*"
    /// `ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE`
    public var outboundOwnerGroupsExclude = ""
    /// `ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR`
    public var outboundIPv4LoopbackCIDR = "127.0.0.1/32"
    /// `ENVOY_USER`
    public var envoyUser = "istio-proxy"
    /// `DRY_RUN_FILE_PATH`: where Istio's dry-run stub writes what it would have run.
    public var dryRunFilePath = ""

    /// pilot-agent's persistent logging flags (`--log_output_level`, ...), by name without dashes, every
    /// value given in order. Accepted so Istio's injection template works; the command decides what to
    /// honour.
    public var loggingFlags: [String: [String]] = [:]

    /// Sources of the inputs that are not at their default.
    public private(set) var sources: [Input: Source] = [:]

    public init() {}

    public func source(of input: Input) -> Source {
        sources[input] ?? .defaultValue
    }

    /// How an error names `input`: the env var when the value came from one, else the flag.
    public func label(of input: Input) -> String {
        if case .environment(let name) = source(of: input), let flag = input.flagName {
            return "env \(name) (--\(flag))"
        }
        return input.displayName
    }

    /// Sets `input` from text the way pflag's `Value.Set` would; false (and no change) if the text does
    /// not parse as the input's type.
    @discardableResult
    mutating func assign(_ input: Input, _ text: String, from source: Source) -> Bool {
        switch input.kind {
        case .string:
            self[string: input] = text
        case .bool:
            guard let value = GoSyntax.parseBool(text) else { return false }
            self[bool: input] = value
        case .uint16:
            guard let value = GoSyntax.parseUnsigned(text, bitSize: 16) else { return false }
            iptablesProbePort = UInt16(value)
        case .duration:
            guard let value = GoSyntax.parseDuration(text) else { return false }
            probeTimeout = value
        }
        sources[input] = source
        return true
    }

    private subscript(string input: Input) -> String {
        get { self[keyPath: Self.stringKeyPath(input)] }
        set { self[keyPath: Self.stringKeyPath(input)] = newValue }
    }

    private subscript(bool input: Input) -> Bool {
        get { self[keyPath: Self.boolKeyPath(input)] }
        set { self[keyPath: Self.boolKeyPath(input)] = newValue }
    }

    static func stringKeyPath(_ input: Input) -> WritableKeyPath<CaptureSettings, String> {
        switch input {
        case .envoyPort: \.envoyPort
        case .inboundCapturePort: \.inboundCapturePort
        case .inboundTunnelPort: \.inboundTunnelPort
        case .proxyUID: \.proxyUID
        case .proxyGID: \.proxyGID
        case .inboundInterceptionMode: \.inboundInterceptionMode
        case .inboundTProxyMark: \.inboundTProxyMark
        case .inboundTProxyRouteTable: \.inboundTProxyRouteTable
        case .inboundPorts: \.inboundPorts
        case .localExcludePorts: \.localExcludePorts
        case .excludeInterfaces: \.excludeInterfaces
        case .serviceCIDR: \.serviceCIDR
        case .serviceExcludeCIDR: \.serviceExcludeCIDR
        case .outboundPorts: \.outboundPorts
        case .localOutboundPortsExclude: \.localOutboundPortsExclude
        case .kubeVirtInterfaces: \.kubeVirtInterfaces
        case .networkNamespace: \.networkNamespace
        case .forceIptablesBinary: \.forceIptablesBinary
        case .resolvConf: \.resolvConfPath
        case .outboundOwnerGroups: \.outboundOwnerGroups
        case .outboundOwnerGroupsExclude: \.outboundOwnerGroupsExclude
        case .outboundIPv4LoopbackCIDR: \.outboundIPv4LoopbackCIDR
        case .envoyUser: \.envoyUser
        case .dryRunFilePath: \.dryRunFilePath
        default: preconditionFailure("\(input) is not a string setting")
        }
    }

    private static func boolKeyPath(_ input: Input) -> WritableKeyPath<CaptureSettings, Bool> {
        switch input {
        case .dryRun: \.dryRun
        case .skipRuleApply: \.skipRuleApply
        case .runValidation: \.runValidation
        case .redirectDNS: \.redirectDNS
        case .captureAllDNS: \.captureAllDNS
        case .dropInvalid: \.dropInvalid
        case .dualStack: \.dualStack
        case .cniMode: \.cniMode
        case .reconcile: \.reconcile
        case .cleanupOnly: \.cleanupOnly
        case .forceApply: \.forceApply
        case .nativeNftables: \.nativeNftables
        case .help: \.help
        default: preconditionFailure("\(input) is not a boolean setting")
        }
    }
}

extension CaptureSettings {
    /// Every flag and env-only input. Raw value: the long flag name, or the env var for env-only inputs.
    public enum Input: String, CaseIterable, Sendable, Hashable {
        case envoyPort = "envoy-port"
        case inboundCapturePort = "inbound-capture-port"
        case inboundTunnelPort = "inbound-tunnel-port"
        case proxyUID = "proxy-uid"
        case proxyGID = "proxy-gid"
        case inboundInterceptionMode = "istio-inbound-interception-mode"
        case inboundTProxyMark = "istio-inbound-tproxy-mark"
        case inboundTProxyRouteTable = "istio-inbound-tproxy-route-table"
        case inboundPorts = "istio-inbound-ports"
        case localExcludePorts = "istio-local-exclude-ports"
        case excludeInterfaces = "istio-exclude-interfaces"
        case serviceCIDR = "istio-service-cidr"
        case serviceExcludeCIDR = "istio-service-exclude-cidr"
        case outboundPorts = "istio-outbound-ports"
        case localOutboundPortsExclude = "istio-local-outbound-ports-exclude"
        case kubeVirtInterfaces = "kube-virt-interfaces"
        case dryRun = "dry-run"
        case iptablesProbePort = "iptables-probe-port"
        case probeTimeout = "probe-timeout"
        case skipRuleApply = "skip-rule-apply"
        case runValidation = "run-validation"
        case redirectDNS = "redirect-dns"
        case captureAllDNS = "capture-all-dns"
        case dropInvalid = "drop-invalid"
        case dualStack = "dual-stack"
        case networkNamespace = "network-namespace"
        case cniMode = "cni-mode"
        case reconcile = "reconcile"
        case cleanupOnly = "cleanup-only"
        case forceApply = "force-apply"
        case nativeNftables = "native-nftables"
        case forceIptablesBinary = "force-iptables-binary"
        case resolvConf = "resolv-conf"
        case help = "help"
        case outboundOwnerGroups = "ISTIO_OUTBOUND_OWNER_GROUPS"
        case outboundOwnerGroupsExclude = "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE"
        case outboundIPv4LoopbackCIDR = "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR"
        case envoyUser = "ENVOY_USER"
        case dryRunFilePath = "DRY_RUN_FILE_PATH"

        public enum Kind: Sendable, Hashable {
            case string, bool, uint16, duration
        }

        public var kind: Kind {
            switch self {
            case .dryRun, .skipRuleApply, .runValidation, .redirectDNS, .captureAllDNS, .dropInvalid, .dualStack,
                 .cniMode, .reconcile, .cleanupOnly, .forceApply, .nativeNftables, .help:
                .bool
            case .iptablesProbePort: .uint16
            case .probeTimeout: .duration
            default: .string
            }
        }

        public var isEnvironmentOnly: Bool {
            switch self {
            case .outboundOwnerGroups, .outboundOwnerGroupsExclude, .outboundIPv4LoopbackCIDR, .envoyUser,
                 .dryRunFilePath:
                true
            default: false
            }
        }

        /// The long flag name without dashes; nil for env-only inputs.
        public var flagName: String? { isEnvironmentOnly ? nil : rawValue }

        public var shorthand: Character? {
            switch self {
            case .envoyPort: "p"
            case .inboundCapturePort: "z"
            case .inboundTunnelPort: "e"
            case .proxyUID: "u"
            case .proxyGID: "g"
            case .inboundInterceptionMode: "m"
            case .inboundTProxyMark: "t"
            case .inboundTProxyRouteTable: "r"
            case .inboundPorts: "b"
            case .localExcludePorts: "d"
            case .excludeInterfaces: "c"
            case .serviceCIDR: "i"
            case .serviceExcludeCIDR: "x"
            case .outboundPorts: "q"
            case .localOutboundPortsExclude: "o"
            case .kubeVirtInterfaces: "k"
            case .dryRun: "n"
            case .help: "h"
            default: nil
            }
        }

        /// Env vars that set this input, weakest first: Istio's BindEnv name, then its AdditionalEnv.
        public var environmentNames: [String] {
            switch self {
            // Istio binds -p with `flag.Bind`, without env: ENVOY_PORT is only printed for debugging.
            case .envoyPort, .help: []
            case .redirectDNS: ["REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE"]
            case .dropInvalid: ["DROP_INVALID", "INVALID_DROP"]
            case .dualStack: ["DUAL_STACK", "ISTIO_DUAL_STACK"]
            case .resolvConf: ["SLUICE_RESOLV_CONF"]
            default:
                if isEnvironmentOnly { [rawValue] } else { [Self.bindEnvName(rawValue)] }
            }
        }

        /// `--istio-service-exclude-cidr (-x)`, or the env var of an env-only input.
        public var displayName: String {
            guard let flagName else { return rawValue }
            if let shorthand { return "--\(flagName) (-\(shorthand))" }
            return "--\(flagName)"
        }

        static func bindEnvName(_ flagName: String) -> String {
            String(flagName.uppercased().map { $0 == "-" ? "_" : $0 })
        }

        static let byFlagName: [String: Input] = Dictionary(
            uniqueKeysWithValues: allCases.compactMap { input in input.flagName.map { ($0, input) } })
        static let byShorthand: [Character: Input] = Dictionary(
            uniqueKeysWithValues: allCases.compactMap { input in input.shorthand.map { ($0, input) } })
    }

    /// pilot-agent's persistent flags (`pkg/log` options and klog's `--vklog`), which its
    /// `istio-iptables` sub-command inherits; the injector passes `--log_output_level=...`.
    enum LoggingFlagKind: Sendable {
        case string, bool, integer
    }

    static let loggingFlags: [String: LoggingFlagKind] = [
        "log_output_level": .string,
        "log_stacktrace_level": .string,
        "log_caller": .string,
        "log_target": .string,
        "log_as_json": .bool,
        "log_rotate": .string,
        "log_rotate_max_age": .integer,
        "log_rotate_max_size": .integer,
        "log_rotate_max_backups": .integer,
        "vklog": .integer,
    ]
}
