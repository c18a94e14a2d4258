import Netfilter
import TextFiles
#if canImport(Glibc)
import Glibc
#endif

/// A program the lab needs and could not find, with where it looked and how to fix it.
public struct MissingProgram: Error, CustomStringConvertible {
    public let description: String
}

/// A system tool that exited with a failure: the command line and everything it printed.
public struct ToolFailure: Error, CustomStringConvertible {
    public var command: [String]
    public var output: ProcessOutput

    public var description: String { "\(command.joined(separator: " ")) failed: \(output)" }
}

/// A file under /tmp with the given contents, for tools that read files (`nft -f`, `--resolv-conf`);
/// the caller calls `remove()`. Nothing is left behind when writing fails.
public struct TemporaryFile: Sendable {
    public let path: String

    public init(contents: String) throws {
        var template = Array("/tmp/sluice-lab-XXXXXX".utf8CString)
        let fd = mkstemp(&template)
        guard fd >= 0 else { throw SystemCallError(call: "mkstemp", errno: errno) }
        defer { close(fd) }
        path = String(decoding: template.dropLast().map { UInt8(bitPattern: $0) }, as: UTF8.self)
        let bytes = Array(contents.utf8)
        let written = retryingInterrupts { write(fd, bytes, bytes.count) }
        guard written == bytes.count else {
            // A short write sets no errno; report it as EIO.
            let error = written < 0 ? errno : EIO
            unlink(path)
            throw SystemCallError(call: "write \(path)", errno: error)
        }
    }

    public func remove() { unlink(path) }
}

/// A private directory under /tmp for one lab or test (a pod's root, a scratch socket, token files),
/// removed with everything in it by `remove()`.
public struct TemporaryDirectory: Sendable {
    public let path: String

    /// `mode` is applied after creation (mkdtemp makes 0700): 0755 when a process that dropped to
    /// another user must still reach it.
    public init(prefix: String = "sluice-lab", mode: mode_t = 0o700) throws {
        var template = Array("/tmp/\(prefix)-XXXXXX".utf8CString)
        guard let made = mkdtemp(&template) else { throw SystemCallError(call: "mkdtemp", errno: errno) }
        path = String(cString: made)
        if mode != 0o700 { chmod(path, mode) }
    }

    /// The path of `name` inside the directory.
    public func file(_ name: String) -> String { path + "/" + name }

    /// Writes `contents` to `name` (owner-only by default, as secrets and tokens are).
    public func write(_ name: String, _ contents: String, mode: mode_t = 0o600) throws {
        try TextFile.writeAtomically(contents, to: file(name), mode: mode)
    }

    /// Removes the directory and everything below it, whoever owns it; symbolic links are removed,
    /// never followed. Idempotent.
    public func remove() { Self.removeTree(path) }

    private static func removeTree(_ path: String) {
        var status = stat()
        guard lstat(path, &status) == 0 else { return }
        if status.st_mode & S_IFMT == S_IFDIR, let directory = opendir(path) {
            var names: [String] = []
            while let entry = readdir(directory) {
                let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
                if name != "." && name != ".." { names.append(name) }
            }
            closedir(directory)
            for name in names { removeTree(path + "/" + name) }
            rmdir(path)
        } else {
            unlink(path)
        }
    }
}

extension PodLab {
    /// A system tool that tests use to set up or observe (`nft`, `ip`, `groupadd`); never used by Sources.
    public static func systemExecutable(_ name: String) throws -> String {
        let directories = ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]
        let candidates: [String] = directories.map { directory in "\(directory)/\(name)" }
        guard let found = candidates.first(where: { path in access(path, X_OK) == 0 }) else {
            throw MissingProgram(description: "\(name) not found in \(directories)")
        }
        return found
    }

    /// Runs the system tool `name` in `namespace` (as root, with `Subprocess.defaultEnvironment`): its
    /// standard output, or `ToolFailure` when it does not exit 0.
    @discardableResult
    public static func runTool(_ name: String, _ arguments: [String], in namespace: NetworkNamespace) throws -> String {
        let executable = try systemExecutable(name)
        let output = try Subprocess.run(executable, arguments, in: namespace)
        guard output.status == 0 else { throw ToolFailure(command: [executable] + arguments, output: output) }
        return output.standardOutput
    }

    /// `nft list ruleset` in `namespace`, the kernel's view that "nothing changed" is judged on: with
    /// `handles`, every object's handle (`-a`); without `counters`, stateless (`-s`: `counter` without
    /// values), so listings of the same rules compare equal whatever traffic went through them.
    public static func listRuleset(in namespace: NetworkNamespace, handles: Bool = false, counters: Bool = true) throws -> String {
        try runTool("nft", (handles ? ["-a"] : []) + (counters ? [] : ["-s"]) + ["list", "ruleset"], in: namespace)
    }

    /// Loads nft text into `namespace` with `nft -f`.
    public static func loadRuleset(_ text: String, into namespace: NetworkNamespace) throws {
        let file = try TemporaryFile(contents: text)
        defer { file.remove() }
        try runTool("nft", ["-f", file.path], in: namespace)
    }

    /// The rules of an `nft -a list chain` listing, in order, each line with its handle
    /// (`... # handle 12`); the chain's own line is skipped.
    public static func ruleHandles(in listing: String) -> [(rule: Substring, handle: String)] {
        listing.split(separator: "\n")
            .filter { !$0.contains("chain ") && !$0.contains("type ") && $0.contains("# handle ") }
            .compactMap { line in line.ranges(of: "# handle ").last.map { (line, String(line[$0.upperBound...])) } }
    }

    /// The built `sluice-init`: `$SLUICE_INIT`, or next to the running executable in the build directory.
    public static func sluiceInitExecutable() throws -> String {
        try builtExecutable(named: "sluice-init", override: "SLUICE_INIT")
    }

    /// A product of this package: `$<override>` when set, or next to the running executable in the build
    /// directory (sluice-demo and the test binary sit in it, or the test binary in an .xctest bundle within it).
    public static func builtExecutable(named name: String, override: String? = nil) throws -> String {
        if let override, let path = getenv(override) { return String(cString: path) }
        var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
        let length = readlink("/proc/self/exe", &buffer, buffer.count - 1)
        guard length > 0 else {
            throw MissingProgram(description: "readlink /proc/self/exe: \(String(cString: strerror(errno)))")
        }
        let executablePath = String(decoding: buffer[0..<length].map { UInt8(bitPattern: $0) }, as: UTF8.self)
        var directory = Substring(executablePath)
        var candidates: [String] = []
        for _ in 0..<3 {
            guard let slash = directory.lastIndex(of: "/") else { break }
            directory = directory[..<slash]
            candidates.append("\(directory)/\(name)")
        }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw MissingProgram(description: "\(name) not built next to \(executablePath) (looked at \(candidates)); "
                + "run `swift build --product \(name)` with the same scratch path"
                + (override.map { ", or set \($0)" } ?? ""))
        }
        return found
    }
}
