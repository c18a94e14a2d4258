import ConfigFormats
import DataPlaneConfig
import Glibc
import Testing

/// The agent's bootstrap snapshots (Tests/BootstrapTests/Snapshots), read from the source tree.
enum AgentSnapshots {
    static let directory: String = {
        // .../Tests/DataPlaneConfigTests/TestSupport.swift → .../Tests/BootstrapTests/Snapshots
        let testsDirectory = #filePath.split(separator: "/", omittingEmptySubsequences: false).dropLast(2)
        return testsDirectory.joined(separator: "/") + "/BootstrapTests/Snapshots"
    }()

    /// Every `*.json` in the directory, sorted, without the extension.
    static let names: [String] = {
        guard let directory = opendir(directory) else { return [] }
        defer { closedir(directory) }
        var names: [String] = []
        // Bounded: a snapshot directory holds a handful of files.
        for _ in 0..<10_000 {
            guard let entry = readdir(directory) else { break }
            let name = withUnsafeBytes(of: entry.pointee.d_name) { bytes in
                String(decoding: bytes.prefix { $0 != 0 }, as: UTF8.self)
            }
            if name.hasSuffix(".json") { names.append(String(name.dropLast(5))) }
        }
        return names.sorted()
    }()

    static func text(_ name: String) throws -> String {
        try readFile("\(directory)/\(name).json")
    }

    static func document(_ name: String) throws -> JSONValue {
        try JSONValue.parse(json: text(name))
    }

    static func bootstrap(_ name: String) throws -> ProxyBootstrap {
        try ProxyBootstrap.parse(document(name))
    }
}

struct FileReadError: Error, CustomStringConvertible {
    var path: String
    var code: Int32
    var description: String { "\(String(cString: strerror(code))) (errno \(code))" }
}

/// Reads a whole file with Glibc (no Foundation in this project).
func readFile(_ path: String) throws -> String {
    guard let file = fopen(path, "rb") else { throw FileReadError(path: path, code: errno) }
    defer { fclose(file) }
    var bytes: [UInt8] = []
    var buffer = [UInt8](repeating: 0, count: 65_536)
    // Bounded: 64 MiB is far beyond any bootstrap.
    for _ in 0..<1024 {
        let count = fread(&buffer, 1, buffer.count, file)
        if count == 0 { break }
        bytes += buffer[0..<count]
    }
    return String(decoding: bytes, as: UTF8.self)
}

/// Edits a JSON document at a path written as errors spell it: `static_resources.clusters[2].type`.
/// `to: nil` removes the field. Paths that do not exist are a test bug and stop the test.
extension JSONValue {
    func setting(_ path: String, to newValue: JSONValue?) -> JSONValue {
        set(steps: JSONValue.steps(path)[...], to: newValue)
    }

    /// Appends to the list at `path` (creating it).
    func appending(_ path: String, _ element: JSONValue) -> JSONValue {
        let existing = value(at: path)?.arrayValue ?? []
        return setting(path, to: .array(existing + [element]))
    }

    func value(at path: String) -> JSONValue? {
        var current: JSONValue? = self
        for step in JSONValue.steps(path) {
            switch step {
            case .key(let key): current = current?[key]
            case .index(let index): current = current?.arrayValue.flatMap { index < $0.count ? $0[index] : nil }
            }
        }
        return current
    }

    private enum Step { case key(String), index(Int) }

    private static func steps(_ path: String) -> [Step] {
        var steps: [Step] = []
        for part in path.split(separator: ".") {
            var name = Substring(part)
            var indices: [Int] = []
            while name.hasSuffix("]"), let open = name.lastIndex(of: "[") {
                indices.insert(Int(name[name.index(after: open)..<name.index(before: name.endIndex)])!, at: 0)
                name = name[..<open]
            }
            if !name.isEmpty { steps.append(.key(String(name))) }
            steps += indices.map { .index($0) }
        }
        return steps
    }

    private func set(steps: ArraySlice<Step>, to newValue: JSONValue?) -> JSONValue {
        guard let step = steps.first else { return newValue ?? .null }
        switch step {
        case .key(let key):
            var object = objectValue ?? JSONObject()
            if steps.count == 1 {
                object[key] = newValue
            } else {
                object[key] = (object[key] ?? .object([:])).set(steps: steps.dropFirst(), to: newValue)
            }
            return .object(object)
        case .index(let index):
            var elements = arrayValue!
            precondition(index < elements.count, "no element \(index)")
            if steps.count == 1, newValue == nil {
                elements.remove(at: index)
            } else {
                elements[index] = elements[index].set(steps: steps.dropFirst(), to: newValue)
            }
            return .array(elements)
        }
    }
}

/// The error `body` throws, or a recorded issue when it throws none.
func configError(_ body: () throws(ConfigError) -> Void, sourceLocation: SourceLocation = #_sourceLocation) -> ConfigError? {
    do {
        try body()
        Issue.record("expected a ConfigError", sourceLocation: sourceLocation)
        return nil
    } catch {
        return error
    }
}
