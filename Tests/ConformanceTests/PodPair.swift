import Capture
import Glibc
import Netfilter
import PodLab

/// Two identical pods for one configuration: Istio's golden ruleset loaded with `nft -f` into one,
/// `sluice-init` run with the equivalent flags in the other.
struct PodPair {
    let testCase: ConformanceCase
    let matrix: ProbeMatrix
    let istio: PodLab
    let sluice: PodLab

    static let namespacePrefix = "sluice-conf"

    /// Builds both pods; `applyIstio` and `applySluice` program them.
    init(_ testCase: ConformanceCase, groupIDs: [String: UInt32]) throws {
        self.testCase = testCase
        let links = ProbeMatrix.linkNames(testCase).enumerated().map { PodLab.Link($0.element, number: $0.offset + 1) }
        matrix = ProbeMatrix(testCase: testCase, groupIDs: groupIDs, links: links)
        istio = try PodLab(prefix: Self.namespacePrefix, layout: matrix.layout)
        do {
            sluice = try PodLab(prefix: Self.namespacePrefix, layout: matrix.layout)
        } catch {
            istio.tearDown()
            throw error
        }
        do {
            for lab in [istio, sluice] {
                try lab.peer.run {
                    let netlink = try RouteNetlink()
                    for transit in matrix.transitRoutes { try netlink.addRoute(to: transit.prefix, via: transit.gateway) }
                }
            }
        } catch {
            tearDown()
            throw error
        }
    }

    func tearDown() {
        istio.tearDown()
        sluice.tearDown()
    }

    /// The golden, plus what Istio does outside the ruleset (`tools/common/tproxy/run_linux.go`):
    /// `::6/128` on lo with IPv6, and in TPROXY mode with inbound capture the policy route that hands
    /// marked packets to lo. `.rejected` when `nft -f` refuses the golden (Istio's init container would
    /// then fail).
    func applyIstio() throws -> Outcome {
        let path = try TemporaryFile(contents: try testCase.labGoldenText())
        defer { path.remove() }
        let nft = try istio.run(try PodLab.systemExecutable("nft"), ["-f", path.path])
        guard nft.status == 0 else { return .rejected(Self.nftError(nft.standardError)) }
        if testCase.ipv6 {
            try istio.pod.run { try RouteNetlink.ensureAddress(IPAddress("::6")!, prefixLength: 128, on: "lo") }
        }
        if testCase.tproxy && testCase.value(of: "-b") != "" {
            let mark = testCase.value(of: "-t") ?? "1337"
            let table = testCase.value(of: "-r") ?? "133"
            let ip = try PodLab.systemExecutable("ip")
            for family in testCase.ipv6 ? ["-4", "-6"] : ["-4"] {
                for command in [["rule", "add", "fwmark", mark, "lookup", table],
                                ["route", "add", "local", "default", "dev", "lo", "table", table]] {
                    let result = try istio.run(ip, [family] + command)
                    guard result.status == 0 else { throw SetupFailure("ip \(family) \(command): \(result)") }
                }
            }
        }
        return .applied
    }

    func applySluice(_ sluiceInit: String) throws -> Outcome {
        var resolvConf: TemporaryFile? = nil
        if let servers = testCase.labNameservers {
            resolvConf = try TemporaryFile(contents: servers.map { "nameserver \($0)\n" }.joined())
        }
        defer { resolvConf?.remove() }
        var environment = Subprocess.defaultEnvironment
        environment.merge(testCase.environment) { $1 }
        let arguments = testCase.labArguments(resolvConf: resolvConf?.path)
        let result = try sluice.run(sluiceInit, arguments, environment: environment)
        guard result.status == 0 else {
            return .rejected("sluice-init exit \(result.status): \(result.standardError.split(separator: "\n").first ?? "")")
        }
        return .applied
    }

    /// nft's first error without the temporary file's name, and the statement it points at:
    /// "Could not process rule: No such file or directory: add rule inet ... jump istio-output-dns".
    static func nftError(_ standardError: String) -> String {
        let lines = standardError.split(separator: "\n").map(String.init)
        guard let index = lines.firstIndex(where: { $0.contains("Error: ") }) else { return standardError }
        let message = lines[index][lines[index].range(of: "Error: ")!.upperBound...]
        return index + 1 < lines.count ? "\(message): \(lines[index + 1])" : String(message)
    }
}

struct SetupFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// The owner groups the goldens name must exist before `nft -f` can parse `skgid java` and before
/// `sluice-init` can resolve ISTIO_OUTBOUND_OWNER_GROUPS=java: created with groupadd when absent
/// (and left in place: another run may be using them).
enum OwnerGroups {
    static func ensure(_ names: [String]) throws -> [String: UInt32] {
        var result: [String: UInt32] = [:]
        for name in names {
            if getgrnam(name) == nil {
                let here = try NetworkNamespace.open(path: "/proc/self/ns/net")
                let added = try Subprocess.run(try PodLab.systemExecutable("groupadd"), [name], in: here)
                // 9: the group appeared meanwhile (a parallel run).
                guard added.status == 0 || added.status == 9 else { throw SetupFailure("groupadd \(name): \(added)") }
            }
            guard let entry = getgrnam(name) else { throw SetupFailure("group \(name) missing after groupadd") }
            result[name] = UInt32(entry.pointee.gr_gid)
        }
        return result
    }
}
