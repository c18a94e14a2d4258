import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Sluice's owned tables as comparable text: what the kernel holds (`NftablesReadback.read()`) or what
/// a ruleset's batch would make it hold (`NftablesSnapshot(expecting:)`).
///
/// Both sides go through the same libnftnl parser and printer, so a rule reads the same whether it
/// came from the batch Sluice sends or from the kernel's dump. Handles, positions, counter values and
/// other bookkeeping the kernel adds are left out: two snapshots are equal exactly when the kernel runs
/// the same tables, chains, sets, elements and expressions in the same order.
public struct NftablesSnapshot: Sendable, Hashable {
    public struct Table: Sendable, Hashable {
        public var name: String
        public var comment: String?
        public var sets: [NamedSet]
        public var chains: [Chain]

        public func set(named name: String) -> NamedSet? { sets.first { $0.name == name } }
        public func chain(named name: String) -> Chain? { chains.first { $0.name == name } }
    }

    public struct NamedSet: Sendable, Hashable {
        public var name: String
        /// `type ipv4_addr; flags interval`
        public var declaration: String
        /// One line per element the kernel stores (interval sets store range boundaries), sorted:
        /// element order in a set carries no meaning.
        public var elements: [String]
    }

    public struct Chain: Sendable, Hashable {
        public var name: String
        /// `type nat hook output priority -100; policy accept`, nil for a regular chain.
        public var base: String?
        public var rules: [Rule]
    }

    public struct Rule: Sendable, Hashable, CustomStringConvertible {
        /// libnftnl's text of each expression (`[ meta load l4proto => reg 1 ]`), counters without values.
        public var expressions: [String]
        public var comment: String?

        public var description: String {
            expressions.joined(separator: " ") + (comment.map { " comment \"\($0)\"" } ?? "")
        }
    }

    /// The owned tables present, in `Ruleset.ownedTableNames` order.
    public var tables: [Table]

    public init(tables: [Table]) { self.tables = tables }

    public func table(named name: String) -> Table? { tables.first { $0.name == name } }
}

extension NftablesSnapshot {
    /// What the kernel holds right after `NftablesBatch(applying: ruleset)` was committed.
    public init(expecting ruleset: Ruleset) throws(KernelError) {
        try self.init(expecting: NftablesBatch(applying: ruleset))
    }

    /// What the kernel holds right after `batch` was committed: its own messages replayed (tables
    /// created, deleted and created again; sets, chains and rules parsed back with libnftnl), plus the
    /// set elements it carries.
    init(expecting batch: NftablesBatch) throws(KernelError) {
        guard let messages = NetlinkMessage.split(batch.bytes) else {
            throw .unexpectedReply("the batch for the expected ruleset does not split into messages")
        }
        // libnftnl cannot parse the batch's element lists back (nft numbers the nested elements where
        // its parser wants NFTA_LIST_ELEM), so they come from the plan the batch was encoded from.
        var elements: [String: [String: [NftablesSetElement]]] = [:]
        for case let .newSetElements(table, set, _, chunk, _, _) in batch.plan {
            elements[table, default: [:]][set, default: []] += chunk
        }
        var tables: [Table] = []
        func index(_ name: String) -> Int? { tables.firstIndex { $0.name == name } }
        for message in messages {
            let type = Int(message.type & 0xff)
            switch UInt32(type) {
            case NFT_MSG_NEWTABLE.rawValue:
                guard let parsed = message.withHeader(Readback.parseTable) else { throw Readback.unparsable("table") }
                // Like the kernel: creating an existing table (no NLM_F_EXCL) changes nothing.
                if index(parsed.name) == nil {
                    tables.append(Table(name: parsed.name, comment: parsed.comment, sets: [], chains: []))
                }
            case NFT_MSG_DELTABLE.rawValue:
                guard let parsed = message.withHeader(Readback.parseTable) else { throw Readback.unparsable("table") }
                tables.removeAll { $0.name == parsed.name }
            case NFT_MSG_NEWSET.rawValue:
                guard let parsed = message.withHeader(Readback.parseSet), let at = index(parsed.table) else {
                    throw Readback.unparsable("set")
                }
                var withElements = parsed.set
                withElements.elements = Readback.render(elements[parsed.table]?[parsed.set.name] ?? [], keyType: parsed.keyType)
                tables[at].sets.append(withElements)
            case NFT_MSG_NEWCHAIN.rawValue:
                guard let (table, chain) = message.withHeader(Readback.parseChain), let at = index(table) else {
                    throw Readback.unparsable("chain")
                }
                tables[at].chains.append(chain)
            case NFT_MSG_NEWRULE.rawValue:
                guard let (table, chain, rule) = message.withHeader(Readback.parseRule), let at = index(table),
                      let chainIndex = tables[at].chains.firstIndex(where: { $0.name == chain }) else {
                    throw Readback.unparsable("rule")
                }
                tables[at].chains[chainIndex].rules.append(rule)
            default:
                // Batch markers and element messages (accounted for with their set).
                continue
            }
        }
        self.init(tables: Readback.ordered(tables))
    }

    /// The first way `self` (the kernel) differs from `expected`, as one sentence naming the object, or
    /// nil when they are the same.
    public func firstDifference(from expected: NftablesSnapshot) -> String? {
        for wanted in expected.tables {
            guard let held = table(named: wanted.name) else {
                return "table inet \(wanted.name) is missing in the kernel"
            }
            if let difference = Readback.difference(held, wanted) { return difference }
        }
        for held in tables where expected.table(named: held.name) == nil {
            return "extra table inet \(held.name) in the kernel (\(held.chains.count) chains, "
                + "\(held.chains.reduce(0) { $0 + $1.rules.count }) rules)"
        }
        return nil
    }
}

/// Reads Sluice's owned tables back from the kernel over netlink, in the network namespace of the
/// thread that creates it (or its socket), to check that what was programmed is what runs.
public final class NftablesReadback {
    private let socket: NftablesSocket
    private var nextSequence: UInt32

    private static let replyTimeoutMilliseconds: Int32 = 10_000

    public convenience init() throws(KernelError) {
        self.init(socket: try NftablesSocket())
    }

    /// Reads over `socket`, which may be an `NftablesClient`'s: one socket then serves the read and the
    /// apply after it.
    init(socket: NftablesSocket) {
        self.socket = socket
        // Distinct from a client's (which start at the time), so stale answers cannot match.
        nextSequence = UInt32(truncatingIfNeeded: time(nil)) &+ 0x4000_0000
    }

    /// The owned tables as the kernel holds them, read consistently: the dumps are repeated if the
    /// ruleset generation changed while they ran or the kernel marked a dump interrupted.
    public func read() throws(KernelError) -> NftablesSnapshot {
        try consistently(readOnce)
    }

    /// What `once` reads, from a pass during which no commit changed the ruleset: the generation is
    /// the same before and after, and no dump was interrupted (`once` returns nil then).
    func consistently<Value>(_ once: () throws(KernelError) -> Value?) throws(KernelError) -> Value {
        // Bounded: another agent rewriting the rules non-stop makes every pass inconsistent.
        for _ in 0..<5 {
            let before = try generation()
            guard let value = try once() else { continue }
            if try generation() == before { return value }
        }
        throw .unexpectedReply("the ruleset kept changing while it was read back")
    }

    /// The first difference between the kernel's owned tables and what applying `ruleset` programs,
    /// nil when they are the same.
    public func firstDifference(from ruleset: Ruleset) throws(KernelError) -> String? {
        let held = try read()
        if held.tables.isEmpty {
            // A fresh pod: its first table is missing, whatever the ruleset holds, so there is no need
            // to work out what the ruleset would read back as.
            let names = ruleset.tables.map { NftablesSnapshot.Table(name: $0.name, comment: nil, sets: [], chains: []) }
            return held.firstDifference(from: NftablesSnapshot(tables: Readback.ordered(names)))
        }
        return held.firstDifference(from: try NftablesSnapshot(expecting: ruleset))
    }

    // MARK: Private

    /// One pass of dumps; nil when the kernel marked one interrupted by a commit.
    private func readOnce() throws(KernelError) -> NftablesSnapshot? {
        let owned = Set(Ruleset.ownedTableNames)
        guard let dumpedTables = try dump(NFT_MSG_GETTABLE, Readback.parseTable) else { return nil }
        var tables = dumpedTables.filter { owned.contains($0.name) }
            .map { NftablesSnapshot.Table(name: $0.name, comment: $0.comment, sets: [], chains: []) }
        guard !tables.isEmpty else { return NftablesSnapshot(tables: []) }
        // Nil for the tables of other agents, which the dumps list too.
        func index(_ name: String) -> Int? { tables.firstIndex { $0.name == name } }

        guard let sets = try dump(NFT_MSG_GETSET, Readback.parseSet) else { return nil }
        for parsed in sets {
            guard let at = index(parsed.table) else { continue }
            guard let elements = try elements(of: parsed) else { return nil }
            var withElements = parsed.set
            withElements.elements = Readback.render(elements, keyType: parsed.keyType)
            tables[at].sets.append(withElements)
        }
        guard let chains = try dump(NFT_MSG_GETCHAIN, Readback.parseChain) else { return nil }
        for (table, chain) in chains {
            if let at = index(table) { tables[at].chains.append(chain) }
        }
        guard let rules = try dump(NFT_MSG_GETRULE, Readback.parseRule) else { return nil }
        for (table, chain, rule) in rules {
            guard let at = index(table) else { continue }
            guard let chainIndex = tables[at].chains.firstIndex(where: { $0.name == chain }) else {
                throw .unexpectedReply("a rule of chain \(chain), which the chain dump of inet \(table) did not list")
            }
            tables[at].chains[chainIndex].rules.append(rule)
        }
        return NftablesSnapshot(tables: Readback.ordered(tables))
    }

    /// The ruleset generation: the kernel bumps it on every committed transaction.
    func generation() throws(KernelError) -> UInt32 {
        let answers = try exchange(Nftnl.generationRequest, isDump: false, reading: "the ruleset generation",
                                   Readback.parseGeneration)
        guard let id = answers?.first else { throw .unexpectedReply("no answer to the ruleset generation request") }
        return id
    }

    /// Every object of one kind in tables of `family` (inet unless told); nil when the dump was
    /// interrupted (see `exchange`).
    func dump<Value>(_ type: nf_tables_msg_types, family: Int = Int(NFPROTO_INET),
                     _ parse: (UnsafePointer<nlmsghdr>) -> Value?) throws(KernelError) -> [Value]? {
        try exchange({ Nftnl.dumpRequest(type, family: family, sequence: $0) }, isDump: true, reading: "the ruleset", parse)
    }

    /// A set's elements (the kernel dumps them set by set); nil when the dump was interrupted.
    func elements(of set: Readback.ParsedSet) throws(KernelError) -> [NftablesSetElement]? {
        let request = { sequence in
            Nftnl.setElementsRequest(family: Int(set.family), table: set.table, set: set.set.name, sequence: sequence)
        }
        return try exchange(request, isDump: true, reading: "the ruleset", Readback.parseElements)?.flatMap { $0 }
    }

    /// Sends one request and collects what `parse` makes of each answer: up to the dump's NLMSG_DONE,
    /// or the first answer of a request that is not a dump. Nil when the kernel marked the dump
    /// interrupted (NLM_F_DUMP_INTR): a commit changed the ruleset while it ran.
    func exchange<Value>(_ request: (UInt32) -> [UInt8], isDump: Bool, reading object: String,
                                 _ parse: (UnsafePointer<nlmsghdr>) -> Value?) throws(KernelError) -> [Value]? {
        let operation = "read back \(object)"
        let sequence = nextSequence
        nextSequence &+= 1
        try socket.discardQueuedReplies()
        try socket.send(request(sequence), operation: operation)
        var values: [Value] = []
        var interrupted = false
        let deadline = ContinuousClock.now + .milliseconds(Int(Self.replyTimeoutMilliseconds))
        // Bounded by the deadline: each datagram holds at least one answer or ends the exchange.
        while ContinuousClock.now < deadline {
            guard let datagram = try socket.receive(timeout: Self.replyTimeoutMilliseconds) else { break }
            guard let messages = NetlinkMessage.split(datagram) else {
                throw .unexpectedReply("a malformed netlink datagram of \(datagram.count) bytes")
            }
            for message in messages where message.sequence == sequence {
                if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                switch Int32(message.type) {
                case NLMSG_DONE:
                    if let status = message.status, status != 0 { throw .from(errno: status, operation: operation) }
                    return interrupted ? nil : values
                case NLMSG_ERROR:
                    guard let status = message.status else {
                        throw .unexpectedReply("an error message of \(message.bytes.count) bytes")
                    }
                    if status != 0 { throw .from(errno: status, operation: operation) }
                default:
                    guard let value = message.withHeader(parse) else {
                        throw .unexpectedReply("a dumped message libnftnl cannot parse")
                    }
                    values.append(value)
                    if !isDump { return values }
                }
            }
        }
        throw .unexpectedReply(isDump ? "a read-back dump did not finish" : "no answer to the request for \(object)")
    }
}

/// Parsing and printing shared by both sides of the comparison.
enum Readback {
    struct ParsedTable { var name: String; var comment: String? }

    static func unparsable(_ kind: String) -> KernelError {
        .unexpectedReply("a \(kind) message of the expected batch that libnftnl cannot parse")
    }

    /// Owned tables in `Ruleset.ownedTableNames` order.
    static func ordered(_ tables: [NftablesSnapshot.Table]) -> [NftablesSnapshot.Table] {
        Ruleset.ownedTableNames.compactMap { name in tables.first { $0.name == name } }
    }

    // MARK: Parsing

    static func parseGeneration(_ message: UnsafePointer<nlmsghdr>) -> UInt32? {
        guard let generation = nftnl_gen_alloc() else { return nil }
        defer { nftnl_gen_free(generation) }
        guard nftnl_gen_nlmsg_parse(message, generation) >= 0,
              nftnl_gen_is_set(generation, UInt16(NFTNL_GEN_ID)) else { return nil }
        return nftnl_gen_get_u32(generation, UInt16(NFTNL_GEN_ID))
    }

    static func parseTable(_ message: UnsafePointer<nlmsghdr>) -> ParsedTable? {
        guard let table = nftnl_table_alloc() else { return nil }
        defer { nftnl_table_free(table) }
        guard nftnl_table_nlmsg_parse(message, table) >= 0,
              let name = nftnl_table_get_str(table, UInt16(NFTNL_TABLE_NAME.rawValue)) else { return nil }
        var length: UInt32 = 0
        let data = nftnl_table_get_data(table, UInt16(NFTNL_TABLE_USERDATA.rawValue), &length)
        return ParsedTable(name: String(cString: name), comment: Userdata.comment(in: bytes(data, length)))
    }

    /// A set as dumped, without its elements.
    struct ParsedSet {
        var table: String
        /// The table's family, as the kernel numbers it.
        var family: UInt32
        /// Name and declaration, for the comparable snapshot.
        var set: NftablesSnapshot.NamedSet
        /// nft's datatype of the key (to print the elements).
        var keyType: UInt32
        var keyLength: UInt32
        var flags: UInt32
    }

    static func parseSet(_ message: UnsafePointer<nlmsghdr>) -> ParsedSet? {
        guard let set = nftnl_set_alloc() else { return nil }
        defer { nftnl_set_free(set) }
        guard nftnl_set_nlmsg_parse(message, set) >= 0,
              let table = nftnl_set_get_str(set, UInt16(NFTNL_SET_TABLE.rawValue)),
              let name = nftnl_set_get_str(set, UInt16(NFTNL_SET_NAME.rawValue)) else { return nil }
        func u32(_ attribute: nftnl_set_attr) -> UInt32 {
            nftnl_set_is_set(set, UInt16(attribute.rawValue)) ? nftnl_set_get_u32(set, UInt16(attribute.rawValue)) : 0
        }
        let keyType = u32(NFTNL_SET_KEY_TYPE), keyLength = u32(NFTNL_SET_KEY_LEN), flags = u32(NFTNL_SET_FLAGS)
        var declaration = "type " + (NftablesKeyType(number: keyType).map { type in
            // A known name with an unexpected length must still show as different.
            keyLength == type.length ? type.name : "\(type.name) (\(keyLength) bytes)"
        } ?? "\(keyType) (\(keyLength) bytes)")
        let interval = UInt32(NFT_SET_INTERVAL.rawValue)
        if flags & interval != 0 { declaration += "; flags interval" }
        if flags & ~interval != 0 { declaration += "; flags 0x" + String(flags & ~interval, radix: 16) }
        return ParsedSet(table: String(cString: table), family: u32(NFTNL_SET_FAMILY),
                         set: NftablesSnapshot.NamedSet(name: String(cString: name), declaration: declaration, elements: []),
                         keyType: keyType, keyLength: keyLength, flags: flags)
    }

    static func parseElements(_ message: UnsafePointer<nlmsghdr>) -> [NftablesSetElement]? {
        guard let set = nftnl_set_alloc() else { return nil }
        defer { nftnl_set_free(set) }
        guard nftnl_set_elems_nlmsg_parse(message, set) >= 0, let iterator = nftnl_set_elems_iter_create(set) else {
            return nil
        }
        defer { nftnl_set_elems_iter_destroy(iterator) }
        var elements: [NftablesSetElement] = []
        // `next` hands out the current element and advances; it ends at the list's end, so this is
        // bounded by the elements one message holds.
        while let element = nftnl_set_elems_iter_next(iterator) {
            var length: UInt32 = 0
            let key = bytes(nftnl_set_elem_get(element, UInt16(NFTNL_SET_ELEM_KEY), &length), length)
            let flags = nftnl_set_elem_is_set(element, UInt16(NFTNL_SET_ELEM_FLAGS))
                ? nftnl_set_elem_get_u32(element, UInt16(NFTNL_SET_ELEM_FLAGS)) : 0
            let userdata = bytes(nftnl_set_elem_get(element, UInt16(NFTNL_SET_ELEM_USERDATA), &length), length)
            let userFlags = Userdata.decode(userdata)?[UInt8(NFTNL_UDATA_SET_ELEM_FLAGS.rawValue)] ?? []
            let isOpen = userFlags.count == 4
                && userFlags.withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) } & UInt32(NFTNL_SET_ELEM_F_INTERVAL_OPEN.rawValue) != 0
            elements.append(NftablesSetElement(key: key, isIntervalEnd: flags & UInt32(NFT_SET_ELEM_INTERVAL_END.rawValue) != 0,
                                               isOpenInterval: isOpen))
        }
        return elements
    }

    static func parseChain(_ message: UnsafePointer<nlmsghdr>) -> (String, NftablesSnapshot.Chain)? {
        guard let (table, chain) = Inventory.parseChain(message) else { return nil }
        return (table.name, NftablesSnapshot.Chain(name: chain.name, base: chain.hook?.description, rules: []))
    }

    static func parseRule(_ message: UnsafePointer<nlmsghdr>) -> (String, String, NftablesSnapshot.Rule)? {
        guard let rule = nftnl_rule_alloc() else { return nil }
        defer { nftnl_rule_free(rule) }
        guard nftnl_rule_nlmsg_parse(message, rule) >= 0,
              let table = nftnl_rule_get_str(rule, UInt16(NFTNL_RULE_TABLE.rawValue)),
              let chain = nftnl_rule_get_str(rule, UInt16(NFTNL_RULE_CHAIN.rawValue)),
              let iterator = nftnl_expr_iter_create(rule) else { return nil }
        defer { nftnl_expr_iter_destroy(iterator) }
        var expressions: [String] = []
        // Bounded by the rule's expressions: the iterator ends with the list.
        while let expression = nftnl_expr_iter_next(iterator) {
            guard let text = render(expression) else { return nil }
            expressions.append(text)
        }
        var length: UInt32 = 0
        let userdata = bytes(nftnl_rule_get_data(rule, UInt16(NFTNL_RULE_USERDATA.rawValue), &length), length)
        return (String(cString: table), String(cString: chain),
                NftablesSnapshot.Rule(expressions: expressions, comment: Userdata.comment(in: userdata)))
    }

    // MARK: Printing

    /// `[ name body ]` as `nft --debug=netlink` prints it, with what the kernel reports on its own
    /// taken out so the kernel's dump and the batch print alike:
    /// - counter values (traffic, not configuration);
    /// - a lookup's flags when 0: the kernel always reports them, the batch leaves the default out;
    /// - a redirect's `proto_max` register when it is `proto_min`'s: the kernel reports the range's
    ///   end even when only its start was sent.
    static func render(_ expression: OpaquePointer) -> String? {
        guard let namePointer = nftnl_expr_get_str(expression, UInt16(NFTNL_EXPR_NAME)) else { return nil }
        let name = String(cString: namePointer)
        var buffer = [CChar](repeating: 0, count: 4096)
        let length = nftnl_expr_snprintf(&buffer, buffer.count, expression, UInt32(NFTNL_OUTPUT_DEFAULT.rawValue), 0)
        guard length >= 0, Int(length) < buffer.count else { return nil }
        var body = String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
        switch name {
        case "counter":
            body = ""
        case "lookup":
            if body.hasSuffix(" 0x0 ") { body.removeLast(4) }
        case "redir", "masq", "nat":
            body = removingRedundantRangeEnd(body)
        default:
            break
        }
        let trimmed = body.trimmingSpaces
        return trimmed.isEmpty ? "[ \(name) ]" : "[ \(name) \(trimmed) ]"
    }

    private static func removingRedundantRangeEnd(_ body: String) -> String {
        var words = body.split(separator: " ").map(String.init)
        for (min, max) in [("proto_min", "proto_max"), ("addr_min", "addr_max")] {
            guard let low = words.firstIndex(of: min), low + 2 < words.count,
                  let high = words.firstIndex(of: max), high + 2 < words.count,
                  words[low + 1] == words[high + 1], words[low + 2] == words[high + 2] else { continue }
            words.removeSubrange(high...(high + 2))
        }
        return words.joined(separator: " ")
    }

    /// Sorted element lines: a port, an address, with ` (range end)` or ` (open range)`.
    static func render(_ elements: [NftablesSetElement], keyType: UInt32) -> [String] {
        let type = NftablesKeyType(number: keyType)
        return elements.sorted { ($0.key.lexicographicallyPrecedes($1.key)) || ($0.key == $1.key && !$0.isIntervalEnd && $1.isIntervalEnd) }
            .map { element in
                var text: String = type?.render(element.key)
                    ?? "0x" + element.key.map { ($0 < 16 ? "0" : "") + String($0, radix: 16) }.joined()
                if element.isIntervalEnd { text += " (range end)" }
                if element.isOpenInterval { text += " (open range)" }
                return text
            }
    }

    static func bytes(_ pointer: UnsafeRawPointer?, _ length: UInt32) -> [UInt8] {
        guard let pointer, length > 0 else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length)))
    }

    // MARK: Comparing

    static func difference(_ held: NftablesSnapshot.Table, _ wanted: NftablesSnapshot.Table) -> String? {
        let scope = "inet \(wanted.name)"
        if held.comment != wanted.comment {
            return "table \(scope) has comment \(quoted(held.comment)) in the kernel, expected \(quoted(wanted.comment))"
        }
        for set in wanted.sets {
            guard let heldSet = held.set(named: set.name) else { return "set \(set.name) of \(scope) is missing in the kernel" }
            if heldSet.declaration != set.declaration {
                return "set \(set.name) of \(scope) is `\(heldSet.declaration)` in the kernel, expected `\(set.declaration)`"
            }
            if heldSet.elements != set.elements {
                let heldElements = Set(heldSet.elements), wantedElements = Set(set.elements)
                if let missing = set.elements.first(where: { !heldElements.contains($0) }) {
                    return "set \(set.name) of \(scope): element \(missing) is missing in the kernel"
                }
                if let extra = heldSet.elements.first(where: { !wantedElements.contains($0) }) {
                    return "set \(set.name) of \(scope): extra element \(extra) in the kernel"
                }
                return "set \(set.name) of \(scope) holds \(heldSet.elements.count) elements in the kernel, expected \(set.elements.count)"
            }
        }
        for set in held.sets where wanted.set(named: set.name) == nil {
            return "extra set \(set.name) of \(scope) in the kernel"
        }
        for chain in wanted.chains {
            guard let heldChain = held.chain(named: chain.name) else {
                return "chain \(chain.name) of \(scope) is missing in the kernel"
            }
            if heldChain.base != chain.base {
                return "chain \(chain.name) of \(scope) is `\(heldChain.base ?? "a regular chain")` in the kernel, "
                    + "expected `\(chain.base ?? "a regular chain")`"
            }
            if let difference = difference(heldChain.rules, chain.rules) {
                return "chain \(chain.name) of \(scope): \(difference)"
            }
        }
        for chain in held.chains where wanted.chain(named: chain.name) == nil {
            return "extra chain \(chain.name) of \(scope) in the kernel (\(chain.rules.count) rules)"
        }
        return nil
    }

    /// Rules are numbered from 1, as `NftablesBatch` describes them.
    static func difference(_ held: [NftablesSnapshot.Rule], _ wanted: [NftablesSnapshot.Rule]) -> String? {
        for index in 0..<min(held.count, wanted.count) where held[index] != wanted[index] {
            // One rule inserted or removed shifts all that follow; name it rather than its neighbour.
            if held.count > wanted.count, held[index + 1] == wanted[index] {
                return "extra rule \(index + 1) `\(held[index])` in the kernel, before rule \(index + 1) `\(wanted[index])`"
            }
            if wanted.count > held.count, wanted[index + 1] == held[index] {
                return "rule \(index + 1) `\(wanted[index])` is missing in the kernel"
            }
            return "rule \(index + 1) is `\(held[index])` in the kernel, expected `\(wanted[index])`"
        }
        if held.count > wanted.count {
            return "extra rule \(wanted.count + 1) `\(held[wanted.count])` in the kernel, after the last expected rule"
        }
        if wanted.count > held.count {
            return "rule \(held.count + 1) `\(wanted[held.count])` is missing in the kernel"
        }
        return nil
    }

    private static func quoted(_ comment: String?) -> String { comment.map { "\"\($0)\"" } ?? "none" }
}

private extension String {
    var trimmingSpaces: String {
        var text = Substring(self)
        while text.first == " " { text.removeFirst() }
        while text.last == " " { text.removeLast() }
        return String(text)
    }
}
