import CSockets
#if canImport(Glibc)
import Glibc
#endif

/// A kernel pipe used as the buffer between two sockets: splice(2) moves socket pages into it and
/// out to the other socket without copying the bytes through user space.
struct Pipe {
    var readEnd: Int32
    var writeEnd: Int32
    var capacity: Int

    static func make(capacity: Int) -> Pipe? {
        var ends: [Int32] = [-1, -1]
        guard sluice_pipe(&ends) == 0 else { return nil }
        // Larger pipes move more per call; the kernel may refuse (pipe-user-pages limits), and then
        // the default 64 KiB still works.
        let granted = sluice_set_pipe_size(ends[1], Int32(capacity))
        return Pipe(readEnd: ends[0], writeEnd: ends[1], capacity: granted > 0 ? Int(granted) : 65536)
    }

    func close() {
        Glibc.close(readEnd)
        Glibc.close(writeEnd)
    }
}

/// Idle pipes of one worker. A connection holds a pipe only while bytes sit in it, so a thousand
/// idle keep-alive connections cost no pipes at all.
struct PipePool {
    private var idle: [Pipe] = []
    let capacity: Int
    let limit: Int

    init(capacity: Int, limit: Int = 32) {
        self.capacity = capacity
        self.limit = limit
    }

    mutating func take() -> Pipe? {
        idle.popLast() ?? Pipe.make(capacity: capacity)
    }

    mutating func give(_ pipe: Pipe) {
        if idle.count < limit { idle.append(pipe) } else { pipe.close() }
    }

    mutating func closeAll() {
        for pipe in idle { pipe.close() }
        idle.removeAll()
    }
}

/// One direction of a proxied connection: bytes read from `source` wait in the pipe until
/// `destination` takes them.
struct RelayDirection {
    var pipe: Pipe?
    /// Bytes in the pipe (spliced in, not yet spliced out).
    var buffered = 0
    /// The source sent FIN (splice returned 0).
    var sourceFinished = false
    /// The FIN was passed on: shutdown(SHUT_WR) on the destination once the pipe was empty.
    var finishSent = false

    enum Outcome: Equatable {
        /// Nothing more can move until the next readiness event.
        case waiting
        /// The per-call budget ran out with both ends still ready: call again soon (edge-triggered
        /// epoll will not report them again).
        case budgetExhausted
        /// Reading the source failed (usually ECONNRESET: the peer reset).
        case sourceFailed(Int32)
        /// Writing the destination failed (EPIPE/ECONNRESET: that peer reset or is gone).
        case destinationFailed(Int32)
    }

    /// Moves bytes from `source` to `destination` until neither can make progress, with back-pressure:
    /// nothing is read while the pipe is full, and the pipe only empties as fast as the destination
    /// accepts. `received`/`sent` report byte counts as they move.
    mutating func pump(
        from source: Int32, to destination: Int32, pool: inout PipePool, budget: Int,
        received: (Int) -> Void, sent: (Int) -> Void
    ) -> Outcome {
        if finishSent { return .waiting }
        var moved = 0
        defer {
            if buffered == 0, let idle = pipe {
                pool.give(idle)
                pipe = nil
            }
        }
        var rounds = 0
        while rounds < 64 {
            rounds += 1
            var progressed = false
            if !sourceFinished {
                if pipe == nil { pipe = pool.take() }
                guard let pipe else { return .sourceFailed(ENFILE) }
                let room = pipe.capacity - buffered
                if room > 0 {
                    let count = sluice_splice(source, pipe.writeEnd, room)
                    if count > 0 {
                        buffered += count
                        moved += count
                        received(count)
                        progressed = true
                    } else if count == 0 {
                        sourceFinished = true
                        progressed = true
                    } else if errno != EAGAIN && errno != EINTR {
                        return .sourceFailed(errno)
                    }
                }
            }
            if buffered > 0, let pipe {
                let count = sluice_splice(pipe.readEnd, destination, buffered)
                if count > 0 {
                    buffered -= count
                    sent(count)
                    progressed = true
                } else if count < 0 && errno != EAGAIN && errno != EINTR {
                    return .destinationFailed(errno)
                }
            }
            if sourceFinished && buffered == 0 && !finishSent {
                // Half-close: the destination learns the source is done sending, and may still answer.
                finishSent = true
                if shutdown(destination, Int32(SHUT_WR)) != 0 && errno != ENOTCONN {
                    return .destinationFailed(errno)
                }
                return .waiting
            }
            if !progressed { return .waiting }
            if moved >= budget { return .budgetExhausted }
        }
        return .budgetExhausted
    }

    func releasePipe(into pool: inout PipePool) {
        // A pipe with bytes still in it cannot be reused: those bytes belong to a dead connection.
        guard let pipe else { return }
        if buffered == 0 { pool.give(pipe) } else { pipe.close() }
    }
}
