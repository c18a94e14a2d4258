@testable import Capture
import Testing

@Suite("Settings: resolution into a CaptureConfig with Istio's semantics")
struct SettingsResolutionTests {
    func resolve(_ arguments: [String], _ environment: [String: String], _ facts: FakeFacts) throws -> ResolvedCapture {
        try SettingsHarness.resolve(arguments, environment, facts)
    }
    func error(
        _ arguments: [String], _ environment: [String: String], _ facts: FakeFacts = FakeFacts(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        SettingsHarness.error(arguments, environment, facts, sourceLocation: sourceLocation)
    }
    func addresses(_ list: String...) -> [IPAddress] { list.map { IPAddress($0)! } }

    static let injectorArguments = [
        "-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT", "-i", "*", "-x", "", "-b", "*",
        "-d", "15090,15021,15020", "--log_output_level=default:info",
    ]

    @Test func injectorCommandLineIsTheInjectorDefault() throws {
        let resolved = try resolve(Self.injectorArguments, [:], FakeFacts())
        #expect(resolved.config == .injectorDefault)
        #expect(resolved.warnings.isEmpty)
        #expect(resolved.runOptions == {
            var options = RunOptions()
            options.hostAddress = IPAddress("10.1.2.3")
            options.loggingFlags = ["log_output_level": ["default:info"]]
            return options
        }())
    }

    @Test func noArgumentsIsIstiosBaseConfig() throws {
        // No user "istio-proxy" either: the UID falls back to 1337.
        let resolved = try resolve([], [:], FakeFacts(users: [:]))
        #expect(resolved.config == CaptureConfig())
    }

    // MARK: ports

    @Test func ports() throws {
        let config = try resolve(
            ["-p", "1", "-z", "2", "-e", "3", "-b", "80,443,", "-d", "9,8", "-q", "8080", "-o", ",3306,53"], [:],
            FakeFacts()
        ).config
        #expect(config.proxyPort == 1 && config.inboundCapturePort == 2 && config.inboundTunnelPort == 3)
        #expect(config.inboundPorts == .only([80, 443]))
        #expect(config.inboundExcludedPorts == [9, 8], "kept even though -b is not *")
        #expect(config.outboundIncludedPorts == [8080])
        #expect(config.outboundExcludedPorts == [3306, 53])
        #expect(try resolve(["-b", ","], [:], FakeFacts()).config.inboundPorts == .only([]))
        #expect(try resolve(["-b", "*"], [:], FakeFacts()).config.inboundPorts == .all)
        #expect(try resolve(["-b", ""], [:], FakeFacts()).config.inboundPorts == .none)
        #expect(try resolve(["-p", "65535"], [:], FakeFacts()).config.proxyPort == 65535)
    }

    @Test func badPorts() {
        #expect(error(["-d", "15090,70000"], [:], FakeFacts())
            == "invalid port \"70000\" in --istio-local-exclude-ports (-d): want 1-65535")
        #expect(error(["-p", ""], [:], FakeFacts()) == "invalid port \"\" in --envoy-port (-p): want 1-65535")
        #expect(error(["-z", "0"], [:], FakeFacts()) == "invalid port \"0\" in --inbound-capture-port (-z): want 1-65535")
        #expect(error(["-e", "015008"], [:], FakeFacts())
            == "invalid port \"015008\" in --inbound-tunnel-port (-e): want 1-65535")
        #expect(error(["-b", "*,80"], [:], FakeFacts()) == "invalid port \"*\" in --istio-inbound-ports (-b): want 1-65535")
        #expect(error(["-q", "http"], [:], FakeFacts()) == "invalid port \"http\" in --istio-outbound-ports (-q): want 1-65535")
        #expect(error(["-o", " 53"], [:], FakeFacts())
            == "invalid port \" 53\" in --istio-local-outbound-ports-exclude (-o): want 1-65535")
        #expect(error([], ["ISTIO_LOCAL_EXCLUDE_PORTS": "70000"], FakeFacts())
            == "invalid port \"70000\" in env ISTIO_LOCAL_EXCLUDE_PORTS (--istio-local-exclude-ports): want 1-65535")
        #expect(error([], ["INBOUND_TUNNEL_PORT": "x"], FakeFacts())
            == "invalid port \"x\" in env INBOUND_TUNNEL_PORT (--inbound-tunnel-port): want 1-65535")
    }

    // MARK: CIDRs

    @Test func cidrs() throws {
        let config = try resolve(["-i", "10.0.0.0/8,fd00::/8,", "-x", "10.96.0.0/12,192.168.1.1/32"], [:], FakeFacts()).config
        #expect(config.outboundDestinations == .only([CIDR("10.0.0.0/8")!, CIDR("fd00::/8")!]))
        #expect(config.outboundExcludedCIDRs == [CIDR("10.96.0.0/12")!, CIDR("192.168.1.1/32")!])
        #expect(try resolve(["-i", "*"], [:], FakeFacts()).config.outboundDestinations == .all)
        #expect(try resolve(["-i", ""], [:], FakeFacts()).config.outboundDestinations == .none)
    }

    @Test func badCIDRs() {
        #expect(error(["-x", "10.0.0.0"], [:], FakeFacts())
            == "invalid CIDR \"10.0.0.0\" in --istio-service-exclude-cidr (-x): want addr/len such as 10.0.0.0/8")
        #expect(error(["-i", "10.0.0.0/33"], [:], FakeFacts())
            == "invalid CIDR \"10.0.0.0/33\" in --istio-service-cidr (-i): want addr/len such as 10.0.0.0/8")
        #expect(error(["-i", "*,10.0.0.0/8"], [:], FakeFacts())
            == "invalid CIDR \"*\" in --istio-service-cidr (-i): want addr/len such as 10.0.0.0/8")
        #expect(error(["-i", "10.0.0.0/8, 10.1.0.0/16"], [:], FakeFacts())
            == "invalid CIDR \" 10.1.0.0/16\" in --istio-service-cidr (-i): want addr/len such as 10.0.0.0/8")
        #expect(error([], ["ISTIO_SERVICE_CIDR": "bogus"], FakeFacts())
            == "invalid CIDR \"bogus\" in env ISTIO_SERVICE_CIDR (--istio-service-cidr): want addr/len such as 10.0.0.0/8")
    }

    @Test func wildcardExcludeIsRejected() {
        #expect(error(["-x", "*"], [:], FakeFacts())
            == "\"*\" is not allowed in --istio-service-exclude-cidr (-x) (OUTBOUND_IP_RANGES_EXCLUDE): list the CIDRs to exclude")
        #expect(error([], ["ISTIO_SERVICE_EXCLUDE_CIDR": "*"], FakeFacts())
            == "\"*\" is not allowed in env ISTIO_SERVICE_EXCLUDE_CIDR (--istio-service-exclude-cidr) "
                + "(OUTBOUND_IP_RANGES_EXCLUDE): list the CIDRs to exclude")
    }

    // MARK: interfaces

    @Test func interfaces() throws {
        let config = try resolve(["-c", "eth1,,net+", "-k", "123456789012345"], [:], FakeFacts()).config
        #expect(config.excludedInterfaces == ["eth1", "net*"], "iptables' '+' wildcard becomes nft's '*'")
        #expect(config.virtualInterfaces == ["123456789012345"])
        #expect(try resolve(["-k", "tap*"], [:], FakeFacts()).config.virtualInterfaces == ["tap*"])
    }

    @Test(arguments: ["*", "+", "e*th", "e*th*"])
    func badInterfaceWildcards(name: String) {
        #expect(error(["-c", name], [:], FakeFacts())
            == "invalid interface name \(goQuoted(name)) in --istio-exclude-interfaces (-c): a wildcard is a "
                + "prefix followed by one trailing '+' or '*', such as eth+")
    }

    @Test(arguments: ["1234567890123456", ".", "..", "eth/0", "eth:0", "eth 0", "eth\t0", "eth\"0"])
    func badInterfaceNames(name: String) {
        #expect(error(["-k", name], [:], FakeFacts())
            == "invalid interface name \(goQuoted(name)) in --kube-virt-interfaces (-k): want 1-15 bytes "
                + "without '/', ':', '\"' or whitespace, not \".\" or \"..\"")
    }

    @Test func interfaceNameLengthIsInBytes() {
        #expect(error(["-c", "ééééééééé"], [:], FakeFacts())?.hasPrefix("invalid interface name") == true)
        #expect(error(["-c", "éééééé"], [:], FakeFacts()) == nil)
    }

    // MARK: proxy UID / GID

    @Test func proxyUIDDefaultsToEnvoyUser() throws {
        #expect(try resolve([], [:], FakeFacts()).config.proxyUIDs == [1337])
        let facts = FakeFacts(users: ["istio-proxy": 1337, "envoy": 101])
        let config = try resolve([], ["ENVOY_USER": "envoy"], facts).config
        #expect(config.proxyUIDs == [101] && config.proxyGIDs == [101])
        #expect(try resolve([], ["ENVOY_USER": "nobody-here"], facts).config.proxyUIDs == [1337])
        #expect(try resolve([], ["ENVOY_USER": ""], facts).config.proxyUIDs == [1337])
        #expect(try resolve([], [:], FakeFacts(users: ["istio-proxy": 2000])).config.proxyUIDs == [2000])
    }

    @Test func proxyIDLists() throws {
        var config = try resolve(["-u", "1337,0,istio-proxy"], [:], FakeFacts()).config
        #expect(config.proxyUIDs == [1337, 0, 1337])
        #expect(config.proxyGIDs == [1337, 0, 1337], "-g defaults to the resolved UIDs")
        config = try resolve(["-u", "3,4", "-g", "1,wheel,"], [:], FakeFacts()).config
        #expect(config.proxyUIDs == [3, 4] && config.proxyGIDs == [1, 10])
        config = try resolve([], ["PROXY_UID": "5", "PROXY_GID": "6"], FakeFacts()).config
        #expect(config.proxyUIDs == [5] && config.proxyGIDs == [6])
        config = try resolve(["-u", "4294967294"], [:], FakeFacts()).config
        #expect(config.proxyUIDs == [4_294_967_294])
    }

    @Test func emptyProxyUIDListWarns() throws {
        let resolved = try resolve(["-u", ","], [:], FakeFacts())
        #expect(resolved.config.proxyUIDs.isEmpty && resolved.config.proxyGIDs.isEmpty)
        #expect(resolved.warnings == [
            "--proxy-uid (-u) lists no UID: the proxy's own traffic is not exempt from capture",
        ])
    }

    @Test func badProxyIDs() {
        #expect(error(["-u", "nobody-here"], [:], FakeFacts())
            == "unknown user \"nobody-here\" in --proxy-uid (-u): want a numeric UID or an existing user name")
        #expect(error(["-u", "4294967295"], [:], FakeFacts())
            == "invalid UID \"4294967295\" in --proxy-uid (-u): want a decimal UID 0-4294967294 without leading zeros, "
                + "or a user name")
        #expect(error(["-u", "01337"], [:], FakeFacts())?.hasPrefix("invalid UID \"01337\" in --proxy-uid (-u)") == true)
        #expect(error(["-g", "-1"], [:], FakeFacts())
            == "unknown group \"-1\" in --proxy-gid (-g): want a numeric GID or an existing group name")
        #expect(error([], ["PROXY_GID": "99999999999"], FakeFacts())
            == "invalid GID \"99999999999\" in env PROXY_GID (--proxy-gid): want a decimal GID 0-4294967294 "
                + "without leading zeros, or a group name")
    }

    // MARK: interception mode, TPROXY mark and table

    @Test func interceptionMode() throws {
        #expect(try resolve(["-m", "TPROXY"], [:], FakeFacts()).config.interceptionMode == .tproxy)
        #expect(try resolve(["-m", "REDIRECT"], [:], FakeFacts()).config.interceptionMode == .redirect)
        #expect(try resolve([], ["ISTIO_INBOUND_INTERCEPTION_MODE": "TPROXY"], FakeFacts()).config.interceptionMode == .tproxy)
        let lowercase = try resolve(["-m", "tproxy"], [:], FakeFacts())
        #expect(lowercase.config.interceptionMode == .redirect)
        #expect(lowercase.warnings == [
            "--istio-inbound-interception-mode (-m) is \"tproxy\", not TPROXY: using REDIRECT, as Istio does",
        ])
    }

    @Test func tproxyMarkAndTable() throws {
        let config = try resolve(["-m", "TPROXY", "-t", "99", "-r", "150"], [:], FakeFacts()).config
        #expect(config.tproxyMark == 99 && config.tproxyRouteTable == 150)
        #expect(error(["-m", "TPROXY", "-t", "0x10"], [:], FakeFacts())
            == "invalid fwmark \"0x10\" in --istio-inbound-tproxy-mark (-t): want 1-4294967295")
        #expect(error(["-m", "TPROXY", "-r", "0"], [:], FakeFacts())
            == "invalid routing table \"0\" in --istio-inbound-tproxy-route-table (-r): want 1-4294967295")
        #expect(error(["-m", "TPROXY", "-r", "254"], [:], FakeFacts())
            == "routing table 254 in --istio-inbound-tproxy-route-table (-r) is one of the kernel's own "
                + "(253 default, 254 main, 255 local): pick a free table such as 133")
        #expect(error(["-m", "TPROXY"], ["ISTIO_INBOUND_TPROXY_MARK": ""], FakeFacts())
            == "invalid fwmark \"\" in env ISTIO_INBOUND_TPROXY_MARK (--istio-inbound-tproxy-mark): want 1-4294967295")
        // Istio never reads them in REDIRECT mode.
        let redirect = try resolve(["-t", "x", "-r", ""], [:], FakeFacts()).config
        #expect(redirect.tproxyMark == 1337 && redirect.tproxyRouteTable == 133)
    }

    // MARK: owner groups

    @Test func ownerGroups() throws {
        #expect(try resolve([], [:], FakeFacts()).config.ownerGroups == .all)
        #expect(try resolve([], ["ISTIO_OUTBOUND_OWNER_GROUPS": "*", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": ","],
                            FakeFacts()).config.ownerGroups == .all)
        #expect(try resolve([], ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "1,wheel"], FakeFacts()).config.ownerGroups
            == .allExcept([1, 10]))
        #expect(try resolve([], ["ISTIO_OUTBOUND_OWNER_GROUPS": "wheel,20", "ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "bogus"],
                            FakeFacts()).config.ownerGroups == .only([10, 20]), "exclude ignored with an include list")
        let sixtyFour = (1...64).map(String.init).joined(separator: ",")
        #expect(try resolve([], ["ISTIO_OUTBOUND_OWNER_GROUPS": sixtyFour], FakeFacts()).config.ownerGroups
            == .only((1...64).map(UInt32.init)))
    }

    @Test func emptyOwnerGroupIncludeCapturesNothingAndWarns() throws {
        let resolved = try resolve([], ["ISTIO_OUTBOUND_OWNER_GROUPS": ""], FakeFacts())
        #expect(resolved.config.ownerGroups == .only([]))
        #expect(resolved.warnings == [
            "ISTIO_OUTBOUND_OWNER_GROUPS is set but lists no group: no outbound traffic is captured (as in Istio); "
                + "unset it or use \"*\" to capture every group",
        ])
    }

    @Test func badOwnerGroups() {
        let sixtyFive = (1...65).map(String.init).joined(separator: ",")
        #expect(error([], ["ISTIO_OUTBOUND_OWNER_GROUPS": sixtyFive], FakeFacts())
            == "ISTIO_OUTBOUND_OWNER_GROUPS lists 65 groups: at most 64 are allowed; list fewer, or use \"*\" "
                + "with ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE")
        #expect(error([], ["ISTIO_OUTBOUND_OWNER_GROUPS": "wheel,staff"], FakeFacts())
            == "unknown group \"staff\" in ISTIO_OUTBOUND_OWNER_GROUPS: want a numeric GID or an existing group name")
        #expect(error([], ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "staff"], FakeFacts())
            == "unknown group \"staff\" in ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE: want a numeric GID or an existing group name")
    }

    // MARK: loopback CIDR, iptables binary

    @Test func loopbackCIDR() throws {
        #expect(try resolve([], [:], FakeFacts()).config.ipv4LoopbackCIDR == CIDR("127.0.0.1/32")!)
        #expect(try resolve([], ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.0/8"], FakeFacts()).config.ipv4LoopbackCIDR
            == CIDR("127.0.0.0/8")!)
        #expect(error([], ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1"], FakeFacts())
            == "invalid CIDR \"127.0.0.1\" in ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR: want an IPv4 loopback prefix such as 127.0.0.1/32")
        for bad in ["10.0.0.1/32", "127.0.0.0/7", "::1/128", "::ffff:127.0.0.1/128"] {
            #expect(error([], ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": bad], FakeFacts())
                == "ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR \"\(bad)\" is not an IPv4 loopback prefix with a mask of 8 to 32: "
                    + "want one inside 127.0.0.0/8 such as 127.0.0.1/32")
        }
    }

    @Test func forceIptablesBinary() throws {
        for value in ["", "legacy", "nft"] {
            #expect(try resolve(["--force-iptables-binary", value], [:], FakeFacts()).runOptions.forceIptablesBinary == value)
        }
        #expect(error(["--force-iptables-binary=iptables-nft"], [:], FakeFacts())
            == "invalid value \"iptables-nft\" for --force-iptables-binary: want \"\", legacy or nft")
        #expect(error([], ["FORCE_IPTABLES_BINARY": "new"], FakeFacts())
            == "invalid value \"new\" for env FORCE_IPTABLES_BINARY (--force-iptables-binary): want \"\", legacy or nft")
    }

    // MARK: DNS

    @Test func dnsOffByDefault() throws {
        #expect(try resolve([], [:], FakeFacts()).config.dns == nil)
    }

    @Test func dnsFromResolvConf() throws {
        let resolvConf = """
            # comment
            ; nameserver 9.9.9.9
            nameserver 10.96.0.10
            nameserver   2001:db8::53  # trailing comment
            nameserver fe80::1%eth0
            nameserver 010.0.0.1
            nameserver dns.example
            Nameserver 8.8.8.8
            nameserver
            domain cluster.local
            nameserver 10.96.0.11\r
            nameserver ::ffff:10.0.0.53
            """
        var facts = FakeFacts()
        facts.files["/etc/resolv.conf"] = resolvConf
        let resolved = try resolve(["--redirect-dns"], [:], facts)
        #expect(resolved.config.dns == .init(
            captureAll: false, servers: addresses("10.96.0.10", "10.96.0.11", "2001:db8::53", "::ffff:10.0.0.53")))
        #expect(resolved.warnings.isEmpty)
    }

    @Test func dnsEnabledThroughIstioMetaDNSCapture() throws {
        let resolved = try resolve([], ["REDIRECT_DNS": "false", "ISTIO_META_DNS_CAPTURE": "true"], FakeFacts())
        #expect(resolved.config.dns == .init(captureAll: false, servers: addresses("10.96.0.10")))
    }

    @Test func captureAllDNSDoesNotReadResolvConf() throws {
        let resolved = try resolve(["--redirect-dns", "--capture-all-dns"], [:], FakeFacts(files: [:]))
        #expect(resolved.config.dns == .init(captureAll: true, servers: []))
        // Without --redirect-dns, capture-all alone does nothing.
        #expect(try resolve(["--capture-all-dns"], [:], FakeFacts()).config.dns == nil)
    }

    @Test func noNameserverDisablesDNSCaptureWithAWarning() throws {
        let resolved = try resolve(["--redirect-dns"], [:], FakeFacts(files: ["/etc/resolv.conf": "search x\n"]))
        #expect(resolved.config.dns == nil)
        #expect(resolved.warnings == [
            "DNS capture disabled: no usable nameserver in /etc/resolv.conf and --capture-all-dns is off (as Istio does)",
        ])
    }

    @Test func resolvConfPath() throws {
        let facts = FakeFacts(files: ["/a": "nameserver 192.0.2.1", "/b": "nameserver 192.0.2.2"])
        #expect(try resolve(["--redirect-dns", "--resolv-conf", "/a"], [:], facts).config.dns?.servers == addresses("192.0.2.1"))
        #expect(try resolve(["--redirect-dns"], ["SLUICE_RESOLV_CONF": "/b"], facts).config.dns?.servers
            == addresses("192.0.2.2"))
        #expect(try resolve(["--redirect-dns", "--resolv-conf=/a"], ["SLUICE_RESOLV_CONF": "/b"], facts).config.dns?.servers
            == addresses("192.0.2.1"))
    }

    @Test func unreadableResolvConfIsAnError() {
        #expect(error(["--redirect-dns"], [:], FakeFacts(files: [:]))
            == "cannot read /etc/resolv.conf (--resolv-conf) for DNS capture: point --resolv-conf at a readable file, "
                + "or add --capture-all-dns")
        #expect(error(["--redirect-dns"], ["SLUICE_RESOLV_CONF": "/nope"], FakeFacts(files: [:]))
            == "cannot read /nope (env SLUICE_RESOLV_CONF (--resolv-conf)) for DNS capture: point --resolv-conf at a "
                + "readable file, or add --capture-all-dns")
    }

    // MARK: IPv6 detection

    @Test(arguments: [
        // (addresses, dual-stack, IPv6 on, host address)
        (["10.1.2.3", "2001:db8::1"], false, false, "10.1.2.3"),
        (["2001:db8::1", "10.1.2.3"], false, true, "2001:db8::1"),
        (["10.1.2.3", "2001:db8::1"], true, true, "10.1.2.3"),
        (["10.1.2.3", "10.1.2.4"], true, false, "10.1.2.3"),
        (["fe80::1", "169.254.1.1", "10.1.2.3", "2001:db8::1"], false, false, "10.1.2.3"),
        (["fe80::1", "2001:db8::1", "10.1.2.3"], false, true, "2001:db8::1"),
        (["::ffff:10.1.2.3", "2001:db8::1"], false, false, "10.1.2.3"),
        (["ff02::1", "224.0.0.1", "::1", "127.0.0.1", "2001:db8::1"], false, true, "2001:db8::1"),
        (["224.0.1.1"], false, false, "224.0.1.1"),
    ])
    func ipv6Detection(list: [String], dualStack: Bool, enabled: Bool, host: String) throws {
        let facts = FakeFacts(addresses: list.map { IPAddress($0)! })
        let resolved = try resolve(dualStack ? ["--dual-stack"] : [], [:], facts)
        #expect(resolved.config.enableIPv6 == enabled)
        #expect(resolved.runOptions.hostAddress == IPAddress(host))
        #expect(resolved.warnings.isEmpty)
    }

    @Test func dualStackFromItsEnvVars() throws {
        let facts = FakeFacts(addresses: addresses("10.1.2.3", "2001:db8::1"))
        #expect(try resolve([], ["ISTIO_DUAL_STACK": "true"], facts).config.enableIPv6)
        #expect(try resolve([], ["DUAL_STACK": "true"], facts).config.enableIPv6)
        #expect(try !resolve([], ["DUAL_STACK": "true", "ISTIO_DUAL_STACK": "false"], facts).config.enableIPv6)
    }

    @Test func onlyLoopbackMeansIPv4WithAWarning() throws {
        for list in [[], addresses("fe80::1", "::1")] {
            let resolved = try resolve([], [:], FakeFacts(addresses: list))
            #expect(!resolved.config.enableIPv6)
            #expect(resolved.runOptions.hostAddress == nil)
            #expect(resolved.warnings == [
                "no non-loopback, non-link-local address in this network namespace: IPv6 rules disabled "
                    + "(Istio would stop with \"no valid local IP address found\")",
            ])
        }
    }

    // MARK: the rest

    @Test func dropInvalid() throws {
        #expect(try resolve(["--drop-invalid"], [:], FakeFacts()).config.dropInvalid)
        #expect(try resolve([], ["INVALID_DROP": "true"], FakeFacts()).config.dropInvalid)
        #expect(try !resolve([], ["DROP_INVALID": "true", "INVALID_DROP": "false"], FakeFacts()).config.dropInvalid)
    }

    @Test func runOptions() throws {
        let options = try resolve([
            "-n", "--cleanup-only", "--skip-rule-apply", "--run-validation", "--iptables-probe-port=15102",
            "--probe-timeout=10s", "--reconcile", "--force-apply", "--native-nftables", "--cni-mode",
            "--network-namespace=/var/run/netns/x", "--force-iptables-binary=legacy",
        ], ["DRY_RUN_FILE_PATH": "/tmp/out"], FakeFacts()).runOptions
        #expect(options.dryRun && options.cleanupOnly && options.skipRuleApply && options.runValidation)
        #expect(options.probePort == 15102 && options.probeTimeout == .seconds(10))
        #expect(options.reconcile && options.forceApply && options.nativeNftables && options.cniMode)
        #expect(options.networkNamespace == "/var/run/netns/x" && options.forceIptablesBinary == "legacy")
        #expect(options.dryRunFilePath == "/tmp/out")
        #expect(try resolve([], ["DRY_RUN_FILE_PATH": ""], FakeFacts()).runOptions.dryRunFilePath == nil)
    }

    @Test func cniValidationCommandLine() throws {
        let resolved = try resolve(Self.injectorArguments + ["--run-validation", "--skip-rule-apply"], [:], FakeFacts())
        #expect(resolved.config == .injectorDefault)
        #expect(resolved.runOptions.runValidation && resolved.runOptions.skipRuleApply)
    }

    @Test func nameserverParsingIsPure() {
        #expect(CaptureConfig.nameservers(inResolvConf: "nameserver 2001:db8::1\nnameserver 192.0.2.1\n")
            == addresses("192.0.2.1", "2001:db8::1"))
        #expect(CaptureConfig.nameservers(inResolvConf: "nameserver 192.0.2.1\rnameserver 192.0.2.2")
            == addresses("192.0.2.1"), "a lone CR does not end a line (Go's scanner), it is just whitespace")
        #expect(CaptureConfig.nameservers(inResolvConf: "").isEmpty)
    }
}
