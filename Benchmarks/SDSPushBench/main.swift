import Glibc
import Logging
import NIOPosix
import SecretDiscovery
import WorkloadIdentity

/// In-process side of Benchmarks/sds.sh: the agent's SDS store and server on a Unix socket, the local
/// CA, and N StreamSecrets streams over C gRPC connections watching `default`. After every stream has
/// its first secret and acknowledged it, the clock is moved past the rotation point; printed (JSON) is
/// how long until the last stream has the new certificate, which includes the new key, CSR and signing.
struct Options {
    var streams = 1000
    var connections = 10
    var algorithm: WorkloadKeyAlgorithm = .ecdsaP256
    var rounds = 3
}

func parse() -> Options {
    var options = Options()
    var arguments = Array(CommandLine.arguments.dropFirst())[...]
    while let flag = arguments.popFirst() {
        guard let value = arguments.popFirst() else { fatalError("\(flag) needs a value") }
        switch flag {
        case "--streams": options.streams = Int(value)!
        case "--connections": options.connections = Int(value)!
        case "--rounds": options.rounds = Int(value)!
        case "--algorithm": options.algorithm = value == "RSA" ? .rsa(bits: 2048) : .ecdsaP256
        default: fatalError("unknown flag \(flag)")
        }
    }
    return options
}

func milliseconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) * 1000 + Double(duration.components.attoseconds) / 1e15
}

let options = parse()
var template = Array("/tmp/sluice-sds-bench-XXXXXX".utf8CString)
let directory = template.withUnsafeMutableBufferPointer { String(cString: mkdtemp($0.baseAddress!)) }
let socketPath = directory + "/socket"
let clock = ManualSecretClock()
let authority = try LocalCertificateAuthority.create(trustDomain: "cluster.local", now: { clock.now() })
let identity = SpiffeIdentity(trustDomain: "cluster.local", namespace: "default", serviceAccount: "bench")
let store = SecretStore(
    configuration: SecretStoreConfiguration(workload: .signing(.init(
        signer: authority, signerName: "local CA", identity: identity, keyAlgorithm: options.algorithm,
        rotation: try RotationPolicy()))),
    clock: clock, logger: Logger(label: "sds", factory: { _ in SwiftLogNoOpLogHandler() }))
// One event loop thread, as the agent runs.
let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
guard let server = try SecretDiscoveryServer(socketPath: socketPath, store: store, group: group,
                                             logger: Logger(label: "sds", factory: { _ in SwiftLogNoOpLogHandler() })) else {
    fatalError("socket in use")
}
let serving = Task { try await server.run() }
let background = Task { await store.run() }

let clients = try (0..<options.connections).map { _ in try SecretDiscoveryClient(socketPath: socketPath) }
let streams = (0..<options.streams).map { clients[$0 % clients.count].openStream() }

/// Waits for one response on every stream; returns each stream's wait from `start`, and the nonces.
func collect(from start: ContinuousClock.Instant) async -> [(Double, String)] {
    await withTaskGroup(of: (Int, Double, String).self) { group in
        for (index, stream) in streams.enumerated() {
            group.addTask {
                guard case .response(let response)? = await stream.next(timeout: .seconds(60)) else {
                    fatalError("stream \(index) got no response")
                }
                return (index, milliseconds(ContinuousClock.now - start), response.nonce)
            }
        }
        var results = [(Double, String)](repeating: (0, ""), count: streams.count)
        for await (index, elapsed, nonce) in group { results[index] = (elapsed, nonce) }
        return results
    }
}

let subscribeStart = ContinuousClock.now
for (index, stream) in streams.enumerated() { stream.send(.secrets(["default"], nodeID: "bench-\(index)")) }
var answers = await collect(from: subscribeStart)
let firstAll = answers.map(\.0).max()!

var pushes: [Double] = []
var medians: [Double] = []
for _ in 0..<options.rounds {
    for (index, stream) in streams.enumerated() { stream.send(.secrets(["default"], responseNonce: answers[index].1)) }
    // Let the acknowledgements land, then move past the rotation point (about 12 h into 24 h).
    try await Task.sleep(for: .milliseconds(200))
    let pushStart = ContinuousClock.now
    clock.advance(by: .seconds(13 * 3600))
    answers = await collect(from: pushStart)
    let times = answers.map(\.0).sorted()
    pushes.append(times.last!)
    medians.append(times[times.count / 2])
}

print("""
    {"streams": \(options.streams), "connections": \(options.connections), "algorithm": "\(options.algorithm)", \
    "first_all_ms": \(firstAll), "push_last_ms": \(pushes), "push_median_ms": \(medians)}
    """)
for stream in streams { stream.cancel() }
for client in clients { await client.close() }
server.shutdown()
_ = try? await serving.value
background.cancel()
await background.value
try await group.shutdownGracefully()
unlink(socketPath)
rmdir(directory)
