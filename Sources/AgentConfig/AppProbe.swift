import Capture
import ConfigFormats

/// An application probe the injector moved behind the status port: kubelet calls
/// `/app-health/<container>/readyz` on 15020 and the agent runs the original probe (STATUS.md §5).
public struct AppProbe: Sendable, Equatable {
    public enum Action: Sendable, Equatable {
        case httpGet(HTTPGetAction)
        case tcpSocket(TCPSocketAction)
        case grpc(GRPCAction)
    }

    public var action: Action
    /// Kubernetes' default is 1 s, which the injector leaves out of the JSON.
    public var timeout: Duration

    public init(action: Action, timeout: Duration = .seconds(1)) {
        self.action = action
        self.timeout = timeout
    }

    /// `^/(app-health|app-lifecycle)/[^/]+/(livez|readyz|startupz|prestopz|poststartz)$`
    public static func isValidPath(_ path: String) -> Bool {
        let parts = path.split(separator: "/", omittingEmptySubsequences: false)
        guard parts.count == 4, parts[0].isEmpty, !parts[2].isEmpty else { return false }
        return ["app-health", "app-lifecycle"].contains(parts[1])
            && ["livez", "readyz", "startupz", "prestopz", "poststartz"].contains(parts[3])
    }

    /// Parses `ISTIO_KUBE_APP_PROBERS`.
    public static func parseProbers(_ text: String) throws(AgentConfigError) -> [String: AppProbe] {
        let variable = "ISTIO_KUBE_APP_PROBERS"
        let document: JSONValue
        do {
            document = try JSONValue.parse(json: text)
        } catch {
            throw AgentConfigError("\(variable): not valid JSON: \(error.message)")
        }
        guard let object = document.objectValue else {
            throw AgentConfigError("\(variable): want an object of probe path to probe, got \(document.kindDescription)")
        }
        var probers: [String: AppProbe] = [:]
        for (path, value) in object {
            probers[path] = try parseProbe(path: path, value, variable: variable)
        }
        return probers
    }

    static func parseProbe(path: String, _ value: JSONValue, variable: String) throws(AgentConfigError) -> AppProbe {
        func fail(_ problem: String) -> AgentConfigError {
            AgentConfigError("\(variable): probe \(goQuoted(path)): \(problem)")
        }
        guard isValidPath(path) else {
            throw fail("invalid path: want /app-health/<container>/(livez|readyz|startupz) or"
                + " /app-lifecycle/<container>/(prestopz|poststartz)")
        }
        guard let probe = value.objectValue else { throw fail("want an object, got \(value.kindDescription)") }
        let kinds = ["httpGet", "tcpSocket", "grpc"].filter { probe[$0] != nil && probe[$0] != .null }
        guard kinds.count == 1, let kind = kinds.first, let body = probe[kind]?.objectValue else {
            throw fail(kinds.count > 1
                ? "has \(kinds.joined(separator: " and ")): want exactly one of httpGet, tcpSocket, grpc"
                : kinds.isEmpty ? "has no httpGet, tcpSocket or grpc" : "\(kinds[0]) must be an object")
        }

        func port() throws(AgentConfigError) -> Int {
            guard let value = body["port"] else { throw fail("\(kind).port is missing") }
            // The injector resolves named ports; a name here means it could not.
            guard let number = value.intValue else {
                throw fail("\(kind).port \(FieldProblem.render(value)) must be a port number (named ports are resolved by the injector)")
            }
            guard (1...65535).contains(number) else { throw fail("\(kind).port \(number) is out of range 1-65535") }
            return Int(number)
        }
        func optionalString(_ key: String) throws(AgentConfigError) -> String? {
            guard let value = body[key], value != .null else { return nil }
            guard let text = value.stringValue else { throw fail("\(kind).\(key) must be a string") }
            return text
        }

        let action: Action
        switch kind {
        case "httpGet":
            var path = try optionalString("path") ?? "/"
            // Istio's prober prefixes a missing slash the same way.
            if !path.hasPrefix("/") { path = "/" + path }
            let scheme: HTTPGetAction.Scheme
            switch try optionalString("scheme") ?? "HTTP" {
            case "", "HTTP": scheme = .http
            case "HTTPS": scheme = .https
            case let other: throw fail("httpGet.scheme \(goQuoted(other)) is not HTTP or HTTPS")
            }
            var headers: [HTTPHeader] = []
            if let list = body["httpHeaders"], list != .null {
                guard let elements = list.arrayValue else { throw fail("httpGet.httpHeaders must be a list of {name, value}") }
                for element in elements {
                    guard let name = element["name"]?.stringValue, !name.isEmpty,
                          let headerValue = element["value"]?.stringValue ?? (element["value"] == nil ? "" : nil) else {
                        throw fail("httpGet.httpHeaders entry \(FieldProblem.render(element)) needs a string name and value")
                    }
                    headers.append(HTTPHeader(name: name, value: headerValue))
                }
            }
            let host = try optionalString("host")
            action = .httpGet(HTTPGetAction(
                path: path, port: try port(), host: host?.isEmpty == true ? nil : host, scheme: scheme, headers: headers))
        case "tcpSocket":
            let host = try optionalString("host")
            action = .tcpSocket(TCPSocketAction(port: try port(), host: host?.isEmpty == true ? nil : host))
        default:
            action = .grpc(GRPCAction(port: try port(), service: try optionalString("service")))
        }

        var timeout = Duration.seconds(1)
        if let value = probe["timeoutSeconds"], value != .null {
            guard let seconds = value.intValue, seconds >= 0 else {
                throw fail("timeoutSeconds \(FieldProblem.render(value)) must be a whole number of seconds")
            }
            if seconds > 0 { timeout = .seconds(seconds) }
        }
        return AppProbe(action: action, timeout: timeout)
    }
}

public struct HTTPGetAction: Sendable, Equatable {
    public enum Scheme: String, Sendable, Hashable { case http = "HTTP", https = "HTTPS" }

    public var path: String
    public var port: Int
    /// The probe's host; nil means the pod IP (or localhost with REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION).
    public var host: String?
    public var scheme: Scheme
    public var headers: [HTTPHeader]

    public init(path: String = "/", port: Int, host: String? = nil, scheme: Scheme = .http, headers: [HTTPHeader] = []) {
        self.path = path
        self.port = port
        self.host = host
        self.scheme = scheme
        self.headers = headers
    }
}

public struct HTTPHeader: Sendable, Equatable {
    public var name: String
    public var value: String

    public init(name: String, value: String) {
        self.name = name
        self.value = value
    }
}

public struct TCPSocketAction: Sendable, Equatable {
    public var port: Int
    public var host: String?

    public init(port: Int, host: String? = nil) {
        self.port = port
        self.host = host
    }
}

public struct GRPCAction: Sendable, Equatable {
    public var port: Int
    /// The `grpc.health.v1` service name; nil checks the server as a whole.
    public var service: String?

    public init(port: Int, service: String? = nil) {
        self.port = port
        self.service = service
    }
}
