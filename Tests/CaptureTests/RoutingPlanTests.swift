import Capture
@testable import SluiceInit
import Testing

/// What besides nftables a configuration needs (RULES.md §1 "Then, out of process", §5 items 11-12),
/// and how `--dry-run` shows it.
@Suite struct RoutingPlanTests {
    static func tproxy(inbound: CaptureConfig.InboundPorts = .all, ipv6: Bool = false,
                       mark: UInt32 = 1337, table: UInt32 = 133) -> CaptureConfig {
        var config = CaptureConfig.injectorDefault
        config.interceptionMode = .tproxy
        config.inboundPorts = inbound
        config.enableIPv6 = ipv6
        config.tproxyMark = mark
        config.tproxyRouteTable = table
        return config
    }

    @Test func redirectIPv4NeedsNothing() {
        #expect(RoutingPlan.apply(for: .injectorDefault).isEmpty)
        #expect(RoutingPlan.cleanup(for: .injectorDefault).isEmpty)
        #expect(RoutingPlan.apply(for: .injectorDefault).dryRunComments == "")
    }

    @Test func redirectIPv6AddsOnlyThePassthroughSource() {
        var config = CaptureConfig.injectorDefault
        config.enableIPv6 = true
        #expect(RoutingPlan.apply(for: config).commands == ["ip -6 addr add ::6/128 dev lo"])
        #expect(RoutingPlan.cleanup(for: config).commands == ["ip -6 addr del ::6/128 dev lo"])
    }

    @Test func tproxyIPv4() {
        #expect(RoutingPlan.apply(for: Self.tproxy()).commands == [
            "ip rule add fwmark 1337 lookup 133",
            "ip route add local default dev lo table 133",
        ])
        #expect(RoutingPlan.apply(for: Self.tproxy()).steps == [
            .fwmarkRule(.ipv4, mark: 1337, table: 133),
            .localDefaultRoute(.ipv4, table: 133),
        ])
    }

    @Test func tproxyDualStackInIstiosOrder() {
        // tproxy.ConfigureRoutes: the ::6 address, then rules per family, then routes per family.
        #expect(RoutingPlan.apply(for: Self.tproxy(ipv6: true, mark: 7, table: 1000)).commands == [
            "ip -6 addr add ::6/128 dev lo",
            "ip rule add fwmark 7 lookup 1000",
            "ip -6 rule add fwmark 7 lookup 1000",
            "ip route add local default dev lo table 1000",
            "ip -6 route add local default dev lo table 1000",
        ])
    }

    @Test func tproxyWithoutInboundCaptureHasNoRoutes() {
        // §5 item 11: the mangle rules exist, the routes only with -b non-empty.
        #expect(RoutingPlan.apply(for: Self.tproxy(inbound: .none)).isEmpty)
        #expect(RoutingPlan.apply(for: Self.tproxy(inbound: .none, ipv6: true)).commands == ["ip -6 addr add ::6/128 dev lo"])
        #expect(RoutingPlan.apply(for: Self.tproxy(inbound: .only([8080]))).steps.count == 2)
    }

    @Test func cleanupUndoesTheDiversionFirstAndIgnoresInboundPorts() {
        let expected = [
            "ip rule del fwmark 1337 lookup 133",
            "ip -6 rule del fwmark 1337 lookup 133",
            "ip route del local default dev lo table 133",
            "ip -6 route del local default dev lo table 133",
            "ip -6 addr del ::6/128 dev lo",
        ]
        #expect(RoutingPlan.cleanup(for: Self.tproxy(ipv6: true)).commands == expected)
        // An earlier run may have captured inbound: the routes of -t/-r go whatever -b says now.
        #expect(RoutingPlan.cleanup(for: Self.tproxy(inbound: .none, ipv6: true)).commands == expected)
        #expect(RoutingPlan.cleanup(for: Self.tproxy(ipv6: true)).direction == .remove)
    }

    @Test func dryRunCommentsAreNftComments() {
        let text = RoutingPlan.apply(for: Self.tproxy()).dryRunComments
        let lines = text.split(separator: "\n")
        #expect(text.hasSuffix("\n"))
        #expect(lines.allSatisfy { $0.hasPrefix("# ") })
        #expect(lines.contains("# ip rule add fwmark 1337 lookup 133"))
        #expect(lines.contains("# ip route add local default dev lo table 133"))
    }

    // MARK: The command

    struct PodFacts: SystemFacts {
        func userID(named name: String) -> UInt32? { nil }
        func groupID(named name: String) -> UInt32? { nil }
        func resolvConf(at path: String) -> String? { nil }
        func interfaceAddresses() -> [IPAddress] { [IPAddress("192.0.2.2")!, IPAddress("2001:db8:1::2")!] }
    }

    static let tproxyArguments = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "TPROXY",
                                  "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]

    func run(_ arguments: [String]) -> (code: Int32, out: String, err: String) {
        var streams = StandardStreams(captured: ("", ""))
        let code = SluiceInitCommand.run(arguments: arguments, environment: [:], facts: PodFacts(), output: &streams)
        return (code, streams.captured!.out, streams.captured!.err)
    }

    @Test func dryRunPrintsTheRoutingPlanAfterTheTransaction() throws {
        let result = run(Self.tproxyArguments + ["--dual-stack", "--dry-run"])
        #expect(result.code == 0, "\(result.err)")
        let resolved = try CaptureConfig.resolve(
            CaptureSettings.parse(arguments: Self.tproxyArguments + ["--dual-stack"], environment: [:]), facts: PodFacts())
        let nft = NftTextRenderer.render(RulesetBuilder.build(resolved.config).stamped())
        #expect(result.out == nft + RoutingPlan.apply(for: resolved.config).dryRunComments)
        #expect(result.out.hasSuffix("# ip -6 route add local default dev lo table 133\n"))
    }

    @Test func dryRunOfCleanupPrintsTheRemovals() {
        let result = run(Self.tproxyArguments + ["--cleanup-only", "--dry-run"])
        #expect(result.code == 0, "\(result.err)")
        #expect(result.out == NftTextRenderer.renderCleanup() + """
            # Besides nftables, sluice-init removes over rtnetlink (after the transaction):
            # ip rule del fwmark 1337 lookup 133
            # ip route del local default dev lo table 133

            """)
    }
}
