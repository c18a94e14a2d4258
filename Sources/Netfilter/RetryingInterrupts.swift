#if canImport(Glibc)
import Glibc
#endif

/// Calls `call` again while it fails (returns a negative value) with `errno == EINTR`, at most
/// `limit` times in all: a signal can interrupt a system call any number of times, and a bounded
/// number of retries keeps a signal storm from hanging the caller.
///
/// Returns the last result, with `errno` as that call left it: a success, a failure other than
/// EINTR, or -1 (or whatever the call returned) with `errno == EINTR` once the retries run out.
public func retryingInterrupts<T: BinaryInteger>(_ limit: Int = 1000, _ call: () -> T) -> T {
    var result = call()
    var attempts = 1
    while result < 0, errno == EINTR, attempts < limit {
        result = call()
        attempts += 1
    }
    return result
}
