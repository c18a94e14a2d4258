#if canImport(Glibc)
import Glibc
#endif

/// Identifies a file's current content without reading it: a rename, a symlink swap (kubelet's `..data`
/// for ConfigMaps and Secrets) or a rewrite all change one of these. Watchers poll it and read the file
/// only when it changes.
public struct FileSignature: Hashable, Sendable {
    public var device: UInt64
    public var inode: UInt64
    public var size: Int64
    public var modified: Int64
    public var changed: Int64

    /// nil when the file is missing or unreadable; stat follows symlinks, as a reader of the path would.
    public init?(path: String) {
        var status = stat()
        guard stat(path, &status) == 0 else { return nil }
        device = UInt64(status.st_dev)
        inode = UInt64(status.st_ino)
        size = Int64(status.st_size)
        modified = Int64(status.st_mtim.tv_sec) * 1_000_000_000 + Int64(status.st_mtim.tv_nsec)
        changed = Int64(status.st_ctim.tv_sec) * 1_000_000_000 + Int64(status.st_ctim.tv_nsec)
    }
}
