@testable import Capture
import Testing

/// A system with known users, groups, files and addresses.
struct FakeFacts: SystemFacts {
    var users: [String: UInt32] = ["istio-proxy": 1337, "root": 0]
    var groups: [String: UInt32] = ["istio-proxy": 1337, "wheel": 10, "root": 0]
    var files: [String: String] = ["/etc/resolv.conf": "nameserver 10.96.0.10\nsearch default.svc.cluster.local\n"]
    var addresses: [IPAddress] = [IPAddress("10.1.2.3")!]

    func userID(named name: String) -> UInt32? { users[name] }
    func groupID(named name: String) -> UInt32? { groups[name] }
    func resolvConf(at path: String) -> String? { files[path] }
    func interfaceAddresses() -> [IPAddress] { addresses }
}

enum SettingsHarness {
    static func parse(_ arguments: [String], _ environment: [String: String] = [:]) throws -> CaptureSettings {
        try CaptureSettings.parse(arguments: arguments, environment: environment)
    }

    static func resolve(
        _ arguments: [String], _ environment: [String: String] = [:], _ facts: FakeFacts = FakeFacts()
    ) throws -> ResolvedCapture {
        let settings = try CaptureSettings.parse(arguments: arguments, environment: environment)
        return try CaptureConfig.resolve(settings, facts: facts)
    }

    /// The message of the configuration error that parsing and resolving throw, checking its exit code;
    /// nil if both succeed.
    static func error(
        _ arguments: [String], _ environment: [String: String] = [:], _ facts: FakeFacts = FakeFacts(),
        sourceLocation: SourceLocation = #_sourceLocation
    ) -> String? {
        do {
            let settings = try CaptureSettings.parse(arguments: arguments, environment: environment)
            _ = try CaptureConfig.resolve(settings, facts: facts)
            return nil
        } catch {
            #expect(error.exitCode == 2, sourceLocation: sourceLocation)
            #expect(!error.message.contains("\n"), "error must be one line", sourceLocation: sourceLocation)
            return error.message
        }
    }

    static func addresses(_ list: String...) -> [IPAddress] { list.map { IPAddress($0)! } }
}
