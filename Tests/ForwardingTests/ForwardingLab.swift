import Capture
import Forwarding
import Logging
import Netfilter
import PodLab
import ProxyStats
import Sockets
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

struct SocketFailure: Error, CustomStringConvertible {
    var description: String
    init(_ call: String, _ code: Int32 = errno) { description = "\(call): \(String(cString: strerror(code)))" }
}

/// A pod with sluice-init's injector-default rules and the forwarding engine running in it as the
/// proxy UID (1337, so its own connections are not captured again), and a peer: the L4 path of a
/// sidecar without the rest of sluice-proxy.
final class ForwardingLab: Sendable {
    let lab: PodLab
    let stats = StatsStore()
    let engine: ForwardingEngine

    static let outbound = ForwardingListener(
        name: "virtualOutbound", statName: "0.0.0.0_15001", addresses: ["0.0.0.0:15001", "[::]:15001"],
        tcpStatPrefix: "PassthroughCluster",
        cluster: ForwardingCluster(name: "PassthroughCluster", statName: "PassthroughCluster;", connectTimeout: .seconds(2)))
    static let inbound = ForwardingListener(
        name: "virtualInbound", statName: "0.0.0.0_15006", addresses: ["0.0.0.0:15006", "[::]:15006"], isInbound: true,
        tcpStatPrefix: "InboundPassthroughCluster",
        cluster: ForwardingCluster(
            name: "InboundPassthroughCluster", statName: "InboundPassthroughCluster;", connectTimeout: .seconds(2),
            sourceAddresses: [IPAddress("127.0.0.6")!, IPAddress("::6")!]))

    init(
        workers: Int = 2, listeners: [ForwardingListener] = [outbound, inbound], captureArguments: [String] = [],
        prefix: String = "sluice-fwd"
    ) throws {
        var layout = PodLab.Layout()
        layout.proxyProbeListeners = false
        lab = try PodLab(prefix: prefix, layout: layout)
        // --dual-stack: the lab's pod is IPv4-first, and IPv6 capture (with ::6 on lo for the
        // inbound passthrough source) is on only for IPv6 pods or with dual-stack.
        let result = try lab.run(try PodLab.sluiceInitExecutable(), CaptureConfig.injectorDefaultArguments + ["--dual-stack"] + captureArguments)
        guard result.status == 0 else { throw SocketFailure("sluice-init: \(result)", 0) }
        let configuration = ForwardingConfiguration(listeners: listeners, workers: workers)
        let stats = self.stats
        engine = try lab.pod.run(as: .proxy) {
            var logger = Logger(label: "forwarding-test")
            // SLUICE_TEST_DEBUG=1 logs every connection the engine handles, for a failing test.
            if getenv("SLUICE_TEST_DEBUG") != nil { logger.logLevel = .trace }
            let engine = try ForwardingEngine(configuration: configuration, stats: stats, logger: logger)
            // Worker threads inherit this thread's namespace and file-system UID.
            try engine.start()
            return engine
        }
    }

    func tearDown() {
        engine.shutdown()
        lab.tearDown()
    }

    func counter(_ name: String) -> UInt64 { stats.counter(name).value }
    func gauge(_ name: String) -> Int64 { stats.gauge(name).value }

    /// Waits (bounded) until `condition` holds, for stats that workers update after the test's I/O returns.
    func eventually(_ timeout: Duration = .seconds(3), _ condition: () -> Bool) -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if condition() { return true }
            usleep(5_000)
        }
        return condition()
    }
}

/// Blocking sockets with timeouts, created in a lab namespace as a chosen owner.
enum TestSocket {
    /// A connected TCP socket from `side` as `owner` (the app, 1000, unless told), blocking with a
    /// 5 s send/receive timeout.
    static func connect(_ lab: PodLab, from side: Side = .pod, as owner: SocketOwner? = .app, to destination: Endpoint,
                        timeout: Duration = .seconds(3)) throws -> Int32 {
        let fd = try lab.namespace(side).run(as: side == .pod ? owner : nil) {
            socket(destination.address.family == .ipv4 ? AF_INET : AF_INET6, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        }
        guard fd >= 0 else { throw SocketFailure("socket") }
        setTimeouts(fd, seconds: 5)
        let flags = fcntl(fd, F_GETFL)
        _ = fcntl(fd, F_SETFL, flags | O_NONBLOCK)
        let status = destination.withSocketAddress { Glibc.connect(fd, $0, $1) }
        if status != 0 && errno != EINPROGRESS {
            let code = errno
            close(fd)
            throw SocketFailure("connect \(destination)", code)
        }
        var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let milliseconds = Int32(timeout.components.seconds * 1000)
        guard poll(&descriptor, 1, milliseconds) == 1 else {
            close(fd)
            throw SocketFailure("connect \(destination): timed out", ETIMEDOUT)
        }
        var error: Int32 = 0
        var length = socklen_t(4)
        getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        if error != 0 {
            close(fd)
            throw SocketFailure("connect \(destination)", error)
        }
        _ = fcntl(fd, F_SETFL, flags)
        return fd
    }

    static func setTimeouts(_ fd: Int32, seconds: Int) {
        var timeout = timeval(tv_sec: seconds, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
    }

    static func send(_ fd: Int32, _ bytes: [UInt8]) throws {
        var offset = 0
        while offset < bytes.count {
            let count = bytes.withUnsafeBytes { Glibc.send(fd, $0.baseAddress! + offset, bytes.count - offset, Int32(MSG_NOSIGNAL)) }
            guard count > 0 else { throw SocketFailure("send") }
            offset += count
        }
    }

    static func send(_ fd: Int32, _ text: String) throws { try send(fd, Array(text.utf8)) }

    /// Reads until EOF (or `limit` bytes); throws on a reset or a timeout.
    static func receiveAll(_ fd: Int32, limit: Int = 1 << 20) throws -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.count < limit {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
            if count == 0 { break }
            guard count > 0 else { throw SocketFailure("recv") }
            received += buffer[0..<count]
        }
        return received
    }

    static func receive(_ fd: Int32, exactly total: Int) throws -> [UInt8] {
        var received: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 65536)
        while received.count < total {
            let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, min($0.count, total - received.count), 0) }
            guard count > 0 else { throw SocketFailure(count == 0 ? "recv: early EOF after \(received.count) bytes" : "recv", count == 0 ? 0 : errno) }
            received += buffer[0..<count]
        }
        return received
    }
}

/// A TCP server in a lab namespace: each connection is handed to `handler` on its own thread, with
/// the addresses it arrived on recorded.
final class TestServer: @unchecked Sendable {
    struct Arrival: Sendable { var local: Endpoint; var remote: Endpoint }

    let fd: Int32
    let arrivals = Mutex<[Arrival]>([])
    private let handler: @Sendable (Int32) -> Void
    private let stopped = Atomic<Bool>(false)
    private var acceptor: LabThread?

    init(_ lab: PodLab, side: Side, at endpoint: Endpoint, handler: @escaping @Sendable (Int32) -> Void) throws {
        self.handler = handler
        fd = try PodLab.listeningSocket(
            on: endpoint, in: lab.namespace(side), as: side == .pod ? .app : nil, backlog: 2048)
        acceptor = LabThread { self.acceptLoop() }
    }

    private func acceptLoop() {
        // Bounded: a test opens at most a few thousand connections.
        for _ in 0..<100_000 {
            let connection = accept(fd, nil, nil)
            if stopped.load(ordering: .relaxed) { if connection >= 0 { close(connection) }; return }
            guard connection >= 0 else { if errno == EINTR || errno == ECONNABORTED { continue } else { return } }
            if let local = Endpoint.local(of: connection), let remote = Endpoint.remote(of: connection) {
                arrivals.withLock { $0.append(Arrival(local: local, remote: remote)) }
            }
            TestSocket.setTimeouts(connection, seconds: 10)
            let handler = self.handler
            LabThread.detach { handler(connection) }
        }
    }

    func stop() {
        stopped.store(true, ordering: .relaxed)
        shutdown(fd, Int32(SHUT_RDWR))
        acceptor?.join()
        close(fd)
    }
}
