import Capture
@testable import SluiceInit
import Testing

/// The command's pure paths: what it prints and how it exits, with the system faked.
@Suite struct SluiceInitCommandTests {
    struct PodFacts: SystemFacts {
        var resolvConfText: String? = "nameserver 192.0.2.53\n"
        func userID(named name: String) -> UInt32? { nil }
        func groupID(named name: String) -> UInt32? { nil }
        func resolvConf(at path: String) -> String? { resolvConfText }
        func interfaceAddresses() -> [IPAddress] { [IPAddress("192.0.2.2")!] }
    }

    static let injectorDefault = ["-p", "15001", "-z", "15006", "-u", "1337", "-m", "REDIRECT",
                                  "-i", "*", "-x", "", "-b", "*", "-d", "15090,15021,15020"]

    func run(_ arguments: [String], environment: [String: String] = [:]) -> (code: Int32, out: String, err: String) {
        var streams = StandardStreams(captured: ("", ""))
        let code = SluiceInitCommand.run(arguments: arguments, environment: environment, facts: PodFacts(), output: &streams)
        return (code, streams.captured!.out, streams.captured!.err)
    }

    @Test func dryRunPrintsTheTransactionForTheInjectorDefault() {
        let result = run(Self.injectorDefault + ["--dry-run"])
        #expect(result.code == 0)
        #expect(result.out == NftTextRenderer.render(RulesetBuilder.build(.injectorDefault).stamped()))
        #expect(result.err.isEmpty)
    }

    @Test func dryRunOfCleanupPrintsOnlyTableRemovals() {
        let result = run(["--cleanup-only", "-n"])
        #expect(result.code == 0)
        #expect(result.out == NftTextRenderer.renderCleanup())
    }

    @Test func dnsCaptureReadsTheResolvConfServers() {
        let result = run(Self.injectorDefault + ["--dry-run"], environment: ["ISTIO_META_DNS_CAPTURE": "true"])
        #expect(result.code == 0)
        #expect(result.out.contains("ip daddr 192.0.2.53/32 udp dport 53 counter redirect to :15053"))
    }

    @Test(arguments: [
        (["--envoy-prot", "15001"], "--envoy-prot"),
        (["-x", "10.0.0.0"], "10.0.0.0"),
        (["-x", "*"], "*"),
        (["-d", "70000", "-b", "*"], "70000"),
        (["-u", "proxy"], "proxy"),
        (["-c", "bad/name"], "bad/name"),
    ])
    func badInputExitsTwoWithOneLineNamingIt(arguments: [String], named: String) {
        let result = run(arguments + ["--dry-run"])
        #expect(result.code == 2)
        #expect(result.out.isEmpty)
        #expect(result.err.split(separator: "\n").count == 1)
        #expect(result.err.contains(named))
    }

    @Test func acceptsTheIstioIptablesSubcommandName() {
        let result = run(["istio-iptables"] + Self.injectorDefault + ["--dry-run"])
        #expect(result.code == 0)
        #expect(result.out == NftTextRenderer.render(RulesetBuilder.build(.injectorDefault).stamped()))
    }

    @Test func helpPrintsUsage() {
        let result = run(["--help"])
        #expect(result.code == 0)
        #expect(result.out.contains("--istio-service-cidr"))
    }
}
