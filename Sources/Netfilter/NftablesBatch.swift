import Capture
import CNetfilter

/// A whole nftables transaction as netlink bytes: NFNL_MSG_BATCH_BEGIN, the messages, NFNL_MSG_BATCH_END.
/// The kernel applies it atomically, so a ruleset either lands complete or not at all.
///
/// Building it touches no socket. Every message asks for an acknowledgement and carries its own
/// sequence number, and `messages` says in words what each one would create or remove, so an error
/// the kernel returns can be pinned on the rule or set that caused it.
public struct NftablesBatch: Sendable {
    public struct Message: Sendable, Hashable {
        public let sequence: UInt32
        /// The nfnetlink message type (`NFT_MSG_NEWRULE`, ...).
        public let type: UInt16
        /// What the message creates or removes: "rule 3 of chain istio-output in table inet
        /// istio-proxy-nat", "removal of table inet istio-proxy-raw".
        public let description: String
    }

    /// The batch as sent in one `sendmsg`.
    public let bytes: [UInt8]
    /// The acknowledged messages, in batch order (without the begin and end markers).
    public let messages: [Message]
    /// Sequence numbers of the begin and end markers, which the kernel answers only to report an
    /// error about the batch as a whole (missing capability, missing nf_tables).
    public let beginSequence: UInt32
    public let endSequence: UInt32
    /// The messages before encoding, in batch order: `NftablesSnapshot(expecting:)` takes the set
    /// elements from here, as libnftnl cannot parse the batch's element lists back.
    let plan: [NftablesMessage]

    /// The transaction that makes the kernel's owned tables exactly `ruleset`'s: each owned table the
    /// ruleset has is created if absent, deleted and created afresh with its sets, chains and rules;
    /// each owned table it lacks is removed if present. Other tables are not touched.
    ///
    /// `existingTables`, when the caller has just read them, leaves out the create-then-delete of
    /// tables that are absent: deleting a table, even one created in the same batch, makes the kernel
    /// wait for a grace period on commit (about 13 ms here), most of a fresh pod's apply time.
    public init(applying ruleset: Ruleset, existingTables: Set<String>? = nil, firstSequence: UInt32 = 1) throws(KernelError) {
        if let stranger = ruleset.tables.first(where: { !Ruleset.ownedTableNames.contains($0.name) }) {
            throw .unencodable("table \(stranger.name) is not one of Sluice's tables "
                               + "(\(Ruleset.ownedTableNames.joined(separator: ", ")))")
        }
        var plan: [NftablesMessage] = []
        var nextSetID: UInt32 = 1
        for name in Ruleset.ownedTableNames {
            switch existingTables?.contains(name) {
            case nil:
                // Unknown: creating first makes the delete legal when the table does not exist.
                plan.append(.newTable(name: name, comment: nil))
                plan.append(.deleteTable(name: name))
            case true?:
                plan.append(.deleteTable(name: name))
            case false?:
                break
            }
            guard let table = ruleset.table(named: name) else { continue }
            plan += try Self.plan(for: table, nextSetID: &nextSetID)
        }
        try self.init(plan: plan, firstSequence: firstSequence)
    }

    /// The `--cleanup-only` transaction: every owned table removed (if present), nothing else touched.
    public static func removingOwnedTables(firstSequence: UInt32 = 1) -> NftablesBatch {
        do {
            return try NftablesBatch(applying: Ruleset(tables: []), firstSequence: firstSequence)
        } catch {
            // Only the constant owned names are encoded here, and they are valid.
            preconditionFailure("encoding the owned table names failed: \(error)")
        }
    }

    public func message(withSequence sequence: UInt32) -> Message? {
        guard let first = messages.first else { return nil }
        // Wrapping: sequence numbers may roll over inside a batch.
        let index = Int(sequence &- first.sequence)
        return index < messages.count ? messages[index] : nil
    }

    /// The bounds nft and the kernel put on names and comments (`NFT_NAME_MAXLEN`,
    /// `NFTNL_UDATA_COMMENT_MAXLEN`).
    static let maximumNameLength = 255
    static let maximumCommentLength = 128
    /// Element bytes per NEWSETELEM message: the element list is one netlink attribute, whose length
    /// field is 16 bits, so a big set is sent as several messages in the same batch.
    static let setElementBytesPerMessage = 32 * 1024

    init(plan: [NftablesMessage], firstSequence: UInt32) throws(KernelError) {
        var bytes: [UInt8] = []
        var sequence = firstSequence
        beginSequence = sequence
        Nftnl.appendBatchBegin(sequence: sequence, to: &bytes)
        var messages: [Message] = []
        messages.reserveCapacity(plan.count)
        for message in plan {
            sequence &+= 1
            try Nftnl.append(message, sequence: sequence, to: &bytes)
            messages.append(Message(sequence: sequence, type: message.type, description: message.description))
        }
        sequence &+= 1
        endSequence = sequence
        Nftnl.appendBatchEnd(sequence: sequence, to: &bytes)
        self.bytes = bytes
        self.messages = messages
        self.plan = plan
    }

    private static func plan(for table: Table, nextSetID: inout UInt32) throws(KernelError) -> [NftablesMessage] {
        try checkName(table.name, of: "table")
        if let comment = table.comment { try checkComment(comment, of: "table inet \(table.name)") }
        var plan: [NftablesMessage] = [.newTable(name: table.name, comment: table.comment)]
        var setIDs: [String: UInt32] = [:]
        for set in table.sets {
            try checkName(set.name, of: "set")
            let id = nextSetID
            nextSetID += 1
            setIDs[set.name] = id
            plan.append(.newSet(table: table.name, name: set.name, setID: id, contents: NftablesSetContents(set.elements)))
            let elements = NftablesSetElement.elements(of: set.elements)
            let perMessage = max(1, setElementBytesPerMessage / Nftnl.elementSizeBound(keyLength: set.elements.keyLength))
            let chunks = stride(from: 0, to: elements.count, by: perMessage).map {
                Array(elements[$0..<min($0 + perMessage, elements.count)])
            }
            for (index, chunk) in chunks.enumerated() {
                plan.append(.newSetElements(table: table.name, set: set.name, setID: id, elements: chunk,
                                            part: index + 1, of: chunks.count))
            }
        }
        for chain in table.chains {
            try checkName(chain.name, of: "chain")
            plan.append(.newChain(table: table.name, name: chain.name, base: chain.base))
        }
        for chain in table.chains {
            for (index, rule) in chain.rules.enumerated() {
                let description = NftablesMessage.ruleDescription(index: index + 1, chain: chain.name, table: table.name)
                if !rule.comment.isEmpty { try checkComment(rule.comment, of: description) }
                if let target = rule.jumpTarget { try checkName(target, of: "jump target of \(description)") }
                let expressions = try NftablesRuleCompiler.expressions(for: rule, setIDs: setIDs)
                plan.append(.newRule(table: table.name, chain: chain.name, index: index + 1,
                                     expressions: expressions, comment: rule.comment))
            }
        }
        return plan
    }

    private static func checkName(_ name: String, of kind: String) throws(KernelError) {
        let length = name.utf8.count
        guard length > 0, length <= maximumNameLength, !name.utf8.contains(0) else {
            throw .unencodable("\(kind) name \"\(name)\" must be 1 to \(maximumNameLength) bytes")
        }
    }

    private static func checkComment(_ comment: String, of object: String) throws(KernelError) {
        guard comment.utf8.count <= maximumCommentLength, !comment.utf8.contains(0) else {
            throw .unencodable("the comment of \(object) must be at most \(maximumCommentLength) bytes, without NUL")
        }
    }
}

/// How a set's keys are typed, as nft declares them (`type ipv4_addr; flags interval`).
struct NftablesSetContents: Hashable, Sendable {
    /// nft's datatype number (see `NftablesKeyType`).
    var keyType: UInt32
    var keyLength: UInt32
    var isInterval: Bool
}

extension NftablesSetContents {
    init(_ elements: NamedSet.Elements) {
        let type: NftablesKeyType
        switch elements {
        case .addresses(let family, _):
            type = family == .ipv4 ? .ipv4Address : .ipv6Address
            isInterval = true
        case .ports:
            type = .port
            isInterval = false
        }
        keyType = type.number
        keyLength = type.length
    }
}

/// nft's datatypes of the keys Sluice's sets hold: the one table the batch encodes with and the
/// read-back prints with.
struct NftablesKeyType: Hashable, Sendable {
    /// nft's datatype number, stored with the set (`NFTNL_SET_KEY_TYPE`).
    let number: UInt32
    /// nft's name of the datatype.
    let name: String
    /// Bytes per key.
    let length: UInt32
    /// The address family of an address key; nil for a port.
    let family: IPFamily?

    static let ipv4Address = NftablesKeyType(number: 7, name: "ipv4_addr", length: 4, family: .ipv4)
    static let ipv6Address = NftablesKeyType(number: 8, name: "ipv6_addr", length: 16, family: .ipv6)
    static let port = NftablesKeyType(number: 13, name: "inet_service", length: 2, family: nil)

    /// The known type numbered `number`, nil for any other.
    init?(number: UInt32) {
        guard let known = [Self.ipv4Address, .ipv6Address, .port].first(where: { $0.number == number }) else { return nil }
        self = known
    }

    private init(number: UInt32, name: String, length: UInt32, family: IPFamily?) {
        self.number = number
        self.name = name
        self.length = length
        self.family = family
    }

    /// `key` as nft prints it (an address, a port number); nil when it is not `length` bytes.
    func render(_ key: [UInt8]) -> String? {
        guard key.count == Int(length) else { return nil }
        if let family { return IPAddress(family: family, bytes: key).description }
        return String(UInt16(key[0]) << 8 | UInt16(key[1]))
    }
}

extension NamedSet.Elements {
    var keyLength: Int { Int(NftablesSetContents(self).keyLength) }
}

/// One message of a batch, before encoding.
enum NftablesMessage: Hashable, Sendable {
    case newTable(name: String, comment: String?)
    /// A table owned by the sending socket (`NFT_TABLE_F_OWNER`): the kernel deletes it when that
    /// socket closes, however the process ends. Exclusive: an existing table of the name is an error.
    case newSocketOwnedTable(name: String)
    case deleteTable(name: String)
    case newSet(table: String, name: String, setID: UInt32, contents: NftablesSetContents)
    case newSetElements(table: String, set: String, setID: UInt32, elements: [NftablesSetElement], part: Int, of: Int)
    case newChain(table: String, name: String, base: BaseChain?)
    case newRule(table: String, chain: String, index: Int, expressions: [NftablesExpression], comment: String)

    var type: UInt16 {
        let type: nf_tables_msg_types
        switch self {
        case .newTable, .newSocketOwnedTable: type = NFT_MSG_NEWTABLE
        case .deleteTable: type = NFT_MSG_DELTABLE
        case .newSet: type = NFT_MSG_NEWSET
        case .newSetElements: type = NFT_MSG_NEWSETELEM
        case .newChain: type = NFT_MSG_NEWCHAIN
        case .newRule: type = NFT_MSG_NEWRULE
        }
        return UInt16(type.rawValue)
    }

    var description: String {
        switch self {
        case .newTable(let name, _):
            return "table inet \(name)"
        case .newSocketOwnedTable(let name):
            return "table inet \(name) owned by its socket (NFT_TABLE_F_OWNER, Linux 5.12 or later)"
        case .deleteTable(let name):
            return "removal of table inet \(name)"
        case .newSet(let table, let name, _, _):
            return "set \(name) in table inet \(table)"
        case .newSetElements(let table, let set, _, let elements, let part, let count):
            let which = count > 1 ? " (part \(part) of \(count), \(elements.count) elements)" : ""
            return "elements of set \(set) in table inet \(table)\(which)"
        case .newChain(let table, let name, _):
            return "chain \(name) in table inet \(table)"
        case .newRule(let table, let chain, let index, _, _):
            return Self.ruleDescription(index: index, chain: chain, table: table)
        }
    }

    static func ruleDescription(index: Int, chain: String, table: String) -> String {
        "rule \(index) of chain \(chain) in table inet \(table)"
    }
}
