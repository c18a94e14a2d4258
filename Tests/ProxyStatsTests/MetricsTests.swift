import Glibc
import Synchronization
import Testing
@testable import ProxyStats

/// Runs `body` on `count` real threads at once and waits for all of them. pthreads, not tasks, so
/// the updates truly overlap on the machine's cores; the threads wait for each other before
/// starting (for at most a second) so that one does not finish before the next is created.
func runOnThreads(_ count: Int, _ body: @escaping @Sendable (Int) -> Void) {
    final class Job: Sendable {
        let run: @Sendable () -> Void
        init(_ run: @escaping @Sendable () -> Void) { self.run = run }
    }
    final class StartGate: Sendable { let ready = Atomic<Int>(0) }
    let gate = StartGate()
    var threads: [pthread_t] = []
    for index in 0..<count {
        let job = Unmanaged.passRetained(Job {
            gate.ready.add(1, ordering: .relaxed)
            let deadline = monotonicNanoseconds() + 1_000_000_000
            while gate.ready.load(ordering: .relaxed) < count && monotonicNanoseconds() < deadline {}
            body(index)
        })
        var thread = pthread_t()
        let status = pthread_create(&thread, nil, { argument in
            Unmanaged<Job>.fromOpaque(argument!).takeRetainedValue().run()
            return nil
        }, job.toOpaque())
        precondition(status == 0, "pthread_create failed: \(status)")
        threads.append(thread)
    }
    for thread in threads { pthread_join(thread, nil) }
}

func monotonicNanoseconds() -> UInt64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return UInt64(time.tv_sec) * 1_000_000_000 + UInt64(time.tv_nsec)
}

@Suite struct MetricsTests {
    @Test func counterCountsEveryIncrementFromTwoThreads() {
        let counter = Counter(name: "tcp.x.downstream_cx_rx_bytes_total")
        let perThread = 1_000_000
        runOnThreads(2) { _ in
            for _ in 0..<perThread { counter.increment() }
        }
        #expect(counter.value == UInt64(2 * perThread))
        #expect(counter.used)
    }

    @Test func byteCountersAddAmountsFromTwoThreads() {
        let counter = Counter(name: "cluster.c.upstream_cx_tx_bytes_total")
        runOnThreads(2) { thread in
            for _ in 0..<100_000 { counter.increment(by: thread == 0 ? 16_384 : 1) }
        }
        #expect(counter.value == 100_000 * 16_384 + 100_000)
    }

    @Test func gaugeBalancesConcurrentIncrementsAndDecrements() {
        let gauge = Gauge(name: "listener.x.downstream_cx_active")
        runOnThreads(2) { thread in
            for _ in 0..<1_000_000 {
                if thread == 0 { gauge.increment() } else { gauge.decrement() }
            }
        }
        #expect(gauge.value == 0)
        #expect(gauge.used)
    }

    @Test func usedFollowsEnvoyAnyWriteMarksAStatUsed() {
        let counter = Counter(name: "c")
        #expect(!counter.used)
        counter.increment(by: 0)
        #expect(counter.used && counter.value == 0)

        let gauge = Gauge(name: "g")
        #expect(!gauge.used)
        gauge.set(0)
        #expect(gauge.used && gauge.value == 0)

        let decremented = Gauge(name: "d")
        decremented.decrement(by: 2)
        #expect(decremented.used && decremented.value == -2)

        let incremented = Gauge(name: "i")
        incremented.increment(by: 5)
        incremented.set(3)
        #expect(incremented.value == 3)
    }
}
