import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// Milliseconds on CLOCK_MONOTONIC, the clock every process on the machine shares: tests compare
/// these stamps with their own `clock_gettime(CLOCK_MONOTONIC)` readings.
func monotonicMilliseconds() -> Int {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return now.tv_sec * 1000 + now.tv_nsec / 1_000_000
}

/// A line on stderr (file descriptor 2: the C `stderr` stream is shared mutable state to Swift 6).
func printError(_ message: String) {
    let line = Array("sluice-test-dataplane: \(message)\n".utf8)
    _ = line.withUnsafeBytes { write(2, $0.baseAddress, $0.count) }
}

/// The file named by `SLUICE_TEST_DATAPLANE_LOG`: one JSON object per line, each with `event` and
/// `monotonic_ms`. Appended with one `write` per line on an O_APPEND descriptor, so lines from
/// event-loop threads never interleave.
final class EventLog: Sendable {
    private let descriptor: Int32?

    init(path: String?) {
        guard let path, !path.isEmpty else {
            descriptor = nil
            return
        }
        let descriptor = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0o644)
        if descriptor < 0 {
            printError("cannot open log \(path): \(String(cString: strerror(errno)))")
            self.descriptor = nil
        } else {
            self.descriptor = descriptor
        }
    }

    func record(_ event: String, _ fields: [String: Any] = [:]) {
        guard let descriptor else { return }
        var object = fields
        object["event"] = event
        object["monotonic_ms"] = monotonicMilliseconds()
        guard var line = try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys, .withoutEscapingSlashes]) else {
            return
        }
        line.append(UInt8(ascii: "\n"))
        line.withUnsafeBytes { bytes in
            _ = write(descriptor, bytes.baseAddress, bytes.count)
        }
    }
}
