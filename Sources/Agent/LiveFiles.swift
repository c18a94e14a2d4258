import AgentConfig
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
}
