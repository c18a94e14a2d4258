import Capture
import Foundation

/// One configuration of the suite: the ruleset Istio generates for it (its nftables golden), and the
/// `sluice-init` invocation that Istio's test config stands for (INDEX.md, "Equivalent invocation").
struct ConformanceCase: Sendable, CustomStringConvertible {
    enum Golden: Sendable {
        /// `shared/istio-capture/testdata/istio-nftables/<name>.golden`
        case istio(String)
        /// `Tests/ConformanceTests/Fixtures/<name>.golden`, rendered by hand from RULES.md in Istio's
        /// spelling (see docs/CONFORMANCE.md)
        case fixture(String)
    }

    let name: String
    let golden: Golden
    /// Flags as Istio's config says, with Istio's addresses (the lab map is applied by `labArguments`).
    let arguments: [String]
    let environment: [String: String]
    /// The nameservers of the resolv.conf `sluice-init` reads (Istio's `DNSServersV4` + `DNSServersV6`);
    /// nil when DNS capture is not asked for.
    let nameservers: [String]?
    /// Istio's `EnableIPv6`; Sluice gets `--dual-stack` (the lab pod's first address is IPv4).
    let ipv6: Bool

    var description: String { name }
    var tproxy: Bool { value(of: "-m") == "TPROXY" }

    /// The last value given for `flag` (`-b`), nil if absent.
    func value(of flag: String) -> String? {
        guard let index = arguments.lastIndex(of: flag), index + 1 < arguments.count else { return nil }
        return LabAddressMap.apply(toList: arguments[index + 1])
    }

    /// The comma list given for `flag`, empty items dropped as Istio's `config.Split` does.
    func list(_ flag: String) -> [String] {
        (value(of: flag) ?? "").split(separator: ",").map(String.init)
    }

    /// `sluice-init`'s arguments in the lab: Istio's flags with the lab's addresses, plus the switches
    /// that stand for what Istio's test sets directly.
    func labArguments(resolvConf: String?) -> [String] {
        var result = arguments.map(LabAddressMap.apply(toList:))
        if ipv6 { result.append("--dual-stack") }
        if let resolvConf { result += ["--resolv-conf", resolvConf] }
        return result
    }

    /// resolv.conf with the lab's addresses.
    var labNameservers: [String]? { nameservers?.map(LabAddressMap.apply(toToken:)) }

    var goldenURL: URL {
        switch golden {
        case .istio(let file):
            Self.repositoryRoot.deletingLastPathComponent()
                .appendingPathComponent("shared/istio-capture/testdata/istio-nftables/\(file).golden")
        case .fixture(let file):
            URL(fileURLWithPath: #filePath).deletingLastPathComponent()
                .appendingPathComponent("Fixtures/\(file).golden")
        }
    }

    /// Istio's golden text with the lab's addresses.
    func labGoldenText() throws -> String {
        LabAddressMap.apply(toText: try String(contentsOf: goldenURL, encoding: .utf8))
    }

    static let repositoryRoot = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
}

extension ConformanceCase {
    /// `constructTestConfig` in Istio's `run_test.go`, as flags: no inbound capture, no CIDR capture,
    /// proxy UID and GID 1337, mark 1337, table 133.
    static let baseArguments: [(String, String)] = [
        ("-p", "15001"), ("-z", "15006"), ("-e", "15008"), ("-u", "1337"), ("-g", "1337"), ("-m", "REDIRECT"),
        ("-t", "1337"), ("-r", "133"), ("-b", ""), ("-i", ""), ("-x", ""), ("-d", ""), ("-q", ""), ("-o", ""),
        ("-k", ""), ("-c", ""),
    ]

    /// One of Istio's cases: the base config with `changes` (flag → value), `switches` and environment.
    static func istio(_ name: String, _ changes: KeyValuePairs<String, String> = [:], switches: [String] = [],
                      environment: [String: String] = [:], nameservers: [String]? = nil,
                      ipv6: Bool = false) -> ConformanceCase {
        var arguments: [String] = []
        for (flag, value) in baseArguments {
            arguments += [flag, changes.first { $0.key == flag }?.value ?? value]
        }
        precondition(changes.allSatisfy { change in baseArguments.contains { $0.0 == change.key } })
        return ConformanceCase(name: name, golden: .istio(name), arguments: arguments + switches,
                               environment: environment, nameservers: nameservers, ipv6: ipv6)
    }

    /// The injector default, Istio's 28 golden cases (INDEX.md's case table, in its order), two
    /// owner-group cases made observable, and the deliberate deviation.
    static let all: [ConformanceCase] = [
        ConformanceCase(name: "injector-default", golden: .fixture("injector-default"),
                        arguments: CaptureConfig.injectorDefaultArguments, environment: [:], nameservers: nil, ipv6: false),
        istio("empty"),
        istio("inbound-ports-include", ["-b": "32000,31000"]),
        istio("inbound-ports-wildcard", ["-b": "*"]),
        istio("inbound-ports-tproxy", ["-b": "32000,31000", "-m": "TPROXY"]),
        istio("inbound-ports-wildcard-tproxy", ["-b": "*", "-m": "TPROXY"]),
        istio("inbound-ports-empty-tproxy", ["-m": "TPROXY"]),
        istio("outbound-ports-include", ["-q": "32000,31000"]),
        istio("ipnets", ["-i": "10.0.0.0/8"]),
        istio("kube-virt-interfaces", ["-k": "eth1,eth2", "-i": "*"]),
        istio("ipnets-with-kube-virt-interfaces", ["-k": "eth1,eth2", "-i": "10.0.0.0/8"]),
        istio("ip-range", ["-x": "1.1.0.0/16", "-i": "9.9.0.0/16", "-u": "3,4", "-g": "1,2"],
              switches: ["--redirect-dns"], nameservers: ["127.0.0.53"]),
        istio("tproxy", ["-m": "TPROXY", "-b": "*", "-x": "1.1.0.0/16", "-i": "9.9.0.0/16", "-c": "not-istio-nic"],
              switches: ["--redirect-dns"], nameservers: ["127.0.0.53"], ipv6: true),
        istio("ipv6-empty-inbound-ports", ipv6: true),
        istio("ipv6-inbound-ports", ["-b": "4000,5000"], ipv6: true),
        istio("ipv6-virt-interfaces", ["-b": "4000,5000", "-k": "eth0,eth1"], ipv6: true),
        istio("ipv6-ipnets", ["-b": "4000,5000", "-d": "6000,7000,", "-k": "eth0,eth1",
                              "-x": "2001:db8::/32", "-i": "2001:db8::/32"], ipv6: true),
        istio("ipv6-uid-gid", ["-b": "4000,5000", "-d": "6000,7000", "-k": "eth0,eth1", "-u": "3,4", "-g": "1,2",
                               "-x": "2001:db8::/32", "-i": "2001:db8::/32"], ipv6: true),
        istio("ipv6-outbound-ports", ["-q": "32000,31000"], ipv6: true),
        istio("dns-uid-gid", ["-u": "3,4", "-g": "1,2"], switches: ["--redirect-dns"],
              nameservers: ["127.0.0.53", "::127.0.0.53"], ipv6: true),
        // --redirect-dns with no nameserver: DNS capture switches itself off, in Istio and in Sluice.
        istio("ipv6-dns-uid-gid", ["-u": "3,4", "-g": "1,2"], switches: ["--redirect-dns"], nameservers: [], ipv6: true),
        istio("outbound-owner-groups", environment: ["ISTIO_OUTBOUND_OWNER_GROUPS": "java,202"]),
        istio("outbound-owner-groups-exclude", environment: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,ftp"]),
        istio("ipv6-dns-outbound-owner-groups", switches: ["--redirect-dns"],
              environment: ["ISTIO_OUTBOUND_OWNER_GROUPS": "java,202"], nameservers: [], ipv6: true),
        istio("ipv6-dns-outbound-owner-groups-exclude", switches: ["--redirect-dns"],
              environment: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,ftp"], nameservers: [], ipv6: true),
        istio("loopback-outbound-iprange", ["-i": "127.1.2.3/32", "-u": "3,4", "-g": "1,2"],
              switches: ["--redirect-dns"], nameservers: ["127.0.0.53"]),
        istio("basic-exclude-nic", ["-c": "not-istio-nic"]),
        istio("drop-invalid", switches: ["--drop-invalid"]),
        istio("host-ipv4-loopback-cidr", environment: ["ISTIO_OUTBOUND_IPV4_LOOPBACK_CIDR": "127.0.0.1/8"]),
        // Istio's owner-group cases capture nothing (no -i, no DNS), so their group rules decide no
        // packet. With -i '*' they do: Istio's golden plus the one rule -i '*' appends (RULES.md §1
        // step 18), rendered in Fixtures/.
        istio("outbound-owner-groups", ["-i": "*"], environment: ["ISTIO_OUTBOUND_OWNER_GROUPS": "java,202"])
            .renamed("outbound-owner-groups-capture-all", fixture: true),
        istio("outbound-owner-groups-exclude", ["-i": "*"],
              environment: ["ISTIO_OUTBOUND_OWNER_GROUPS_EXCLUDE": "888,ftp"])
            .renamed("outbound-owner-groups-exclude-capture-all", fixture: true),
        // An IPv4 pod whose resolv.conf has only an IPv6 nameserver: the one configuration where Sluice
        // deliberately differs (docs/CONFORMANCE.md). Fixture rendered from Istio's run.go.
        ConformanceCase(name: "ipv6-nameserver-ipv4-pod", golden: .fixture("ipv6-nameserver-ipv4-pod"),
                        arguments: CaptureConfig.injectorDefaultArguments + ["--redirect-dns"], environment: [:],
                        nameservers: ["2001:db8:1::1"], ipv6: false),
    ]

    /// The same invocation under another name, with its golden in Fixtures/.
    func renamed(_ newName: String, fixture: Bool) -> ConformanceCase {
        ConformanceCase(name: newName, golden: fixture ? .fixture(newName) : .istio(newName), arguments: arguments,
                        environment: environment, nameservers: nameservers, ipv6: ipv6)
    }
}

/// Istio's goldens name addresses no probe may dial (they would leave the lab), or one prefix that
/// covers every address of the lab so nothing can be probed outside it. Each is replaced, in the
/// golden text, in `sluice-init`'s flags and in resolv.conf alike, by a lab range that keeps the
/// configuration's logic: an include and an exclude stay distinct, and each has addresses inside
/// and outside it that something in the lab answers on.
///
/// | Istio            | Lab               | Used by (role)                                      | Dialled inside / outside          |
/// |------------------|-------------------|-----------------------------------------------------|-----------------------------------|
/// | 1.1.0.0/16       | 203.0.113.0/24    | ip-range, tproxy (`-x`)                             | 203.0.113.1 / 198.51.100.1        |
/// | 9.9.0.0/16       | 198.51.100.0/24   | ip-range, tproxy (`-i`)                             | 198.51.100.1 / 192.0.2.1          |
/// | 10.0.0.0/8       | 198.51.100.0/24   | ipnets, ipnets-with-kube-virt-interfaces (`-i`)     | 198.51.100.1 / 203.0.113.1        |
/// | 2001:db8::/32    | 2001:db8:2::/64   | ipv6-ipnets, ipv6-uid-gid (`-x` and `-i`)           | 2001:db8:2::1 / 2001:db8:1::1     |
/// | ::127.0.0.53     | 2001:db8:1::1     | dns-uid-gid (IPv6 nameserver; unroutable in a pod)  | the peer answers DNS there        |
///
/// Left as they are, because they are local to the pod and so dialable: 127.0.0.53 (the IPv4
/// nameserver; the pod serves DNS on it), 127.1.2.3/32, 127.0.0.1/8, 127.0.0.6, ::1, ::6.
enum LabAddressMap {
    static let entries: [(istio: String, lab: String)] = [
        ("1.1.0.0/16", "203.0.113.0/24"),
        ("9.9.0.0/16", "198.51.100.0/24"),
        ("10.0.0.0/8", "198.51.100.0/24"),
        ("2001:db8::/32", "2001:db8:2::/64"),
        ("::127.0.0.53", "2001:db8:1::1"),
    ]

    /// One token: a mapped CIDR, a mapped address, or a mapped address as a host prefix
    /// (`::127.0.0.53/128`). Anything else is returned unchanged.
    static func apply(toToken token: String) -> String {
        if let entry = entries.first(where: { $0.istio == token }) { return entry.lab }
        if let slash = token.firstIndex(of: "/"),
           let entry = entries.first(where: { $0.istio == token[..<slash] && !$0.istio.contains("/") }) {
            return entry.lab + token[slash...]
        }
        return token
    }

    /// A flag value: a comma list of tokens.
    static func apply(toList value: String) -> String {
        value.split(separator: ",", omittingEmptySubsequences: false).map { apply(toToken: String($0)) }
            .joined(separator: ",")
    }

    /// nft text: tokens are separated by spaces and newlines.
    static func apply(toText text: String) -> String {
        text.split(separator: "\n", omittingEmptySubsequences: false).map { line in
            line.split(separator: " ", omittingEmptySubsequences: false).map { apply(toToken: String($0)) }
                .joined(separator: " ")
        }.joined(separator: "\n")
    }
}
