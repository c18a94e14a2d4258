import AgentHTTP
import Logging
import NIOCore
import Synchronization

/// One original Kubernetes probe from `ISTIO_KUBE_APP_PROBERS`, keyed by its rewritten path
/// (`/app-health/<container>/livez`).
public struct ApplicationProbe: Sendable, Hashable {
    public struct HTTPGet: Sendable, Hashable {
        /// Path, optionally with a query.
        public var path: String
        public var port: Int
        /// `HTTP` or `HTTPS` as Kubernetes spells it.
        public var scheme: String
        /// `httpHeaders`; a `Host` here overrides the forwarded one.
        public var headers: [HTTPFields.Field]

        public init(path: String = "/", port: Int, scheme: String = "HTTP", headers: [HTTPFields.Field] = []) {
            self.path = path
            self.port = port
            self.scheme = scheme
            self.headers = headers
        }
    }

    public enum Action: Sendable, Hashable {
        case httpGet(HTTPGet)
        case tcpSocket(port: Int)
        case grpc(port: Int, service: String?)
    }

    public var action: Action
    /// Kubernetes' `timeoutSeconds`; 0 means the default of 1.
    public var timeoutSeconds: Int

    public init(action: Action, timeoutSeconds: Int = 1) {
        self.action = action
        self.timeoutSeconds = timeoutSeconds
    }

    var timeout: Duration { .seconds(max(1, timeoutSeconds)) }

    /// Why this probe cannot be run yet, or nil.
    public var unsupportedReason: String? {
        switch action {
        case .httpGet(let get) where get.scheme.uppercased() == "HTTPS":
            return "HTTPS application probes are not supported yet (TLS to the application comes with a later issue)"
        case .httpGet(let get) where get.scheme.uppercased() != "HTTP":
            return "unknown probe scheme \(get.scheme): expected HTTP or HTTPS"
        case .grpc:
            return "gRPC application probes are not supported yet (gRPC comes with a later issue)"
        default:
            return nil
        }
    }
}

/// Where probes are sent: the pod IP (`INSTANCE_IP`), or `localhost` with
/// `REWRITE_PROBE_LEGACY_LOCALHOST_DESTINATION`.
public enum ProbeDestination: Sendable, Hashable {
    case podIP(String)
    case localhost

    var host: String {
        switch self {
        case .podIP(let address): return address
        case .localhost: return "localhost"
        }
    }

    /// 127.0.0.6 / ::6: capture rules pass this source straight to the application instead of
    /// redirecting it to the data plane's inbound listener.
    var sourceAddress: String {
        if case .podIP(let address) = self, IPAddressText.isIPv6(address) { return "::6" }
        return "127.0.0.6"
    }
}

/// Runs the original probes the way the kubelet would have (STATUS.md §5).
public final class ApplicationProber: Sendable {
    static let maximumRedirects = 10
    static let maximumBodyExcerpt = 10 * 1024

    public let probes: [String: ApplicationProbe]
    private let destination: ProbeDestination
    private let statusPort: Int
    private let group: any EventLoopGroup
    private let logger: Logger
    /// Source addresses found missing on this host; probes then go out unbound (logged once).
    private let unavailableSources = Mutex<Set<String>>([])

    public init(
        probes: [String: ApplicationProbe], destination: ProbeDestination, statusPort: Int = 15020,
        group: any EventLoopGroup, logger: Logger
    ) {
        self.probes = probes
        self.destination = destination
        self.statusPort = statusPort
        self.group = group
        self.logger = logger
    }

    /// Probes that would answer 500 whatever the application does; the agent warns about them at startup.
    public static func unsupportedProbes(_ probes: [String: ApplicationProbe]) -> [(path: String, reason: String)] {
        probes.sorted { $0.key < $1.key }.compactMap { path, probe in
            probe.unsupportedReason.map { (path, $0) }
        }
    }

    public func respond(to request: HTTPRequest) async -> HTTPResponse {
        let path = request.path
        guard let probe = probes[path] else {
            return .text(400, "app prober config does not exists for \(path)")
        }
        if let reason = probe.unsupportedReason {
            return .text(500, "\(reason): \(path)\n")
        }
        switch probe.action {
        case .httpGet(let get):
            return await runHTTPProbe(get, timeout: probe.timeout, incoming: request, probePath: path)
        case .tcpSocket(let port):
            return await runTCPProbe(port: port, timeout: probe.timeout, probePath: path)
        case .grpc:
            return .text(500, "unsupported probe: \(path)\n")
        }
    }

    private func runTCPProbe(port: Int, timeout: Duration, probePath: String) async -> HTTPResponse {
        do {
            try await withSourceFallback { source throws(HTTPClientError) in
                try await HTTPClient.checkConnect(
                    host: destination.host, port: port, localAddress: source, timeout: timeout, group: group)
            }
            return HTTPResponse(status: 200)
        } catch {
            logger.error("\(probePath): TCP probe to port \(port) failed: \(error)")
            return .text(500, "\(error)\n")
        }
    }

    private func runHTTPProbe(
        _ get: ApplicationProbe.HTTPGet, timeout: Duration, incoming: HTTPRequest, probePath: String
    ) async -> HTTPResponse {
        let deadline = ContinuousClock.now + timeout
        var url = ProbeURL(host: destination.host, port: get.port, target: get.path.hasPrefix("/") ? get.path : "/" + get.path)
        let headers = forwardedHeaders(get, incoming: incoming)
        // Go's client (the kubelet's) sends at most 10 requests: the 10th redirect is refused.
        for _ in 0..<Self.maximumRedirects {
            let remaining = deadline - ContinuousClock.now
            guard remaining > .zero else {
                logger.error("\(probePath): HTTP probe timed out after \(timeout)")
                return .text(500, "probe timed out after \(timeout)\n")
            }
            var requestHeaders = headers
            if requestHeaders["Host"] == nil { requestHeaders["Host"] = IPAddressText.hostPort(url.host, url.port) }
            let response: HTTPResponse
            do {
                response = try await withSourceFallback { source throws(HTTPClientError) in
                    try await HTTPClient.send(
                        HTTPClientRequest(
                            host: url.host, port: url.port, target: url.target, headers: requestHeaders,
                            localAddress: source, timeout: remaining,
                            maximumResponseBodyBytes: Self.maximumBodyExcerpt, oversizedBody: .truncate),
                        group: group)
                }
            } catch {
                logger.error("\(probePath): HTTP probe to port \(url.port) failed: \(error)")
                return .text(500, "\(error)\n")
            }
            guard (300..<400).contains(response.status) else {
                return HTTPResponse(status: response.status, body: Array(response.body.prefix(Self.maximumBodyExcerpt)))
            }
            // The kubelet follows redirects only to the same host; any other 3xx counts as success.
            guard let location = response.headers["Location"], let next = url.resolving(location),
                  next.host == url.host, next.isHTTP
            else {
                return HTTPResponse(status: 200)
            }
            url = next
        }
        logger.error("\(probePath): HTTP probe stopped after \(Self.maximumRedirects) redirects")
        return .text(500, "stopped after \(Self.maximumRedirects) redirects\n")
    }

    /// The kubelet's request headers are passed on (Istio copies them), then the probe's own `httpHeaders`
    /// replace same-named ones. The kubelet addressed us on the status port, so that port in `Host`
    /// becomes the application's.
    private func forwardedHeaders(_ get: ApplicationProbe.HTTPGet, incoming: HTTPRequest) -> HTTPFields {
        let hopByHop: Set<String> = [
            "connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-connection",
            "content-length",
            // The excerpt returned to the kubelet must be readable as sent, not compressed.
            "accept-encoding",
        ]
        var headers = HTTPFields()
        for field in incoming.headers where !hopByHop.contains(field.name.lowercased()) {
            if field.name.lowercased() == "host" {
                headers["Host"] = Self.rewriteHostPort(field.value, statusPort: statusPort, applicationPort: get.port)
            } else {
                headers.append(name: field.name, value: field.value)
            }
        }
        for field in get.headers {
            headers[field.name.lowercased() == ":authority" ? "Host" : field.name] = field.value
        }
        return headers
    }

    static func rewriteHostPort(_ host: String, statusPort: Int, applicationPort: Int) -> String {
        let suffix = ":\(statusPort)"
        guard host.hasSuffix(suffix) else { return host }
        return String(host.dropLast(suffix.count)) + ":\(applicationPort)"
    }

    /// Binds 127.0.0.6 / ::6 unless this host lacks it (e.g. ::6 is rarely configured outside a pod);
    /// then probes go out from the kernel's choice of source, logged once per address.
    private func withSourceFallback<T>(
        _ body: (String?) async throws(HTTPClientError) -> T
    ) async throws(HTTPClientError) -> T {
        let source = destination.sourceAddress
        if unavailableSources.withLock({ $0.contains(source) }) {
            return try await body(nil)
        }
        do {
            return try await body(source)
        } catch .sourceAddressUnavailable(let address, let detail) {
            let first = unavailableSources.withLock { $0.insert(source).inserted }
            if first {
                logger.warning("cannot bind \(address) as the source of application probes (\(detail)); probing from the default source address, so probes may pass through the data plane")
            }
            return try await body(nil)
        }
    }
}

/// The parts of an `http://` URL a probe needs, and RFC 3986 reference resolution for `Location`.
struct ProbeURL: Equatable {
    var scheme = "http"
    var host: String
    var port: Int
    /// Path plus optional query.
    var target: String

    var isHTTP: Bool { scheme == "http" }

    func resolving(_ location: String) -> ProbeURL? {
        let location = location.trimmingCharacters(in: " ")
        if let schemeEnd = location.firstRange(of: "://") {
            let scheme = location[..<schemeEnd.lowerBound].lowercased()
            return Self.withAuthority(String(location[schemeEnd.upperBound...]), scheme: scheme)
        }
        if location.hasPrefix("//") {
            return Self.withAuthority(String(location.dropFirst(2)), scheme: scheme)
        }
        var next = self
        if location.hasPrefix("/") {
            next.target = String(location)
        } else if location.hasPrefix("?") {
            next.target = pathOnly + location
        } else {
            let directory = pathOnly.lastIndex(of: "/").map { String(pathOnly[...$0]) } ?? "/"
            next.target = directory + location
        }
        return next
    }

    private var pathOnly: String {
        target.firstIndex(of: "?").map { String(target[..<$0]) } ?? target
    }

    private static func withAuthority(_ rest: String, scheme: String) -> ProbeURL? {
        let slash = rest.firstIndex { $0 == "/" || $0 == "?" } ?? rest.endIndex
        let authority = rest[..<slash]
        var target = String(rest[slash...])
        if target.isEmpty || target.hasPrefix("?") { target = "/" + target }
        let defaultPort = scheme == "https" ? 443 : 80
        var host = Substring(authority)
        var port = defaultPort
        if authority.hasPrefix("[") {
            guard let close = authority.firstIndex(of: "]") else { return nil }
            host = authority[authority.index(after: authority.startIndex)..<close]
            let after = authority[authority.index(after: close)...]
            if after.hasPrefix(":") {
                guard let parsed = Int(after.dropFirst()) else { return nil }
                port = parsed
            }
        } else if let colon = authority.lastIndex(of: ":") {
            host = authority[..<colon]
            guard let parsed = Int(authority[authority.index(after: colon)...]) else { return nil }
            port = parsed
        }
        guard !host.isEmpty else { return nil }
        return ProbeURL(scheme: scheme, host: host.lowercased(), port: port, target: target)
    }
}
