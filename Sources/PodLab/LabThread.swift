#if canImport(Glibc)
import Glibc
#endif

/// A body run on a thread of its own: the lab's servers block in accept and recv, which must not
/// happen on Swift's cooperative pool, and tests join what they started.
public final class LabThread: @unchecked Sendable {
    private var thread = pthread_t()
    private let body: () -> Void

    /// Starts `body` at once; `join()` waits for it.
    public init(_ body: @escaping () -> Void) {
        self.body = body
        let context = Unmanaged.passRetained(self).toOpaque()
        if pthread_create(&thread, nil, { context in
            Unmanaged<LabThread>.fromOpaque(context!).takeRetainedValue().body()
            return nil
        }, context) != 0 {
            // No thread: run it here rather than lose it.
            Unmanaged<LabThread>.fromOpaque(context).release()
            body()
        }
    }

    public func join() {
        pthread_join(thread, nil)
    }

    /// Starts `body` on a thread nobody joins.
    public static func detach(_ body: @escaping () -> Void) {
        pthread_detach(LabThread(body).thread)
    }
}
