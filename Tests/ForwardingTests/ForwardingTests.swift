import Capture
import Forwarding
import PodLab
import Synchronization
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// The L4 path against the real kernel: sluice-init's rules in a pod netns, the engine as UID 1337,
/// real connections from the app (UID 1000) and the peer.
@Suite("Forwarding: transparent L4 through the capture rules", .serialized)
struct ForwardingTests {
    static let families: [IPFamily] = [.ipv4, .ipv6]

    static func external(_ family: IPFamily, _ port: UInt16) -> Endpoint {
        Endpoint(PodLab.externalAddresses(family)[0], port)
    }

    static func pod(_ family: IPFamily, _ port: UInt16) -> Endpoint {
        Endpoint(PodLab.podAddress(family), port)
    }

    static func any(_ family: IPFamily, _ port: UInt16) -> Endpoint {
        Endpoint(IPAddress(family == .ipv4 ? "0.0.0.0" : "::")!, port)
    }

    /// Answers with the address it was reached at, then closes.
    static let reportLocal: @Sendable (Int32) -> Void = { fd in
        _ = try? TestSocket.receive(fd, exactly: 5)
        let local = Endpoint.local(of: fd).map(String.init(describing:)) ?? "?"
        try? TestSocket.send(fd, local)
        close(fd)
    }

    @Test("outbound: the app's connection reaches the original destination through 15001", arguments: families)
    func outboundOriginalDestination(family: IPFamily) throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let destination = Self.external(family, 9001)
        let server = try TestServer(lab.lab, side: .peer, at: destination, handler: Self.reportLocal)
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, to: destination)
        try TestSocket.send(fd, "hello")
        let reply = String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self)
        close(fd)

        #expect(reply == destination.description)
        let arrival = try #require(server.arrivals.withLock { $0.first })
        #expect(arrival.local == destination)
        #expect(arrival.remote.address == PodLab.podAddress(family), "the upstream leg leaves from the pod's address")
        #expect(lab.eventually { lab.counter("listener.0.0.0.0_15001.downstream_cx_total") == 1 })
        #expect(lab.counter("cluster.PassthroughCluster;.upstream_cx_total") == 1)
        #expect(lab.counter("tcp.PassthroughCluster.downstream_cx_rx_bytes_total") == 5)
        #expect(lab.eventually { lab.counter("tcp.PassthroughCluster.downstream_cx_tx_bytes_total") == UInt64(reply.utf8.count) })
        #expect(lab.eventually { lab.gauge("listener.0.0.0.0_15001.downstream_cx_active") == 0 })
        #expect(lab.counter("listener.0.0.0.0_15006.downstream_cx_total") == 0)
    }

    @Test("inbound: the peer's connection reaches the app through 15006, from 127.0.0.6 / ::6", arguments: families)
    func inboundOriginalDestination(family: IPFamily) throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .pod, at: Self.any(family, 9002), handler: Self.reportLocal)
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, from: .peer, to: Self.pod(family, 9002))
        defer { close(fd) }
        try TestSocket.send(fd, "hello")
        let reply = String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self)

        #expect(reply == Self.pod(family, 9002).description)
        let arrival = try #require(server.arrivals.withLock { $0.first })
        #expect(arrival.remote.address == IPAddress(family == .ipv4 ? "127.0.0.6" : "::6")!)
        #expect(lab.eventually { lab.counter("listener.0.0.0.0_15006.downstream_cx_total") == 1 })
        #expect(lab.counter("cluster.InboundPassthroughCluster;.upstream_cx_total") == 1)
        #expect(lab.counter("listener.0.0.0.0_15001.downstream_cx_total") == 0)
    }

    @Test("hairpin: the app calling its own service address crosses 15001, leaves, and comes back through 15006")
    func hairpinThroughServiceAddress() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let app = try TestServer(lab.lab, side: .pod, at: Self.any(.ipv4, 9003), handler: Self.reportLocal)
        defer { app.stop() }
        // The "node" side: a service address that leads back to the pod, as kube-proxy's would.
        let service = Endpoint(PodLab.externalIPv4[1], 9003)
        let node = try TestServer(lab.lab, side: .peer, at: service) { fd in
            defer { close(fd) }
            guard let request = try? TestSocket.receive(fd, exactly: 5),
                  let backend = try? TestSocket.connect(lab.lab, from: .peer, to: Self.pod(.ipv4, 9003)) else { return }
            defer { close(backend) }
            try? TestSocket.send(backend, request)
            if let answer = try? TestSocket.receiveAll(backend) { try? TestSocket.send(fd, answer) }
        }
        defer { node.stop() }

        let fd = try TestSocket.connect(lab.lab, to: service)
        defer { close(fd) }
        try TestSocket.send(fd, "hello")
        let reply = String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self)

        #expect(reply == Self.pod(.ipv4, 9003).description)
        #expect(app.arrivals.withLock { $0.map(\.remote.address) } == [IPAddress("127.0.0.6")!])
        #expect(lab.eventually { lab.counter("listener.0.0.0.0_15001.downstream_cx_total") == 1 })
        #expect(lab.eventually { lab.counter("listener.0.0.0.0_15006.downstream_cx_total") == 1 })
    }

    @Test("the app calling its own pod IP is not captured (Istio's loopback bypass) and reaches itself once")
    func ownPodAddressDirect() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let app = try TestServer(lab.lab, side: .pod, at: Self.any(.ipv4, 9011), handler: Self.reportLocal)
        defer { app.stop() }
        let fd = try TestSocket.connect(lab.lab, to: Self.pod(.ipv4, 9011))
        defer { close(fd) }
        try TestSocket.send(fd, "hello")
        #expect(String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self) == Self.pod(.ipv4, 9011).description)
        #expect(app.arrivals.withLock { $0.map(\.remote.address) } == [PodLab.podIPv4])
        #expect(lab.counter("listener.0.0.0.0_15001.downstream_cx_total") == 0)
        #expect(lab.counter("listener.0.0.0.0_15006.downstream_cx_total") == 0)
    }

    @Test("a connection to the proxy's own port is refused, not looped")
    func ownPortRefused() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        // Loopback is not captured, so this arrives at 15001 with 127.0.0.1:15001 as its destination.
        #expect(Self.isReset { try TestSocket.connect(lab.lab, to: "127.0.0.1:15001") })
        // From the peer, the pod's 15001 is captured to 15006 with the pod's 15001 as original destination.
        #expect(Self.isReset { try TestSocket.connect(lab.lab, from: .peer, to: Self.pod(.ipv4, 15001)) })
        #expect(lab.eventually { lab.counter("tcp.PassthroughCluster.downstream_cx_no_route") == 1 })
        #expect(lab.eventually { lab.counter("tcp.InboundPassthroughCluster.downstream_cx_no_route") == 1 })
        #expect(lab.counter("cluster.PassthroughCluster;.upstream_cx_total") == 0)
        #expect(lab.eventually { lab.engine.activeConnections == 0 })
    }

    /// True when the connection `connect` makes is reset, during the handshake's aftermath or at the first read.
    static func isReset(_ connect: () throws -> Int32) -> Bool {
        do {
            let fd = try connect()
            defer { close(fd) }
            _ = try TestSocket.receiveAll(fd)
            return false
        } catch {
            return "\(error)".contains("reset")
        }
    }

    @Test("TPROXY: a transparent inbound listener takes the connection's local address as its original destination", arguments: families)
    func tproxyOriginalDestination(family: IPFamily) throws {
        var inbound = ForwardingLab.inbound
        inbound.transparent = true
        let lab = try ForwardingLab(listeners: [ForwardingLab.outbound, inbound], captureArguments: ["-m", "TPROXY"])
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .pod, at: Self.any(family, 9012), handler: Self.reportLocal)
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, from: .peer, to: Self.pod(family, 9012))
        defer { close(fd) }
        try TestSocket.send(fd, "hello")
        #expect(String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self) == Self.pod(family, 9012).description)
        #expect(server.arrivals.withLock { $0.map(\.remote.address) } == [IPAddress(family == .ipv4 ? "127.0.0.6" : "::6")!])
        #expect(lab.eventually { lab.counter("listener.0.0.0.0_15006.downstream_cx_total") == 1 })
    }

    @Test("half-close: the app's FIN reaches the peer, and the peer's answer still comes back")
    func halfClose() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9004)) { fd in
            let received = (try? TestSocket.receiveAll(fd, limit: 1 << 24)) ?? []
            try? TestSocket.send(fd, "got \(received.count)")
            close(fd)
        }
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9004))
        defer { close(fd) }
        try TestSocket.send(fd, [UInt8](repeating: 7, count: 100_000))
        shutdown(fd, Int32(SHUT_WR))
        let reply = String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self)
        #expect(reply == "got 100000")
    }

    @Test("a reset from the peer reaches the app as a reset")
    func peerReset() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9005)) { fd in
            _ = try? TestSocket.receive(fd, exactly: 5)
            var linger = Glibc.linger(l_onoff: 1, l_linger: 0)
            setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, socklen_t(MemoryLayout<Glibc.linger>.size))
            close(fd)
        }
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9005))
        defer { close(fd) }
        try TestSocket.send(fd, "hello")
        let error = #expect(throws: SocketFailure.self) { _ = try TestSocket.receiveAll(fd) }
        #expect(error?.description.contains("reset") == true, "\(String(describing: error))")
        #expect(lab.eventually { lab.counter("cluster.PassthroughCluster;.upstream_cx_destroy_remote") == 1 })
    }

    @Test("an upstream that refuses: the app's connection is reset and connect_fail counted")
    func upstreamRefused() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        // The proxy's reset may land before the app's connect has even returned.
        #expect(Self.isReset { try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9999)) })
        #expect(lab.eventually { lab.counter("cluster.PassthroughCluster;.upstream_cx_connect_fail") == 1 })
        #expect(lab.eventually { lab.gauge("cluster.PassthroughCluster;.upstream_cx_active") == 0 })
    }

    @Test("100 MB each way arrive intact: SHA-256 computed by the sender and by the receiver match")
    func bulkTransferIntact() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let total = 100 << 20
        // Upload: the peer hashes what it receives and answers with the digest.
        let upload = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9006)) { fd in
            var hash = SHA256()
            var buffer = [UInt8](repeating: 0, count: 1 << 16)
            for _ in 0..<100_000 {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                if count <= 0 { break }
                buffer.withUnsafeBytes { hash.update(UnsafeRawBufferPointer(rebasing: $0[0..<count])) }
            }
            try? TestSocket.send(fd, hash.finish())
            close(fd)
        }
        defer { upload.stop() }
        // Download: the peer sends the same stream and closes.
        let download = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9007)) { fd in
            var stream = PatternStream(seed: 42)
            var sent = 0
            while sent < total {
                let chunk = stream.next(min(1 << 16, total - sent))
                guard (try? TestSocket.send(fd, chunk)) != nil else { break }
                sent += chunk.count
            }
            close(fd)
        }
        defer { download.stop() }

        var expected = SHA256()
        var stream = PatternStream(seed: 42)
        let fd = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9006))
        defer { close(fd) }
        var sent = 0
        while sent < total {
            let chunk = stream.next(min(1 << 16, total - sent))
            expected.update(chunk)
            try TestSocket.send(fd, chunk)
            sent += chunk.count
        }
        shutdown(fd, Int32(SHUT_WR))
        let digest = expected.finish()
        #expect(String(decoding: try TestSocket.receiveAll(fd), as: UTF8.self) == digest)

        let back = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9007))
        defer { close(back) }
        var received = SHA256()
        var count = 0
        var buffer = [UInt8](repeating: 0, count: 1 << 16)
        for _ in 0..<100_000 {
            let got = buffer.withUnsafeMutableBytes { recv(back, $0.baseAddress, $0.count, 0) }
            guard got > 0 else { break }
            count += got
            buffer.withUnsafeBytes { received.update(UnsafeRawBufferPointer(rebasing: $0[0..<got])) }
        }
        #expect(count == total)
        #expect(received.finish() == digest)
        #expect(lab.eventually { lab.counter("cluster.PassthroughCluster;.upstream_cx_tx_bytes_total") == UInt64(total) })
        #expect(lab.eventually { lab.counter("tcp.PassthroughCluster.downstream_cx_tx_bytes_total") == UInt64(total + digest.utf8.count) })
    }

    @Test("back-pressure: a peer that stops reading stalls the app; when it reads again every byte arrives")
    func backPressure() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let release = Atomic<Bool>(false)
        let receivedTotal = Atomic<Int>(0)
        let server = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9008)) { fd in
            for _ in 0..<2000 where !release.load(ordering: .relaxed) { usleep(5_000) }
            let received = (try? TestSocket.receiveAll(fd, limit: 1 << 30)) ?? []
            receivedTotal.store(received.count, ordering: .relaxed)
            close(fd)
        }
        defer { server.stop() }

        let fd = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9008))
        defer { close(fd) }
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
        let chunk = [UInt8](repeating: 1, count: 1 << 16)
        var written = 0
        var stalledFor = 0
        // Write until the kernel refuses for a while: the stall the proxy passes back.
        for _ in 0..<20_000 where stalledFor < 20 {
            let count = chunk.withUnsafeBytes { send(fd, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if count > 0 { written += count; stalledFor = 0 } else { stalledFor += 1; usleep(10_000) }
        }
        #expect(stalledFor >= 20, "the app was never stalled")
        #expect(written < 96 << 20, "\(written) bytes accepted with the peer not reading: the proxy is not pushing back")
        release.store(true, ordering: .relaxed)
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK)
        shutdown(fd, Int32(SHUT_WR))
        #expect(lab.eventually(.seconds(10)) { receivedTotal.load(ordering: .relaxed) == written })
    }

    @Test("1,000 concurrent connections, all open at once, all answered")
    func thousandConcurrentConnections() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .peer, at: Self.external(.ipv4, 9009)) { fd in
            if let message = try? TestSocket.receive(fd, exactly: 8) { try? TestSocket.send(fd, message) }
            _ = try? TestSocket.receiveAll(fd)
            close(fd)
        }
        defer { server.stop() }

        var sockets: [Int32] = []
        defer { for fd in sockets { close(fd) } }
        for index in 0..<1000 {
            let fd = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9009))
            sockets.append(fd)
            let message = String(index + 10_000_000).utf8.map { $0 }
            try TestSocket.send(fd, message)
            #expect(try TestSocket.receive(fd, exactly: 8) == message)
        }
        #expect(lab.eventually { lab.gauge("listener.0.0.0.0_15001.downstream_cx_active") == 1000 })
        #expect(lab.engine.activeConnections == 1000)
        let perWorker = (0..<2).map { lab.counter("listener.0.0.0.0_15001.worker_\($0).downstream_cx_total") }
        #expect(perWorker.reduce(0, +) == 1000)
        for fd in sockets { close(fd) }
        sockets.removeAll()
        #expect(lab.eventually(.seconds(10)) { lab.gauge("listener.0.0.0.0_15001.downstream_cx_active") == 0 })
        #expect(lab.counter("cluster.PassthroughCluster;.upstream_cx_destroy") == 1000)
    }

    @Test("stopping a listener refuses new connections and leaves open ones working")
    func stopAccepting() throws {
        let lab = try ForwardingLab()
        defer { lab.tearDown() }
        let server = try TestServer(lab.lab, side: .pod, at: Self.any(.ipv4, 9010)) { fd in
            // An echo that runs until the client closes.
            var buffer = [UInt8](repeating: 0, count: 4096)
            for _ in 0..<1000 {
                let count = buffer.withUnsafeMutableBytes { recv(fd, $0.baseAddress, $0.count, 0) }
                guard count > 0, (try? TestSocket.send(fd, Array(buffer[0..<count]))) != nil else { break }
            }
            close(fd)
        }
        defer { server.stop() }
        let open = try TestSocket.connect(lab.lab, from: .peer, to: Self.pod(.ipv4, 9010))
        defer { close(open) }
        try TestSocket.send(open, "one")
        #expect(try TestSocket.receive(open, exactly: 3) == Array("one".utf8))

        lab.engine.stopAccepting { $0.isInbound }
        #expect(lab.engine.acceptingListeners == ["virtualOutbound"])
        #expect(throws: SocketFailure.self) { close(try TestSocket.connect(lab.lab, from: .peer, to: Self.pod(.ipv4, 9010))) }
        try TestSocket.send(open, "two")
        #expect(try TestSocket.receive(open, exactly: 3) == Array("two".utf8))
        // Outbound still accepts.
        let out = try TestSocket.connect(lab.lab, to: Self.external(.ipv4, 9999))
        close(out)
    }
}

/// A deterministic byte stream (xorshift64), so both ends can produce or check the same bytes.
struct PatternStream {
    private var state: UInt64

    init(seed: UInt64) { state = seed | 1 }

    mutating func next(_ count: Int) -> [UInt8] {
        [UInt8](unsafeUninitializedCapacity: count) { buffer, initialized in
            var index = 0
            while index < count {
                state ^= state << 13
                state ^= state >> 7
                state ^= state << 17
                var word = state
                for _ in 0..<8 where index < count {
                    buffer[index] = UInt8(truncatingIfNeeded: word)
                    word >>= 8
                    index += 1
                }
            }
            initialized = count
        }
    }
}
