import Foundation
import Netfilter

/// A network namespace made for one test and removed when the test drops it, with `nft` run inside it
/// to observe (tests may exec `nft`; the code under test never does).
final class ScratchNamespace {
    let name: String
    private let namespace: NetworkNamespace

    struct CommandFailure: Error, CustomStringConvertible {
        var command: String
        var status: Int32
        var output: String
        var description: String { "\(command) exited with \(status): \(output)" }
    }

    init() throws {
        name = "sluice-nft-\(UUID().uuidString.prefix(8).lowercased())"
        namespace = try NetworkNamespace.create(named: name)
    }

    deinit { try? NetworkNamespace.delete(named: name) }

    /// A client whose socket lives in this namespace.
    func client() throws -> NftablesClient {
        try namespace.run { try NftablesClient() }
    }

    /// Runs `body` on a thread inside this namespace (for sockets that must be created there).
    func run<Result>(_ body: () throws -> Result) throws -> Result { try namespace.run(body) }

    /// `nft <arguments>` inside the namespace; throws on a non-zero exit.
    @discardableResult
    func nft(_ arguments: String...) throws -> String {
        try Self.execute("/usr/sbin/ip", ["netns", "exec", name, "nft"] + arguments)
    }

    /// Loads nft text with `nft -f`.
    func load(_ text: String) throws {
        let file = FileManager.default.temporaryDirectory.appendingPathComponent("\(name)-\(UUID().uuidString).nft")
        try text.write(to: file, atomically: true, encoding: .utf8)
        defer { try? FileManager.default.removeItem(at: file) }
        try nft("-f", file.path)
    }

    /// `nft list ruleset`, with counter values zeroed (the only thing that differs between two
    /// namespaces holding the same rules).
    func listing() throws -> String {
        try nft("list", "ruleset")
            .replacingOccurrences(of: #"packets \d+ bytes \d+"#, with: "packets 0 bytes 0", options: .regularExpression)
    }

    /// `nft --debug=netlink list ruleset`: the kernel's expressions of every rule and the elements of
    /// every set, with handles removed.
    func expressionListing() throws -> String {
        try nft("--debug=netlink", "list", "ruleset")
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { line -> String in
                // Rule headers are "inet <table> <chain> <handle> [<position>]".
                let words = line.split(separator: " ")
                if words.count >= 4, words[0] == "inet", !line.hasPrefix(" "), words[3].allSatisfy(\.isNumber) {
                    return words.prefix(3).joined(separator: " ")
                }
                return line.replacingOccurrences(of: #"pkts \d+ bytes \d+"#, with: "pkts 0 bytes 0", options: .regularExpression)
            }
            .joined(separator: "\n")
    }

    static func execute(_ executable: String, _ arguments: [String]) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: executable)
        process.arguments = arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = output
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: data, as: UTF8.self)
        guard process.terminationStatus == 0 else {
            throw CommandFailure(command: ([executable] + arguments).joined(separator: " "),
                                 status: process.terminationStatus, output: text)
        }
        return text
    }
}
