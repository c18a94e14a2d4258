import Capture
import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Programs and reads Sluice's nftables tables over one netlink socket, in the network namespace of
/// the thread that creates the client (enter the pod's namespace first, then create it).
///
/// Writes are single atomic batches: `apply`, `update` and `removeOwnedTables` either change everything
/// they describe or, on any refusal, nothing, and then throw a `KernelError` naming what was refused.
public final class NftablesClient {
    private let socket: NftablesSocket
    private var nextSequence: UInt32
    private lazy var readback = NftablesReadback(socket: socket)

    /// How long to wait for the kernel's answers. The kernel processes a batch while `sendmsg` runs, so
    /// the answers are normally queued before it returns; this only bounds a misbehaving kernel.
    private static let replyTimeout: Duration = .seconds(10)

    public init() throws(KernelError) {
        socket = try NftablesSocket()
        // Distinct per client (like nft's time-based start), so answers to an earlier client's
        // requests on a recycled port cannot be mistaken for ours.
        nextSequence = UInt32(truncatingIfNeeded: time(nil))
    }

    /// Makes the owned tables exactly `ruleset`'s, in one transaction.
    public func apply(_ ruleset: Ruleset) throws(KernelError) {
        try send(NftablesBatch(applying: ruleset, firstSequence: nextSequence), operation: "program nftables")
    }

    /// Makes the owned tables exactly `ruleset`'s unless the kernel already holds exactly that, read
    /// back rule for rule: then nothing is sent, so a re-run keeps the counters, while any drift
    /// (another agent's edit) is overwritten, as Istio's rebuild does. One read, one batch built once.
    public func update(to ruleset: Ruleset) throws(KernelError) -> NftablesUpdate {
        let current = try read()
        // Knowing which tables exist spares the batch deleting absent ones (see `NftablesBatch`).
        let batch = try NftablesBatch(applying: ruleset, existingTables: Set(current.tables.map(\.name)),
                                      firstSequence: nextSequence)
        // A fresh pod has none of the tables: it differs, and what the batch reads back as is only
        // worked out if validation asks (`NftablesUpdate.expectedSnapshot`).
        var expected: NftablesSnapshot?
        if !current.tables.isEmpty {
            let snapshot = try NftablesSnapshot(expecting: batch)
            if current.firstDifference(from: snapshot) == nil {
                return NftablesUpdate(applied: false, batch: batch, expected: snapshot)
            }
            expected = snapshot
        }
        try send(batch, operation: "program nftables")
        return NftablesUpdate(applied: true, batch: batch, expected: expected)
    }

    /// Removes the owned tables that exist; other tables stay.
    @discardableResult
    public func removeOwnedTables() throws(KernelError) -> NftablesUpdate {
        let batch = NftablesBatch.removingOwnedTables(firstSequence: nextSequence)
        try send(batch, operation: "remove nftables tables")
        return NftablesUpdate(applied: true, batch: batch, expected: NftablesSnapshot(tables: []))
    }

    /// The owned tables as the kernel holds them (see `NftablesReadback.read`), over this client's socket.
    public func read() throws(KernelError) -> NftablesSnapshot {
        try readback.read()
    }

    /// Sends a batch in one `sendmsg` and checks that the kernel acknowledged every message.
    func send(_ batch: NftablesBatch, operation: String) throws(KernelError) {
        nextSequence = batch.endSequence &+ 1
        try socket.discardQueuedReplies()
        socket.reserveBuffers(sending: batch.bytes.count, replies: batch.messages.count + 2)
        try socket.send(batch.bytes, operation: operation)

        let answer = try socket.answers(to: batch, timeout: Self.replyTimeout)
        if !answer.refusals.isEmpty { throw KernelError.classify(answer.refusals, operation: operation) }
        let unanswered = answer.unanswered
        guard unanswered.isEmpty else {
            throw .unexpectedReply("no acknowledgement for \(unanswered.count) of \(batch.messages.count) messages "
                                   + "(first: \(batch.message(withSequence: unanswered.min() ?? 0)?.description ?? "?"))")
        }
    }
}

/// What `NftablesClient.update(to:)` or `removeOwnedTables()` did, and what the owned tables should
/// read back as now.
public struct NftablesUpdate: Sendable {
    /// False when the kernel already held exactly the ruleset, so nothing was sent.
    public let applied: Bool
    /// The batch sent, or the one that would have been.
    let batch: NftablesBatch
    /// Already worked out when the update compared with tables the kernel held.
    let expected: NftablesSnapshot?

    /// What the owned tables read back as after the update: the batch replayed (see
    /// `NftablesSnapshot(expecting:)`), worked out now unless the update already did.
    public func expectedSnapshot() throws(KernelError) -> NftablesSnapshot {
        if let expected { return expected }
        return try NftablesSnapshot(expecting: batch)
    }
}
