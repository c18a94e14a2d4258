import Capture
import DNSProxy
import DNSWire
#if canImport(Glibc)
import Glibc
#endif

/// `sluice-dns [--server ADDRESS[:PORT]] [--tcp] [--bufsize N] [--no-tcp-retry] [--timeout SECONDS] NAME [TYPE]`
///
/// Asks one question the way a pod's stub resolver would (RD set, a truncated UDP answer retried over
/// TCP) and prints the answer in dig's layout. Node admins use it to ask the agent's proxy directly
/// (`--server 127.0.0.1:15053` inside the pod's netns); the tests use it as their own client.
let usage = """
    usage: sluice-dns [--server ADDRESS[:PORT]] [--tcp] [--bufsize N] [--no-tcp-retry] [--timeout SECONDS] NAME [TYPE]
      --server        the server to ask (default 127.0.0.1:15053, the agent's DNS proxy); [v6]:port for IPv6
      --tcp           ask over TCP instead of UDP
      --bufsize N     send an EDNS0 OPT record advertising N bytes (default: no EDNS)
      --no-tcp-retry  print a truncated UDP answer as it is instead of asking again over TCP
      --timeout S     seconds to wait for the answer (default 3)
      TYPE            A (default), AAAA, CNAME, TXT, MX, SRV, PTR, NS, SOA, or a number
    exit status: 0 with an answer (whatever its RCODE), 1 with no answer, 2 for bad arguments
    """

func fail(_ message: String, code: Int32) -> Never {
    let line = "sluice-dns: \(message)\n"
    _ = line.withCString { write(STDERR_FILENO, $0, strlen($0)) }
    exit(code)
}

func parseServer(_ text: String) -> Endpoint? {
    if let endpoint = Endpoint(text) { return endpoint }
    var host = text
    if host.hasPrefix("["), host.hasSuffix("]") { host = String(host.dropFirst().dropLast()) }
    return IPAddress(host).map { Endpoint($0, 53) }
}

let typeNames: [String: DNSRecordType] = [
    "A": .a, "AAAA": .aaaa, "CNAME": .cname, "TXT": .txt, "MX": .mx, "SRV": .srv, "PTR": .ptr, "NS": .ns, "SOA": .soa, "ANY": .any,
]

var server = Endpoint(IPAddress("127.0.0.1")!, 15053)
var transport = DNSTransport.udp
var bufferSize: UInt16?
var retryOverTCP = true
var timeoutSeconds = 3.0
var positional: [String] = []
var arguments = CommandLine.arguments.dropFirst()
while let argument = arguments.popFirst() {
    func value() -> String {
        guard let next = arguments.popFirst() else { fail("\(argument) needs a value\n\(usage)", code: 2) }
        return next
    }
    switch argument {
    case "-h", "--help":
        print(usage)
        exit(0)
    case "--server":
        let text = value()
        guard let endpoint = parseServer(text) else { fail("--server \(text): not an address or address:port", code: 2) }
        server = endpoint
    case "--tcp": transport = .tcp
    case "--no-tcp-retry": retryOverTCP = false
    case "--bufsize":
        let text = value()
        guard let size = UInt16(text), size >= 512 else { fail("--bufsize \(text): use a number of bytes from 512 to 65535", code: 2) }
        bufferSize = size
    case "--timeout":
        let text = value()
        guard let seconds = Double(text), seconds > 0, seconds <= 3600 else { fail("--timeout \(text): use seconds, more than 0", code: 2) }
        timeoutSeconds = seconds
    default:
        if argument.hasPrefix("-") { fail("unknown option \(argument)\n\(usage)", code: 2) }
        positional.append(argument)
    }
}
guard (1...2).contains(positional.count) else { fail("give a NAME and at most one TYPE\n\(usage)", code: 2) }
guard let name = DNSName(positional[0]) else { fail("\(positional[0]) is not a domain name (labels of 1-63 bytes, 255 in all)", code: 2) }
var type = DNSRecordType.a
if positional.count == 2 {
    let text = positional[1].uppercased()
    if let known = typeNames[text] {
        type = known
    } else if let number = UInt16(text.hasPrefix("TYPE") ? String(text.dropFirst(4)) : text) {
        type = DNSRecordType(rawValue: number)
    } else {
        fail("\(positional[1]) is not a record type: use A, AAAA, CNAME, TXT, MX, SRV, PTR, NS, SOA or a number", code: 2)
    }
}

let answer: DNSMessage
do {
    answer = try DNSClient.query(name, type: type, server: server, transport: transport, udpPayloadSize: bufferSize,
                                 retryOverTCP: retryOverTCP, timeout: .milliseconds(Int64(timeoutSeconds * 1000)))
} catch {
    fail("\(error)", code: 1)
}
print(DNSPresentation.render(answer))
