import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Programs and reads Sluice's nftables tables over netlink, in the network namespace of the thread that
/// creates the client (enter the pod's namespace first, then create it).
///
/// Writes are single atomic batches: `apply` and `removeOwnedTables` either change everything they
/// describe or, on any refusal, nothing, and then throw a `KernelError` naming what was refused.
public final class NftablesClient {
    private let socket: NftablesSocket
    private var nextSequence: UInt32

    /// How long to wait for the kernel's answers. The kernel processes a batch while `sendmsg` runs, so
    /// the answers are normally queued before it returns; this only bounds a misbehaving kernel.
    private static let replyTimeoutMilliseconds: Int32 = 10_000

    public init() throws(KernelError) {
        socket = try NftablesSocket()
        // Distinct per client (like nft's time-based start), so answers to an earlier client's
        // requests on a recycled port cannot be mistaken for ours.
        nextSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Makes the owned tables exactly `ruleset`'s, in one transaction.
    /// `existingTables`: the owned tables the caller just read back, if it did (see `NftablesBatch`).
    public func apply(_ ruleset: Ruleset, existingTables: Set<String>? = nil) throws(KernelError) {
        let batch = try NftablesBatch(applying: ruleset, existingTables: existingTables, firstSequence: nextSequence)
        try send(batch, operation: "program nftables")
    }

    /// Removes the owned tables that exist; other tables stay.
    public func removeOwnedTables() throws(KernelError) {
        try send(NftablesBatch.removingOwnedTables(firstSequence: nextSequence), operation: "remove nftables tables")
    }

    /// Sends a batch in one `sendmsg` and checks that the kernel acknowledged every message.
    public func send(_ batch: NftablesBatch, operation: String = "program nftables") throws(KernelError) {
        nextSequence = batch.endSequence &+ 1
        try socket.discardQueuedReplies()
        socket.reserveBuffers(sending: batch.bytes.count, replies: batch.messages.count + 2)
        try socket.send(batch.bytes)

        let batchMarkers = [batch.beginSequence, batch.endSequence]
        var unanswered = Set(batch.messages.map(\.sequence))
        var refusals: [(sequence: UInt32, refusal: KernelError.Refusal)] = []
        var batchRefused = false
        // Bounded by the datagrams the kernel can have queued for us: one per message plus markers.
        for _ in 0...(batch.messages.count + 2) {
            if unanswered.isEmpty || batchRefused { break }
            // Once something was refused the kernel has already sent all it will send for this batch
            // (it reports every message, then aborts), so only drain what is queued.
            let timeout = refusals.isEmpty ? Self.replyTimeoutMilliseconds : 0
            guard let datagram = try socket.receive(timeout: timeout) else { break }
            guard let messages = NetlinkMessage.split(datagram) else {
                throw .unexpectedReply("a malformed netlink datagram of \(datagram.count) bytes")
            }
            for message in messages where message.type == UInt16(NLMSG_ERROR) {
                guard let status = message.status else {
                    throw .unexpectedReply("an error message of \(message.bytes.count) bytes")
                }
                if batchMarkers.contains(message.sequence) {
                    // The kernel refused the batch as a whole (no capability, no nf_tables, a commit
                    // check such as a jump loop); it answers nothing else then.
                    guard status != 0 else { continue }
                    batchRefused = true
                    let type = UInt16(message.sequence == batch.beginSequence ? NFNL_MSG_BATCH_BEGIN : NFNL_MSG_BATCH_END)
                    refusals.append((message.sequence, .init(object: "the nftables batch", errno: status, messageType: type)))
                } else if unanswered.remove(message.sequence) != nil, status != 0,
                          let refused = batch.message(withSequence: message.sequence) {
                    refusals.append((message.sequence, .init(object: refused.description, errno: status, messageType: refused.type)))
                }
            }
        }
        if !refusals.isEmpty {
            let inBatchOrder = refusals.sorted { $0.sequence &- batch.beginSequence < $1.sequence &- batch.beginSequence }
            throw KernelError.classify(inBatchOrder.map(\.refusal), operation: operation)
        }
        guard unanswered.isEmpty else {
            throw .unexpectedReply("no acknowledgement for \(unanswered.count) of \(batch.messages.count) messages "
                                   + "(first: \(batch.message(withSequence: unanswered.min() ?? 0)?.description ?? "?"))")
        }
    }

    /// Reads which owned tables exist, with their comments, sets, and per chain the rule comments.
    /// Reading needs CAP_NET_ADMIN too.
    public func ownedTableState() throws(KernelError) -> OwnedTableState {
        let owned = Set(Ruleset.ownedTableNames)
        let tables = try dump(NFT_MSG_GETTABLE, Nftnl.parseTable).filter { owned.contains($0.name) }
        guard !tables.isEmpty else { return OwnedTableState(tables: []) }
        let present = Set(tables.map(\.name))
        let sets = try dump(NFT_MSG_GETSET, Nftnl.parseSet).filter { present.contains($0.table) }
        let chains = try dump(NFT_MSG_GETCHAIN, Nftnl.parseChain).filter { present.contains($0.table) }
        let rules = try dump(NFT_MSG_GETRULE, Nftnl.parseRule).filter { present.contains($0.table) }

        return OwnedTableState(tables: Ruleset.ownedTableNames.compactMap { name in
            guard let table = tables.first(where: { $0.name == name }) else { return nil }
            let chainStates = chains.filter { $0.table == name }.map { chain in
                OwnedTableState.ChainState(
                    name: chain.name,
                    ruleComments: rules.filter { $0.table == name && $0.chain == chain.name }
                        .map { Userdata.comment(in: $0.userdata) })
            }
            return OwnedTableState.TableState(
                name: name, comment: Userdata.comment(in: table.userdata),
                setNames: sets.filter { $0.table == name }.map(\.name).sorted(),
                chains: chainStates.sorted { $0.name < $1.name })
        })
    }

    // MARK: Private

    /// Every object of one kind in inet tables, restarting if the ruleset changed mid-dump.
    private func dump<Value>(_ type: nf_tables_msg_types, _ parse: (UnsafePointer<nlmsghdr>) -> Value?) throws(KernelError) -> [Value] {
        for _ in 0..<5 {
            let sequence = nextSequence
            nextSequence &+= 1
            try socket.discardQueuedReplies()
            try socket.send(Nftnl.dumpRequest(type, sequence: sequence))
            var values: [Value] = []
            var interrupted = false
            var done = false
            let deadline = ContinuousClock.now + .milliseconds(Int(Self.replyTimeoutMilliseconds))
            // Bounded by the deadline: each datagram holds at least one object or ends the dump.
            while !done {
                guard ContinuousClock.now < deadline,
                      let datagram = try socket.receive(timeout: Self.replyTimeoutMilliseconds) else {
                    throw .unexpectedReply("the dump of \(Self.objectName(type)) did not finish")
                }
                guard let messages = NetlinkMessage.split(datagram) else {
                    throw .unexpectedReply("a malformed netlink datagram of \(datagram.count) bytes")
                }
                for message in messages where message.sequence == sequence {
                    if message.flags & UInt16(NLM_F_DUMP_INTR) != 0 { interrupted = true }
                    switch Int32(message.type) {
                    case NLMSG_DONE:
                        // A dump that failed part-way ends with its error in the DONE message.
                        if let status = message.status, status != 0 { throw dumpError(type, status) }
                        done = true
                    case NLMSG_ERROR:
                        guard let status = message.status else {
                            throw .unexpectedReply("an error message of \(message.bytes.count) bytes")
                        }
                        if status == 0 { continue }
                        throw dumpError(type, status)
                    default:
                        guard let value = message.withHeader(parse) else {
                            throw .unexpectedReply("a \(Self.objectName(type)) message libnftnl cannot parse")
                        }
                        values.append(value)
                    }
                }
            }
            if !interrupted { return values }
        }
        throw .unexpectedReply("the ruleset kept changing while reading \(Self.objectName(type))")
    }

    private func dumpError(_ type: nf_tables_msg_types, _ status: Int32) -> KernelError {
        let operation = "read nftables \(Self.objectName(type))"
        switch status {
        case EPERM, EACCES: return .permissionDenied(operation: operation)
        case EOPNOTSUPP, EAFNOSUPPORT: return .nftablesUnavailable(operation: operation, errno: status)
        default: return .systemCall(operation, errno: status)
        }
    }

    private static func objectName(_ type: nf_tables_msg_types) -> String {
        switch type {
        case NFT_MSG_GETTABLE: return "tables"
        case NFT_MSG_GETCHAIN: return "chains"
        case NFT_MSG_GETSET: return "sets"
        case NFT_MSG_GETRULE: return "rules"
        default: return "objects"
        }
    }
}
