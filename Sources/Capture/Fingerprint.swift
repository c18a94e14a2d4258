/// Sluice stamps every table it writes with a fingerprint of the whole ruleset (as the table's
/// comment, visible in `nft list ruleset`). A re-run with the same flags finds the same stamp and
/// leaves the kernel alone, so counters keep counting and nothing is replaced for nothing.
extension Ruleset {
    public static let stampPrefix = "sluice-init ruleset "

    /// 64-bit FNV-1a of the rendered ruleset without stamps: a change detector, not a security
    /// measure (anyone with CAP_NET_ADMIN can rewrite the tables anyway).
    public var fingerprint: String {
        var unstamped = self
        for index in unstamped.tables.indices { unstamped.tables[index].comment = nil }
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325
        for byte in NftTextRenderer.render(unstamped).utf8 {
            hash ^= UInt64(byte)
            hash = hash &* 0x0000_0100_0000_01b3
        }
        let hex = String(hash, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }

    /// The fingerprint a stamped ruleset carries, read from its tables without rendering it again;
    /// computed when the ruleset is not stamped.
    public var stampedFingerprint: String {
        if let comment = tables.first?.comment, comment.hasPrefix(Ruleset.stampPrefix) {
            return String(comment.dropFirst(Ruleset.stampPrefix.count))
        }
        return fingerprint
    }

    /// The same ruleset with every table's comment set to the stamp.
    public func stamped() -> Ruleset {
        let stamp = Ruleset.stampPrefix + fingerprint
        var result = self
        for index in result.tables.indices { result.tables[index].comment = stamp }
        return result
    }
}
