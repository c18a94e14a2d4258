import AgentConfig
import Glibc
import TextFiles

/// Files as they are on disk, for configuration resolution and the bootstrap's inputs.
struct LiveFiles: AgentFileReader {
    struct ReadError: Error, CustomStringConvertible {
        var description: String
    }

    func contents(ofFile absolutePath: String) throws -> String? {
        do {
            return try TextFile.read(absolutePath)
        } catch where error.isMissing {
            return nil
        } catch {
            throw ReadError(description: "cannot read \(error)")
        }
    }

    /// Writes `text` to `path` through a temporary file and a rename, so the data plane never reads a
    /// half-written bootstrap (it may be restarting while the agent writes).
    static func writeAtomically(_ text: String, to path: String, mode: mode_t = 0o644) throws(ReadError) {
        let temporary = path + ".tmp-\(getpid())"
        let fd = open(temporary, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode)
        guard fd >= 0 else { throw failure("cannot write", path) }
        var bytes = Array(text.utf8)[...]
        var attempts = 0
        while !bytes.isEmpty, attempts < 1000 {
            attempts += 1
            let written = bytes.withUnsafeBytes { write(fd, $0.baseAddress, $0.count) }
            if written < 0 {
                if errno == EINTR { continue }
                let error = failure("cannot write", path)
                close(fd)
                unlink(temporary)
                throw error
            }
            bytes = bytes.dropFirst(written)
        }
        close(fd)
        guard rename(temporary, path) == 0 else {
            let error = failure("cannot write", path)
            unlink(temporary)
            throw error
        }
    }

    static func failure(_ what: String, _ path: String) -> ReadError {
        ReadError(description: "\(what) \(path): \(String(cString: strerror(errno)))")
    }

    /// Creates `path` with `mode`, and its missing parents as `mkdir -p` does (0755), so the proxy
    /// user can reach a directory root created for it.
    static func createDirectory(_ path: String, mode: mode_t) throws(ReadError) {
        var partial = ""
        let components = path.split(separator: "/")
        for (index, component) in components.enumerated() {
            partial += "/" + component
            let isLast = index == components.count - 1
            if mkdir(partial, isLast ? mode : 0o755) != 0 && errno != EEXIST { throw failure("cannot create directory", partial) }
        }
    }
}
