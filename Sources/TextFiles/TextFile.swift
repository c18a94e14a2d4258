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

extension TextFile {
    /// Writes `text` to `path` through a temporary file in the same directory and a rename, so a reader
    /// (a data plane restarting, a workload reading OUTPUT_CERTS) never sees half a file.
    public static func writeAtomically(_ text: String, to path: String, mode: mode_t = 0o644) throws(TextFileError) {
        let temporary = path + ".tmp-\(getpid())"
        let descriptor = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard descriptor >= 0 else { throw TextFileError(path: temporary, code: errno) }
        // open's mode is filtered by the umask; secrets must end with exactly the mode asked for.
        fchmod(descriptor, mode)
        var bytes = Array(text.utf8)[...]
        var attempts = 0
        while !bytes.isEmpty, attempts < 1000 {
            attempts += 1
            let written = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = TextFileError(path: path, code: errno)
                close(descriptor)
                unlink(temporary)
                throw error
            }
            bytes = bytes.dropFirst(written)
        }
        close(descriptor)
        guard rename(temporary, path) == 0 else {
            let error = TextFileError(path: path, code: errno)
            unlink(temporary)
            throw error
        }
    }

    /// Creates `path` with `mode`, and its missing parents as `mkdir -p` does (0755).
    public static func createDirectory(_ path: String, mode: mode_t) throws(TextFileError) {
        var partial = ""
        let components = path.split(separator: "/")
        for (index, component) in components.enumerated() {
            partial += "/" + component
            let isLast = index == components.count - 1
            if mkdir(partial, isLast ? mode : 0o755) != 0 && errno != EEXIST { throw TextFileError(path: partial, code: errno) }
        }
    }
}
