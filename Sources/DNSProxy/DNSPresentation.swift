import Capture
import DNSWire

/// A message in dig's layout, so what `sluice-dns` prints reads like what people already know.
public enum DNSPresentation {
    public static func render(_ message: DNSMessage) -> String {
        let header = message.header
        var flags: [String] = []
        if header.isResponse { flags.append("qr") }
        if header.isAuthoritative { flags.append("aa") }
        if header.isTruncated { flags.append("tc") }
        if header.recursionDesired { flags.append("rd") }
        if header.recursionAvailable { flags.append("ra") }
        if header.authenticData { flags.append("ad") }
        if header.checkingDisabled { flags.append("cd") }
        var lines = [
            ";; ->>HEADER<<- opcode: \(header.opcode == 0 ? "QUERY" : String(header.opcode)), status: \(statusName(message)), id: \(header.id)",
            ";; flags: \(flags.joined(separator: " ")); QUERY: \(message.questions.count), ANSWER: \(message.answers.count),"
                + " AUTHORITY: \(message.authorities.count), ADDITIONAL: \(message.additionals.count)",
        ]
        if let edns = message.edns {
            lines += ["", ";; OPT PSEUDOSECTION:", "; EDNS: version: \(edns.version), flags:\(edns.dnssecOK ? " do" : ""); udp: \(edns.udpPayloadSize)"]
        }
        lines += ["", ";; QUESTION SECTION:"]
        lines += message.questions.map { ";\($0.name)\t\t\(className($0.recordClass))\t\($0.type)" }
        for (title, records) in [("ANSWER", message.answers), ("AUTHORITY", message.authorities),
                                 ("ADDITIONAL", message.additionals.filter { $0.type != .opt })] where !records.isEmpty {
            lines += ["", ";; \(title) SECTION:"]
            lines += records.map(render)
        }
        return lines.joined(separator: "\n")
    }

    public static func render(_ record: DNSResourceRecord) -> String {
        "\(record.name)\t\(record.ttl)\t\(className(record.recordClass))\t\(record.type)\t\(renderData(record.data))"
    }

    static func renderData(_ data: DNSRecordData) -> String {
        switch data {
        case .address(let bytes):
            switch bytes.count {
            case 4: return IPAddress(family: .ipv4, bytes: bytes).description
            case 16: return IPAddress(family: .ipv6, bytes: bytes).description
            default: return hex(bytes)
            }
        case .name(let name): return name.description
        case .mailExchange(let preference, let exchange): return "\(preference) \(exchange)"
        case .startOfAuthority(let primary, let mailbox, let serial, let refresh, let retry, let expire, let minimum):
            return "\(primary) \(mailbox) \(serial) \(refresh) \(retry) \(expire) \(minimum)"
        case .service(let priority, let weight, let port, let target): return "\(priority) \(weight) \(port) \(target)"
        case .opaque(let bytes): return hex(bytes)
        }
    }

    /// RFC 3597's generic form: `\# <length> <hex>`.
    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef")
        let text = String(bytes.flatMap { [digits[Int($0 >> 4)], digits[Int($0 & 0xF)]] })
        return "\\# \(bytes.count)" + (bytes.isEmpty ? "" : " " + text)
    }

    static func className(_ recordClass: UInt16) -> String {
        recordClass == 1 ? "IN" : "CLASS\(recordClass)"
    }

    static func statusName(_ message: DNSMessage) -> String {
        switch message.responseCode {
        case .noError: "NOERROR"
        case .formatError: "FORMERR"
        case .serverFailure: "SERVFAIL"
        case .nameError: "NXDOMAIN"
        case .notImplemented: "NOTIMP"
        case .refused: "REFUSED"
        case .badVersion: "BADVERS"
        case nil: "RCODE\(message.header.responseCode)"
        }
    }
}
