import Capture

/// The TTL of every answer built from the name table: Istio's `defaultTTLInSeconds`, kept low so that
/// clients that honour it pick up a pushed change quickly.
public let nameTableTTL: UInt32 = 30

public enum LookupAnswer: Sendable, Equatable {
    /// Not a name from the table: forward the query upstream.
    case notFound
    /// The host is known. `canonicalName` is the CNAME target (lower-case key form, trailing dot) when
    /// the asked name is a pre-expanded search-domain alias; `addresses` are the records of the asked
    /// family (empty = NODATA, answered NOERROR with no records, never NXDOMAIN: istio/istio#31250).
    /// Istio's `lookupHost` leaves the CNAME out too when there is no address of the asked family, so
    /// an Istio-identical NODATA has an empty answer section even when `canonicalName` is set.
    case found(canonicalName: String?, addresses: [IPAddress])
}

/// The agent's precomputed answers (DNS.md §4, Istio's `UpdateLookupTable`/`BuildAlternateHosts`),
/// built once per name table push so that a query costs one or two dictionary lookups. Keys are
/// lower-case FQDNs with the trailing dot, the form of `DNSName.lowercasedKey`.
public struct LookupTable: Sendable {
    private enum Record: Sendable {
        case addresses(ipv4: [IPAddress], ipv6: [IPAddress])
        /// A search-domain expansion answered with a CNAME to `target`, itself a key holding addresses.
        case alias(target: String)
    }

    private let records: [String: Record]
    /// The `*.rest.` keys again, under `rest.`, so that a miss walks up the asked name's suffixes with
    /// one lookup each instead of building `"*." + suffix` strings.
    private let wildcardRecords: [String: Record]

    private init(records: [String: Record]) {
        self.records = records
        var wildcardRecords: [String: Record] = [:]
        for (key, record) in records where key.utf8.count > 2 && key.hasPrefix("*.") {
            wildcardRecords[String(key.dropFirst(2))] = record
        }
        self.wildcardRecords = wildcardRecords
    }

    public static let empty = LookupTable(records: [:])

    /// - proxyDomain: the `--domain` with the leading "<namespace>." removed, e.g. "svc.cluster.local"
    ///   (DNS.md §4 — the caller passes the already-stripped form).
    /// - podNamespace: POD_NAMESPACE.
    /// - searchDomains: resolv.conf's `search` list; only the first is pre-expanded (CNAME case).
    ///
    /// Istio builds its maps in Go's random map order, so when two entries produce the same name the
    /// winner varies from push to push. Here it does not: an entry's own hostname beats a short-name or
    /// alt-host alias of another entry, which beats a search-domain CNAME (the order Istio's newer exact
    /// lookup mode also settles on); among equals the hostname that sorts first wins, and one name always
    /// answers with one entry's addresses of both families.
    public init(_ table: NameTable, proxyDomain: String, podNamespace: String, searchDomains: [String]) {
        let domain = Self.withoutTrailingDot(Self.asciiLowercased(proxyDomain))
        let domainFirstLabel = domain.split(separator: ".", maxSplits: 1).first.map(String.init) ?? ""
        let firstSearchDomain = searchDomains.first.map { Self.withoutTrailingDot(Self.asciiLowercased($0)) } ?? ""

        struct Entry {
            var names: [String]     // the entry's own name first, then its aliases
            var record: Record
        }
        var entries: [Entry] = []
        for hostname in table.table.keys.sorted() {
            let info = table.table[hostname]!
            let (ipv4, ipv6) = Self.parseAddresses(info.ips)
            // Istio's "malformed ips": an entry with no usable address is not known at all, so its
            // names are forwarded upstream.
            guard !ipv4.isEmpty || !ipv6.isEmpty, let ownName = Self.hostKey(hostname) else { continue }
            var names = [ownName]
            if info.registry == "Kubernetes" {
                names += Self.kubernetesAliases(
                    ownName: ownName, info: info, domain: domain, domainFirstLabel: domainFirstLabel,
                    podNamespace: podNamespace)
            }
            entries.append(Entry(names: names, record: .addresses(ipv4: ipv4, ipv6: ipv6)))
        }

        var records: [String: Record] = [:]
        for entry in entries where records[entry.names[0]] == nil {
            records[entry.names[0]] = entry.record
        }
        for entry in entries {
            for alias in entry.names.dropFirst() where records[alias] == nil {
                records[alias] = entry.record
            }
        }
        // CoreDNS-autopath-like short circuit (DNS.md §4): the app's resolver tries `name.<search[0]>.`
        // first, which is answered with a CNAME to `name.` and its addresses in one round trip.
        if !firstSearchDomain.isEmpty {
            let searchSuffix = firstSearchDomain + "."
            for entry in entries {
                for name in entry.names where !Self.name(name, isWithin: searchSuffix) {
                    let expanded = name + searchSuffix
                    if records[expanded] == nil { records[expanded] = .alias(target: name) }
                }
            }
        }
        self.init(records: records)
    }

    /// `name` is the question's `DNSName.lowercasedKey` (lower case, trailing dot). Exact key first,
    /// then wildcard entries `*.rest.` matching any deeper name (the closest enclosing wildcard wins).
    /// Follows at most one CNAME from the table.
    public func lookup(_ name: String, family: IPFamily) -> LookupAnswer {
        if let record = records[name] { return answer(record, family: family) }
        if wildcardRecords.isEmpty { return .notFound }
        guard let record = closestWildcard(enclosing: name) else { return .notFound }
        return answer(record, family: family)
    }

    /// Number of keys (alt hosts and search-domain aliases), for logs and /debug.
    public var hostCount: Int { records.count }

    /// Every key, sorted, for /debug and tests.
    public var hostNames: [String] { records.keys.sorted() }

    private func answer(_ record: Record, family: IPFamily) -> LookupAnswer {
        switch record {
        case .addresses(let ipv4, let ipv6):
            return .found(canonicalName: nil, addresses: family == .ipv4 ? ipv4 : ipv6)
        case .alias(let target):
            // Aliases only ever point at names holding addresses (they rank below every such name), so
            // one hop always ends the chain.
            guard case .addresses(let ipv4, let ipv6)? = records[target] else { return .notFound }
            return .found(canonicalName: target, addresses: family == .ipv4 ? ipv4 : ipv6)
        }
    }

    /// Tries `*.b.c.` then `*.c.` for `a.b.c.`, as Istio's label walk does; never the bare `b.c.` itself,
    /// and never the root. Dots escaped in presentation form (`\.`) are part of a label, not a separator.
    private func closestWildcard(enclosing name: String) -> Record? {
        let utf8 = name.utf8
        var index = utf8.startIndex
        var escaped = false
        while index != utf8.endIndex {
            let byte = utf8[index]
            utf8.formIndex(after: &index)
            if escaped {
                escaped = false
            } else if byte == UInt8(ascii: "\\") {
                escaped = true
            } else if byte == UInt8(ascii: "."), index != utf8.endIndex,
                      let record = wildcardRecords[String(name[index...])] {
                return record
            }
        }
        return nil
    }

    // MARK: - Building

    /// Istio's `generateAltHosts`: short forms only for a service in the proxy's own cluster domain,
    /// because `name.namespace` from two cluster domains could not be told apart.
    private static func kubernetesAliases(ownName: String, info: NameTable.NameInfo, domain: String,
                                          domainFirstLabel: String, podNamespace: String) -> [String] {
        guard !domain.isEmpty, name(ownName, isWithin: domain + ".") else { return [] }
        var aliases: [String] = []
        let shortname = info.shortname, namespace = info.namespace
        aliases.append(shortname + "." + namespace)
        if namespace == podNamespace { aliases.append(shortname) }
        // Only one of the longer forms (`name.namespace.svc`): Istio keeps the table small for long domains.
        aliases.append(shortname + "." + namespace + "." + domainFirstLabel)
        aliases += info.altHosts
        // A missing shortname or namespace would make names with empty labels, which no query can ask for.
        return aliases.compactMap(hostKey)
    }

    /// Istio's `ParseIPsSplitToV4V6` (netip.ParseAddr): unparsable strings are skipped, an IPv6 zone is
    /// accepted and dropped, IPv4-mapped IPv6 stays IPv6 (answered as AAAA).
    private static func parseAddresses(_ texts: [String]) -> (ipv4: [IPAddress], ipv6: [IPAddress]) {
        var ipv4: [IPAddress] = [], ipv6: [IPAddress] = []
        for text in texts {
            var addressText = Substring(text)
            if text.contains(":"), let percent = text.firstIndex(of: "%") {
                guard text.index(after: percent) != text.endIndex else { continue }
                addressText = text[..<percent]
            }
            guard let address = IPAddress(String(addressText)) else { continue }
            if address.family == .ipv4 { ipv4.append(address) } else { ipv6.append(address) }
        }
        return (ipv4, ipv6)
    }

    /// The lookup key for a table hostname given with or without the trailing dot, in any case; nil for
    /// names with an empty label (including the root), which no question can match.
    static func hostKey(_ hostname: String) -> String? {
        let name = withoutTrailingDot(asciiLowercased(hostname))
        guard !name.isEmpty, !name.hasPrefix("."), !name.contains("..") else { return nil }
        return name + "."
    }

    /// True when `name` (trailing dot) is `suffix` (trailing dot) or lies below it, on a label boundary.
    /// Istio compares raw text (`strings.HasSuffix`), which also matches `x.mysvc.cluster.local` against
    /// `svc.cluster.local`; every name istiod sends (`name.namespace.svc.<domain>`) gets the same result.
    private static func name(_ name: String, isWithin suffix: String) -> Bool {
        name == suffix || name.hasSuffix("." + suffix)
    }

    private static func withoutTrailingDot(_ text: String) -> String {
        text.hasSuffix(".") ? String(text.dropLast()) : text
    }

    /// ASCII only, as DNS compares names (RFC 4343) and as `DNSName.lowercasedKey` lowers them.
    static func asciiLowercased(_ text: String) -> String {
        guard text.utf8.contains(where: { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") }) else { return text }
        return String(decoding: text.utf8.map { $0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z") ? $0 | 0x20 : $0 },
                      as: UTF8.self)
    }
}
