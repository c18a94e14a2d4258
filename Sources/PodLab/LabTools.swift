#if canImport(Glibc)
import Glibc
#endif

/// A program the lab needs and could not find, with where it looked and how to fix it.
public struct MissingProgram: Error, CustomStringConvertible {
    public let description: String
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

    /// The built `sluice-init`: `$SLUICE_INIT`, or next to the running test binary in the build
    /// directory (the binary sits in it, or in an .xctest bundle within it).
    public static func sluiceInitExecutable() throws -> String {
        if let override = getenv("SLUICE_INIT") { return String(cString: override) }
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
            candidates.append("\(directory)/sluice-init")
        }
        guard let found = candidates.first(where: { access($0, X_OK) == 0 }) else {
            throw MissingProgram(description: "sluice-init not built next to the tests (looked at \(candidates)); "
                + "run `swift build --product sluice-init` with the same scratch path, or set SLUICE_INIT")
        }
        return found
    }
}
