/// A resolv.conf (resolv.conf(5)) as Sluice reads it, one way for both sides: sluice-init captures its
/// nameservers, the agent's DNS proxy forwards to them and expands names with its search list.
public struct ResolvConf: Sendable, Equatable {
    public struct Nameserver: Sendable, Equatable, CustomStringConvertible {
        public var address: IPAddress
        /// Always 53: resolv.conf has no way to say otherwise (miekg's `ClientConfig.Port`).
        public var port: Int

        public init(address: IPAddress, port: Int = 53) {
            self.address = address
            self.port = port
        }

        /// "10.0.0.10:53", "[2001:db8::1]:53" (Go's `net.JoinHostPort`).
        public var description: String {
            address.family == .ipv6 ? "[\(address)]:\(port)" : "\(address):\(port)"
        }
    }

    /// In file order.
    public var nameservers: [Nameserver]
    /// From the last `search` or `domain` line, as glibc does; without trailing dots.
    public var searchDomains: [String]

    public init(nameservers: [Nameserver] = [], searchDomains: [String] = []) {
        self.nameservers = nameservers
        self.searchDomains = searchDomains
    }

    /// Lenient as glibc is: comments (`#` and `;`, at the start of a line or of a word), unknown keywords
    /// and unusable lines are skipped, each reported in `skipped` for a warning. glibc's limit of three
    /// nameservers is not applied: Istio (miekg/dns's `ClientConfigFromReader`) uses them all.
    public static func parse(_ text: String) -> (resolvConf: ResolvConf, skipped: [String]) {
        var resolvConf = ResolvConf()
        var skipped: [String] = []
        // "\r\n" is one Character in Swift, so it has to be named as a line end of its own.
        let lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0 == "\n" || $0 == "\r\n" })
        for (index, line) in lines.enumerated() {
            let lineNumber = index + 1
            let words = Self.words(of: line)
            guard let keyword = words.first else { continue }
            switch keyword {
            case "nameserver":
                guard words.count >= 2 else {
                    skipped.append("line \(lineNumber): nameserver without an address, skipped")
                    continue
                }
                let addressText = String(words[1])
                if addressText.contains("%") {
                    // A link-local server needs its interface to be reached, which the proxy's sockets
                    // cannot carry; the other servers still work.
                    skipped.append("line \(lineNumber): nameserver \"\(addressText)\" has an IPv6 zone, which is not supported; skipped")
                } else if let address = IPAddress(addressText) {
                    resolvConf.nameservers.append(Nameserver(address: address))
                } else {
                    skipped.append("line \(lineNumber): nameserver \"\(addressText)\" is not an IP address, skipped")
                }
            case "search", "domain":
                let domains = words.dropFirst().map(Self.withoutTrailingDots).filter { !$0.isEmpty }
                // glibc ignores a search or domain line with nothing on it rather than clearing the list.
                guard !domains.isEmpty else {
                    skipped.append("line \(lineNumber): \(keyword) without a domain, skipped")
                    continue
                }
                // `domain` names one domain; extra words are ignored, as by glibc and miekg/dns.
                resolvConf.searchDomains = keyword == "domain" ? [domains[0]] : domains
            case "options", "sortlist":
                continue   // valid, and nothing the proxy needs: the app's resolver applies them itself
            default:
                skipped.append("line \(lineNumber): unknown keyword \"\(keyword)\", skipped")
            }
        }
        return (resolvConf, skipped)
    }

    /// The words of a line up to a comment; a word that starts with `#` or `;` begins the comment.
    private static func words(of line: Substring) -> [Substring] {
        var words: [Substring] = []
        for word in line.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\u{0B}" || $0 == "\u{0C}" }) {
            if word.first == "#" || word.first == ";" { break }
            words.append(word)
        }
        return words
    }

    private static func withoutTrailingDots(_ word: Substring) -> String {
        var domain = word
        while domain.last == "." { domain = domain.dropLast() }
        return String(domain)
    }
}
