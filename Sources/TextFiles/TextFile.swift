#if canImport(Glibc)
import Glibc
#endif

/// A file that could not be read, with the errno that said why.
public struct TextFileError: Error, CustomStringConvertible, Equatable {
    public var path: String
    public var code: Int32

    public init(path: String, code: Int32) {
        self.path = path
        self.code = code
    }

    /// The file (or a directory on its path) does not exist.
    public var isMissing: Bool { code == ENOENT || code == ENOTDIR }

    public var description: String { "\(path): \(String(cString: strerror(code)))" }
}

/// Whole small files as text: configuration, bootstraps, resolv.conf, procfs. procfs reports a size
/// of 0, so this reads until EOF rather than trusting `stat`.
public enum TextFile {
    /// The file's bytes as UTF-8 (invalid sequences replaced), up to `limit` bytes: the bound keeps a
    /// mistaken path to something huge (a device, a log) harmless.
    public static func read(_ path: String, limit: Int = 64 << 20) throws(TextFileError) -> String {
        let descriptor = open(path, O_RDONLY | O_CLOEXEC)
        guard descriptor >= 0 else { throw TextFileError(path: path, code: errno) }
        defer { close(descriptor) }
        var contents: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 65536)
        // Interrupted reads are retried, a bounded number of times.
        var interruptions = 0
        while contents.count < limit {
            let count = chunk.withUnsafeMutableBytes { Glibc.read(descriptor, $0.baseAddress, min($0.count, limit - contents.count)) }
            if count == 0 { break }
            if count < 0 {
                if errno == EINTR, interruptions < 1000 {
                    interruptions += 1
                    continue
                }
                throw TextFileError(path: path, code: errno)
            }
            contents += chunk[0..<count]
        }
        return String(decoding: contents, as: UTF8.self)
    }
}
