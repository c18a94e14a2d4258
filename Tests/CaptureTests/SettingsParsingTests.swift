@testable import Capture
import Testing

@Suite("Settings: flags and environment as Istio's command parses them")
struct SettingsParsingTests {
    typealias Input = CaptureSettings.Input
    func parse(_ arguments: [String], _ environment: [String: String]) throws -> CaptureSettings {
        try SettingsHarness.parse(arguments, environment)
    }
    func error(
        _ arguments: [String], _ environment: [String: String], _ facts: FakeFacts = FakeFacts(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        SettingsHarness.error(arguments, environment, facts, sourceLocation: sourceLocation)
    }

    // MARK: defaults

    @Test func defaultsMatchIstio() throws {
        let settings = try parse([], [:])
        #expect(settings.envoyPort == "15001")
        #expect(settings.inboundCapturePort == "15006")
        #expect(settings.inboundTunnelPort == "15008")
        #expect(settings.proxyUID == "" && settings.proxyGID == "")
        #expect(settings.inboundInterceptionMode == "")
        #expect(settings.inboundTProxyMark == "1337")
        #expect(settings.inboundTProxyRouteTable == "133")
        #expect(settings.inboundPorts == "" && settings.localExcludePorts == "")
        #expect(settings.excludeInterfaces == "" && settings.kubeVirtInterfaces == "")
        #expect(settings.serviceCIDR == "" && settings.serviceExcludeCIDR == "")
        #expect(settings.outboundPorts == "" && settings.localOutboundPortsExclude == "")
        #expect(settings.iptablesProbePort == 15002)
        #expect(settings.probeTimeout == .seconds(5))
        #expect(!settings.dryRun && !settings.skipRuleApply && !settings.runValidation)
        #expect(!settings.redirectDNS && !settings.captureAllDNS && !settings.dropInvalid && !settings.dualStack)
        #expect(!settings.cniMode && !settings.reconcile && !settings.cleanupOnly && !settings.forceApply)
        #expect(!settings.nativeNftables && settings.forceIptablesBinary == "")
        #expect(settings.networkNamespace == "")
        #expect(settings.resolvConfPath == "/etc/resolv.conf")
        #expect(settings.outboundOwnerGroups == "*")
        #expect(settings.outboundOwnerGroupsExclude == "")
        #expect(settings.outboundIPv4LoopbackCIDR == "127.0.0.1/32")
        #expect(settings.envoyUser == "istio-proxy")
        #expect(settings.dryRunFilePath == "")
        #expect(!settings.help)
        #expect(settings.loggingFlags.isEmpty)
        for input in Input.allCases { #expect(settings.source(of: input) == .defaultValue) }
    }

    // MARK: every flag, long and short

    /// (input, a value to give it, how to read it back)
    static let stringFlags: [(Input, String, @Sendable (CaptureSettings) -> String)] = [
        (.envoyPort, "15101", { $0.envoyPort }),
        (.inboundCapturePort, "15106", { $0.inboundCapturePort }),
        (.inboundTunnelPort, "15108", { $0.inboundTunnelPort }),
        (.proxyUID, "1000,1001", { $0.proxyUID }),
        (.proxyGID, "2000", { $0.proxyGID }),
        (.inboundInterceptionMode, "TPROXY", { $0.inboundInterceptionMode }),
        (.inboundTProxyMark, "99", { $0.inboundTProxyMark }),
        (.inboundTProxyRouteTable, "150", { $0.inboundTProxyRouteTable }),
        (.inboundPorts, "80,443", { $0.inboundPorts }),
        (.localExcludePorts, "15090,15021", { $0.localExcludePorts }),
        (.excludeInterfaces, "eth1", { $0.excludeInterfaces }),
        (.serviceCIDR, "10.0.0.0/8", { $0.serviceCIDR }),
        (.serviceExcludeCIDR, "10.96.0.0/12", { $0.serviceExcludeCIDR }),
        (.outboundPorts, "8080", { $0.outboundPorts }),
        (.localOutboundPortsExclude, "3306", { $0.localOutboundPortsExclude }),
        (.kubeVirtInterfaces, "net1", { $0.kubeVirtInterfaces }),
        (.networkNamespace, "/var/run/netns/pod", { $0.networkNamespace }),
        (.forceIptablesBinary, "nft", { $0.forceIptablesBinary }),
        (.resolvConf, "/tmp/resolv.conf", { $0.resolvConfPath }),
    ]

    static let boolFlags: [(Input, @Sendable (CaptureSettings) -> Bool)] = [
        (.dryRun, { $0.dryRun }),
        (.skipRuleApply, { $0.skipRuleApply }),
        (.runValidation, { $0.runValidation }),
        (.redirectDNS, { $0.redirectDNS }),
        (.captureAllDNS, { $0.captureAllDNS }),
        (.dropInvalid, { $0.dropInvalid }),
        (.dualStack, { $0.dualStack }),
        (.cniMode, { $0.cniMode }),
        (.reconcile, { $0.reconcile }),
        (.cleanupOnly, { $0.cleanupOnly }),
        (.forceApply, { $0.forceApply }),
        (.nativeNftables, { $0.nativeNftables }),
        (.help, { $0.help }),
    ]

    @Test func everyFlagIsCovered() {
        let covered = Set(Self.stringFlags.map(\.0) + Self.boolFlags.map(\.0) + [.iptablesProbePort, .probeTimeout])
        let flags = Set(Input.allCases.filter { !$0.isEnvironmentOnly })
        #expect(covered == flags)
    }

    @Test func istioShorthands() {
        let expected: [Input: Character] = [
            .envoyPort: "p", .inboundCapturePort: "z", .inboundTunnelPort: "e", .proxyUID: "u", .proxyGID: "g",
            .inboundInterceptionMode: "m", .inboundTProxyMark: "t", .inboundTProxyRouteTable: "r",
            .inboundPorts: "b", .localExcludePorts: "d", .excludeInterfaces: "c", .serviceCIDR: "i",
            .serviceExcludeCIDR: "x", .outboundPorts: "q", .localOutboundPortsExclude: "o",
            .kubeVirtInterfaces: "k", .dryRun: "n", .help: "h",
        ]
        for input in Input.allCases { #expect(input.shorthand == expected[input], "\(input)") }
    }

    @Test(arguments: 0..<stringFlags.count)
    func stringFlagInEverySpelling(index: Int) throws {
        let (input, value, read) = Self.stringFlags[index]
        let long = "--\(input.rawValue)"
        var spellings = [[long, value], ["\(long)=\(value)"]]
        if let short = input.shorthand {
            spellings += [["-\(short)", value], ["-\(short)\(value)"], ["-\(short)=\(value)"]]
        }
        for arguments in spellings {
            let settings = try parse(arguments, [:])
            #expect(read(settings) == value, "\(arguments)")
            #expect(settings.source(of: input) == .commandLine(arguments[0].hasPrefix("--") ? long : "-\(input.shorthand!)"))
        }
    }

    @Test(arguments: 0..<boolFlags.count)
    func boolFlagInEverySpelling(index: Int) throws {
        let (input, read) = Self.boolFlags[index]
        let long = "--\(input.rawValue)"
        #expect(read(try parse([long], [:])))
        #expect(read(try parse(["\(long)=true"], [:])))
        #expect(!read(try parse(["\(long)=false"], [:])))
        #expect(!read(try parse([long, "\(long)=0"], [:])), "the last occurrence wins")
        if let short = input.shorthand {
            #expect(read(try parse(["-\(short)"], [:])))
            #expect(!read(try parse(["-\(short)=false"], [:])))
        }
    }

    @Test func goBoolSyntax() throws {
        for text in ["1", "t", "T", "TRUE", "true", "True"] { #expect(try parse(["--dry-run=\(text)"], [:]).dryRun) }
        for text in ["0", "f", "F", "FALSE", "false", "False"] {
            #expect(try !parse(["--dry-run=\(text)"], [:]).dryRun)
        }
        #expect(error(["--dry-run=yes"], [:])
            == "invalid value \"yes\" for --dry-run (-n): want true or false (or 1, t, T, TRUE, True, 0, f, F, FALSE, False)")
        #expect(error(["-n=tRuE"], [:])?.hasPrefix("invalid value \"tRuE\" for --dry-run (-n)") == true)
    }

    @Test func boolFlagDoesNotTakeTheNextArgument() {
        #expect(error(["--dry-run", "false"], [:])
            == "unexpected argument \"false\": sluice-init takes only flags; see sluice-init --help")
    }

    @Test func probePortIsAGoUint16() throws {
        #expect(try parse(["--iptables-probe-port", "15102"], [:]).iptablesProbePort == 15102)
        #expect(try parse(["--iptables-probe-port=0x10"], [:]).iptablesProbePort == 16)
        #expect(try parse(["--iptables-probe-port=010"], [:]).iptablesProbePort == 8)
        #expect(try parse(["--iptables-probe-port=0o10"], [:]).iptablesProbePort == 8)
        #expect(try parse(["--iptables-probe-port=0b11"], [:]).iptablesProbePort == 3)
        #expect(try parse(["--iptables-probe-port=15_002"], [:]).iptablesProbePort == 15002)
        #expect(try parse(["--iptables-probe-port=0"], [:]).iptablesProbePort == 0)
        for bad in ["65536", "-1", "", "x", "1__0", "_1", "1_", "0x"] {
            #expect(error(["--iptables-probe-port=\(bad)"], [:])
                == "invalid value \"\(bad)\" for --iptables-probe-port: want a port number 0-65535")
        }
    }

    @Test func probeTimeoutIsAGoDuration() throws {
        let cases: [(String, Duration)] = [
            ("5s", .seconds(5)), ("1m30s", .seconds(90)), ("500ms", .milliseconds(500)), ("1.5h", .seconds(5400)),
            ("0", .zero), ("-1s", .seconds(-1)), ("+2s", .seconds(2)), ("1µs", .microseconds(1)),
            ("1μs", .microseconds(1)), ("3us", .microseconds(3)), ("7ns", .nanoseconds(7)), (".5s", .milliseconds(500)),
            ("1.s", .seconds(1)), ("1h2m3s4ms", .seconds(3723) + .milliseconds(4)),
            ("2562047h47m16.854775807s", .nanoseconds(Int64.max)),
        ]
        for (text, expected) in cases {
            #expect(try parse(["--probe-timeout", text], [:]).probeTimeout == expected, "\(text)")
        }
        for bad in ["5", "", "s", "1x", ".", "1.5", "-", "1s2", "2562047h47m16.854775808s", "1S"] {
            #expect(error(["--probe-timeout=\(bad)"], [:])
                == "invalid value \"\(bad)\" for --probe-timeout: want a Go duration such as 5s, 1m30s or 500ms")
        }
    }

    // MARK: pflag syntax

    @Test func valuesMayBeEmptyOrStartWithADash() throws {
        #expect(try parse(["-x", ""], [:]).serviceExcludeCIDR == "")
        #expect(try parse(["--istio-service-exclude-cidr="], [:]).serviceExcludeCIDR == "")
        #expect(try parse(["-m", "-x"], [:]).inboundInterceptionMode == "-x")
        // pflag reads "-x=" as the one-character value "=" (only "-x=v" with a non-empty v strips it).
        #expect(try parse(["-x="], [:]).serviceExcludeCIDR == "=")
    }

    @Test func groupedShorthands() throws {
        let settings = try parse(["-np15001"], [:])
        #expect(settings.dryRun && settings.envoyPort == "15001")
        let other = try parse(["-nhz", "15006"], [:])
        #expect(other.dryRun && other.help && other.inboundCapturePort == "15006")
    }

    @Test func doubleDashEndsFlags() throws {
        #expect(try parse(["-p", "1", "--"], [:]).envoyPort == "1")
        #expect(error(["--", "-p", "1"], [:])
            == "unexpected argument \"-p\": sluice-init takes only flags; see sluice-init --help")
    }

    @Test func lastOccurrenceWins() throws {
        #expect(try parse(["-p", "1", "--envoy-port=2"], [:]).envoyPort == "2")
    }

    @Test func positionalArgumentsAreErrors() {
        #expect(error(["istio-iptables"], [:])
            == "unexpected argument \"istio-iptables\": sluice-init takes only flags; see sluice-init --help")
        #expect(error(["-p", "15001", "-"], [:])
            == "unexpected argument \"-\": sluice-init takes only flags; see sluice-init --help")
        #expect(error([""], [:]) == "unexpected argument \"\": sluice-init takes only flags; see sluice-init --help")
    }

    @Test func unknownAndMalformedFlags() {
        #expect(error(["--envoy-prot", "15001"], [:]) == "unknown flag --envoy-prot; see sluice-init --help")
        #expect(error(["--envoy-prot=15001"], [:]) == "unknown flag --envoy-prot; see sluice-init --help")
        #expect(error(["-a"], [:]) == "unknown shorthand flag 'a' in -a; see sluice-init --help")
        #expect(error(["-na"], [:]) == "unknown shorthand flag 'a' in -na; see sluice-init --help")
        #expect(error(["---p"], [:]) == "bad flag syntax \"---p\"; see sluice-init --help")
        #expect(error(["--=1"], [:]) == "bad flag syntax \"--=1\"; see sluice-init --help")
        // Istio's removed flags are unknown too.
        #expect(error(["--restore-format"], [:]) == "unknown flag --restore-format; see sluice-init --help")
    }

    @Test func missingValues() {
        #expect(error(["--envoy-port"], [:]) == "flag --envoy-port needs a value; see sluice-init --help")
        #expect(error(["-p"], [:]) == "flag -p (--envoy-port) needs a value; see sluice-init --help")
        #expect(error(["-np"], [:]) == "flag -p (--envoy-port) needs a value; see sluice-init --help")
        #expect(error(["--log_output_level"], [:]) == "flag --log_output_level needs a value; see sluice-init --help")
    }

    @Test func pilotAgentLoggingFlagsAreAccepted() throws {
        let settings = try parse([
            "--log_output_level=default:info", "--log_as_json", "--log_caller", "default", "--log_stacktrace_level=none",
            "--log_target", "stdout", "--log_target=/dev/stderr", "--log_rotate=/tmp/x", "--log_rotate_max_age=30",
            "--log_rotate_max_size", "104857600", "--log_rotate_max_backups=1000", "--vklog=3",
        ], [:])
        #expect(settings.loggingFlags["log_output_level"] == ["default:info"])
        #expect(settings.loggingFlags["log_as_json"] == ["true"])
        #expect(settings.loggingFlags["log_target"] == ["stdout", "/dev/stderr"])
        #expect(settings.loggingFlags["vklog"] == ["3"])
        #expect(settings.loggingFlags.count == 10)
        #expect(error(["--vklog=high"], [:]) == "invalid value \"high\" for --vklog: want an integer")
        #expect(error(["--log_as_json=yes"], [:]) == "invalid value \"yes\" for --log_as_json: want true or false")
    }

    @Test func helpAndUsage() throws {
        #expect(try parse(["-h"], [:]).help)
        #expect(try parse(["--help"], [:]).help)
        let usage = CaptureSettings.usage
        for input in Input.allCases {
            #expect(usage.contains(input.flagName.map { "--\($0)" } ?? input.rawValue), "\(input)")
            if let short = input.shorthand { #expect(usage.contains("-\(short), --\(input.rawValue)")) }
        }
        #expect(usage.contains("ISTIO_META_DNS_CAPTURE") && usage.contains("SLUICE_RESOLV_CONF"))
    }

    // MARK: environment

    @Test func bindEnvNames() {
        #expect(Input.envoyPort.environmentNames.isEmpty)
        #expect(Input.help.environmentNames.isEmpty)
        #expect(Input.inboundPorts.environmentNames == ["ISTIO_INBOUND_PORTS"])
        #expect(Input.localOutboundPortsExclude.environmentNames == ["ISTIO_LOCAL_OUTBOUND_PORTS_EXCLUDE"])
        #expect(Input.iptablesProbePort.environmentNames == ["IPTABLES_PROBE_PORT"])
        #expect(Input.redirectDNS.environmentNames == ["REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE"])
        #expect(Input.dropInvalid.environmentNames == ["DROP_INVALID", "INVALID_DROP"])
        #expect(Input.dualStack.environmentNames == ["DUAL_STACK", "ISTIO_DUAL_STACK"])
        #expect(Input.resolvConf.environmentNames == ["SLUICE_RESOLV_CONF"])
    }

    @Test(arguments: 0..<stringFlags.count)
    func everyStringFlagFromItsEnvVar(index: Int) throws {
        let (input, value, read) = Self.stringFlags[index]
        for name in input.environmentNames {
            let settings = try parse([], [name: value])
            #expect(read(settings) == value, "\(name)")
            #expect(settings.source(of: input) == .environment(name))
        }
    }

    @Test(arguments: 0..<boolFlags.count)
    func everyBoolFlagFromItsEnvVar(index: Int) throws {
        let (input, read) = Self.boolFlags[index]
        for name in input.environmentNames {
            #expect(read(try parse([], [name: "true"])), "\(name)")
            #expect(read(try parse([], [name: "1"])), "\(name)")
            #expect(!read(try parse([], [name: "false"])), "\(name)")
        }
    }

    @Test func typedFlagsFromEnv() throws {
        let settings = try parse([], ["IPTABLES_PROBE_PORT": "15102", "PROBE_TIMEOUT": "1m"])
        #expect(settings.iptablesProbePort == 15102 && settings.probeTimeout == .seconds(60))
        #expect(settings.source(of: .probeTimeout) == .environment("PROBE_TIMEOUT"))
    }

    @Test func envOnlyInputs() throws {
        let settings = try parse([], [
            "ISTIO_OUTBOUND_OWNER_GROUPS": "wheel,20", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "30",
            "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.0/8", "ENVOY_USER": "envoy",
            "DRY_RUN_FILE_PATH": "/tmp/dry",
        ])
        #expect(settings.outboundOwnerGroups == "wheel,20")
        #expect(settings.outboundOwnerGroupsExclude == "30")
        #expect(settings.outboundIPv4LoopbackCIDR == "127.0.0.0/8")
        #expect(settings.envoyUser == "envoy")
        #expect(settings.dryRunFilePath == "/tmp/dry")
        #expect(settings.source(of: .envoyUser) == .environment("ENVOY_USER"))
        // An env var set to "" is still set (Go's LookupEnv): the include list becomes empty.
        #expect(try parse([], ["ISTIO_OUTBOUND_OWNER_GROUPS": ""]).outboundOwnerGroups == "")
    }

    @Test func envoyPortHasNoEnvVar() throws {
        #expect(try parse([], ["ENVOY_PORT": "1", "ENVOY__PORT": "2"]).envoyPort == "15001")
    }

    @Test func commandLineBeatsEnv() throws {
        let settings = try parse(["-z", "1", "--dry-run=false", "--redirect-dns=false"], [
            "INBOUND_CAPTURE_PORT": "2", "DRY_RUN": "true", "REDIRECT_DNS": "true", "ISTIO_META_DNS_CAPTURE": "true",
        ])
        #expect(settings.inboundCapturePort == "1")
        #expect(!settings.dryRun && !settings.redirectDNS)
        #expect(settings.source(of: .redirectDNS) == .commandLine("--redirect-dns"))
    }

    @Test func additionalEnvBeatsBindEnv() throws {
        let pairs: [(Input, String, String, @Sendable (CaptureSettings) -> Bool)] = [
            (.redirectDNS, "REDIRECT_DNS", "ISTIO_META_DNS_CAPTURE", { $0.redirectDNS }),
            (.dropInvalid, "DROP_INVALID", "INVALID_DROP", { $0.dropInvalid }),
            (.dualStack, "DUAL_STACK", "ISTIO_DUAL_STACK", { $0.dualStack }),
        ]
        for (input, bindEnv, additional, read) in pairs {
            let on = try parse([], [bindEnv: "false", additional: "true"])
            #expect(read(on) && on.source(of: input) == .environment(additional))
            let off = try parse([], [bindEnv: "true", additional: "false"])
            #expect(!read(off))
            // An unparsable AdditionalEnv value is ignored, leaving the BindEnv one.
            let kept = try parse([], [bindEnv: "true", additional: "maybe"])
            #expect(read(kept) && kept.source(of: input) == .environment(bindEnv))
        }
    }

    @Test func unparsableEnvValuesAreIgnored() throws {
        let settings = try parse([], [
            "DRY_RUN": "maybe", "IPTABLES_PROBE_PORT": "99999", "PROBE_TIMEOUT": "5", "CLEANUP_ONLY": "",
        ])
        #expect(!settings.dryRun && !settings.cleanupOnly)
        #expect(settings.iptablesProbePort == 15002 && settings.probeTimeout == .seconds(5))
        #expect(settings.source(of: .dryRun) == .defaultValue)
        #expect(settings.source(of: .iptablesProbePort) == .defaultValue)
    }

    @Test func labelsNameTheEnvVar() throws {
        let settings = try parse(["-d", "1"], ["ISTIO_SERVICE_EXCLUDE_CIDR": "x", "ISTIO_LOCAL_EXCLUDE_PORTS": "2"])
        #expect(settings.label(of: .serviceExcludeCIDR) == "env ISTIO_SERVICE_EXCLUDE_CIDR (--istio-service-exclude-cidr)")
        #expect(settings.label(of: .localExcludePorts) == "--istio-local-exclude-ports (-d)")
        #expect(settings.label(of: .outboundOwnerGroups) == "ISTIO_OUTBOUND_OWNER_GROUPS")
        #expect(settings.label(of: .probeTimeout) == "--probe-timeout")
    }
}
