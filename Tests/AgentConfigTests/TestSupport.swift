import AgentConfig
import ConfigFormats
import Testing

/// Files by absolute path; anything else is absent.
struct InMemoryFiles: AgentFileReader {
    var files: [String: String] = [:]
    var unreadable: Set<String> = []

    struct PermissionDenied: Error, CustomStringConvertible {
        var description: String { "permission denied" }
    }

    func contents(ofFile absolutePath: String) throws -> String? {
        if unreadable.contains(absolutePath) { throw PermissionDenied() }
        return files[absolutePath]
    }
}

/// A pod as the injector sets it up.
let podEnvironment: [String: String] = [
    "POD_NAME": "reviews-v1-abc",
    "POD_NAMESPACE": "default",
    "INSTANCE_IP": "10.1.2.3",
    "SERVICE_ACCOUNT": "bookinfo-reviews",
]

func resolve(
    _ arguments: [String] = ["proxy", "sidecar"],
    environment: [String: String] = podEnvironment,
    files: [String: String] = [:],
    hostAddresses: [String] = ["10.1.2.3"]
) throws(AgentConfigError) -> AgentConfiguration {
    let invocation = try AgentCommandLine.parse(arguments)
    return try AgentConfiguration.resolve(
        invocation: invocation, environment: environment, files: InMemoryFiles(files: files), hostAddresses: hostAddresses)
}

/// The error resolution throws, or nil when it succeeds.
func resolutionError(
    _ arguments: [String] = ["proxy", "sidecar"],
    environment: [String: String] = podEnvironment,
    files: [String: String] = [:]
) -> String? {
    do {
        _ = try resolve(arguments, environment: environment, files: files)
        return nil
    } catch {
        return error.message
    }
}

func parseError(_ arguments: [String]) -> String? {
    do {
        _ = try AgentCommandLine.parse(arguments)
        return nil
    } catch {
        return error.message
    }
}

func proxyArguments(_ arguments: [String]) throws -> ProxyArguments {
    let invocation = try AgentCommandLine.parse(arguments)
    guard case .proxy(let proxy) = invocation.command else {
        Issue.record("not a proxy command: \(invocation.command)")
        return ProxyArguments()
    }
    return proxy
}
