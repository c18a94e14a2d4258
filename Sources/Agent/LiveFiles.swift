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
        do {
            try TextFile.writeAtomically(text, to: path, mode: mode)
        } catch {
            throw ReadError(description: "cannot write \(error)")
        }
    }

    /// Creates `path` with `mode`, and its missing parents as `mkdir -p` does (0755), so the proxy
    /// user can reach a directory root created for it.
    static func createDirectory(_ path: String, mode: mode_t) throws(ReadError) {
        do {
            try TextFile.createDirectory(path, mode: mode)
        } catch {
            throw ReadError(description: "cannot create directory \(error)")
        }
    }
}
