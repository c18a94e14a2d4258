import CNetfilter
#if canImport(Glibc)
import Glibc
#endif

/// Whose socket it is, as nftables sees it: `meta skuid`/`skgid` read the file-system UID/GID of the
/// credentials the socket was created with.
public struct SocketOwner: Sendable, Hashable, CustomStringConvertible {
    public var uid: UInt32
    public var gid: UInt32

    public init(uid: UInt32, gid: UInt32) {
        self.uid = uid
        self.gid = gid
    }

    public static let root = SocketOwner(uid: 0, gid: 0)

    public var description: String { "uid \(uid) gid \(gid)" }

    /// Runs `body` on a new thread with this file-system UID/GID, in the caller's network namespace,
    /// and waits for it: sockets created in `body` are this owner's for `meta skuid`/`skgid`, while the
    /// process and every other thread keep their credentials. Throws `CredentialSwitchError` when the
    /// kernel refuses the switch (no CAP_SETGID/CAP_SETUID).
    public func runOnDedicatedThread<Result>(_ body: () throws -> Result) throws -> Result {
        try withoutActuallyEscaping(body) { body in
            var result: Result?
            try NetworkNamespace.onDedicatedThread {
                try NetworkNamespace.switchFileSystemIDs(to: self)
                result = try body()
            }
            return result!
        }
    }
}

/// The kernel refused to switch a thread's file-system GID or UID (the process lacks CAP_SETGID or
/// CAP_SETUID). Typed, so a caller can name the missing capability without parsing the call's text;
/// worded as the `SystemCallError` for the call: `setfsgid(1337): Operation not permitted`.
public enum CredentialSwitchError: Error, Hashable, CustomStringConvertible {
    case gid(UInt32)
    case uid(UInt32)

    /// The refused call, as a person would type it: `setfsgid(1337)`.
    public var call: String {
        switch self {
        case .gid(let gid): return "setfsgid(\(gid))"
        case .uid(let uid): return "setfsuid(\(uid))"
        }
    }

    /// The capability the switch takes.
    public var capability: String {
        switch self {
        case .gid: return "CAP_SETGID"
        case .uid: return "CAP_SETUID"
        }
    }

    public var description: String { SystemCallError(call: call, errno: EPERM).description }
}

/// A network namespace held open by file descriptor.
///
/// The network namespace is a per-thread attribute in Linux, so code runs "inside" one on a dedicated
/// thread that `setns()`ed into it (`run`); the calling thread and the rest of the process stay where
/// they are. Sockets (including netlink sockets) keep the namespace they were created in, so they can be
/// created in `run` and used from any thread afterwards.
public final class NetworkNamespace: @unchecked Sendable {
    /// Where `ip netns` keeps named namespaces.
    public static let namedNamespaceDirectory = "/run/netns"

    /// The file the namespace was opened from (`/run/netns/<name>`, `/proc/<pid>/ns/net`).
    public let path: String
    public let fileDescriptor: Int32

    private init(path: String, fileDescriptor: Int32) {
        self.path = path
        self.fileDescriptor = fileDescriptor
    }

    deinit { close(fileDescriptor) }

    public static func open(path: String) throws -> NetworkNamespace {
        let fd = Glibc.open(path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw SystemCallError(call: "open(\(path))", errno: errno) }
        return NetworkNamespace(path: path, fileDescriptor: fd)
    }

    public static func open(pid: Int32) throws -> NetworkNamespace {
        try open(path: "/proc/\(pid)/ns/net")
    }

    /// Opens a namespace made by `create(named:)` or `ip netns add`.
    public static func open(named name: String) throws -> NetworkNamespace {
        try open(path: try pathForName(name))
    }

    /// What `ip netns add <name>` does: a new namespace kept alive by a bind mount at
    /// `/run/netns/<name>`, with only a (down) loopback interface.
    public static func create(named name: String) throws -> NetworkNamespace {
        let path = try pathForName(name)
        if mkdir(namedNamespaceDirectory, 0o755) != 0 && errno != EEXIST {
            throw SystemCallError(call: "mkdir(\(namedNamespaceDirectory))", errno: errno)
        }
        let mountPoint = Glibc.open(path, O_RDONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0)
        guard mountPoint >= 0 else { throw SystemCallError(call: "create \(path)", errno: errno) }
        close(mountPoint)
        do {
            try onDedicatedThread {
                guard unshare(cloneNewNet) == 0 else {
                    throw SystemCallError(call: "unshare(CLONE_NEWNET)", errno: errno)
                }
                // thread-self, not self: only this thread is in the new namespace.
                guard mount("/proc/thread-self/ns/net", path, "none", UInt(MS_BIND), nil) == 0 else {
                    throw SystemCallError(call: "mount --bind /proc/thread-self/ns/net \(path)", errno: errno)
                }
            }
            return try open(path: path)
        } catch {
            _ = umount2(path, Int32(MNT_DETACH))
            unlink(path)
            throw error
        }
    }

    /// What `ip netns delete <name>` does. The namespace itself goes away once nothing (process, open
    /// descriptor, socket) refers to it any more.
    public static func delete(named name: String) throws {
        let path = try pathForName(name)
        // Lazy unmount: a thread still inside must not make deletion fail.
        if umount2(path, Int32(MNT_DETACH)) != 0 && errno != EINVAL && errno != ENOENT {
            throw SystemCallError(call: "umount2(\(path), Int32(MNT_DETACH))", errno: errno)
        }
        if unlink(path) != 0 && errno != ENOENT {
            throw SystemCallError(call: "unlink(\(path))", errno: errno)
        }
    }

    /// Runs `body` on a new thread that has entered this namespace (and, with `owner`, switched its
    /// file-system UID/GID), and waits for it. Sockets created in `body` belong to this namespace and,
    /// with `owner`, to that UID/GID for `meta skuid`/`skgid` — without forking or changing the process's
    /// real or effective IDs.
    public func run<Result>(as owner: SocketOwner? = nil, _ body: () throws -> Result) throws -> Result {
        let fd = fileDescriptor
        let path = path
        return try withoutActuallyEscaping(body) { body in
            var result: Result?
            try Self.onDedicatedThread {
                guard setns(fd, Self.cloneNewNet) == 0 else {
                    throw SystemCallError(call: "setns(\(path), CLONE_NEWNET)", errno: errno)
                }
                if let owner { try Self.switchFileSystemIDs(to: owner) }
                result = try body()
            }
            return result!
        }
    }

    /// Moves the calling thread into this namespace for good: what a command-line tool entering a pod
    /// (`--netns`, `--pid`) does on its main thread before anything else, so everything it opens after
    /// (netlink sockets, `/proc/thread-self/net`) is the pod's.
    public func enter() throws {
        guard setns(fileDescriptor, Self.cloneNewNet) == 0 else {
            throw SystemCallError(call: "setns(\(path), CLONE_NEWNET)", errno: errno)
        }
    }

    // MARK: Private

    /// From <linux/sched.h>; Swift's Glibc module is built without _GNU_SOURCE, which hides it.
    private static let cloneNewNet: Int32 = 0x4000_0000

    private static func pathForName(_ name: String) throws -> String {
        guard !name.isEmpty, name != ".", name != "..", !name.contains("/"), name.utf8.count < 256 else {
            throw SystemCallError(call: "namespace name \"\(name)\"", errno: EINVAL)
        }
        return "\(namedNamespaceDirectory)/\(name)"
    }

    /// setfsuid/setfsgid change only the calling thread's credentials (unlike setuid, which glibc applies
    /// to every thread). They report failure only by not changing the value, hence the read-back.
    fileprivate static func switchFileSystemIDs(to owner: SocketOwner) throws(CredentialSwitchError) {
        _ = setfsgid(owner.gid)
        guard setfsgid(owner.gid) == Int32(bitPattern: owner.gid) else { throw CredentialSwitchError.gid(owner.gid) }
        _ = setfsuid(owner.uid)
        guard setfsuid(owner.uid) == Int32(bitPattern: owner.uid) else { throw CredentialSwitchError.uid(owner.uid) }
    }

    private final class ThreadWork: @unchecked Sendable {
        let work: () throws -> Void
        var error: (any Error)?
        init(_ work: @escaping () throws -> Void) { self.work = work }
    }

    /// Runs `work` on a fresh pthread and joins it. The thread ends with `work`, so whatever namespace or
    /// credentials it switched to never leak into another task.
    fileprivate static func onDedicatedThread(_ work: () throws -> Void) throws {
        try withoutActuallyEscaping(work) { work in
            let box = ThreadWork(work)
            let unmanaged = Unmanaged.passRetained(box)
            var thread = pthread_t()
            let status = pthread_create(&thread, nil, { argument in
                let box = Unmanaged<ThreadWork>.fromOpaque(argument!).takeRetainedValue()
                do { try box.work() } catch { box.error = error }
                return nil
            }, unmanaged.toOpaque())
            guard status == 0 else {
                unmanaged.release()
                throw SystemCallError(call: "pthread_create", errno: status)
            }
            pthread_join(thread, nil)
            if let error = box.error { throw error }
        }
    }
}
