import Capture
import Sockets
import Glibc
import Netfilter

/// Istio's `--run-validation` probe, protocol for protocol (VALIDATION.md §1): listeners on
/// 127.0.0.1:<-p> and 127.0.0.1:<-z> with SO_REUSEADDR and SO_REUSEPORT; a client that dials
/// 127.0.0.6:<probe port> from 127.0.0.1:0, closes, waits a second and dials again; every accepted
/// connection gets its original port (SO_ORIGINAL_DST) written back in ASCII and is closed; the
/// original port being the probe port is success, the timeout failure. IPv6 pods use ::1 and ::6.
///
/// The probe passes only when the capture rules send the proxy's own loopback traffic to a capture
/// port (the hairpin rule: `oifname lo`, not to 127.0.0.1, owner the proxy UID). Istio's validation
/// container runs as that UID; `sluice-init` runs as root, so it creates each client socket on a
/// short-lived thread whose file-system UID/GID are the first proxy UID/GID, which is what
/// `meta skuid`/`skgid` read — without touching the process's own credentials.
///
/// Everything runs on the calling thread except those socket creations, each on a thread that is
/// joined at once; every socket is closed before `run` returns; the loop ends by the timeout.
struct ValidationProbe: Sendable {
    var family: IPFamily
    /// The proxy's outbound and inbound capture ports (`-p`, `-z`).
    var listenPorts: [UInt16]
    var probePort: UInt16
    var timeout: Duration
    /// Whose the client socket is; nil keeps the process's own file-system IDs.
    var probeOwner: SocketOwner?
    /// Istio's pause between dials.
    var retryInterval: Duration = .seconds(1)

    init(family: IPFamily, listenPorts: [UInt16], probePort: UInt16, timeout: Duration, probeOwner: SocketOwner?) {
        self.family = family
        self.listenPorts = listenPorts
        self.probePort = probePort
        self.timeout = timeout
        self.probeOwner = probeOwner
    }

    /// Istio's choices: the family of the pod's first address (IPv4 without one), the capture ports,
    /// and — Sluice's addition — the first proxy UID/GID for the client when running as root.
    init(config: CaptureConfig, options: RunOptions, effectiveUID: UInt32 = geteuid()) {
        self.init(family: options.hostAddress?.family ?? .ipv4,
                  listenPorts: [config.proxyPort, config.inboundCapturePort],
                  probePort: options.probePort, timeout: options.probeTimeout,
                  probeOwner: Self.probeOwner(effectiveUID: effectiveUID, proxyUIDs: config.proxyUIDs,
                                              proxyGIDs: config.proxyGIDs))
    }

    /// Root switches to the proxy's identity for the probe; anyone else (the proxy UID itself, as in
    /// Istio's CNI validation container) probes as who it is.
    static func probeOwner(effectiveUID: UInt32, proxyUIDs: [UInt32], proxyGIDs: [UInt32]) -> SocketOwner? {
        guard effectiveUID == 0, let uid = proxyUIDs.first, uid != 0 else { return nil }
        return SocketOwner(uid: uid, gid: proxyGIDs.first ?? uid)
    }

    var listenAddress: IPAddress { family == .ipv4 ? IPAddress(family: .ipv4, bytes: [127, 0, 0, 1]) : .ipv6Loopback }
    /// Istio's inbound passthrough address: local (127/8, or ::6 which sluice-init adds to lo), so
    /// without capture nothing listens there and the dial is refused.
    var probeAddress: IPAddress {
        family == .ipv4 ? IPAddress(family: .ipv4, bytes: [127, 0, 0, 6])
            : IPAddress(family: .ipv6, bytes: Array(repeating: 0, count: 15) + [6])
    }

    var probeTarget: String { Endpoint(probeAddress, probePort).description }

    enum Outcome: Sendable, Hashable {
        /// What reached which listener, for the success line.
        case passed(String)
        /// Why, in words: the cause Istio's users look for in the init container's log.
        case failed(String)
    }

    func run() -> Outcome {
        var state = State()
        defer { state.closeAll() }
        var listenFailures: [String] = []
        for port in listenPorts {
            switch openListener(port: port) {
            case .success(let fd): state.listeners.append((fd, port))
            case .failure(let error): listenFailures.append("\(Endpoint(listenAddress, port)) (\(error))")
            }
        }
        guard !state.listeners.isEmpty else {
            return .failed("no listener available: \(listenFailures.joined(separator: ", "))")
        }

        let start = ContinuousClock.now
        let deadline = start + timeout
        var nextDial = start
        // Bounded by the deadline; the count only guards against a clock that does not advance.
        for _ in 0..<1_000_000 {
            let now = ContinuousClock.now
            if now >= deadline { break }
            if state.client == nil && now >= nextDial {
                switch dial() {
                case .success(let fd):
                    state.attempts += 1
                    state.client = fd
                case .failure(.setup(let reason)):
                    return .failed(reason)
                case .failure(.system(let code)):
                    state.attempts += 1
                    state.record(clientError: code)
                    nextDial = ContinuousClock.now + retryInterval
                }
            }
            let wake = state.client == nil ? min(deadline, nextDial) : deadline
            var descriptors = state.listeners.map { pollfd(fd: $0.fd, events: Int16(POLLIN), revents: 0) }
            if let client = state.client { descriptors.append(pollfd(fd: client, events: Int16(POLLOUT), revents: 0)) }
            let ready = poll(&descriptors, nfds_t(descriptors.count), Self.milliseconds(until: wake))
            if ready < 0 && errno != EINTR { return .failed("poll: \(KernelError.errorText(errno))") }
            if ready <= 0 { continue }

            for (index, listener) in state.listeners.enumerated() where descriptors[index].revents != 0 {
                if let passed = serve(listener: listener.fd, port: listener.port, state: &state) {
                    return .passed(passed)
                }
            }
            if let client = state.client, descriptors.last?.revents ?? 0 != 0 {
                var code: Int32 = 0
                var length = socklen_t(MemoryLayout<Int32>.size)
                if getsockopt(client, SOL_SOCKET, SO_ERROR, &code, &length) != 0 { code = errno }
                close(client)
                state.client = nil
                if code == 0 { state.connected += 1 } else { state.record(clientError: code) }
                nextDial = ContinuousClock.now + retryInterval
            }
        }
        return .failed(state.cause(probe: self))
    }

    // MARK: Server

    private func openListener(port: UInt16) -> Result<Int32, ProbeError> {
        let fd = socket(family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue)
                        | Int32(SOCK_NONBLOCK.rawValue), 0)
        guard fd >= 0 else { return .failure(.system(errno)) }
        var on: Int32 = 1
        let size = socklen_t(MemoryLayout<Int32>.size)
        // As Istio: failing to set either is logged there and ignored.
        _ = setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, size)
        _ = setsockopt(fd, SOL_SOCKET, Self.reusePort, &on, size)
        let bound = Endpoint(listenAddress, port).withSocketAddress { bind(fd, $0, $1) }
        guard bound == 0, listen(fd, 128) == 0 else {
            let code = errno
            close(fd)
            return .failure(.system(code))
        }
        return .success(fd)
    }

    /// Accepts what is queued on one listener; a description of the success, or nil to go on.
    private func serve(listener: Int32, port: UInt16, state: inout State) -> String? {
        // Bounded: a listen backlog holds at most 128 connections (and EAGAIN ends it sooner).
        for _ in 0..<256 {
            let connection = accept(listener, nil, nil)
            if connection < 0 { return nil }
            defer { close(connection) }
            guard let original = Endpoint.originalDestination(of: connection, family: family)?.port else {
                // Reached the listener without a redirect: something dialled the capture port itself.
                state.notRedirected += 1
                continue
            }
            // Istio echoes the original port for debugging; the client closed already, so the
            // write may fail, which changes nothing.
            let text = Array(String(original).utf8)
            _ = send(connection, text, text.count, Int32(MSG_NOSIGNAL) | Int32(MSG_DONTWAIT))
            if original == probePort {
                let owner = probeOwner.map { " as \($0)" } ?? ""
                return "a probe from \(Endpoint(listenAddress, 0))\(owner) to \(probeTarget) was redirected to "
                    + "\(Endpoint(listenAddress, port)) with original port \(original) (attempt \(max(state.attempts, 1)))"
            }
            state.wrongPorts.append((original, port))
        }
        return nil
    }

    // MARK: Client

    enum ProbeError: Error, CustomStringConvertible {
        /// The probe cannot even be set up as the proxy's identity.
        case setup(String)
        /// errno of a socket call.
        case system(Int32)

        var description: String {
            switch self {
            case .setup(let reason): return reason
            case .system(let code): return KernelError.errorText(code)
            }
        }
    }

    /// Starts one non-blocking dial; the socket when it is under way (or already connected).
    private func dial() -> Result<Int32, ProbeError> {
        let created = Self.onThread(as: probeOwner) { () -> Result<Int32, ProbeError> in
            let fd = socket(family == .ipv4 ? AF_INET : AF_INET6,
                            Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue) | Int32(SOCK_NONBLOCK.rawValue), 0)
            return fd >= 0 ? .success(fd) : .failure(.system(errno))
        }
        guard case .success(let fd) = created else { return created }
        // Istio binds the source explicitly: 127.0.0.1, not 127.0.0.6, so the passthrough rule
        // (`ip saddr 127.0.0.6 return`) cannot match.
        guard Endpoint(listenAddress, 0).withSocketAddress({ bind(fd, $0, $1) }) == 0 else {
            let code = errno
            close(fd)
            return .failure(.system(code))
        }
        let status = Endpoint(probeAddress, probePort).withSocketAddress { connect(fd, $0, $1) }
        if status == 0 || errno == EINPROGRESS || errno == EINTR { return .success(fd) }
        let code = errno
        close(fd)
        return .failure(.system(code))
    }

    /// Runs `body` with the file-system UID/GID of `owner` on a thread of its own (see
    /// `SocketOwner.runOnDedicatedThread`), or right here without an owner; `body`'s own failure and
    /// the thread's come back as one `Result`.
    static func onThread<Value>(as owner: SocketOwner?, _ body: () -> Result<Value, ProbeError>) -> Result<Value, ProbeError> {
        guard let owner else { return body() }
        do {
            return try owner.runOnDedicatedThread(body)
        } catch let error as CredentialSwitchError {
            return .failure(.setup(credentialsFailure(owner, error)))
        } catch {
            return .failure(.setup("cannot start the probe thread: \(error)"))
        }
    }

    private static func credentialsFailure(_ owner: SocketOwner, _ error: CredentialSwitchError) -> String {
        "cannot create the probe socket as the proxy (\(owner)): \(error.call) was refused; sluice-init runs as root "
            + "without \(error.capability), so the probe could never match the proxy's hairpin rule. Add SETUID and SETGID "
            + "to the init container's capabilities, or run the validation as the proxy UID as Istio's "
            + "istio-validation container does"
    }

    // MARK: Outcome

    private struct State {
        var listeners: [(fd: Int32, port: UInt16)] = []
        var client: Int32?
        var attempts = 0
        var connected = 0
        var notRedirected = 0
        /// Original port, and the listener port it reached.
        var wrongPorts: [(UInt16, UInt16)] = []
        var clientErrors: [Int32: Int] = [:]
        var lastClientError: Int32?

        mutating func record(clientError code: Int32) {
            clientErrors[code, default: 0] += 1
            lastClientError = code
        }

        mutating func closeAll() {
            for listener in listeners { close(listener.fd) }
            listeners = []
            if let client { close(client) }
            client = nil
        }

        func cause(probe: ValidationProbe) -> String {
            let seconds = probe.timeout.formatted
            let target = probe.probeTarget
            let listening = listeners.map { Endpoint(probe.listenAddress, $0.port).description }.joined(separator: " and ")
            let owner = probe.probeOwner.map { " as \($0)" } ?? ""
            var causes: [String] = []
            if let (original, port) = wrongPorts.last {
                causes.append("a connection reached \(Endpoint(probe.listenAddress, port)) with original port "
                              + "\(original), not \(probe.probePort): the probe was redirected to the wrong port")
            }
            if let code = lastClientError {
                let count = clientErrors[code] ?? 0
                var text = "dialing \(target) from \(Endpoint(probe.listenAddress, 0))\(owner) failed with "
                    + "\(KernelError.errorText(code).lowercased()) (\(count) of \(attempts) attempts)"
                if code == ECONNREFUSED {
                    text += ": nothing redirected it, so the nftables rules that send the proxy's loopback traffic to "
                        + "\(listening) are missing, or something returns before them"
                }
                causes.append(text)
            }
            if connected > 0 {
                causes.append("\(connected) of \(attempts) dials to \(target) connected but never reached \(listening): "
                              + "the probe was redirected to the wrong port")
            }
            if client != nil {
                causes.append("the last dial to \(target) got no answer (its packets are dropped)")
            }
            if notRedirected > 0 {
                causes.append("\(notRedirected) connections reached the listeners without a redirect")
            }
            if causes.isEmpty { causes.append("no dial completed") }
            return "validation timeout after \(seconds): " + causes.joined(separator: "; ")
        }
    }

    // MARK: Helpers

    /// From <asm-generic/socket.h>.
    static let reusePort: Int32 = 15

    private static func milliseconds(until instant: ContinuousClock.Instant) -> Int32 {
        let remaining = max(.zero, instant - ContinuousClock.now).components
        // Rounded up, so a wake-up is never early and the loop does not spin on the last millisecond.
        return Int32(clamping: remaining.seconds * 1000 + (remaining.attoseconds + 999_999_999_999_999) / 1_000_000_000_000_000)
    }
}

private extension Duration {
    /// `5s`, `2.5s`: Go's spelling of the flag's value.
    var formatted: String {
        let milliseconds = components.seconds * 1000 + components.attoseconds / 1_000_000_000_000_000
        return milliseconds % 1000 == 0 ? "\(milliseconds / 1000)s" : "\(Double(milliseconds) / 1000)s"
    }
}
