import FoundationEssentials
import Glibc
import SecretDiscovery
import WorkloadIdentity

/// `sluice-sds fetch`: asks a running agent's SDS server for secrets, as the data plane does, and says
/// what came back: the identity, validity and chain of certificates, the size of root bundles. For the
/// node admin checking what a sidecar is being served, and for the benchmark.
let usage = """
    usage: sluice-sds fetch [--socket PATH] [--wait SECONDS] [--node ID] [--timing] NAME...

      NAME        SDS resource names: default, ROOTCA, file-cert:<cert>~<key>, file-root:<path>
      --socket    the agent's workload socket (default ./var/run/secrets/workload-spiffe-uds/socket)
      --wait      wait this long for the socket to appear and answer (default 0: it must be there)
      --node      node id sent on the stream (default sluice-sds)
      --timing    also print when the answer came (CLOCK_MONOTONIC seconds), for benchmarks

    Run it as root or as the proxy user (1337): the agent refuses everyone else.

    """

func fail(_ message: String, code: Int32) -> Never {
    let line = Array("sluice-sds: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
    exit(code)
}

func monotonicSeconds() -> Double {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return Double(now.tv_sec) + Double(now.tv_nsec) / 1e9
}

struct Request {
    var socketPath = "./var/run/secrets/workload-spiffe-uds/socket"
    var wait: Duration = .zero
    var nodeID = "sluice-sds"
    var timing = false
    var names: [String] = []
}

func parse(_ arguments: [String]) -> Request {
    guard arguments.first == "fetch" else {
        if ["--help", "-h", "help"].contains(arguments.first ?? "") {
            print(usage, terminator: "")
            exit(0)
        }
        fail("want a command: fetch\n\(usage)", code: 2)
    }
    var request = Request()
    var remaining = arguments.dropFirst()
    func value(_ flag: String) -> String {
        guard let value = remaining.popFirst() else { fail("\(flag) needs a value", code: 2) }
        return value
    }
    while let argument = remaining.popFirst() {
        switch argument {
        case "--socket": request.socketPath = value(argument)
        case "--wait":
            let text = value(argument)
            guard let seconds = Double(text), seconds >= 0, seconds <= 3600 else { fail("--wait \(text): want seconds, 0 to 3600", code: 2) }
            request.wait = .milliseconds(Int64(seconds * 1000))
        case "--node": request.nodeID = value(argument)
        case "--timing": request.timing = true
        case "--help", "-h":
            print(usage, terminator: "")
            exit(0)
        default:
            guard !argument.hasPrefix("-") else { fail("unknown flag \(argument)\n\(usage)", code: 2) }
            request.names.append(argument)
        }
    }
    guard !request.names.isEmpty else { fail("name at least one secret, such as default or ROOTCA", code: 2) }
    return request
}

let request = parse(Array(CommandLine.arguments.dropFirst()))
let (socketPath, wait, nodeID, timing, names) = (request.socketPath, request.wait, request.nodeID, request.timing, request.names)

// Poll for the socket as a data plane starting beside its agent would: every millisecond, bounded.
let started = ContinuousClock.now
var polls = 0
while !WorkloadSocket.isServed(socketPath) {
    polls += 1
    guard ContinuousClock.now - started < wait, polls < 10_000_000 else {
        fail("nothing serves SDS on \(socketPath)\(wait > .zero ? " after \(wait)" : ""): is the agent running, and is this its root?", code: 1)
    }
    usleep(1000)
}

let client: SecretDiscoveryClient
do {
    client = try SecretDiscoveryClient(socketPath: socketPath)
} catch {
    fail("cannot connect to \(socketPath): \(error)", code: 1)
}
let stream = client.openStream()
stream.send(.secrets(names, nodeID: nodeID))
let event = await stream.next(timeout: max(wait, .seconds(10)))
let answeredAt = monotonicSeconds()
stream.cancel()
switch event {
case .response(let response)?:
    if timing { print("answered-at-monotonic \(answeredAt)") }
    print("version \(response.versionInfo)")
    do {
        for secret in try response.secrets() {
            if case .tlsCertificate(let certificate)? = secret.type {
                let chain = try CertificateChain(pem: String(decoding: certificate.certificateChain.inlineBytes, as: UTF8.self))
                print("\(secret.name): certificate \(chain.leafURIs.joined(separator: " ")), valid \(chain.notBefore) to \(chain.notAfter), chain of \(chain.certificates.count)")
            } else {
                let roots = String(decoding: secret.validationContext.trustedCa.inlineBytes, as: UTF8.self)
                print("\(secret.name): roots, \(roots.split(separator: "-----BEGIN CERTIFICATE-----").count - (roots.hasPrefix("-----BEGIN") ? 0 : 1)) certificate(s)")
            }
        }
    } catch {
        fail("the answer does not decode: \(error)", code: 1)
    }
    await client.close()
case .ended(let error)?:
    fail("the server ended the stream: \(error.map { "\($0)" } ?? "without an answer")", code: 1)
case nil:
    fail("no answer within \(max(wait, .seconds(10)))", code: 1)
}
