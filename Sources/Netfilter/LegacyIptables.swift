import Capture
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// Reads iptables-legacy tables (the x_tables `getsockopt` interface iptables-legacy itself uses), so
/// `inspect` can warn about rules that nftables tools never show. Read-only, and only tables the
/// namespace already has: asking for any other table would make the kernel create it, hooks and all.
///
/// The structures are the kernel's uapi `ipt_getinfo`/`ipt_get_entries`/`ipt_entry` (and the ip6
/// variants), read at their fixed offsets on x86-64 and arm64 (checked with offsetof against
/// <linux/netfilter_ipv4/ip_tables.h>).
public enum LegacyIptables {
    /// Every legacy table instantiated in the calling thread's network namespace, IPv4 then IPv6.
    /// A table that cannot be read (no CAP_NET_ADMIN) comes back as an error naming it.
    public static func readAll() throws(KernelError) -> [LegacyTable] {
        var tables: [LegacyTable] = []
        for family in IPFamily.allCases {
            for name in instantiatedTables(family) {
                tables.append(try read(name, family: family))
            }
        }
        return tables
    }

    /// `/proc/thread-self/net/ip_tables_names`: the names of the legacy tables this namespace has
    /// (thread-self, not self: the namespace may have been entered by this thread only).
    static func instantiatedTables(_ family: IPFamily) -> [String] {
        let path = "/proc/thread-self/net/\(family == .ipv4 ? "ip" : "ip6")_tables_names"
        guard let text = try? TextFile.read(path, limit: 4096) else { return [] }
        return text.split(separator: "\n").map(String.init).filter { !$0.isEmpty }
    }

    private struct Layout {
        let level: Int32
        let socketFamily: Int32
        let entrySize: Int
        let protocolOffset: Int
        let invertFlagsOffset: Int
        let targetOffsetOffset: Int
        let countersOffset: Int
        let addressLength: Int
        let interfacesOffset: Int
        /// The ip6 header match has a flag saying the protocol is matched; ipv4 matches when non-zero.
        let protocolFlagOffset: Int?

        static let ipv4 = Layout(level: 0 /* SOL_IP */, socketFamily: AF_INET, entrySize: 112, protocolOffset: 80,
                                 invertFlagsOffset: 83, targetOffsetOffset: 88, countersOffset: 96, addressLength: 4,
                                 interfacesOffset: 16, protocolFlagOffset: nil)
        static let ipv6 = Layout(level: 41 /* SOL_IPV6 */, socketFamily: AF_INET6, entrySize: 168, protocolOffset: 128,
                                 invertFlagsOffset: 132, targetOffsetOffset: 140, countersOffset: 152, addressLength: 16,
                                 interfacesOffset: 64, protocolFlagOffset: 131)
    }

    private static let getInfo: Int32 = 64      // IPT_SO_GET_INFO, IP6T_SO_GET_INFO
    private static let getEntries: Int32 = 65   // IPT_SO_GET_ENTRIES, IP6T_SO_GET_ENTRIES
    private static let hookNames = ["PREROUTING", "INPUT", "FORWARD", "OUTPUT", "POSTROUTING"]

    static func read(_ name: String, family: IPFamily) throws(KernelError) -> LegacyTable {
        let layout = family == .ipv4 ? Layout.ipv4 : Layout.ipv6
        let fd = socket(layout.socketFamily, Int32(SOCK_RAW.rawValue) | Int32(SOCK_CLOEXEC.rawValue), Int32(IPPROTO_RAW))
        guard fd >= 0 else { throw .systemCall("socket(SOCK_RAW) to read iptables-legacy table \(name)", errno: errno) }
        defer { close(fd) }

        var info = [UInt8](repeating: 0, count: 84)
        let nameBytes = Array(name.utf8.prefix(31))
        info.replaceSubrange(0..<nameBytes.count, with: nameBytes)
        var length = socklen_t(info.count)
        guard getsockopt(fd, layout.level, getInfo, &info, &length) == 0 else {
            throw .systemCall("getsockopt(IPT_SO_GET_INFO) for iptables-legacy table \(name)", errno: errno)
        }
        func u32(_ bytes: [UInt8], _ offset: Int) -> UInt32 { bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset, as: UInt32.self) } }
        let validHooks = u32(info, 32)
        let hookEntries = (0..<5).map { Int(u32(info, 36 + 4 * $0)) }
        let underflows = (0..<5).map { Int(u32(info, 56 + 4 * $0)) }
        let size = Int(u32(info, 80))

        var request = [UInt8](repeating: 0, count: 40 + size)
        request.replaceSubrange(0..<nameBytes.count, with: nameBytes)
        withUnsafeBytes(of: UInt32(size)) { request.replaceSubrange(32..<36, with: $0) }
        length = socklen_t(request.count)
        guard getsockopt(fd, layout.level, getEntries, &request, &length) == 0 else {
            throw .systemCall("getsockopt(IPT_SO_GET_ENTRIES) for iptables-legacy table \(name)", errno: errno)
        }
        let entries = Array(request[40...])
        return LegacyTable(family: family, name: name,
                           chains: parseChains(entries, layout: layout, validHooks: validHooks, hookEntries: hookEntries, underflows: underflows))
    }

    private struct Entry {
        var offset: Int
        var rule: [UInt8]
        var target: String
        var targetData: [UInt8]
    }

    private static func parseChains(_ bytes: [UInt8], layout: Layout, validHooks: UInt32,
                                    hookEntries: [Int], underflows: [Int]) -> [LegacyChain] {
        var entries: [Entry] = []
        var offset = 0
        // Each entry advances by its own next_offset (at least the entry header), so the byte count bounds this.
        for _ in 0..<(bytes.count / layout.entrySize + 1) {
            guard offset + layout.entrySize <= bytes.count else { break }
            let targetOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + layout.targetOffsetOffset, as: UInt16.self) })
            let nextOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: offset + layout.targetOffsetOffset + 2, as: UInt16.self) })
            guard nextOffset >= layout.entrySize, targetOffset + 32 <= nextOffset, offset + nextOffset <= bytes.count else { break }
            let entry = Array(bytes[offset..<(offset + nextOffset)])
            let target = cString(entry[(targetOffset + 2)..<(targetOffset + 31)])
            entries.append(Entry(offset: offset, rule: entry, target: target, targetData: Array(entry[(targetOffset + 32)...])))
            offset += nextOffset
        }
        // Where each user chain's rules start, for jumps (which name an offset).
        var chainAt: [Int: String] = [:]
        for (index, entry) in entries.enumerated() where entry.target == "ERROR" && index + 1 < entries.count {
            let chain = cString(entry.targetData[...])
            if chain != "ERROR" { chainAt[entries[index + 1].offset] = chain }
        }
        var chains: [LegacyChain] = []
        for (index, entry) in entries.enumerated() {
            if let hook = hookEntries.indices.first(where: { validHooks & (1 << $0) != 0 && hookEntries[$0] == entry.offset }) {
                chains.append(LegacyChain(name: hookNames[hook], policy: nil, rules: []))
            }
            if entry.target == "ERROR" {
                let chain = cString(entry.targetData[...])
                if chain != "ERROR" { chains.append(LegacyChain(name: chain, policy: nil, rules: [])) }
                continue
            }
            guard !chains.isEmpty else { continue }
            if underflows.indices.contains(where: { validHooks & (1 << $0) != 0 && underflows[$0] == entry.offset }) {
                chains[chains.count - 1].policy = verdictName(entry.targetData, chainAt: chainAt)
                continue
            }
            // A user chain ends with an unconditional RETURN right before the next chain's header.
            if index + 1 < entries.count, entries[index + 1].target == "ERROR", chains[chains.count - 1].policy == nil,
               entry.target.isEmpty, verdictName(entry.targetData, chainAt: chainAt) == "RETURN" {
                continue
            }
            let counters = entry.rule.withUnsafeBytes { raw in
                RuleCounter(packets: raw.loadUnaligned(fromByteOffset: layout.countersOffset, as: UInt64.self),
                            bytes: raw.loadUnaligned(fromByteOffset: layout.countersOffset + 8, as: UInt64.self))
            }
            chains[chains.count - 1].rules.append(LegacyRule(text: ruleText(entry, layout: layout, chainAt: chainAt), counter: counters))
        }
        return chains
    }

    /// The rule in iptables-save's words, as far as the header says: addresses, interfaces, protocol,
    /// the names of its matches, and the target.
    private static func ruleText(_ entry: Entry, layout: Layout, chainAt: [Int: String]) -> String {
        let bytes = entry.rule
        var words: [String] = []
        let invert = bytes[layout.invertFlagsOffset]
        func not(_ flag: UInt8) -> String { invert & flag != 0 ? "! " : "" }
        let length = layout.addressLength
        for (index, option) in [(0, "-s"), (1, "-d")] {
            let address = Array(bytes[(index * length)..<((index + 1) * length)])
            let mask = Array(bytes[((index + 2) * length)..<((index + 3) * length)])
            guard mask.contains(where: { $0 != 0 }) else { continue }
            let prefix = mask.reduce(0) { $0 + $1.nonzeroBitCount }
            let family: IPFamily = length == 4 ? .ipv4 : .ipv6
            words.append("\(not(index == 0 ? 8 : 16))\(option) \(IPAddress(family: family, bytes: address))/\(prefix)")
        }
        for (index, option) in [(0, "-i"), (1, "-o")] {
            let name = cString(bytes[(layout.interfacesOffset + 16 * index)..<(layout.interfacesOffset + 16 * (index + 1))])
            if !name.isEmpty { words.append("\(not(index == 0 ? 1 : 2))\(option) \(name)") }
        }
        let proto = Int(bytes[layout.protocolOffset]) | Int(bytes[layout.protocolOffset + 1]) << 8
        let protocolMatched = layout.protocolFlagOffset.map { bytes[$0] & 1 != 0 } ?? (proto != 0)
        if protocolMatched {
            let name = [6: "tcp", 17: "udp", 1: "icmp", 58: "ipv6-icmp"][proto] ?? "\(proto)"
            words.append("\(not(64))-p \(name)")
        }
        // Matches sit between the entry header and the target, each led by its size and name.
        let targetOffset = Int(bytes.withUnsafeBytes { $0.loadUnaligned(fromByteOffset: layout.targetOffsetOffset, as: UInt16.self) })
        var offset = layout.entrySize
        for _ in 0..<32 {
            guard offset + 32 <= targetOffset else { break }
            let size = Int(bytes[offset]) | Int(bytes[offset + 1]) << 8
            guard size >= 32 else { break }
            words.append("-m \(cString(bytes[(offset + 2)..<(offset + 31)]))")
            offset += size
        }
        if entry.target.isEmpty {
            words.append("-j \(verdictName(entry.targetData, chainAt: chainAt))")
        } else {
            words.append("-j \(entry.target)")
        }
        return words.joined(separator: " ")
    }

    /// A standard target's verdict: negative numbers are `-verdict - 1`, others a jump offset.
    private static func verdictName(_ data: [UInt8], chainAt: [Int: String]) -> String {
        guard data.count >= 4 else { return "?" }
        let value = data.withUnsafeBytes { $0.loadUnaligned(as: Int32.self) }
        switch value {
        case -1: return "DROP"
        case -2: return "ACCEPT"
        case -4: return "QUEUE"
        case -5: return "RETURN"
        default: return value >= 0 ? chainAt[Int(value)] ?? "offset \(value)" : "verdict \(-value - 1)"
        }
    }

    private static func cString(_ bytes: ArraySlice<UInt8>) -> String {
        String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
    }
}
