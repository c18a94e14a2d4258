/// Envoy's `TagProducerImpl`: runs a list of tag extractors over a stat name.
///
/// Every extractor sees the original name, never a name another extractor has already cut; the
/// cuts are collected and removed together at the end. Extractors without a prefix token run first,
/// in list order, then those whose prefix token is the name's first `.`-separated token. When two
/// extractors share a tag name, the first that matches wins (Envoy lists two for
/// `envoy.http_conn_manager_prefix`).
public struct TagProducer: Sendable {
    private let unprefixed: [TagExtractor]
    private let byPrefix: [String: [TagExtractor]]
    private let sharedNames: Set<String>

    public init(_ extractors: [TagExtractor]) {
        var unprefixed: [TagExtractor] = []
        var byPrefix: [String: [TagExtractor]] = [:]
        var seen: Set<String> = []
        var shared: Set<String> = []
        for extractor in extractors {
            if !seen.insert(extractor.name).inserted { shared.insert(extractor.name) }
            if let token = extractor.prefixToken {
                byPrefix[token, default: []].append(extractor)
            } else {
                unprefixed.append(extractor)
            }
        }
        self.unprefixed = unprefixed
        self.byPrefix = byPrefix
        sharedNames = shared
    }

    public func tags(for name: String) -> TaggedStatName {
        var tags: [StatTag] = []
        var cuts: [Range<Int>] = []
        var extractedNames: Set<String> = []

        func apply(_ extractor: TagExtractor) {
            let isShared = sharedNames.contains(extractor.name)
            if isShared && extractedNames.contains(extractor.name) { return }
            guard let (value, cut) = extractor.extract(from: name) else { return }
            tags.append(StatTag(name: extractor.name, value: value))
            if let cut { cuts.append(cut) }
            if isShared { extractedNames.insert(extractor.name) }
        }

        unprefixed.forEach(apply)
        if let dot = name.utf8.firstIndex(of: UInt8(ascii: ".")),
           let prefixed = byPrefix[String(name[..<dot])] {
            prefixed.forEach(apply)
        }
        return TaggedStatName(extractedName: removing(cuts, from: name), tags: tags)
    }
}

/// The name without the bytes in any of `cuts` (which may overlap, as Envoy's interval set allows).
private func removing(_ cuts: [Range<Int>], from name: String) -> String {
    guard !cuts.isEmpty else { return name }
    let bytes = Array(name.utf8)
    var keep = [Bool](repeating: true, count: bytes.count)
    for cut in cuts {
        for index in cut.clamped(to: 0..<bytes.count) { keep[index] = false }
    }
    var kept: [UInt8] = []
    kept.reserveCapacity(bytes.count)
    for (index, byte) in bytes.enumerated() where keep[index] { kept.append(byte) }
    return String(decoding: kept, as: UTF8.self)
}
